"""Sequence tagging (task tag): splits, vocabularies, the Lightning module, decoding and
entity-level evaluation. Models come from `seqlab.models.tagger`; the loop is `seqlab.trainer.fit`.

- **Data**: `TaggedSentence`s (tokens + entity spans, `seqlab.data.conll`) from `silver-ner` or
  a user's CoNLL/JSONL/DocBin file, shuffled with `data.split_seed`, valid/test cut off as for
  classification. Tags are derived from the spans in `tag.scheme` (BIO or IOBES).
- **Tokens**: bilstm-crf and transformer learn a vocabulary of the training words as written
  (no splitting: "U.K." stays one word). A word outside it is read as its shape, one of
  `SHAPES` ([UNK-Xx] for "Newton", [UNK-XX], [UNK-x], [UNK-d], [UNK-p]): with
  `tokenizer.min_frequency=2` (the default) the words seen once in training are those shapes,
  so the model learns what an unknown capitalised word tends to be; arch hf uses the pretrained model's WordPiece tokenizer
  and reads each word at its first sub-token. A sentence longer than `tokenizer.max_length`
  tokens is tagged in consecutive pieces that fit (`encode_words`), so no word goes untagged.
- **Loss**: the CRF's negative log-likelihood, or cross-entropy over the words, per word.
- **Metrics**: entity-level precision, recall and F1 per type and overall (seqeval, CoNLL
  rules: an entity counts only with its exact extent and type); `val_f1` is the micro F1.

Splitting, encoding, decoding and scoring (everything a loaded run needs) live in
`seqlab.tasks.tag.inference`, which loading a run imports without this module's training code.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from torch import nn
from torch.utils.data import DataLoader

from seqlab import hub, runs
from seqlab.config import RunConfig, TrainConfig
from seqlab.data.batching import BucketBatchSampler
from seqlab.data.conll import (
    SILVER_NER,
    TaggedSentence,
    entity_types,
    spans_to_tags,
    tag_names,
)
from seqlab.data.spacy_models import DEFAULT_PIPELINE, source_of
from seqlab.data.tokenize import SPECIAL_TOKENS, UNK
from seqlab.errors import SeqlabError
from seqlab.lifecycle import Finished, TokenizerAndLabels
from seqlab.tasks.tag.inference import (  # noqa: F401 (re-exported: the recipe trains and scores with them)
    SHAPES,
    Piece,
    PieceDataset,
    TagSplits,
    allowed_transitions,
    build_tagger,
    collate_pieces,
    decode,
    encode_words,
    entity_scores,
    evaluate_sentences,
    load_splits,
    predict_tags,
    tagger_inputs,
    word_chars,
    word_shape,
)
from seqlab.tasks.word_vectors import apply_word_vectors
from seqlab.trainer import FitResult, fit, global_mean, make_optimizer, with_lr_schedule

log = logging.getLogger("seqlab")


# --------------------------------------------------------------------------- vocabulary and encoding


def learn_vocabulary(cfg: RunConfig, train: Sequence[TaggedSentence]) -> tuple[Tokenizer, list[str]]:
    """The tokenizer (training words, or the pretrained model's) and every tag of the scheme
    over the training entity types, O first."""
    tags = tag_names(entity_types(list(train)), cfg.tag.scheme)
    if cfg.model.arch == "hf":
        return hub.load_tokenizer(cfg.model.model), tags
    tok = cfg.tokenizer
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC()] + ([normalizers.Lowercase()] if tok.lowercase else []))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # the data's words, as they are
    trainer = trainers.WordLevelTrainer(
        vocab_size=tok.vocab_size, min_frequency=tok.min_frequency, special_tokens=[*SPECIAL_TOKENS, *SHAPES]
    )
    tokenizer.train_from_iterator((" ".join(s.tokens) for s in train), trainer=trainer)
    extra = getattr(cfg.model, "vector_words", 0)
    if extra and cfg.model.embeddings:
        tokenizer = with_vector_words(tokenizer, cfg.model.embeddings, extra, tok.lowercase)
    return tokenizer, tags


def with_vector_words(tokenizer: Tokenizer, spec: str, count: int, lowercase: bool) -> Tokenizer:
    """The word vocabulary with the first `count` words of a text vector table added (GloVe's
    are ordered by frequency), as the LSTM-CRF taggers of Lample et al. and Ma & Hovy keep
    every pretrained word: a test word never seen in training then still has its vector.

    A cased vocabulary gains the vectors' words as written (GloVe's: lowercase), so a
    capitalised unseen word still falls back to its shape; `tokenizer.lowercase=true` reads
    every word lowercased (the casing and character features keep the case).
    """
    from seqlab.data.vectors import load_vectors

    words = getattr(load_vectors(spec).keys, "words", None)
    if words is None:
        raise SeqlabError(
            f"model.vector_words needs a text table of vectors (glove-6b-50d or a GloVe-format file), not {spec}; set it to 0"
        )
    vocab = tokenizer.get_vocab()
    for word in words[:count]:
        word = word.lower() if lowercase else word
        if word not in vocab and word.strip() == word and word:
            vocab[word] = len(vocab)
    extended = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    extended.normalizer = tokenizer.normalizer
    extended.pre_tokenizer = tokenizer.pre_tokenizer
    return extended


def piece_tags(sentence: TaggedSentence, piece: Piece, tag_index: dict[str, int], scheme: str) -> list[int]:
    """Gold tag ids of a piece; an entity cut by a piece boundary becomes two well-formed ones."""
    end = piece.start + len(piece.first)
    spans = [
        (max(s, piece.start) - piece.start, min(e, end) - piece.start, label)
        for s, e, label in sentence.spans
        if s < end and e > piece.start
    ]
    return [tag_index[t] for t in spans_to_tags(spans, len(piece.first), scheme)]


def make_piece_loader(
    pieces: list[Piece], tags: list[list[int]] | None, batch_size: int, shuffle: bool = False, bucket: bool = True, seed: int = 0
) -> DataLoader:
    sampler = BucketBatchSampler([len(p.ids) for p in pieces], batch_size, shuffle, bucket, seed)
    return DataLoader(PieceDataset(pieces, tags), batch_sampler=sampler, collate_fn=collate_pieces)


# --------------------------------------------------------------------------- models


def tag_loss(
    model: nn.Module, logits: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Per word (`reduction="sum"`: summed over the words): the CRF's negative log-likelihood of
    the gold paths, or cross-entropy."""
    if getattr(model, "crf", None) is not None:
        total = -model.crf.log_likelihood(logits, tags, mask).sum()
        return total if reduction == "sum" else total / mask.sum()
    return F.cross_entropy(logits[mask].float(), tags[mask], reduction=reduction)


