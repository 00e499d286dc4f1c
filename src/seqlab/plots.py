"""Pictures people would rather look at than read: confusion matrices, comparison charts,
learning curves, attention heat maps. Each function writes one PNG and returns its path."""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:  # files only (no display on servers and CI); a notebook keeps its inline plots
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from seqlab.errors import SeqlabError
from seqlab.files import atomic_path


def _save(fig: plt.Figure, path: str | Path) -> Path:
    """Save atomically (never half a PNG, `seqlab.files`); an unwritable path is one line."""
    path = Path(path)
    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".").lower() or "png")
    except ValueError as err:  # a suffix matplotlib cannot write
        raise SeqlabError(f"cannot write {path} ({err})") from None
    finally:
        plt.close(fig)
    return path


def confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Rows: true label; columns: predicted label; each cell shows its count."""
    size = max(3.5, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black")
    ax.set_title(title or "confusion matrix")
    return _save(fig, path)


def comparison(rows: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Bars of mean accuracy (± std) per architecture, with training time on a second panel."""
    names = [row["arch"] for row in rows]
    fig, (acc_ax, time_ax) = plt.subplots(1, 2, figsize=(9, 3.6))
    means = [100 * row["accuracy_mean"] for row in rows]
    stds = [100 * row["accuracy_std"] for row in rows]
    acc_ax.bar(names, means, yerr=stds, capsize=4, color="#4C72B0")
    low = max(0.0, min(means) - 10)
    acc_ax.set_ylim(low, min(100.0, max(m + s for m, s in zip(means, stds)) + 3))
    acc_ax.set_ylabel("accuracy (%)")
    for x, mean in enumerate(means):
        acc_ax.text(x, mean, f"{mean:.1f}", ha="center", va="bottom")
    time_ax.bar(names, [row["train_seconds"] for row in rows], color="#DD8452")
    time_ax.set_ylabel("training time per run (s)")
    fig.suptitle(title)
    return _save(fig, path)


