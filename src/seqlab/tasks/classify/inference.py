"""What a trained classifier needs to predict and be scored: the model a config describes,
class probabilities, accuracy, macro-F1 and the confusion matrix.

This module imports no training code (no Lightning, no torchmetrics), so that loading a run
(`seqlab.tasks.classify.pipeline`) stays fast; `seqlab.tasks.classify.recipe` trains with the
same functions. An `hf` run imports transformers only when its encoder is loaded (`seqlab.hub`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from tokenizers import Tokenizer
from torch import nn

from seqlab import hub
from seqlab.config import RunConfig
from seqlab.data.batching import make_loader
from seqlab.data.readers import Example
from seqlab.data.tokenize import PAD_ID, encode
from seqlab.errors import SeqlabError
from seqlab.models import build_classifier
from seqlab.models.pretrained import HFEncoderClassifier


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


def probabilities(logits: torch.Tensor, sigmoid: bool) -> torch.Tensor:
    """(B, C) logits → (B, C) class probabilities; a sigmoid head's (B, 1) → [1 - p, p]."""
    if sigmoid:
        positive = torch.sigmoid(logits.float().squeeze(-1))
        return torch.stack([1 - positive, positive], dim=-1)
    return logits.float().softmax(dim=-1)


def confusion_counts(predicted: torch.Tensor, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """(C, C) counts of (N,) predicted against (N,) true label indices; rows: true, columns: predicted."""
    pairs = labels.long() * num_labels + predicted.long()  # (N,) one cell index per example
    return torch.bincount(pairs, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def score(probs: torch.Tensor, labels: torch.Tensor, num_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 of (N, C) probabilities against (N,) label indices.

    Macro-F1 is the mean F1 over the classes that occur among the true or the predicted labels
    (a class absent from both says nothing about the model and is left out), as torchmetrics'
    `multiclass_f1_score(average="macro")` computes it.
    """
    counts = confusion_counts(probs.argmax(dim=-1), labels, num_labels).double()  # (C, C)
    tp = counts.diagonal()
    fp, fn = counts.sum(0) - tp, counts.sum(1) - tp  # predicted as c but not c; c but predicted otherwise
    denominator = 2 * tp + fp + fn
    f1 = torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.zeros_like(tp))
    present = denominator > 0
    total = counts.sum()
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
    }


def confusion(probs: torch.Tensor, labels: torch.Tensor, num_labels: int) -> list[list[int]]:
    """Rows: true label, columns: predicted label."""
    return confusion_counts(probs.argmax(dim=-1), labels, num_labels).tolist()


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
    return torch.cat([probabilities(model(batch["input_ids"], batch["attention_mask"]).logits, sigmoid) for batch in loader])


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