class TaggerModule(L.LightningModule):
    """Logs train_loss, val_loss and val_f1 (micro entity F1 over the validation pieces)."""

    def __init__(self, model: nn.Module, names: list[str], train_cfg: TrainConfig):
        super().__init__()
        self.model = model
        self.names = names
        self.train_cfg = train_cfg
        self._gold: list[list[str]] = []
        self._pred: list[list[str]] = []

    def _step(self, batch: dict[str, torch.Tensor], reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(**tagger_inputs(batch)).logits
        return logits, tag_loss(self.model, logits, batch["tags"], batch["word_mask"], reduction)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        _, total = self._step(batch, "sum")
        # per word of the whole global batch: under DDP each process holds a slice of it
        loss = global_mean(self, total, batch["word_mask"].sum())
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=batch["input_ids"].size(0), sync_dist=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        # (under DDP every process validates the whole split: the mean over processes changes nothing)
        logits, loss = self._step(batch)
        self.log("val_loss", loss, on_epoch=True, batch_size=batch["input_ids"].size(0), sync_dist=True)
        mask = batch["word_mask"]
        for row, path in enumerate(decode(self.model, logits, mask)):
            self._pred.append([self.names[i] for i in path])
            self._gold.append([self.names[i] for i in batch["tags"][row, : len(path)].tolist()])

    def on_validation_epoch_end(self) -> None:
        self.log("val_f1", entity_scores(self._gold, self._pred)["f1"], sync_dist=True)
        self._gold.clear()
        self._pred.clear()

    def configure_optimizers(self) -> Any:
        return with_lr_schedule(self, make_optimizer(self, self.train_cfg), self.train_cfg)  # warm-up and decay, as every task


# --------------------------------------------------------------------------- training, prediction, evaluation


@dataclass
class FittedTagger:
    model: nn.Module
    result: FitResult
    split_sentences: dict[str, int]  # sentences tagged in more than one piece
    embeddings: dict | None = None


def _pieces_and_tags(
    sentences: Sequence[TaggedSentence], tokenizer: Tokenizer, names: list[str], cfg: RunConfig, model: nn.Module
):
    pieces = encode_words(tokenizer, [s.tokens for s in sentences], cfg.tokenizer.max_length, word_chars(model))
    index = {name: i for i, name in enumerate(names)}
    tags = [piece_tags(sentences[p.sentence], p, index, cfg.tag.scheme) for p in pieces]
    return pieces, tags, len(pieces) - len(sentences)


def fit_tagger(
    cfg: RunConfig,
    train: Sequence[TaggedSentence],
    valid: Sequence[TaggedSentence],
    work_dir: Path,
    tokenizer: Tokenizer,
    names: list[str],
    *,
    resume: bool = False,
    progress: str | None = None,
) -> FittedTagger:
    """Train the configured tagger on `train`, keeping the epoch with the best `train.monitor` on `valid`."""
    torch.manual_seed(cfg.train.seed)  # same initial weights for the same seed
    model = build_tagger(cfg, tokenizer, names)
    train_pieces, train_tags, train_split = _pieces_and_tags(train, tokenizer, names, cfg, model)
    vectors = apply_word_vectors(model, cfg, tokenizer) if cfg.model.arch != "hf" else None
    batch = cfg.train.batch_size
    train_loader = make_piece_loader(train_pieces, train_tags, batch, shuffle=True, bucket=cfg.train.bucket, seed=cfg.train.seed)
    valid_loader, valid_split = None, 0
    if valid:
        valid_pieces, valid_tags, valid_split = _pieces_and_tags(valid, tokenizer, names, cfg, model)
        valid_loader = make_piece_loader(valid_pieces, valid_tags, batch * 2)
    module = TaggerModule(model, names, cfg.train)
    model.train()  # transformers loads encoders in eval mode, which would switch their dropout off
    result = fit(module, train_loader, valid_loader, work_dir, cfg.train, resume=resume, progress=progress)
    return FittedTagger(model.eval(), result, {"train": train_split, "valid": valid_split}, vectors)


# --------------------------------------------------------------------------- the run life cycle's steps


class TagRecipe(TokenizerAndLabels):
    """Tagging's steps of `seqlab.lifecycle.train_run`; the vocabulary is (tokenizer, tag names)."""

    task = "tag"

    def load_data(self, cfg: RunConfig) -> TagSplits:
        return load_splits(cfg)

    def learn_vocabulary(self, cfg: RunConfig, data: TagSplits) -> tuple[Tokenizer, list[str]]:
        return learn_vocabulary(cfg, data.train)

    def describe(self, data: TagSplits, vocabulary: tuple[Tokenizer, list[str]]) -> str:
        return (
            f"{len(data.train):,} train / {len(data.valid):,} valid / {len(data.test):,} test sentences, "
            f"{len(vocabulary[1])} tags"
        )

    def fit(
        self,
        cfg: RunConfig,
        data: TagSplits,
        vocabulary: tuple[Tokenizer, list[str]],
        run_dir: Path,
        *,
        resume: bool,
        progress: str | None,
    ) -> FittedTagger:
        tokenizer, names = vocabulary
        return fit_tagger(cfg, data.train, data.valid, run_dir, tokenizer, names, resume=resume, progress=progress)

    def finish(
        self, run_dir: Path, cfg: RunConfig, data: TagSplits, vocabulary: tuple[Tokenizer, list[str]], fitted: FittedTagger
    ) -> Finished:
        tokenizer, names = vocabulary
        metrics: dict = {"labels": "silver" if cfg.data.train == SILVER_NER else "given"}
        for name in ("valid", "test"):
            if getattr(data, name):
                metrics[name] = evaluate_sentences(fitted.model, tokenizer, names, getattr(data, name), cfg.tokenizer.max_length)
        shown = "test" if data.test else "valid" if data.valid else None
        if shown is not None:  # a few tagged sentences for the run's report (seqlab.report)
            metrics[shown]["samples"] = sample_sentences(
                fitted.model, tokenizer, names, getattr(data, shown), cfg.tokenizer.max_length
            )
        if cfg.model.arch == "hf":  # transformers loads the encoder; seqlab adds the output layer
            hub.save_for_transformers(fitted.model.encoder, cfg.model.model, run_dir / runs.ENCODER)
            runs.save_weights(fitted.model, run_dir / runs.WEIGHTS, skip_prefix="encoder.")
        else:
            runs.save_weights(fitted.model, run_dir / runs.WEIGHTS)
        seen = {
            name: {
                "source": data.sources[name],
                "sentences": len(getattr(data, name)),
                "words": sum(len(s.tokens) for s in getattr(data, name)),
                "sha256": runs.data_hash((" ".join(s.tokens), " ".join(s.tags("bio"))) for s in getattr(data, name)),
            }
            for name in ("train", "valid", "test")
        }
        extra = {"split_sentences": fitted.split_sentences, **({"embeddings": fitted.embeddings} if fitted.embeddings else {})}
        if cfg.data.train == SILVER_NER:
            extra["silver_teacher"] = source_of(DEFAULT_PIPELINE)
        return Finished(metrics, seen, extra)


def sample_sentences(
    model: nn.Module, tokenizer: Tokenizer, names: list[str], sentences: Sequence[TaggedSentence], max_length: int, count: int = 8
) -> list[dict]:
    """The first `count` held-out sentences that have an entity (gold or predicted), each as its
    words with the gold and the predicted spans ([start, end, type], word offsets, end excluded)."""
    from seqlab.data.conll import tags_to_spans

    chosen = [s for s in sentences if len(s.tokens) <= 60][: count * 4]
    predicted = predict_tags(model, tokenizer, names, [s.tokens for s in chosen], max_length)
    rows = [
        {"words": s.tokens, "gold": [list(span) for span in s.spans], "predicted": [list(span) for span in tags_to_spans(tags)]}
        for s, tags in zip(chosen, predicted)
    ]
    return [r for r in rows if r["gold"] or r["predicted"]][:count]


RECIPE = TagRecipe()
