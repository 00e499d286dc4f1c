"""`seqlab experiment parallelism` (course Q6, Q14, Q19): why Transformers train faster than RNNs.

A recurrent layer computes position t from position t - 1: T dependent steps per layer, each a
small matrix product. A convolution or a self-attention layer computes every position at once:
one step of large matrix products (attention's grows as T²). This experiment times training and
the forward pass of one layer of each against sequence length.

Models (seqlab's own, one layer each, no dropout, vocabulary of 64): `RNNClassifier` with an
Elman, LSTM or GRU cell, `KimCNN` (widths 3/4/5) and `TransformerClassifier` (one encoder layer,
4 heads, feed-forward 4·d). Their widths are chosen so that every model has about the same
number of parameters (`synthetic.matched_width`); the table reports the counts.

Protocol: batches of random rows (`synthetic.random_rows`) at each length; a training step is
`synthetic.train_synthetic`'s (forward, loss, backward, clipping, Adam), timed after one warm-up
step; the models alternate within every repeat so load on a shared machine hits them alike;
medians of the repeats. Tokens/s = batch × length / step time; an epoch is 1,000 rows.
"Forward per layer" times the layer alone (no gradients) on a (batch, length, width) input.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from seqlab.experiments import ExperimentResult
from seqlab.experiments.synthetic import all_real, count_parameters, matched_width, random_rows, train_synthetic
from seqlab.models.cnn import KimCNN
from seqlab.models.rnn import RNNClassifier
from seqlab.models.transformer import TransformerClassifier

NAME = "parallelism"
MODELS = ("rnn", "lstm", "gru", "cnn", "transformer")
VOCAB = 64
EPOCH_ROWS = 1000


def settings(quick: bool) -> dict:
    if quick:
        return {"lengths": [16, 64], "batch_size": 8, "parameters": 20_000, "steps": 2, "repeats": 1, "forward_repeats": 2}
    return {
        "lengths": [16, 32, 64, 128, 256, 512],
        "batch_size": 32,
        "parameters": 200_000,
        "steps": 2,
        "repeats": 3,
        "forward_repeats": 5,
    }


def build(kind: str, width: int) -> nn.Module:
    """A one-layer model of family `kind` and width `width` (hidden size, filters per width or d_model)."""
    if kind == "cnn":
        return KimCNN(VOCAB, 2, embed_dim=width, filter_sizes=(3, 4, 5), num_filters=width, dropout=0.0)
    if kind == "transformer":
        return TransformerClassifier(
            VOCAB, 2, d_model=width, num_heads=4, num_layers=1, ff_dim=4 * width, dropout=0.0, max_len=512, pooling="mean"
        )
    return RNNClassifier(VOCAB, 2, cell=kind, embed_dim=width, hidden_dim=width, num_layers=1, dropout=0.0)


def layer_forward(kind: str, model: nn.Module) -> Callable[[torch.Tensor], object]:
    """The model's one layer as a function of its input x (B, T, width)."""
    if kind == "cnn":
        return lambda x: [conv(x.transpose(1, 2)) for conv in model.convs]  # (B, F, T + w - 1) each
    if kind == "transformer":
        layer = model.encoder.layers[0]
        return lambda x: layer(x, torch.ones(x.shape[:2], dtype=torch.bool))  # (B, T, d)
    return lambda x: model.rnn(x)  # T dependent steps


