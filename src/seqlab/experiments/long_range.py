"""`seqlab experiment long-range` (course Q2, Q13): does attention reach back further than a recurrence?

Task (`synthetic.long_range`): a row of k + 1 tokens is labelled by its first token; the k tokens
after it are distractors drawn from the same vocabulary (values included). An RNN must carry the
first token through k updates of its state; an LSTM's gated cell is built to; a Transformer's
[CLS] query attends to position 1 directly, whatever k is.

Each model (seqlab's `RNNClassifier` with an Elman or LSTM cell, reading its last state, and
`TransformerClassifier` with [CLS] pooling) trains for the same number of steps on the same rows
at every k, and is scored on held-out rows (chance: 1 / classes).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from seqlab.experiments import QUICK_VERDICT, ExperimentResult
from seqlab.experiments.synthetic import (
    accuracy,
    all_real,
    count_parameters,
    long_range,
    long_range_vocab,
    matched_width,
    train_synthetic,
)
from seqlab.models.rnn import RNNClassifier
from seqlab.models.transformer import TransformerClassifier

NAME = "long-range"
CLASSES = 4
MODELS = ("rnn", "lstm", "transformer")


def settings(quick: bool) -> dict:
    """Distances, data, budget and seeds; quick: the table's shape in seconds, no verdict."""
    if quick:
        return {
            "distances": [2, 8],
            "train": 512,
            "test": 256,
            "steps": 40,
            "batch_size": 32,
            "width": 16,
            "lr": 3e-3,
            "seeds": 1,
        }
    return {
        "distances": [4, 16, 64, 128],
        "train": 4000,
        "test": 1000,
        "steps": 400,
        "batch_size": 32,
        "width": 48,
        "lr": 2e-3,
        "seeds": 2,
    }


def build(kind: str, width: int, vocab_size: int, max_len: int) -> nn.Module:
    """One of the compared models, without dropout (the data are noise-free)."""
    if kind == "transformer":
        return TransformerClassifier(
            vocab_size,
            CLASSES,
            d_model=width,
            num_heads=4,
            num_layers=2,
            ff_dim=2 * width,
            dropout=0.0,
            max_len=max_len,
            pooling="cls",
        )
    return RNNClassifier(vocab_size, CLASSES, cell=kind, embed_dim=width, hidden_dim=width, pooling="last", dropout=0.0)


def _forward(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(ids, all_real(ids)).logits  # (B, C)


def run(quick: bool, output: Path, seed: int = 0) -> ExperimentResult:
    """Accuracy against distance k for RNN, LSTM and Transformer, over `seeds` seeds (data and
    initialisation); writes `accuracy_vs_distance.png`."""
    s = settings(quick)
    vocab = long_range_vocab(CLASSES)
    # the recurrent models get the width that gives them the Transformer's parameter count
    target = count_parameters(build("transformer", s["width"], vocab, 2))
    widths = {
        kind: s["width"]
        if kind == "transformer"
        else matched_width(lambda w, kind=kind: build(kind, w, vocab, 2), target, range(4, 513))
        for kind in MODELS
    }
    parameters = {kind: count_parameters(build(kind, widths[kind], vocab, 2)) for kind in MODELS}  # not length-dependent
    rows = []
    for k in s["distances"]:
        runs = {kind: [] for kind in MODELS}  # (test accuracy, final train loss) per seed
        for run_seed in range(seed, seed + s["seeds"]):
            train_ids, train_labels = long_range(s["train"], k, CLASSES, seed=run_seed)
            test_ids, test_labels = long_range(s["test"], k, CLASSES, seed=run_seed + 1000)
            for kind in MODELS:
                torch.manual_seed(run_seed)
                model = build(kind, widths[kind], vocab, k + 1)
                loss = train_synthetic(model, _forward, train_ids, train_labels, s["steps"], s["batch_size"], s["lr"], run_seed)
                runs[kind].append((accuracy(model, _forward, test_ids, test_labels), loss))
        for kind in MODELS:
            accs, losses = [a for a, _ in runs[kind]], [loss for _, loss in runs[kind]]
            rows.append(
                [
                    kind,
                    k,
                    parameters[kind],
                    " / ".join(f"{a:.2f}" for a in accs),
                    round(sum(accs) / len(accs), 4),
                    round(sum(losses) / len(losses), 4),
                ]
            )
    plot = _plot(rows, output / "accuracy_vs_distance.png")
    return ExperimentResult(
        NAME,
        ["model", "k", "parameters", "test accuracy per seed", "mean test accuracy", "mean final train loss"],
        rows,
        verdict=verdict(rows, quick),
        plots=[plot],
        settings={**s, "widths": widths, "first_seed": seed, "classes": CLASSES, "chance": 1 / CLASSES},
    )


def verdict(rows: list[list], quick: bool) -> str:
    """Compare each model's worst mean accuracy over the distances (measured, not assumed)."""
    if quick:
        return QUICK_VERDICT
    worst = {m: min(r[4] for r in rows if r[0] == m) for m in MODELS}
    far = max(r[1] for r in rows)
    summary = ", ".join(f"{m} {worst[m]:.2f}" for m in MODELS)
    if worst["transformer"] > max(worst["rnn"], worst["lstm"]) + 0.05:
        return f"confirmed: worst mean accuracy over k ≤ {far}: {summary} (chance {1 / CLASSES:.2f})"
    return f"not seen at this scale: worst mean accuracy over k ≤ {far}: {summary}"


def _plot(rows: list[list], path: Path) -> Path:
    from seqlab.plots import _save, plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for kind in MODELS:
        points = [(r[1], r[4]) for r in rows if r[0] == kind]  # mean over seeds
        ax.plot(*zip(*points), marker="o", label=kind)
    ax.axhline(1 / CLASSES, color="grey", linestyle=":", label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k: distance from the labelled token to the end")
    ax.set_ylabel("test accuracy (mean over seeds)")
    ax.set_ylim(0, 1.05)
    ax.set_title("Long-range dependency: label = first token, k distractors later")
    ax.legend()
    return _save(fig, path)
