"""Vocabularies trained on the training split with Hugging Face `tokenizers`.

Four levels: `word` (normalised, split on whitespace and punctuation), `char` (every character,
spaces included), `bpe` (byte-pair merges learned from the data) and `wordpiece` (BERT's
vocabulary: BERT normaliser and pre-tokenizer, WordPiece, and a template that wraps every text
as `[CLS] A [SEP]`, or a pair as `[CLS] A [SEP] B [SEP]` with segment ids 0/1; ids 2-4 are
[CLS], [SEP] and [MASK]). Ids 0 and 1 are always [PAD] and [UNK], so padding means the same
thing for every model. The tokenizer never pads:
padding and masks are made in one place, `seqlab.data.batching`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from seqlab.errors import SeqlabError

PAD, UNK = "[PAD]", "[UNK]"
SPECIAL_TOKENS = [PAD, UNK]
PAD_ID, UNK_ID = 0, 1
CLS, SEP, MASK = "[CLS]", "[SEP]", "[MASK]"  # wordpiece level only: ids 2, 3, 4


def train_tokenizer(
    texts: Iterable[str],
    level: str = "word",
    vocab_size: int = 30_000,
    min_frequency: int = 1,
    lowercase: bool = True,
    special_tokens: Sequence[str] = SPECIAL_TOKENS,
    reversible: bool = False,
) -> Tokenizer:
    """Learn a vocabulary of at most `vocab_size` entries from `texts`.

    Args:
        texts: training texts only (a vocabulary that saw the test set would leak it).
        level: "word", "char", "bpe" or "wordpiece" (which adds [CLS], [SEP], [MASK] after
            `special_tokens` and the [CLS]/[SEP] template).
        vocab_size: upper bound, special tokens included.
        min_frequency: rarer words/merges are left out (they become [UNK]).
        lowercase: fold case in the normaliser (also applied at prediction time).
        special_tokens: added first, so [PAD] = 0 and [UNK] = 1.
        reversible: word and bpe levels mark word starts with "▁" (SentencePiece's convention)
            instead of dropping the spaces, so `decode(encode(text))` gives the (normalised,
            stripped) text back exactly, punctuation and hyphens included; what a translation
            target needs. The char level is always reversible.
    """
    if level not in _PIECES:
        raise SeqlabError(f"unknown tokenizer level {level!r}; choose word, char, bpe or wordpiece")
    if level == "wordpiece":
        special_tokens = [*special_tokens, *(t for t in (CLS, SEP, MASK) if t not in special_tokens)]
    tokenizer, trainer_class, extra = _reversible(level) if reversible and level in ("word", "bpe") else _PIECES[level]()
    tokenizer.normalizer = (
        normalizers.BertNormalizer(lowercase=lowercase)  # also strips accents when lowercasing
        if level == "wordpiece"
        else normalizers.Sequence(
            [normalizers.NFKC()]
            + ([normalizers.Lowercase()] if lowercase else [])
            + ([normalizers.Strip()] if reversible else [])
        )
    )
    trainer = trainer_class(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(special_tokens), **extra)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    if level == "wordpiece":
        cls_id, sep_id = tokenizer.token_to_id(CLS), tokenizer.token_to_id(SEP)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{CLS} $A {SEP}",
            pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
            special_tokens=[(CLS, cls_id), (SEP, sep_id)],
        )
    return tokenizer


def _word() -> tuple:
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer, trainers.WordLevelTrainer, {}


def _char() -> tuple:
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character, spaces too
    tokenizer.decoder = decoders.Fuse()  # decoding joins characters as they are, without spaces
    return tokenizer, trainers.WordLevelTrainer, {}


def _bpe() -> tuple:
    tokenizer = Tokenizer(models.BPE(unk_token=UNK, continuing_subword_prefix="##"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer, trainers.BpeTrainer, {"continuing_subword_prefix": "##"}


def _wordpiece() -> tuple:
    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK, continuing_subword_prefix="##"))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer, trainers.WordPieceTrainer, {"continuing_subword_prefix": "##"}


def _reversible(level: str) -> tuple:
    """Word or BPE pieces that keep their spacing: "▁" marks a piece that follows a space, and
    punctuation (hyphens too) is its own piece, so "quatre-vingt-dix" is ▁quatre - vingt - dix
    and decodes back to itself."""
    trainer_class: type[trainers.Trainer]
    extra: dict[str, Any]
    if level == "word":
        tokenizer, trainer_class, extra = Tokenizer(models.WordLevel(unk_token=UNK)), trainers.WordLevelTrainer, {}
    else:
        tokenizer, trainer_class, extra = Tokenizer(models.BPE(unk_token=UNK)), trainers.BpeTrainer, {}
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"),
            pre_tokenizers.Split(Regex(r"▁?[^\W_▁]+|▁|[^\w▁]|_"), behavior="isolated"),  # words, each punctuation mark
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    return tokenizer, trainer_class, extra


# level → an untrained tokenizer (model, pre-tokenizer, decoder), its trainer class and extra options
_PIECES = {"word": _word, "char": _char, "bpe": _bpe, "wordpiece": _wordpiece}


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a saved `tokenizer.json`; a missing or broken file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise SeqlabError(f"{path} is missing: the run folder has no tokenizer; retrain or copy tokenizer.json back")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises a bare Exception on bad JSON
        raise SeqlabError(f"{path} is not a valid tokenizer file ({str(err).splitlines()[0]})") from None


def encode(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> tuple[list[list[int]], int]:
    """Token ids for each text, cut to `max_length`.

    Returns:
        (ids per text, how many texts were truncated). An empty encoding becomes [UNK], so every
        sequence has at least one real position.
    """
    # The library's own truncation keeps the special tokens a post-processor adds ([CLS] … [SEP]).
    tokenizer.enable_truncation(max_length)
    try:
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=True)
    finally:
        tokenizer.no_truncation()
    truncated = sum(bool(enc.overflowing) for enc in encodings)
    return [enc.ids or [UNK_ID] for enc in encodings], truncated
