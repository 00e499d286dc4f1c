"""Text classification: data preparation, the Lightning module (loss, metrics) and the run life
cycle's steps. Any model from `seqlab.models.build_classifier` plugs in; the loop is `seqlab.trainer.fit`.
Prediction and scoring (`make_model`, `predict_proba`, `score`, ...) live in
`seqlab.tasks.classify.inference`, which loading a run imports without this module's training code.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from seqlab import hub, runs
from seqlab.config import RunConfig, TrainConfig
from seqlab.data.batching import make_loader
from seqlab.data.datasets import BUILTIN_DATASETS, load_examples, standard_split
from seqlab.data.readers import Example
from seqlab.data.tokenize import encode, train_tokenizer
from seqlab.errors import SeqlabError
from seqlab.lifecycle import Finished, TokenizerAndLabels
from seqlab.tasks.classify.inference import (  # noqa: F401 (re-exported: the recipe predicts and scores with them)
    confusion,
    evaluate_examples,
    make_model,
    predict_proba,
    probabilities,
    score,
)
from seqlab.tasks.pretrain import finetune
from seqlab.tasks.word_vectors import apply_word_vectors
from seqlab.trainer import FitResult, fit, make_optimizer, with_lr_schedule

log = logging.getLogger("seqlab")


# --------------------------------------------------------------------------- data


@dataclass
class Splits:
    """Examples for training, early stopping and the final score (valid/test may be empty)."""

    train: list[Example]
    valid: list[Example]
    test: list[Example]
    sources: dict[str, str] = field(default_factory=dict)  # split → where it came from


def load_splits(cfg: RunConfig) -> Splits:
    """Read the configured data and cut the missing splits out of the training data.

    A built-in dataset with a standard test set (`trec`) is tested on it unless `data.test` says
    otherwise; valid is then `data.valid_fraction` of its training set.

    Raises:
        SeqlabError: unreadable data, or a label in valid/test that training never sees.
    """
    data = cfg.data
    options = dict(text_column=data.text_column, label_column=data.label_column, max_chars=data.max_chars)
    standard = None if data.test else standard_test(data.train)
    examples = load_examples(data.train, **options)
    rng = random.Random(data.split_seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    shuffled = [examples[i] for i in order]
    total = len(shuffled)  # fractions are of the whole file: 80/10/10 by default
    if data.test:
        test = load_examples(data.test, **options)
    elif standard is not None:
        test = standard  # the dataset's own test set (trec: TREC-10's 500 questions), never cut from train
    else:
        test = _take(shuffled, total, data.test_fraction, "test")
    valid = load_examples(data.valid, **options) if data.valid else _take(shuffled, total, data.valid_fraction, "valid")
    train = shuffled[: data.limit] if data.limit else shuffled
    sources = {
        "train": data.train,
        "valid": data.valid or f"{data.valid_fraction:.0%} of {data.train}",
        "test": data.test
        or (
            f"{data.train}:test (the standard test set)" if standard is not None else f"{data.test_fraction:.0%} of {data.train}"
        ),
    }
    splits = Splits(train, valid, test, sources)
    check_labels(splits)
    return splits


def standard_test(spec: str) -> list[Example] | None:
    """The standard test set of a built-in dataset that has one (`trec`, `trec-fine`), else None:
    `data.train=trec` alone then means the published train/test split, as in the papers."""
    if spec not in BUILTIN_DATASETS or Path(spec).is_file():
        return None
    split = standard_split(spec)
    return split[1] if split else None


def _take(pool: list[Example], total: int, fraction: float, name: str) -> list[Example]:
    """Pop `fraction` of `total` examples from the end of `pool` (already shuffled)."""
    count = round(total * fraction)
    if fraction and (count == 0 or count >= len(pool)):
        raise SeqlabError(f"{total} examples are too few to hold out a {name} split; add data or set data.{name}_fraction=0")
    taken = pool[len(pool) - count :]
    del pool[len(pool) - count :]
    return taken


def check_labels(splits: Splits) -> None:
    """Every label to be predicted must have been seen in training, and there must be two."""
    if not splits.train:
        raise SeqlabError("no training examples left after the valid/test split")
    known = {ex.label for ex in splits.train}
    if len(known) < 2:
        raise SeqlabError(
            f"training data {splits.sources['train']} has only the label {known.pop()!r}; a classifier needs two or more"
        )
    for name in ("valid", "test"):
        unseen = sorted({ex.label for ex in getattr(splits, name)} - known)
        if unseen:
            raise SeqlabError(
                f"label {unseen[0]!r} appears in the {name} data ({splits.sources[name]}) but never in the "
                f"training data; add training examples for it or drop it"
            )


@dataclass
class Encoded:
    """Token ids and label indices of one split."""

    ids: list[list[int]]
    labels: list[int]
    truncated: int


def encode_split(examples: Sequence[Example], tokenizer: Tokenizer, label_names: list[str], max_length: int) -> Encoded:
    index = {name: i for i, name in enumerate(label_names)}
    ids, truncated = encode(tokenizer, [ex.text for ex in examples], max_length)
    return Encoded(ids, [index[ex.label] for ex in examples], truncated)


# --------------------------------------------------------------------------- the Lightning module


class ClassifierModule(L.LightningModule):
    """Cross-entropy (or binary cross-entropy for a sigmoid head), accuracy and macro-F1."""

    def __init__(self, model: nn.Module, num_labels: int, head: str, train_cfg: TrainConfig, layer_decay: float | None = None):
        super().__init__()
        self.model = model
        self.num_labels = num_labels
        self.sigmoid = head == "sigmoid"
        self.train_cfg = train_cfg
        self.layer_decay = layer_decay
        self._val_probs: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask).logits

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.sigmoid:
            return F.binary_cross_entropy_with_logits(logits.squeeze(-1), labels.float())
        return F.cross_entropy(logits, labels)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = self.loss(logits, batch["labels"])
        # sync_dist: under DDP the epoch's loss is averaged over every rank's shard
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(logits), sync_dist=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self(batch["input_ids"], batch["attention_mask"])
        self.log("val_loss", self.loss(logits, batch["labels"]), on_epoch=True, batch_size=len(logits), sync_dist=True)
        self._val_probs.append(probabilities(logits, self.sigmoid))
        self._val_labels.append(batch["labels"])

    def on_validation_epoch_end(self) -> None:
        # Every DDP rank validates the whole (unsharded) validation split, so accuracy and F1
        # are over all of it and the same on every rank (the mean over ranks changes nothing).
        scores = score(torch.cat(self._val_probs), torch.cat(self._val_labels), self.num_labels)
        self.log("val_acc", scores["accuracy"], sync_dist=True)
        self.log("val_f1", scores["macro_f1"], sync_dist=True)
        self._val_probs.clear()
        self._val_labels.clear()

    def configure_optimizers(self) -> Any:
        cfg = self.train_cfg
        groups = None if self.layer_decay is None else self.model.parameter_groups(cfg.lr, self.layer_decay, cfg.weight_decay)
        return with_lr_schedule(self, make_optimizer(self, cfg, groups), cfg)


# --------------------------------------------------------------------------- training and prediction


@dataclass
class Fitted:
    """A trained classifier with everything needed to use it."""

    model: nn.Module
    tokenizer: Tokenizer
    labels: list[str]
    result: FitResult
    truncated: dict[str, int]
    embeddings: dict | None = None  # pretrained word vectors: coverage record for manifest.json


def fit_classifier(
    cfg: RunConfig,
    train: Sequence[Example],
    valid: Sequence[Example],
    work_dir: Path,
    *,
    tokenizer: Tokenizer | None = None,
    labels: list[str] | None = None,
    resume: bool = False,
    progress: str | None = None,
    loggers: bool = True,
) -> Fitted:
    """Train the configured classifier on `train`, selecting the epoch on `valid`.

    A tokenizer and label list are learned from `train` unless given (a run folder passes the
    ones it saved first, so a resumed run keeps the same ids).
    """
    pretrained = cfg.model.arch == "transformer" and cfg.model.init and not resume  # (a resumed run has it in last.ckpt)
    if pretrained:  # an encoder pretrained here: its sizes and vocabulary (api.train has saved them already)
        cfg = finetune.init_config(cfg)
    if tokenizer is None or labels is None:
        tokenizer, labels = learn_vocabulary(cfg, train)
    tok = cfg.tokenizer
    train_enc = encode_split(train, tokenizer, labels, tok.max_length)
    valid_enc = encode_split(valid, tokenizer, labels, tok.max_length) if valid else None
    torch.manual_seed(cfg.train.seed)  # same initial weights for the same seed
    model = make_model(cfg, tokenizer, labels)
    if pretrained:
        finetune.load_encoder(model, cfg.model.init)
    vectors = apply_word_vectors(model, cfg, tokenizer)  # model.embeddings; before the optimiser exists
    llrd = cfg.model.arch == "hf" and cfg.model.strategy == "llrd"
    module = ClassifierModule(model, len(labels), cfg.model.head, cfg.train, cfg.model.layer_decay if llrd else None)
    batch = cfg.train.batch_size
    train_loader = make_loader(train_enc.ids, train_enc.labels, batch, shuffle=True, bucket=cfg.train.bucket, seed=cfg.train.seed)
    valid_loader = make_loader(valid_enc.ids, valid_enc.labels, batch * 2) if valid_enc else None
    result = fit(module, train_loader, valid_loader, work_dir, cfg.train, resume=resume, progress=progress, loggers=loggers)
    model.eval()
    truncated = {"train": train_enc.truncated, "valid": valid_enc.truncated if valid_enc else 0}
    return Fitted(model, tokenizer, labels, result, truncated, vectors)


def learn_vocabulary(cfg: RunConfig, train: Sequence[Example]) -> tuple[Tokenizer, list[str]]:
    """The tokenizer and the label names (sorted), both from the training split only; a
    pretrained encoder brings its own tokenizer."""
    labels = sorted({ex.label for ex in train})
    if cfg.model.head == "sigmoid" and len(labels) != 2:
        raise SeqlabError(f"model.head=sigmoid needs exactly two labels, the data has {len(labels)}; use model.head=softmax")
    if cfg.model.arch == "hf":
        return hub.load_tokenizer(cfg.model.model), labels
    if cfg.model.arch == "transformer" and cfg.model.init:  # an encoder pretrained here: its WordPiece vocabulary
        return finetune.open_pretrained(cfg.model.init).tokenizer, labels
    tok = cfg.tokenizer
    tokenizer = train_tokenizer((ex.text for ex in train), tok.level, tok.vocab_size, tok.min_frequency, tok.lowercase)
    return tokenizer, labels


# --------------------------------------------------------------------------- the run life cycle's steps


class ClassifyRecipe(TokenizerAndLabels):
    """Classification's steps of `seqlab.lifecycle.train_run`; the vocabulary is (tokenizer, labels)."""

    task = "classify"

    def configure(self, cfg: RunConfig) -> RunConfig:
        if cfg.model.arch == "transformer" and cfg.model.init:
            return finetune.init_config(cfg)  # the pretrained run's sizes and vocabulary, saved with this run
        return cfg

    def load_data(self, cfg: RunConfig) -> Splits:
        return load_splits(cfg)

    def learn_vocabulary(self, cfg: RunConfig, data: Splits) -> tuple[Tokenizer, list[str]]:
        return learn_vocabulary(cfg, data.train)

    def describe(self, data: Splits, vocabulary: tuple[Tokenizer, list[str]]) -> str:
        return f"{len(data.train):,} train / {len(data.valid):,} valid / {len(data.test):,} test examples, {len(vocabulary[1])} labels"

    def fit(
        self,
        cfg: RunConfig,
        data: Splits,
        vocabulary: tuple[Tokenizer, list[str]],
        run_dir: Path,
        *,
        resume: bool,
        progress: str | None,
    ) -> Fitted:
        tokenizer, labels = vocabulary
        return fit_classifier(
            cfg, data.train, data.valid, run_dir, tokenizer=tokenizer, labels=labels, resume=resume, progress=progress
        )

    def finish(self, run_dir: Path, cfg: RunConfig, data: Splits, vocabulary: Any, fitted: Fitted) -> Finished:
        sigmoid = cfg.model.head == "sigmoid"
        metrics = {
            name: evaluate_examples(
                fitted.model, fitted.tokenizer, fitted.labels, getattr(data, name), cfg.tokenizer.max_length, sigmoid
            )
            for name in ("valid", "test")
            if getattr(data, name)
        }
        shown = "test" if data.test else "valid" if data.valid else None
        if shown is not None:  # a few predictions for the run's report (seqlab.report)
            metrics[shown]["samples"] = sample_predictions(fitted, getattr(data, shown), cfg.tokenizer.max_length, sigmoid)
        if cfg.model.arch == "hf":  # transformers loads the encoder; seqlab adds the head
            hub.save_for_transformers(fitted.model.encoder, cfg.model.model, run_dir / runs.ENCODER)
            runs.save_weights(fitted.model, run_dir / runs.WEIGHTS, skip_prefix="encoder.")
        else:
            runs.save_weights(fitted.model, run_dir / runs.WEIGHTS)
        seen = {
            name: {
                "source": data.sources[name],
                "examples": len(getattr(data, name)),
                "sha256": runs.data_hash((ex.text, ex.label) for ex in getattr(data, name)),
            }
            for name in ("train", "valid", "test")
        }
        extra = {"truncated": fitted.truncated, **({"embeddings": fitted.embeddings} if fitted.embeddings else {})}
        return Finished(metrics, seen, extra)


def sample_predictions(
    fitted: Fitted, examples: Sequence[Example], max_length: int, sigmoid: bool, count: int = 20
) -> list[dict]:
    """Up to `count` held-out examples with gold and predicted label and the predicted label's
    probability: the first misclassified ones (at most half) and the first right ones, in split
    order, so that a report shows what the errors look like."""
    probs = predict_proba(fitted.model, fitted.tokenizer, [ex.text for ex in examples], max_length, sigmoid)  # (N, C)
    rows = [
        {
            "text": ex.text[:300],
            "gold": ex.label,
            "predicted": fitted.labels[int(row.argmax())],
            "probability": round(float(row.max()), 4),
        }
        for ex, row in zip(examples, probs)
    ]
    wrong = [r for r in rows if r["gold"] != r["predicted"]][: count // 2]
    right = [r for r in rows if r["gold"] == r["predicted"]][: count - len(wrong)]
    chosen = {id(r) for r in wrong + right}
    return [r for r in rows if id(r) in chosen]  # (split order)


RECIPE = ClassifyRecipe()
