"""Translation (task `translate`): the recipe from sentence pairs to a trained encoder-decoder
that translates in batches.

- **Splits** (`load_splits`): a generated task (`numbers-en-fr`, `dates`, `reverse`) brings its
  own deterministic, disjoint splits (`data.parallel`); a user's pairs (TSV, or two Moses files)
  are shuffled with `data.split_seed` and cut like a classification data set.
- **Vocabularies** (`learn_vocabularies`): char, word or BPE pieces learned on the training
  pairs only, one per side or one shared (`translate.shared_vocab`), reversible (decoding gives
  the text back, spacing and punctuation included) and with [BOS] and [EOS] after [PAD]/[UNK].
- **Batches** (`collate_pairs`): sources right-padded with their mask; the decoder reads
  [BOS] y_1 … y_n and predicts y_1 … y_n [EOS] (padding ignored by the loss).
- **Training** (`TranslationModule`): token cross-entropy (optionally label-smoothed), scheduled
  sampling ramped up over the epochs for RNN decoders; `val_loss` and `val_acc`, the
  teacher-forced token accuracy.
- **Decoding** (`Seq2SeqLM`, `translate_ids`): an adapter that makes an encoder-decoder a
  `decoding.IncrementalLM`, so greedy and beam search come from `seqlab.decoding`; the source
  batch is encoded in `prefill`, the decoder's prompt is [BOS], and each sentence stops at
  `max_length_ratio` × its source length + `max_length_offset` tokens.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn
from torch.utils.data import DataLoader

from seqlab import decoding
from seqlab.config import RunConfig, TrainConfig, TranslateConfig
from seqlab.data import parallel
from seqlab.data.batching import BucketBatchSampler, pad_batch
from seqlab.data.parallel import Pair
from seqlab.data.tokenize import PAD, PAD_ID, UNK, UNK_ID, train_tokenizer
from seqlab.errors import SeqlabError
from seqlab.models.seq2seq import RNNSeq2Seq
from seqlab.models.transformer import TransformerSeq2Seq
from seqlab.train import FitResult, fit, make_optimizer, with_lr_schedule

log = logging.getLogger("seqlab")

BOS, EOS = "[BOS]", "[EOS]"
SPECIAL_TOKENS = [PAD, UNK, BOS, EOS]  # ids 0-3 on both sides
IGNORE = -100  # label of padded target positions (F.cross_entropy's ignore_index)

# `seqlab train translate --arch transformer` and `compare translate --archs transformer` mean the
# encoder-decoder; the config itself keeps the full name.
ARCH_ALIASES = {"transformer": "transformer-seq2seq"}


# --------------------------------------------------------------------------- splits


@dataclass
class Splits:
    train: list[Pair]
    valid: list[Pair]
    test: list[Pair]
    sources: dict[str, str]


def load_splits(cfg: RunConfig) -> Splits:
    """Train/valid/test pairs of `data.train` (see the module docstring); `data.valid` and
    `data.test` files replace the slices; `data.limit` cuts the training pairs."""
    data = cfg.data
    if parallel.parse_generated(data.train):
        parts = parallel.generate_splits(data.train, data.split_seed, data.valid_fraction, data.test_fraction, data.limit)
        train, valid, test = parts["train"], parts["valid"], parts["test"]
        held = f"{data.train} (split_seed {data.split_seed})"
        sources = {"train": held, "valid": held, "test": held}
    else:
        pairs = parallel.read_pairs(data.train, max_chars=data.max_chars)
        random.Random(data.split_seed).shuffle(pairs)
        n_test = 0 if data.test else round(len(pairs) * data.test_fraction)
        n_valid = 0 if data.valid else round(len(pairs) * data.valid_fraction)
        test, valid, train = pairs[:n_test], pairs[n_test : n_test + n_valid], pairs[n_test + n_valid :]
        train = train[: data.limit] if data.limit else train
        sources = {"train": data.train, "valid": f"{data.train} (shuffled, {n_valid:,} pairs)", "test": f"{data.train} (shuffled, first {n_test:,} pairs)"}
    if data.valid:
        valid, sources["valid"] = parallel.read_pairs(data.valid, max_chars=data.max_chars), data.valid
    if data.test:
        test, sources["test"] = parallel.read_pairs(data.test, max_chars=data.max_chars), data.test
    if not train:
        raise SeqlabError(f"{data.train} leaves no pairs to train on; lower data.valid_fraction/test_fraction or give more pairs")
    return Splits(train, valid, test, sources)


# --------------------------------------------------------------------------- vocabularies


@dataclass
class Vocabularies:
    """The source and target tokenizers (the same object when shared) and the target's
    special ids."""

    source: Tokenizer
    target: Tokenizer

    @property
    def bos_id(self) -> int:
        return self.target.token_to_id(BOS)

    @property
    def eos_id(self) -> int:
        return self.target.token_to_id(EOS)

    def check(self) -> Vocabularies:
        for side, tok in (("source", self.source), ("target", self.target)):
            if [tok.token_to_id(t) for t in SPECIAL_TOKENS] != [0, 1, 2, 3]:
                raise SeqlabError(f"the {side} tokenizer is not a translation vocabulary ({', '.join(SPECIAL_TOKENS)} as ids 0-3)")
        return self


def learn_vocabularies(cfg: RunConfig, train: Sequence[Pair]) -> Vocabularies:
    """Char/word/BPE vocabularies learned on the training pairs only."""
    tok = cfg.tokenizer

    def learn(texts: list[str]) -> Tokenizer:
        return train_tokenizer(texts, tok.level, tok.vocab_size, tok.min_frequency, tok.lowercase, SPECIAL_TOKENS, reversible=True)

    sources, targets = [p.source for p in train], [p.target for p in train]
    if cfg.translate.shared_vocab:
        shared = learn(sources + targets)
        return Vocabularies(shared, shared)
    return Vocabularies(learn(sources), learn(targets))


@dataclass
class EncodedSources:
    ids: list[list[int]]
    truncated: int  # sources cut to tokenizer.max_length
    unknown: int  # [UNK] tokens among them


def encode_sources(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> EncodedSources:
    """Source ids cut to `max_length`; an empty encoding becomes [UNK] (every row needs one real
    position), and unknown tokens are counted."""
    encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    ids = [enc.ids[:max_length] or [UNK_ID] for enc in encodings]
    truncated = sum(len(enc.ids) > max_length for enc in encodings)
    return EncodedSources(ids, truncated, sum(row.count(UNK_ID) for row in ids))


def encode_targets(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Target ids cut to `max_length - 1`, so that [EOS] still fits."""
    return [enc.ids[: max_length - 1] for enc in tokenizer.encode_batch(list(texts), add_special_tokens=False)]