def _forward(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(ids, all_real(ids)).logits


def _train_step_seconds(model: nn.Module, ids: torch.Tensor, labels: torch.Tensor, steps: int) -> float:
    started = time.perf_counter()
    train_synthetic(model, _forward, ids, labels, steps, batch_size=ids.size(0))
    return (time.perf_counter() - started) / steps


@torch.no_grad()
def _forward_seconds(layer: Callable, x: torch.Tensor) -> float:
    started = time.perf_counter()
    layer(x)
    return time.perf_counter() - started


def run(quick: bool, output: Path, seed: int = 0, threads: int | None = None) -> ExperimentResult:
    """Training tokens/s, seconds per epoch and forward ms per layer, by model and length;
    writes `parallelism.png`. `threads`: torch's CPU threads for the measurement (default: as
    set, e.g. by OMP_NUM_THREADS); parallel lanes are what a one-step layer can fill and a
    T-step recurrence cannot."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _measure(settings(quick), quick, output, seed)
    finally:
        torch.set_num_threads(previous)


def _measure(s: dict, quick: bool, output: Path, seed: int) -> ExperimentResult:
    torch.manual_seed(seed)
    widths = {kind: matched_width(lambda w, kind=kind: build(kind, w), s["parameters"]) for kind in MODELS}
    models = {kind: build(kind, widths[kind]) for kind in MODELS}
    rows = []
    for length in s["lengths"]:
        ids, labels = random_rows(s["batch_size"], length, VOCAB, seed=seed)
        step, fwd = {k: [] for k in MODELS}, {k: [] for k in MODELS}
        for model in models.values():  # warm-up: allocations, kernel choice
            _train_step_seconds(model, ids, labels, 1)
        for _ in range(s["repeats"]):
            for kind, model in models.items():
                step[kind].append(_train_step_seconds(model, ids, labels, s["steps"]))
                x = torch.randn(s["batch_size"], length, widths[kind])
                fwd[kind] += [_forward_seconds(layer_forward(kind, model), x) for _ in range(s["forward_repeats"])]
        for kind in MODELS:
            seconds = statistics.median(step[kind])
            rows.append(
                [
                    kind,
                    count_parameters(models[kind]),
                    length,
                    length if kind in ("rnn", "lstm", "gru") else 1,
                    round(s["batch_size"] * length / seconds),
                    round(EPOCH_ROWS / s["batch_size"] * seconds, 3),
                    round(1000 * statistics.median(fwd[kind]), 3),
                ]
            )
    plot = _plot(rows, output / "parallelism.png")
    columns = [
        "model",
        "parameters",
        "length",
        "dependent steps per layer",
        "train tokens/s",
        f"s per epoch ({EPOCH_ROWS:,} rows)",
        "forward ms per layer",
    ]
    return ExperimentResult(
        NAME,
        columns,
        rows,
        verdict=verdict(rows, quick, torch.get_num_threads()),
        plots=[plot],
        settings={**s, "widths": widths, "vocab": VOCAB, "threads": torch.get_num_threads(), "seed": seed},
    )


def verdict(rows: list[list], quick: bool, threads: int = 1) -> str:
    """Compare the Transformer with the recurrent models at the longest length (measured)."""
    if quick:
        return "quick run: the table's shape only, too noisy and small for a verdict"
    longest = max(r[2] for r in rows)
    speed = {r[0]: r[4] for r in rows if r[2] == longest}
    ratios = ", ".join(f"{speed['transformer'] / speed[k]:.1f}× the {k}" for k in ("rnn", "lstm", "gru"))
    if speed["transformer"] > max(speed[k] for k in ("rnn", "lstm", "gru")):
        return f"confirmed: at length {longest} the Transformer trains {ratios} (tokens/s)"
    lanes = "; one thread leaves a one-step layer no parallel lanes to fill" if threads == 1 else ""
    return (
        f"not seen at this scale ({threads} CPU thread(s)): at length {longest} the Transformer trains {ratios} (tokens/s){lanes}"
    )


def _plot(rows: list[list], path: Path) -> Path:
    from seqlab.plots import _save, plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for kind in MODELS:
        mine = [r for r in rows if r[0] == kind]
        label = f"{kind} ({mine[0][1]:,} params)"
        axes[0].plot([r[2] for r in mine], [r[4] for r in mine], marker="o", label=label)
        axes[1].plot([r[2] for r in mine], [r[6] for r in mine], marker="o", label=label)
    for ax, ylabel, title in (
        (axes[0], "training tokens / s", "Training throughput"),
        (axes[1], "ms", "Forward time of one layer"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
    return _save(fig, path)
