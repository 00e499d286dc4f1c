"""What a trained tagger needs to tag and be scored: the model a config describes, words
encoded in pieces that fit the model, CRF or argmax decoding, entity-level scores, and the
held-out split of a run's own data.

This module imports no training code (no Lightning), so that loading a run
(`seqlab.tasks.tag.pipeline`) stays fast; `seqlab.tasks.tag.recipe` trains with the same
functions. Arch hf imports transformers only when its encoder is loaded (`seqlab.hub`), and
`entity_scores` imports seqeval only when it scores.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tokenizers import Tokenizer
from torch import nn
from torch.utils.data import DataLoader

from seqlab import hub
from seqlab.config import RunConfig
from seqlab.data.batching import pad_batch
from seqlab.data.conll import SILVER_NER, TaggedSentence, entity_types, load_tagged, spans_to_tags, tags_to_spans
from seqlab.data.tokenize import PAD_ID, UNK
from seqlab.errors import SeqlabError
from seqlab.models.crf import CRF
from seqlab.models.tagger import BiLSTMTagger, HFTokenTagger, TransformerTagger, casing_id, char_ids


@dataclass
class TagSplits:
    train: list[TaggedSentence]
    valid: list[TaggedSentence]
    test: list[TaggedSentence]
    sources: dict[str, str] = field(default_factory=dict)


def standard_splits(spec: str) -> dict[str, str] | None:
    """`{"valid": "conll2003:valid", "test": "conll2003:test"}` when `spec` names a built-in
    tagged corpus with standard splits (its training split), else None."""
    from seqlab.data.datasets import builtin_split

    if ":" in spec or spec == SILVER_NER:
        return None
    named = builtin_split(spec)
    if named is None or named[0].task != "tag" or not named[0].splits:
        return None
    return {split: f"{named[0].name}:{split}" for split in named[0].splits[1:]}


def load_splits(cfg: RunConfig) -> TagSplits:
    """Read `data.train` (and `data.valid`/`data.test` files) and cut the missing splits off.

    A built-in corpus with standard splits (`conll2003`) keeps them as released: its training
    split in file order, and its own valid and test splits unless `data.valid`/`data.test`
    name others; nothing is shuffled or cut off, so scores compare with the papers'.
    """
    data = cfg.data
    standard = standard_splits(data.train)
    if standard is not None:
        train = load_tagged(data.train)
        valid = load_tagged(data.valid or standard["valid"])
        test = load_tagged(data.test or standard["test"])
        sources = {"train": data.train, "valid": data.valid or standard["valid"], "test": data.test or standard["test"]}
        splits = TagSplits(train[: data.limit] if data.limit else train, valid, test, sources)
        check_types(splits)
        return splits
    sentences = load_tagged(data.train)
    order = list(range(len(sentences)))
    random.Random(data.split_seed).shuffle(order)
    pool = [sentences[i] for i in order]
    total = len(pool)
    test = load_tagged(data.test) if data.test else _take(pool, total, data.test_fraction, "test")
    valid = load_tagged(data.valid) if data.valid else _take(pool, total, data.valid_fraction, "valid")
    train = pool[: data.limit] if data.limit else pool
    sources = {
        "train": data.train,
        "valid": data.valid or f"{data.valid_fraction:.0%} of {data.train}",
        "test": data.test or f"{data.test_fraction:.0%} of {data.train}",
    }
    splits = TagSplits(train, valid, test, sources)
    check_types(splits)
    return splits


def _take(pool: list[TaggedSentence], total: int, fraction: float, name: str) -> list[TaggedSentence]:
    count = round(total * fraction)
    if fraction and (count == 0 or count >= len(pool)):
        raise SeqlabError(f"{total} sentences are too few to hold out a {name} split; add data or set data.{name}_fraction=0")
    taken = pool[len(pool) - count :]
    del pool[len(pool) - count :]
    return taken


def check_types(splits: TagSplits) -> None:
    """Training must hold entities, and valid/test no entity type that training lacks."""
    if not splits.train:
        raise SeqlabError("no training sentences left after the valid/test split")
    known = set(entity_types(splits.train))
    if not known:
        raise SeqlabError(f"the training data {splits.sources['train']} has no entities (every tag is O); a tagger needs some")
    for name in ("valid", "test"):
        unseen = sorted(set(entity_types(getattr(splits, name))) - known)
        if unseen:
            raise SeqlabError(
                f"entity type {unseen[0]!r} appears in the {name} data ({splits.sources[name]}) but never in "
                "the training data; add training sentences with it or drop it"
            )


# Unknown words by shape (the Berkeley parser's "signatures", reduced to what marks names).
SHAPES = ("[UNK-Xx]", "[UNK-XX]", "[UNK-x]", "[UNK-d]", "[UNK-p]")


def word_shape(word: str) -> str:
    if any(c.isdigit() for c in word):
        return "[UNK-d]"
    if not any(c.isalpha() for c in word):
        return "[UNK-p]"
    if word[0].isupper():
        return "[UNK-XX]" if word.isupper() and len(word) > 1 else "[UNK-Xx]"
    return "[UNK-x]"


def _with_shapes(tokenizer: Tokenizer, token_lists: Sequence[Sequence[str]]) -> list[list[str]]:
    """Each word outside a word vocabulary replaced by its shape (a pretrained tokenizer, which
    has no shapes, splits unknown words into sub-words instead)."""
    if tokenizer.token_to_id(SHAPES[0]) is None:
        return [list(words) for words in token_lists]
    normalize = tokenizer.normalizer.normalize_str if tokenizer.normalizer else (lambda w: w)
    known = tokenizer.get_vocab()
    return [[w if normalize(w) in known else word_shape(w) for w in words] for words in token_lists]


@dataclass
class Piece:
    """One model input: the token ids of words [start, start + len(first)) of a sentence.

    first: the position in `ids` of each word's first token.
    chars, casing: per token position, the character ids and casing class of the word as
        written (`models.tagger.char_ids`, `casing_id`); None unless the model reads them.
    """

    sentence: int
    start: int
    ids: list[int]
    first: list[int]
    chars: list[list[int]] | None = None
    casing: list[int] | None = None


def encode_words(
    tokenizer: Tokenizer, token_lists: Sequence[Sequence[str]], max_length: int, max_word_chars: int | None = None
) -> list[Piece]:
    """Tokens (and special tokens) of pre-split words, in pieces of at most `max_length` tokens.

    A sentence that fits is one piece; a longer one is cut between words into consecutive
    pieces (a single word longer than the limit keeps only its first tokens). A word the
    tokenizer turns into nothing (a lone control character) is read as [UNK]. With
    `max_word_chars`, each piece also holds the characters (at most that many per word) and
    casing class of its words as written, for a tagger with word features.
    """
    pieces = _encode_words(tokenizer, token_lists, max_length)
    if max_word_chars is not None:
        for piece in pieces:
            words = token_lists[piece.sentence][piece.start : piece.start + len(piece.first)]
            piece.chars, piece.casing = [[1]] * len(piece.ids), [0] * len(piece.ids)
            for word, position in zip(words, piece.first):
                piece.chars[position] = char_ids(word, max_word_chars)
                piece.casing[position] = casing_id(word)
    return pieces


def _encode_words(tokenizer: Tokenizer, token_lists: Sequence[Sequence[str]], max_length: int) -> list[Piece]:
    specials = tokenizer.num_special_tokens_to_add(False)
    budget = max(max_length - specials, 1)
    pieces = []
    token_lists = _with_shapes(tokenizer, token_lists)
    encodings = tokenizer.encode_batch(token_lists, is_pretokenized=True)
    for index, (words, encoding) in enumerate(zip(token_lists, encodings)):
        if not words:
            continue
        counts = [0] * len(words)
        for word in encoding.word_ids:
            if word is not None:
                counts[word] += 1
        if 0 in counts:  # re-encode with [UNK] where a word vanished
            words = [w if c else UNK for w, c in zip(words, counts)]
            encoding = tokenizer.encode(list(words), is_pretokenized=True)
            counts = [max(c, 1) for c in counts]
        if len(encoding.ids) <= max_length:
            pieces.append(Piece(index, 0, encoding.ids, _first_positions(encoding.word_ids, len(words))))
            continue
        for start, end in _cuts(counts, budget):
            tokenizer.enable_truncation(max_length)
            try:
                part = tokenizer.encode(list(words[start:end]), is_pretokenized=True)
            finally:
                tokenizer.no_truncation()
            pieces.append(Piece(index, start, part.ids, _first_positions(part.word_ids, end - start)))
    return pieces


def _first_positions(word_ids: list[int | None], count: int) -> list[int]:
    first = [-1] * count
    for position, word in enumerate(word_ids):
        if word is not None and first[word] < 0:
            first[word] = position
    return first


def _cuts(counts: list[int], budget: int) -> list[tuple[int, int]]:
    """Consecutive word ranges whose token counts add up to at most `budget` (a longer single
    word is a range of its own)."""
    cuts, start, used = [], 0, 0
    for i, count in enumerate(counts):
        if used and used + count > budget:
            cuts.append((start, i))
            start, used = i, 0
        used += count
    cuts.append((start, len(counts)))
    return cuts


class PieceDataset(torch.utils.data.Dataset):
    def __init__(self, pieces: list[Piece], tags: list[list[int]] | None = None):
        self.pieces = pieces
        self.tags = tags

    def __len__(self) -> int:
        return len(self.pieces)

    def __getitem__(self, index: int) -> tuple[Piece, list[int] | None]:
        return self.pieces[index], self.tags[index] if self.tags is not None else None


def collate_pieces(batch: list[tuple[Piece, list[int] | None]]) -> dict[str, torch.Tensor]:
    """→ input_ids, attention_mask (B, T); word_index, word_mask (B, W); tags (B, W) when known;
    char_ids (B, T, C) and casing_ids (B, T) when the pieces hold them (0 pads all of them)."""
    input_ids, attention_mask = pad_batch([piece.ids for piece, _ in batch])
    word_index, word_mask = pad_batch([piece.first for piece, _ in batch])
    out = {"input_ids": input_ids, "attention_mask": attention_mask, "word_index": word_index, "word_mask": word_mask}
    if batch[0][1] is not None:
        out["tags"] = pad_batch([tags for _, tags in batch])[0]
    if batch[0][0].chars is not None:
        longest = max(len(chars) for piece, _ in batch for chars in piece.chars)
        char_ids = torch.zeros(*input_ids.shape, longest, dtype=torch.long)  # (B, T, C)
        for row, (piece, _) in enumerate(batch):
            for position, chars in enumerate(piece.chars):
                char_ids[row, position, : len(chars)] = torch.as_tensor(chars)
        out["char_ids"] = char_ids
        out["casing_ids"] = pad_batch([piece.casing for piece, _ in batch], pad_id=0)[0]
    return out


def tagger_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's keyword arguments out of a `collate_pieces` batch (the word features only
    where the batch has them, so every tagger takes the same call)."""
    keys = ("input_ids", "attention_mask", "word_index", "char_ids", "casing_ids")
    return {key: batch[key] for key in keys if key in batch}