def decode_target(tokenizer: Tokenizer, ids: Sequence[int]) -> str:
    """Output ids → text; a final [EOS] and any special token are dropped."""
    return tokenizer.decode(list(ids), skip_special_tokens=True)


# --------------------------------------------------------------------------- batches


@dataclass
class EncodedPairs:
    sources: list[list[int]]
    targets: list[list[int]]  # without [BOS]/[EOS]

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> tuple[list[int], list[int]]:
        return self.sources[index], self.targets[index]


def encode_pairs(vocab: Vocabularies, pairs: Sequence[Pair], max_length: int) -> EncodedPairs:
    return EncodedPairs(encode_sources(vocab.source, [p.source for p in pairs], max_length).ids,
                        encode_targets(vocab.target, [p.target for p in pairs], max_length))


def collate_pairs(batch: list[tuple[list[int], list[int]]], bos_id: int = 2, eos_id: int = 3) -> dict[str, torch.Tensor]:
    """→ source_ids, source_mask (B, S); targets_in = [BOS] y (B, T); labels = y [EOS] (B, T),
    padding labelled IGNORE."""
    source_ids, source_mask = pad_batch([src for src, _ in batch])
    targets_in, _ = pad_batch([[bos_id, *tgt] for _, tgt in batch])
    labels, _ = pad_batch([[*tgt, eos_id] for _, tgt in batch], pad_id=IGNORE)
    return {"source_ids": source_ids, "source_mask": source_mask, "targets_in": targets_in, "labels": labels}