def learning_curve_by_size(rows: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Test accuracy against the number of training examples (log scale), one line per entry."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for arch in dict.fromkeys(row["arch"] for row in rows):
        mine = sorted((r for r in rows if r["arch"] == arch), key=lambda r: r["train_size"])
        xs = [r["train_size"] for r in mine]
        ax.errorbar(
            xs,
            [100 * r["accuracy_mean"] for r in mine],
            yerr=[100 * r["accuracy_std"] for r in mine],
            marker="o",
            capsize=3,
            label=arch,
        )
    ax.set_xscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def learning_curves(metrics_csv: str | Path, path: str | Path, title: str = "") -> Path:
    """Loss (left) and validation accuracy (right) per epoch from a run's logs/metrics.csv."""
    epochs: dict[int, dict[str, float]] = {}
    with open(metrics_csv, encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            values = epochs.setdefault(int(row["epoch"]), {})
            values.update({k: float(v) for k, v in row.items() if v and k not in ("epoch", "step")})
    xs = sorted(epochs)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key, style in (("train_loss", "-o"), ("val_loss", "-s")):
        points = [(x + 1, epochs[x][key]) for x in xs if key in epochs[x]]
        if points:
            loss_ax.plot(*zip(*points), style, label=key)
    loss_ax.set_xlabel("epoch")
    loss_ax.legend()
    points = [(x + 1, 100 * epochs[x]["val_acc"]) for x in xs if "val_acc" in epochs[x]]
    if points:
        acc_ax.plot(*zip(*points), "-o", color="#55A868")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("validation accuracy (%)")
    fig.suptitle(title)
    return _save(fig, path)


def attention_heatmap(
    weights,
    row_tokens: Sequence[str],
    col_tokens: Sequence[str],
    path: str | Path,
    title: str = "",
    xlabel: str = "attended to (keys)",
    ylabel: str = "query",
    vmax: float | None = None,
) -> Path:
    """A (rows × cols) attention matrix: each row is one query's distribution over the keys.
    For a translation's alignment the rows are target tokens and the columns source tokens
    (`alignment_heatmap`)."""
    fig, ax = plt.subplots(figsize=(1.5 + 0.45 * len(col_tokens), 1.2 + 0.45 * len(row_tokens)))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=vmax)
    ax.set_xticks(range(len(col_tokens)), col_tokens, rotation=60, ha="right")
    ax.set_yticks(range(len(row_tokens)), row_tokens)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(title)
    return _save(fig, path)


def alignment_heatmap(
    weights, target_tokens: Sequence[str], source_tokens: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """A translation's alignment: (target × source) attention, each row one output token's
    weights over the source tokens (0 to 1). A long title is wrapped to the picture's width."""
    import textwrap

    width = max(30, int(6.5 * len(source_tokens)))
    title = "\n".join(textwrap.fill(line, width) for line in title.splitlines())
    return attention_heatmap(weights, target_tokens, source_tokens, path, title, xlabel="source", ylabel="output", vmax=1.0)


def translation_comparison(rows: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """BLEU by source length (one line per architecture: where a fixed context vector falls
    behind on long inputs), training time and decoding speed (batched beam search) side by side."""
    fig, (bleu_ax, time_ax, speed_ax) = plt.subplots(1, 3, figsize=(13, 3.8), gridspec_kw={"width_ratios": [2, 1, 1]})
    unit = rows[0]["by_length"][0]["unit"] if rows and rows[0]["by_length"] else "chars"
    for row in rows:
        buckets = row["by_length"]
        bleu_ax.plot(
            [f"{b['bucket']}\n({b['examples']:,})" for b in buckets], [b["bleu"] for b in buckets], "-o", label=row["arch"]
        )
    bleu_ax.set_xlabel(f"source length in {'words' if unit == 'words' else 'characters'} (test sources)")
    bleu_ax.set_ylabel("BLEU")
    bleu_ax.set_ylim(0, max([b["bleu"] for row in rows for b in row["by_length"]] + [1.0]) * 1.08)
    bleu_ax.grid(alpha=0.3)
    bleu_ax.legend(fontsize=8)
    names = [row["arch"] for row in rows]
    time_ax.bar(names, [row["train_seconds"] for row in rows], color="#DD8452")
    time_ax.set_ylabel("training time (s)")
    speed_ax.bar(names, [row["beam_sentences_per_second"] for row in rows], color="#4C72B0")
    speed_ax.set_ylabel("beam decoding (sentences/s)")
    for ax in (time_ax, speed_ax):
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(title)
    return _save(fig, path)


def _epoch_series(metrics_csv: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every logged column of a Lightning CSVLogger file as (epoch, value) points, one per epoch:
    a column logged per step is averaged over its epoch (so train and validation lines meet)."""
    sums: dict[str, dict[int, list[float]]] = {}
    with open(metrics_csv, encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for key, value in row.items():
                if key in ("epoch", "step") or value in (None, ""):
                    continue
                try:
                    sums.setdefault(key, {}).setdefault(epoch, []).append(float(value))
                except ValueError:
                    continue
    return {key: [(epoch + 1, sum(v) / len(v)) for epoch, v in sorted(points.items())] for key, points in sums.items()}


def run_curves(metrics_csv: str | Path, path: str | Path, title: str = "") -> Path:
    """Any run's learning curves from its logs/metrics.csv: the losses per epoch (left) and every
    other logged metric per epoch (right: accuracy, F1, BLEU, ...), whatever the task logged.

    Raises:
        SeqlabError: the file holds no per-epoch values to draw.
    """
    series = _epoch_series(metrics_csv)
    losses = {k: v for k, v in series.items() if "loss" in k}
    others = {k: v for k, v in series.items() if "loss" not in k and k not in ("lr", "lr-AdamW") and not k.startswith("lr")}
    if not losses and not others:
        raise SeqlabError(f"{metrics_csv} has no per-epoch values to draw")
    panels = [group for group in (losses, others) if group]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.4), squeeze=False)
    for ax, group, label in zip(axes[0], panels, ("loss" if losses else "value", "value")):
        for key, points in sorted(group.items()):
            ax.plot(*zip(*points), "-o", markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def grouped_bars(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    path: str | Path,
    title: str = "",
    ylabel: str = "",
    xlabel: str = "",
) -> Path:
    """One group of bars per category, one bar per series (e.g. precision/recall/F1 per entity
    type, or BLEU and exact match per source-length bucket), each bar labelled with its value."""
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(categories) * max(len(series), 1) * 0.6 + 2), 3.6))
    for number, (name, values) in enumerate(series.items()):
        xs = [x + (number - (len(series) - 1) / 2) * width for x in range(len(categories))]
        bars = ax.bar(xs, values, width, label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(categories)), categories, rotation=30 if len(categories) > 5 else 0)
    peak = max((value for values in series.values() for value in values), default=0.0)
    ax.set_ylim(0, max(peak * 1.15, 1.0))  # (all-zero scores still get a readable axis)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)
