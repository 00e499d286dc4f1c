"""Text classification: data preparation, the Lightning module (loss, metrics), prediction and
evaluation. Any model from `seqlab.models.build_classifier` plugs in; the loop is `seqlab.train.fit`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
)

from seqlab import hub
from seqlab.config import RunConfig, TrainConfig
from seqlab.data.batching import make_loader
from seqlab.data.datasets import load_examples
from seqlab.data.readers import Example
from seqlab.data.tokenize import PAD_ID, encode, train_tokenizer
from seqlab.errors import SeqlabError
from seqlab.models import build_classifier
from seqlab.models.pretrained import HFEncoderClassifier
from seqlab.tasks import finetune
from seqlab.tasks.word_vectors import apply_word_vectors
from seqlab.train import FitResult, fit, with_lr_schedule

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

    Raises:
        SeqlabError: unreadable data, or a label in valid/test that training never sees.
    """
    data = cfg.data
    options = dict(text_column=data.text_column, label_column=data.label_column, max_chars=data.max_chars)
    examples = load_examples(data.train, **options)
    rng = random.Random(data.split_seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    shuffled = [examples[i] for i in order]
    total = len(shuffled)  # fractions are of the whole file: 80/10/10 by default
    test = load_examples(data.test, **options) if data.test else _take(shuffled, total, data.test_fraction, "test")
    valid = load_examples(data.valid, **options) if data.valid else _take(shuffled, total, data.valid_fraction, "valid")
    train = shuffled[: data.limit] if data.limit else shuffled
    sources = {
        "train": data.train,
        "valid": data.valid or f"{data.valid_fraction:.0%} of {data.train}",
        "test": data.test or f"{data.test_fraction:.0%} of {data.train}",
    }
    splits = Splits(train, valid, test, sources)
    check_labels(splits)
    return splits


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
        raise SeqlabError(f"training data {splits.sources['train']} has only the label {known.pop()!r}; a classifier needs two or more")
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


def encode_split(
    examples: Sequence[Example], tokenizer: Tokenizer, label_names: list[str], max_length: int
) -> Encoded:
    index = {name: i for i, name in enumerate(label_names)}
    ids, truncated = encode(tokenizer, [ex.text for ex in examples], max_length)
    return Encoded(ids, [index[ex.label] for ex in examples], truncated)


# --------------------------------------------------------------------------- the Lightning module


class ClassifierModule(L.LightningModule):
    """Cross-entropy (or binary cross-entropy for a sigmoid head), accuracy and macro-F1."""

    def __init__(
        self, model: nn.Module, num_labels: int, head: str, train_cfg: TrainConfig, layer_decay: float | None = None
    ):
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
        return with_lr_schedule(self, self._optimizer(), self.train_cfg)

    def _optimizer(self) -> torch.optim.Optimizer:
        cfg = self.train_cfg
        params = [p for p in self.parameters() if p.requires_grad]
        if self.layer_decay is not None:
            params = self.model.parameter_groups(cfg.lr, self.layer_decay, cfg.weight_decay)
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
        if cfg.optimizer == "adadelta":
            return torch.optim.Adadelta(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        optimizer = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        # The fused kernel updates all parameters in one pass: 7× faster than the loop over
        # tensors on a 300-d embedding table, where the optimiser step dominates a CPU batch.
        return optimizer(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=True)


def probabilities(logits: torch.Tensor, sigmoid: bool) -> torch.Tensor:
    """(B, C) logits → (B, C) class probabilities; a sigmoid head's (B, 1) → [1 - p, p]."""
    if sigmoid:
        positive = torch.sigmoid(logits.float().squeeze(-1))
        return torch.stack([1 - positive, positive], dim=-1)
    return logits.float().softmax(dim=-1)


def score(probs: torch.Tensor, labels: torch.Tensor, num_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 of (N, C) probabilities against (N,) label indices."""
    predicted = probs.argmax(dim=-1)
    return {
        "accuracy": float(multiclass_accuracy(predicted, labels, num_labels, average="micro")),
        "macro_f1": float(multiclass_f1_score(predicted, labels, num_labels, average="macro")),
    }


def confusion(probs: torch.Tensor, labels: torch.Tensor, num_labels: int) -> list[list[int]]:
    """Rows: true label, columns: predicted label."""
    return multiclass_confusion_matrix(probs.argmax(dim=-1), labels, num_labels).tolist()


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


def make_model(cfg: RunConfig, tokenizer: Tokenizer, labels: list[str], encoder_source: str | None = None) -> nn.Module:
    """The configured classifier, fresh (or, for a pretrained encoder, loaded from
    `encoder_source`, default the configured model)."""
    if cfg.model.arch != "hf":
        return build_classifier(cfg.model, tokenizer.get_vocab_size(), len(labels), PAD_ID)
    outputs = 1 if cfg.model.head == "sigmoid" else len(labels)
    encoder = hub.load_encoder(encoder_source or cfg.model.model)
    if tokenizer.get_vocab_size() > encoder.config.vocab_size:  # ids past the embedding would crash mid-batch
        raise SeqlabError(
            f"the tokenizer of {encoder_source or cfg.model.model} has {tokenizer.get_vocab_size():,} tokens but the model "
            f"embeds only {encoder.config.vocab_size:,}: tokenizer and model do not match; save them together with save_pretrained"
        )
    model = HFEncoderClassifier(encoder, outputs, cfg.model.pooling, cfg.model.dropout)
    if cfg.model.strategy == "frozen":
        model.freeze_encoder()
    return model


@torch.inference_mode()
def predict_proba(
    model: nn.Module,
    tokenizer: Tokenizer,
    texts: Sequence[str],
    max_length: int,
    sigmoid: bool,
    batch_size: int = 128,
) -> torch.Tensor:
    """(N, C) class probabilities for `texts`, in input order."""
    model.eval()
    ids, _ = encode(tokenizer, texts, max_length)
    loader = make_loader(ids, None, batch_size, shuffle=False, bucket=False)
    return torch.cat([
        probabilities(model(batch["input_ids"], batch["attention_mask"]).logits, sigmoid) for batch in loader
    ])


def evaluate_examples(
    model: nn.Module,
    tokenizer: Tokenizer,
    labels: list[str],
    examples: Sequence[Example],
    max_length: int,
    sigmoid: bool,
) -> dict:
    """Accuracy, macro-F1, confusion matrix and throughput on labelled examples."""
    index = {name: i for i, name in enumerate(labels)}
    unseen = sorted({ex.label for ex in examples} - index.keys())
    if unseen:
        raise SeqlabError(f"label {unseen[0]!r} is not one the model knows ({', '.join(labels)})")
    gold = torch.tensor([index[ex.label] for ex in examples])
    started = time.perf_counter()
    probs = predict_proba(model, tokenizer, [ex.text for ex in examples], max_length, sigmoid)
    seconds = time.perf_counter() - started
    return {
        **score(probs, gold, len(labels)),
        "examples": len(examples),
        "confusion_matrix": confusion(probs, gold, len(labels)),
        "labels": labels,
        "sentences_per_second": len(examples) / max(seconds, 1e-9),
    }


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