def make_loader(pairs: EncodedPairs, batch_size: int, shuffle: bool = False, bucket: bool = True, seed: int = 0) -> DataLoader:
    """Batches of pairs of similar source length (see `BucketBatchSampler`)."""
    sampler = BucketBatchSampler([len(s) + len(t) for s, t in zip(pairs.sources, pairs.targets)], batch_size, shuffle, bucket, seed)
    return DataLoader(pairs, batch_sampler=sampler, collate_fn=collate_pairs)


# --------------------------------------------------------------------------- models


def build_model(cfg: RunConfig, source_vocab: int, target_vocab: int) -> nn.Module:
    """The encoder-decoder a config describes."""
    m = cfg.model
    if m.arch == "transformer-seq2seq":
        return TransformerSeq2Seq(source_vocab, target_vocab, m.d_model, m.num_heads, m.num_layers, m.ff_dim, m.dropout,
                                  m.positional, m.max_len, PAD_ID, m.tie_embeddings, m.share_embeddings)
    return RNNSeq2Seq(source_vocab, target_vocab, m.cell, m.embed_dim, m.hidden_dim, m.num_layers, m.bidirectional,
                      m.attention, m.dropout, m.tie_embeddings, PAD_ID)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def token_scores(model: nn.Module, batch: dict[str, torch.Tensor], sampling_prob: float = 0.0, label_smoothing: float = 0.0,
                 need_weights: bool = False) -> tuple[torch.Tensor, int, int, Any]:
    """(summed cross-entropy, target tokens, tokens predicted right, model output) of one
    teacher-forced batch."""
    out = model(batch["source_ids"], batch["source_mask"], batch["targets_in"], need_weights=need_weights, sampling_prob=sampling_prob)
    labels = batch["labels"]
    loss = F.cross_entropy(out.logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE, reduction="sum",
                           label_smoothing=label_smoothing)
    real = labels != IGNORE
    correct = int(((out.logits.argmax(-1) == labels) & real).sum())
    return loss, int(real.sum()), correct, out


class TranslationModule(L.LightningModule):
    """Token cross-entropy with teacher forcing (and scheduled sampling); logs `train_loss`,
    `val_loss` (per target token) and `val_acc` (teacher-forced token accuracy)."""

    def __init__(self, model: nn.Module, train_cfg: TrainConfig, translate_cfg: TranslateConfig):
        super().__init__()
        self.model = model
        self.train_cfg = train_cfg
        self.translate_cfg = translate_cfg
        self._val = [0.0, 0, 0]

    def sampling_prob(self) -> float:
        """Scheduled sampling: 0 in the first epoch, rising linearly to the configured chance in
        the last one."""
        top = self.translate_cfg.scheduled_sampling
        if not top:
            return 0.0
        epochs = self.trainer.max_epochs if self._trainer is not None else 1
        return top * min(1.0, self.current_epoch / max(epochs - 1, 1))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        total, count, _, _ = token_scores(self.model, batch, self.sampling_prob(), self.translate_cfg.label_smoothing)
        loss = total / max(count, 1)
        self.log("train_loss", loss, prog_bar=True, batch_size=batch["source_ids"].size(0))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = [0.0, 0, 0]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        total, count, correct, _ = token_scores(self.model, batch)
        self._val[0] += float(total)
        self._val[1] += count
        self._val[2] += correct

    def on_validation_epoch_end(self) -> None:
        count = max(self._val[1], 1)
        self.log("val_loss", self._val[0] / count, prog_bar=True)
        self.log("val_acc", self._val[2] / count, prog_bar=True)

    def configure_optimizers(self) -> Any:
        return with_lr_schedule(self, make_optimizer(self, self.train_cfg), self.train_cfg)