def word_chars(model: nn.Module) -> int | None:
    """Characters per word that `model`'s word features read (`encode_words`' max_word_chars),
    None for a tagger without them."""
    return model.max_word_chars if getattr(model, "word_features", False) else None


def allowed_transitions(names: list[str], scheme: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The moves `scheme` permits between tags: (K, K) [from, to], and the (K,) tags a sentence
    may start and end with. Inside tags (I-, E-) only continue an entity of their own type."""

    def inside(tag: str) -> bool:
        return tag[:2] in ("I-", "E-")

    def continues(prev: str, tag: str) -> bool:  # prev opens or carries on the entity `tag` is inside of
        return prev[2:] == tag[2:] and prev[:2] in ("B-", "I-")

    def closed(tag: str) -> bool:  # no entity left open after this tag
        return tag == "O" or tag[:2] in ("E-", "S-") or (scheme == "bio" and tag != "O")

    size = len(names)
    allowed = torch.zeros(size, size, dtype=torch.bool)
    for i, prev in enumerate(names):
        for j, tag in enumerate(names):
            allowed[i, j] = continues(prev, tag) if inside(tag) else closed(prev)
    start = torch.tensor([not inside(tag) for tag in names])
    end = torch.tensor([closed(tag) for tag in names])
    return allowed, start, end


def build_tagger(cfg: RunConfig, tokenizer: Tokenizer, names: list[str], encoder_source: str | None = None) -> nn.Module:
    """The configured tagger, fresh (arch hf: the encoder loaded from `encoder_source`, default
    `model.model`)."""
    m = cfg.model
    crf = CRF(len(names), *allowed_transitions(names, cfg.tag.scheme)) if cfg.tag.crf else None
    vocab_size = tokenizer.get_vocab_size()
    if m.arch == "bilstm-crf":
        return BiLSTMTagger(
            vocab_size,
            len(names),
            m.embed_dim,
            m.hidden_dim,
            m.num_layers,
            m.dropout,
            PAD_ID,
            crf,
            m.char_features,
            m.char_dim,
            m.char_hidden,
            m.char_width,
            m.casing_dim,
            m.max_word_chars,
        )
    if m.arch == "transformer":
        return TransformerTagger(
            vocab_size,
            len(names),
            m.d_model,
            m.num_heads,
            m.num_layers,
            m.ff_dim,
            m.dropout,
            m.positional,
            max(512, cfg.tokenizer.max_length),
            PAD_ID,
            crf,
        )
    encoder = hub.load_encoder(encoder_source or m.model)
    if vocab_size > encoder.config.vocab_size:
        raise SeqlabError(
            f"the tokenizer of {m.model} has {vocab_size:,} tokens but the model embeds only "
            f"{encoder.config.vocab_size:,}: tokenizer and model do not match"
        )
    model = HFTokenTagger(encoder, len(names), m.dropout, crf)
    if m.strategy == "frozen":
        model.freeze_encoder()
    return model


def decode(model: nn.Module, logits: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    """Best tag ids per word: Viterbi through the CRF, else the argmax of each word."""
    if getattr(model, "crf", None) is not None:
        return model.crf.viterbi(logits, mask)
    best = logits.argmax(-1)
    return [row[: int(n)].tolist() for row, n in zip(best, mask.sum(1))]


@torch.inference_mode()
def predict_tags(
    model: nn.Module,
    tokenizer: Tokenizer,
    names: list[str],
    token_lists: Sequence[Sequence[str]],
    max_length: int,
    batch_size: int = 64,
) -> list[list[str]]:
    """Tags of every word of every sentence, in input order (an empty sentence gets none)."""
    model.eval()
    pieces = encode_words(tokenizer, token_lists, max_length, word_chars(model))
    out: list[list[str]] = [[] for _ in token_lists]
    loader = DataLoader(PieceDataset(pieces), batch_size=batch_size, collate_fn=collate_pieces)  # in order
    done = 0
    for batch in loader:
        logits = model(**tagger_inputs(batch)).logits
        for path in decode(model, logits, batch["word_mask"]):
            out[pieces[done].sentence].extend(names[i] for i in path)  # pieces come in sentence order
            done += 1
    return out


def entity_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """Entity-level precision, recall and F1 (seqeval, CoNLL rules) overall (micro average)
    and per type, with each type's number of gold entities (support)."""
    from seqeval.metrics import classification_report

    gold = [[t for t in tags] for tags in gold]
    predicted = [[t for t in tags] for tags in predicted]
    if not any(t != "O" for tags in gold + predicted for t in tags):
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "per_type": {}}
    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    overall = report["micro avg"]
    per_type = {
        name: {
            "precision": float(r["precision"]),
            "recall": float(r["recall"]),
            "f1": float(r["f1-score"]),
            "support": int(r["support"]),
        }
        for name, r in sorted(report.items())
        if not name.endswith(" avg")
    }
    return {
        "precision": float(overall["precision"]),
        "recall": float(overall["recall"]),
        "f1": float(overall["f1-score"]),
        "support": int(overall["support"]),
        "per_type": per_type,
    }


