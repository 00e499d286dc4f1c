"""`seqlab experiment positions` (course Q15): self-attention needs position encodings to see order.

Task (`synthetic.which_first`): does marker A come before marker B among filler tokens? Rows of
both classes hold the same kinds of tokens; only the order differs. Without positions a
bidirectional encoder sees a bag of vectors (attention and mean pooling are permutation
invariant), so it cannot beat chance; sinusoidal (Vaswani et al., 2017) and learned (BERT, GPT-2)
encodings let it.

The same `TransformerClassifier` (mean pooling) trains with `positional` = none, sinusoidal and
learned. The plot shows the sinusoidal table, the learned table after training, the sinusoids'
dot products PE(i)·PE(j), and the cosine similarity of two positions against their distance.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from seqlab.experiments import QUICK_VERDICT, ExperimentResult
from seqlab.experiments.synthetic import accuracy, all_real, count_parameters, train_synthetic, which_first
from seqlab.models.transformer import SinusoidalPositions, TransformerClassifier

NAME = "positions"
ENCODINGS = ("none", "sinusoidal", "learned")
VOCAB = 16


def settings(quick: bool) -> dict:
    if quick:
        return {"length": 12, "train": 512, "test": 256, "steps": 40, "batch_size": 32, "d_model": 16, "lr": 3e-3}
    return {"length": 24, "train": 4000, "test": 1000, "steps": 800, "batch_size": 32, "d_model": 32, "lr": 2e-3}


def build(positional: str, d_model: int, length: int) -> TransformerClassifier:
    return TransformerClassifier(
        VOCAB,
        2,
        d_model=d_model,
        num_heads=4,
        num_layers=2,
        ff_dim=2 * d_model,
        dropout=0.0,
        positional=positional,
        max_len=length,
        pooling="mean",
    )


def _forward(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(ids, all_real(ids)).logits  # (B, 2)


def run(quick: bool, output: Path, seed: int = 0) -> ExperimentResult:
    """Accuracy per encoding; writes `positions.png` (encodings and similarity by distance)."""
    s = settings(quick)
    train_ids, train_labels = which_first(s["train"], s["length"], VOCAB, seed=seed)
    test_ids, test_labels = which_first(s["test"], s["length"], VOCAB, seed=seed + 1000)
    # the same rows with the order reversed: labels flip, so an order-blind model cannot be right on both
    reversed_ids = test_ids.flip(1)
    rows, learned = [], None
    for positional in ENCODINGS:
        torch.manual_seed(seed)
        model = build(positional, s["d_model"], s["length"])
        loss = train_synthetic(model, _forward, train_ids, train_labels, s["steps"], s["batch_size"], s["lr"], seed)
        same = (_predict(model, test_ids) == _predict(model, reversed_ids)).float().mean()
        rows.append(
            [
                positional,
                count_parameters(model),
                round(loss, 4),
                round(accuracy(model, _forward, test_ids, test_labels), 4),
                round(float(same), 4),
            ]
        )
        if positional == "learned":
            learned = model.encoder.positions(s["length"]).detach()  # (L, d)
    sinusoidal = SinusoidalPositions(s["d_model"], s["length"])(s["length"])  # (L, d)
    plot = _plot(sinusoidal, learned, output / "positions.png")
    return ExperimentResult(
        NAME,
        ["positional encoding", "parameters", "final train loss", "test accuracy", "same answer on reversed row"],
        rows,
        verdict=verdict(rows, quick),
        plots=[plot],
        settings={**s, "vocab": VOCAB, "seed": seed, "chance": 0.5},
    )


@torch.no_grad()
def _predict(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    model.eval()
    return _forward(model, ids).argmax(-1)


def similarity_by_distance(table: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity of positions i and i + Δ over every i: (L, d) → (L,) indexed by Δ."""
    unit = F.normalize(table, dim=-1)
    sim = unit @ unit.T  # (L, L)
    return torch.stack([sim.diagonal(delta).mean() for delta in range(table.size(0))])


def verdict(rows: list[list], quick: bool) -> str:
    if quick:
        return QUICK_VERDICT
    acc = {r[0]: r[3] for r in rows}
    summary = ", ".join(f"{e} {acc[e]:.2f}" for e in ENCODINGS)
    if acc["none"] <= 0.6 and min(acc["sinusoidal"], acc["learned"]) >= 0.9:
        return f"confirmed: without positions the encoder is at chance; accuracy {summary}"
    if acc["none"] <= 0.6 and max(acc["sinusoidal"], acc["learned"]) >= 0.9:
        return f"confirmed, but only one encoding learned the task at this budget: {summary}"
    return f"not seen at this scale: accuracy {summary}"


def _plot(sinusoidal: torch.Tensor, learned: torch.Tensor | None, path: Path) -> Path:
    from seqlab.plots import _save, plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for ax, table, title in ((axes[0], sinusoidal, "sinusoidal PE (fixed)"), (axes[1], learned, "learned PE (after training)")):
        if table is not None:
            image = ax.imshow(table.numpy(), aspect="auto", cmap="RdBu_r")
            fig.colorbar(image, ax=ax)
        ax.set_title(title)
        ax.set_xlabel("dimension")
        ax.set_ylabel("position")
    image = axes[2].imshow((sinusoidal @ sinusoidal.T).numpy(), cmap="viridis")
    fig.colorbar(image, ax=axes[2])
    axes[2].set_title("sinusoidal: PE(i) · PE(j)")
    axes[2].set_xlabel("position j")
    axes[2].set_ylabel("position i")
    for table, label in ((sinusoidal, "sinusoidal"), (learned, "learned")):
        if table is not None:
            axes[3].plot(similarity_by_distance(table).numpy(), marker=".", label=label)
    axes[3].set_title("similarity by distance")
    axes[3].set_xlabel("distance |i - j|")
    axes[3].set_ylabel("mean cosine similarity")
    axes[3].legend()
    return _save(fig, path)