@dataclass
class Fitted:
    model: nn.Module
    result: FitResult


def fit_translator(cfg: RunConfig, model: nn.Module, vocab: Vocabularies, train: Sequence[Pair], valid: Sequence[Pair], work_dir: Path,
                   *, resume: bool = False, progress: str | None = None, loggers: bool = True) -> Fitted:
    """Train `model` on `train`, keeping the best epoch on `valid` (by `train.monitor`)."""
    max_length = cfg.tokenizer.max_length
    train_loader = make_loader(encode_pairs(vocab, train, max_length), cfg.train.batch_size, shuffle=True,
                               bucket=cfg.train.bucket, seed=cfg.train.seed)
    valid_loader = make_loader(encode_pairs(vocab, valid, max_length), cfg.train.batch_size) if valid else None
    module = TranslationModule(model, cfg.train, cfg.translate)
    result = fit(module, train_loader, valid_loader, work_dir, cfg.train, resume=resume, progress=progress, loggers=loggers)
    return Fitted(model.eval(), result)


# --------------------------------------------------------------------------- decoding


@dataclass
class _AdapterState:
    inner: Any  # the model's decoder state
    limits: torch.Tensor  # (B,) most tokens each row may produce before [EOS]
    produced: int = 0


class Seq2SeqLM:
    """An encoder-decoder seen as a `decoding.IncrementalLM`: `prefill` encodes the source batch
    given here and reads the decoder's prompt ([BOS] per row); `step` feeds one target token per
    row; `reorder` selects rows of the decoder state (beam search). A row that has produced its
    `limits` tokens can only end: every logit but [EOS] is -inf (the maximum length ratio).

    Args:
        model: an `RNNSeq2Seq` or `TransformerSeq2Seq` in eval mode.
        source_ids, source_mask: (B, S) the source batch, right-padded.
        limits: (B,) target tokens allowed per row before [EOS].
        eos_id: the target's [EOS].
    """

    context_length = None  # limits are per row, applied here

    def __init__(self, model: nn.Module, source_ids: torch.Tensor, source_mask: torch.Tensor, limits: torch.Tensor, eos_id: int):
        self.model, self.source_ids, self.source_mask = model, source_ids, source_mask
        self.limits, self.eos_id = limits, eos_id

    def _bounded(self, logits: torch.Tensor, state: _AdapterState) -> torch.Tensor:
        done = state.limits <= state.produced  # (B,)
        if bool(done.any()):
            only_eos = torch.full_like(logits, float("-inf"))
            only_eos[:, self.eos_id] = 0.0
            logits = torch.where(done[:, None], only_eos, logits)
        return logits.float()

    @torch.inference_mode()
    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, _AdapterState]:
        if self.model.training:
            raise SeqlabError("decoding: the model is in training mode (dropout on); call model.eval() first")
        if not bool(attention_mask.all()):
            raise SeqlabError("decoding: an encoder-decoder's prompt is the same [BOS] for every row; no padding")
        inner = self.model.encode(self.source_ids, self.source_mask)
        for t in range(input_ids.size(1)):
            logits, inner, _ = self.model.step(input_ids[:, t], inner)
        state = _AdapterState(inner, self.limits.clone())
        return self._bounded(logits, state), state

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, state: _AdapterState) -> tuple[torch.Tensor, _AdapterState]:
        logits, state.inner, _ = self.model.step(tokens, state.inner)
        state.produced += 1
        return self._bounded(logits, state), state

    @torch.inference_mode()
    def reorder(self, state: _AdapterState, index: torch.Tensor) -> _AdapterState:
        return _AdapterState(self.model.reorder_state(state.inner, index), state.limits.index_select(0, index), state.produced)