def evaluate_sentences(
    model: nn.Module, tokenizer: Tokenizer, names: list[str], sentences: Sequence[TaggedSentence], max_length: int
) -> dict:
    """Entity scores (see `entity_scores`), word accuracy of the BIO tags, and words/s."""
    if not sentences:
        raise SeqlabError("no sentences to evaluate")
    known = {name[2:] for name in names if name != "O"}
    unseen = sorted(set(entity_types(list(sentences))) - known)
    if unseen:
        raise SeqlabError(f"entity type {unseen[0]!r} is not one the tagger knows ({', '.join(sorted(known))})")
    started = time.perf_counter()
    predicted = predict_tags(model, tokenizer, names, [s.tokens for s in sentences], max_length)
    seconds = max(time.perf_counter() - started, 1e-9)
    gold_bio = [s.tags("bio") for s in sentences]
    pred_bio = [spans_to_tags(tags_to_spans(tags), len(tags), "bio") for tags in predicted]
    words = sum(len(s.tokens) for s in sentences)
    correct = sum(g == p for gs, ps in zip(gold_bio, pred_bio) for g, p in zip(gs, ps))
    return {
        **entity_scores(gold_bio, pred_bio),
        "word_accuracy": correct / max(words, 1),
        "sentences": len(sentences),
        "words": words,
        "predicted_entities": sum(len(tags_to_spans(t)) for t in pred_bio),
        "words_per_second": words / seconds,
        "sentences_per_second": len(sentences) / seconds,
    }
