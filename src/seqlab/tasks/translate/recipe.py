"""Translation (task `translate`): the recipe from sentence pairs to a trained encoder-decoder
that translates in batches. What decoding and loading need lives in `inference` (no
Lightning); its names are re-exported here.

- **Splits** (`load_splits`): a generated task (`numbers-en-fr`, `dates`, `reverse`) brings its
  own deterministic, disjoint splits (`data.parallel`); built-in Tatoeba data
  (`tatoeba-en-fr`, `tatoeba-en-es`, either direction with `data.direction`) and users' pairs
  (TSV, or two Moses files) hold out *distinct source sentences* with every translation of
  each (`parallel.split_by_source`), so no held-out source is trained on and the held-out sets
  are scored against all their references. A line over `data.max_chars` is cut and counted.
- **Vocabularies** (`learn_vocabularies`): char, word or BPE pieces learned on the training
  pairs only, one per side (sizes `tokenizer.vocab_size`, `translate.target_vocab_size`) or one
  joint (`translate.shared_vocab`), reversible (decoding gives the text back, spacing and
  punctuation included) and with [BOS] and [EOS] after [PAD]/[UNK].
- **Batches**: `train.batch_size` pairs of similar length, or `train.batch_tokens` padded
  tokens (length-sorted, fairseq's `--max-tokens`).
- **Training** (`TranslationModule`): token cross-entropy (optionally label-smoothed), scheduled
  sampling ramped up over the epochs for RNN decoders; `val_loss` and `val_acc` (teacher-forced
  token accuracy) on every validation pair, and `val_bleu`: greedy decoding of the first
  `translate.val_bleu_sentences` validation sources (a fixed random subset), sacreBLEU against
  all their references; it picks the checkpoint and stops early by default.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from seqlab import runs
from seqlab.config import RunConfig, TrainConfig, TranslateConfig
from seqlab.data import parallel, tatoeba
from seqlab.data.parallel import MultiRef, Pair
from seqlab.data.tokenize import train_tokenizer
from seqlab.errors import SeqlabError
from seqlab.lifecycle import Finished
from seqlab.tasks.translate import metrics as translation_metrics
from seqlab.tasks.translate.inference import (  # noqa: F401  (re-exported: the recipe's public names)
    ARCH_ALIASES,
    BOS,
    EOS,
    IGNORE,
    SPECIAL_TOKENS,
    TARGET_TOKENIZER,
    DecodeSettings,
    EncodedPairs,
    EncodedSources,
    Seq2SeqLM,
    Vocabularies,
    alignments,
    as_references,
    build_model,
    collate_pairs,
    decode_target,
    encode_pairs,
    encode_sources,
    encode_targets,
    file_splits,
    make_loader,
    read_vocabularies,
    tatoeba_splits,
    token_scores,
    translate_ids,
    translate_nbest,
)
from seqlab.trainer import FitResult, fit, global_mean, make_optimizer, with_lr_schedule

log = logging.getLogger("seqlab")


# --------------------------------------------------------------------------- splits


@dataclass
class Splits:
    """Training pairs and held-out sources with all their references.

    Attributes:
        train: (source, target) pairs.
        valid, test: one `MultiRef` per held-out source.
        sources: per split, where it came from (for manifest.json).
        truncated: lines whose source or target was cut to `data.max_chars`.
    """

    train: list[Pair]
    valid: list[MultiRef]
    test: list[MultiRef]
    sources: dict[str, str]
    truncated: int = 0


def _read_grouped(spec: str, max_chars: int) -> tuple[list[MultiRef], int]:
    text = parallel.read_parallel(spec, max_chars=max_chars)
    return parallel.group_by_source(text.pairs), text.truncated


def load_splits(cfg: RunConfig) -> Splits:
    """Train pairs and multi-reference valid/test sets of `data.train` (see the module
    docstring); `data.valid` and `data.test` files replace the held-out sets; `data.limit` cuts
    the training pairs (a random sample: they are shuffled)."""
    data = cfg.data
    truncated = 0
    if parallel.parse_generated(data.train):
        parts = parallel.generate_splits(data.train, data.split_seed, data.valid_fraction, data.test_fraction, data.limit)
        train, valid, test = parts["train"], as_references(parts["valid"]), as_references(parts["test"])
        held = f"{data.train} (split_seed {data.split_seed})"
        sources = {"train": held, "valid": held, "test": held}
    else:
        if tatoeba.is_tatoeba(data.train):
            direction = tatoeba.resolve(data.train, data.direction)[1]
            parts = tatoeba_splits(data)
            name = f"{data.train} ({direction})"
        else:
            if data.direction is not None:
                raise SeqlabError(
                    "data.direction applies to built-in Tatoeba data (tatoeba-en-fr, tatoeba-en-es); in a file "
                    "of pairs the first column is the source"
                )
            parts, truncated = file_splits(data)
            name = data.train
        train, valid, test = parts.train, parts.valid, parts.test
        sources = {
            "train": f"{name}, held-out sources removed",
            "valid": f"{name}: {len(valid):,} held-out sources, split_seed {data.split_seed}",
            "test": f"{name}: {len(test):,} held-out sources, split_seed {data.split_seed}",
        }
        train = train[: data.limit] if data.limit else train
    if data.valid:
        (valid, cut), sources["valid"] = _read_grouped(data.valid, data.max_chars), data.valid
        truncated += cut
    if data.test:
        (test, cut), sources["test"] = _read_grouped(data.test, data.max_chars), data.test
        truncated += cut
    if not train:
        raise SeqlabError(f"{data.train} leaves no pairs to train on; hold out fewer sources or give more pairs")
    if truncated:
        log.warning("%d line(s) longer than data.max_chars=%d characters were cut to it", truncated, data.max_chars)
    return Splits(train, valid, test, sources, truncated)


# --------------------------------------------------------------------------- vocabularies


def learn_vocabularies(cfg: RunConfig, train: Sequence[Pair]) -> Vocabularies:
    """Char/word/BPE vocabularies learned on the training pairs only: one joint vocabulary, or
    one per side (the target's `translate.target_vocab_size` entries, default the source's)."""
    tok = cfg.tokenizer

    def learn(texts: list[str], size: int) -> Any:
        return train_tokenizer(texts, tok.level, size, tok.min_frequency, tok.lowercase, SPECIAL_TOKENS, reversible=True)

    sources, targets = [p.source for p in train], [p.target for p in train]
    if cfg.translate.shared_vocab:
        shared = learn(sources + targets, tok.vocab_size)
        return Vocabularies(shared, shared)
    return Vocabularies(learn(sources, tok.vocab_size), learn(targets, cfg.translate.target_vocab_size or tok.vocab_size))


# --------------------------------------------------------------------------- training


class BleuProbe:
    """Validation BLEU: greedy translations of a fixed set of validation sources, scored by
    sacreBLEU against all their references (what `val_bleu` logs)."""

    def __init__(
        self, vocab: Vocabularies, refs: Sequence[MultiRef], settings: DecodeSettings, max_length: int, batch_size: int = 64
    ):
        self.vocab, self.refs, self.settings, self.batch_size = vocab, list(refs), settings.greedy(), batch_size
        self.sources = encode_sources(vocab.source, [r.source for r in self.refs], max_length).ids

    def __call__(self, model: nn.Module) -> float:
        outputs = translate_ids(model, self.sources, self.vocab, self.settings, self.batch_size)
        hypotheses = [decode_target(self.vocab.target, ids) for ids in outputs]
        return translation_metrics.corpus_scores(hypotheses, self.refs)["bleu"]


class TranslationModule(L.LightningModule):
    """Token cross-entropy with teacher forcing (and scheduled sampling); logs `train_loss`,
    `val_loss` (per target token), `val_acc` (teacher-forced token accuracy) and, with a
    `bleu` probe, `val_bleu`."""

    def __init__(self, model: nn.Module, train_cfg: TrainConfig, translate_cfg: TranslateConfig, bleu: BleuProbe | None = None):
        super().__init__()
        self.model = model
        self.train_cfg = train_cfg
        self.translate_cfg = translate_cfg
        self.bleu = bleu
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
        loss = global_mean(self, total, count)  # per target token of the whole global batch (DDP: of every process)
        self.log("train_loss", loss, prog_bar=True, batch_size=batch["source_ids"].size(0), sync_dist=True)
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
        # (under DDP every process validates the whole split: the mean over processes changes nothing)
        self.log("val_loss", self._val[0] / count, prog_bar=True, sync_dist=True)
        self.log("val_acc", self._val[2] / count, prog_bar=True, sync_dist=True)
        if self.bleu is not None and not self.trainer.sanity_checking:
            with self.trainer.precision_plugin.forward_context():  # (bf16 autocast when training in it)
                self.log("val_bleu", self.bleu(self.model), prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> Any:
        return with_lr_schedule(self, make_optimizer(self, self.train_cfg), self.train_cfg)


class TokenCounter(Callback):
    """Training throughput: target tokens (labels, [EOS] included) per second of training steps
    (forward, backward and optimiser step; validation and checkpoints not counted)."""

    def __init__(self) -> None:
        self.tokens = self.steps = 0
        self.seconds = 0.0
        self._started = 0.0

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.seconds += time.perf_counter() - self._started
        self.tokens += int((batch["labels"] != IGNORE).sum())
        self.steps += 1

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


@dataclass
class Fitted:
    model: nn.Module
    result: FitResult


def fit_translator(
    cfg: RunConfig,
    model: nn.Module,
    vocab: Vocabularies,
    train: Sequence[Pair],
    valid: Sequence[MultiRef | Pair],
    work_dir: Path,
    *,
    resume: bool = False,
    progress: str | None = None,
    loggers: bool = True,
    callbacks: Sequence[Callback] = (),
) -> Fitted:
    """Train `model` on `train`, keeping the best checkpoint on `valid` (by `train.monitor`:
    val_bleu on the first `translate.val_bleu_sentences` sources, val_loss/val_acc on every
    validation pair)."""
    max_length, t = cfg.tokenizer.max_length, cfg.train
    refs = as_references(valid)
    train_loader = make_loader(
        encode_pairs(vocab, train, max_length),
        t.batch_size,
        shuffle=True,
        bucket=t.bucket,
        seed=t.seed,
        max_tokens=t.batch_tokens,
    )
    valid_loader = (
        make_loader(encode_pairs(vocab, parallel.flatten(refs), max_length), t.batch_size, max_tokens=t.batch_tokens)
        if refs
        else None
    )
    probe = None
    if refs and cfg.translate.val_bleu_sentences:
        probe = BleuProbe(vocab, refs[: cfg.translate.val_bleu_sentences], DecodeSettings.from_config(cfg), max_length)
    module = TranslationModule(model, t, cfg.translate, probe)
    result = fit(
        module, train_loader, valid_loader, work_dir, t, resume=resume, progress=progress, loggers=loggers, callbacks=callbacks
    )
    return Fitted(model.eval(), result)


# --------------------------------------------------------------------------- the run life cycle's steps


class TranslateRecipe:
    """Translation's steps of `seqlab.lifecycle.train_run`; the vocabulary is `Vocabularies`."""

    task = "translate"

    def configure(self, cfg: RunConfig) -> RunConfig:
        return cfg

    def load_data(self, cfg: RunConfig) -> Splits:
        return load_splits(cfg)

    def learn_vocabulary(self, cfg: RunConfig, data: Splits) -> Vocabularies:
        return learn_vocabularies(cfg, data.train)

    def vocabulary_files(self, cfg: RunConfig) -> tuple[str, ...]:
        return runs.TOKENIZER, TARGET_TOKENIZER

    def save_vocabulary(self, vocabulary: Vocabularies, run_dir: Path) -> None:
        runs.save_tokenizer(vocabulary.source, run_dir / runs.TOKENIZER)
        runs.save_tokenizer(vocabulary.target, run_dir / TARGET_TOKENIZER)

    def load_vocabulary(self, cfg: RunConfig, run_dir: Path) -> Vocabularies:
        return read_vocabularies(run_dir)

    def describe(self, data: Splits, vocabulary: Vocabularies) -> str:
        return (
            f"{len(data.train):,} train pairs / {len(data.valid):,} valid / {len(data.test):,} test sources; vocabularies "
            f"{vocabulary.source.get_vocab_size():,} source / {vocabulary.target.get_vocab_size():,} target"
        )

    def fit(
        self, cfg: RunConfig, data: Splits, vocabulary: Vocabularies, run_dir: Path, *, resume: bool, progress: str | None
    ) -> Fitted:
        torch.manual_seed(cfg.train.seed)  # same initial weights for the same seed
        model = build_model(cfg, vocabulary.source.get_vocab_size(), vocabulary.target.get_vocab_size())
        return fit_translator(cfg, model, vocabulary, data.train, data.valid, run_dir, resume=resume, progress=progress)

    def finish(self, run_dir: Path, cfg: RunConfig, data: Splits, vocabulary: Vocabularies, fitted: Fitted) -> Finished:
        max_length = cfg.tokenizer.max_length
        metrics = {}
        if data.valid:  # greedy: as the checkpoints were selected
            metrics["valid"] = translation_metrics.evaluate(
                fitted.model, vocabulary, data.valid, DecodeSettings.from_config(cfg, beam=1), max_length
            )
        if data.test:
            metrics["test"] = translation_metrics.evaluate(
                fitted.model, vocabulary, data.test, DecodeSettings.from_config(cfg), max_length
            )
        runs.save_weights(fitted.model, run_dir / runs.WEIGHTS)
        seen = {
            "train": {
                "source": data.sources["train"],
                "pairs": len(data.train),
                "sha256": runs.data_hash((p.source, p.target) for p in data.train),
            }
        }
        for name in ("valid", "test"):
            refs = getattr(data, name)
            seen[name] = {
                "source": data.sources[name],
                "sources": len(refs),
                "pairs": sum(len(r.references) for r in refs),
                "sha256": runs.data_hash((p.source, p.target) for p in parallel.flatten(refs)),
            }
        return Finished(metrics, seen, {"truncated_lines": data.truncated} if data.truncated else {})


RECIPE = TranslateRecipe()