@dataclass(frozen=True)
class DecodeSettings:
    """How to decode: beam size (1 = greedy), length penalty (beams only), and the length limit
    ratio × source tokens + offset, never beyond `max_tokens`."""

    beam: int = 5
    length_penalty: float = 1.0
    max_length_ratio: float = 2.0
    max_length_offset: int = 10
    max_tokens: int = 256

    @classmethod
    def from_config(cls, cfg: RunConfig, **changes: Any) -> DecodeSettings:
        t = cfg.translate
        limit = cfg.tokenizer.max_length
        if cfg.model.arch == "transformer-seq2seq" and cfg.model.positional == "learned":
            limit = min(limit, cfg.model.max_len - 1)
        settings = {"beam": t.beam, "length_penalty": t.length_penalty, "max_length_ratio": t.max_length_ratio,
                    "max_length_offset": t.max_length_offset, "max_tokens": limit}
        settings.update({k: v for k, v in changes.items() if v is not None})
        if settings["beam"] < 1:
            raise SeqlabError(f"beam must be at least 1, 1 = greedy (got {settings['beam']})")
        if settings["max_length_ratio"] <= 0:
            raise SeqlabError(f"max_length_ratio must be > 0 (got {settings['max_length_ratio']})")
        return cls(**settings)

    def limit(self, source_length: int) -> int:
        return max(1, min(math.ceil(self.max_length_ratio * source_length) + self.max_length_offset, self.max_tokens))


@torch.inference_mode()
def translate_ids(model: nn.Module, sources: Sequence[Sequence[int]], vocab: Vocabularies, settings: DecodeSettings,
                  batch_size: int = 64) -> list[list[int]]:
    """Decode every source (greedy or beam search, batched by similar length) → target ids per
    source, in input order, without [EOS]."""
    model.eval()
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    results: list[list[int]] = [[] for _ in sources]
    eos = vocab.eos_id
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        source_ids, source_mask = pad_batch([sources[i] for i in rows])
        limits = torch.tensor([settings.limit(len(sources[i])) for i in rows])
        lm = Seq2SeqLM(model, source_ids, source_mask, limits, eos)
        # early_stopping=False: a confident model's unlikely endings must not fill the beam's
        # hypotheses before the likely translation ends (see `decoding.beam_search`)
        extra = {"length_penalty": settings.length_penalty, "early_stopping": False} if settings.beam > 1 else {}
        config = decoding.GenerationConfig(max_new_tokens=int(limits.max()) + 1, num_beams=settings.beam, eos_token_id=eos,
                                           pad_token_id=PAD_ID, **extra)
        prompt = torch.full((len(rows), 1), vocab.bos_id, dtype=torch.long)
        for i, tokens in zip(rows, decoding.generate(lm, prompt, None, config)):
            results[i] = tokens[:-1] if tokens and tokens[-1] == eos else tokens
    return results


@torch.inference_mode()
def alignments(model: nn.Module, sources: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]], vocab: Vocabularies,
               batch_size: int = 64) -> list[torch.Tensor | None]:
    """Attention of each output token (and the final [EOS]) over its source tokens: a (T + 1, S)
    tensor per sentence, from the model reading its own output teacher-forced (what it attended
    to while producing it); None for a model without attention."""
    result: list[torch.Tensor | None] = []
    for start in range(0, len(sources), batch_size):
        batch = collate_pairs(list(zip(sources[start : start + batch_size], outputs[start : start + batch_size])), vocab.bos_id, vocab.eos_id)
        weights = model(batch["source_ids"], batch["source_mask"], batch["targets_in"], need_weights=True).alignments
        for row, (src, out) in enumerate(zip(sources[start : start + batch_size], outputs[start : start + batch_size])):
            result.append(None if weights is None else weights[row, : len(out) + 1, : len(src)].clone())
    return result
