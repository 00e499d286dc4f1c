"""`seqlab experiment bidirectional` (course Q1, Q5, Q18): what reading both directions buys.

Task (`synthetic.next_word_tags`): tag every word with the group of the word *after* it. A
bidirectional encoder (BERT-style) sees the next word; a left-to-right model (GPT-style) has not
read it yet when it tags the current one, so its best is chance, 1 / groups.

Both models are seqlab's `TransformerTagger`, identical but for the attention mask (`causal`):
the same parameters, the same training. The table gives accuracy on every word and on all but the
last word (whose tag, "end", the causal model can infer from its position); the plot gives
accuracy by position.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from seqlab.experiments import QUICK_VERDICT, ExperimentResult
from seqlab.experiments.synthetic import all_real, count_parameters, next_word_tags, predict, train_synthetic
from seqlab.models.tagger import TransformerTagger

NAME = "bidirectional"
GROUPS = 4
VOCAB = 17
MODELS = {"bidirectional encoder": False, "causal (left-to-right)": True}


def settings(quick: bool) -> dict:
    if quick:
        return {"length": 10, "train": 512, "test": 256, "steps": 40, "batch_size": 32, "d_model": 16, "lr": 3e-3}
    return {"length": 16, "train": 4000, "test": 1000, "steps": 600, "batch_size": 32, "d_model": 32, "lr": 2e-3}


def build(causal: bool, d_model: int, length: int) -> TransformerTagger:
    return TransformerTagger(
        VOCAB,
        GROUPS + 1,
        d_model=d_model,
        num_heads=4,
        num_layers=2,
        ff_dim=2 * d_model,
        dropout=0.0,
        max_len=length,
        causal=causal,
    )


def _forward(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    words = torch.arange(ids.size(1)).expand_as(ids)  # one token per word
    return model(ids, all_real(ids), words).logits  # (B, T, K)


def run(quick: bool, output: Path, seed: int = 0) -> ExperimentResult:
    """Tagging accuracy of the bidirectional and the causal encoder; writes `accuracy_by_position.png`."""
    s = settings(quick)
    train_ids, train_tags = next_word_tags(s["train"], s["length"], GROUPS, VOCAB, seed=seed)
    test_ids, test_tags = next_word_tags(s["test"], s["length"], GROUPS, VOCAB, seed=seed + 1000)
    rows, by_position = [], {}
    for name, causal in MODELS.items():
        torch.manual_seed(seed)
        model = build(causal, s["d_model"], s["length"])
        loss = train_synthetic(model, _forward, train_ids, train_tags, s["steps"], s["batch_size"], s["lr"], seed)
        correct = (predict(model, _forward, test_ids) == test_tags).float()  # (N, T)
        by_position[name] = correct.mean(0)
        rows.append(
            [
                name,
                "both sides" if not causal else "left only",
                count_parameters(model),
                round(loss, 4),
                round(float(correct.mean()), 4),
                round(float(correct[:, :-1].mean()), 4),
            ]
        )
    plot = _plot(by_position, output / "accuracy_by_position.png")
    return ExperimentResult(
        NAME,
        ["model", "context", "parameters", "final train loss", "accuracy (all words)", "accuracy (all but last)"],
        rows,
        verdict=verdict(rows, quick),
        plots=[plot],
        settings={**s, "groups": GROUPS, "vocab": VOCAB, "seed": seed, "chance (all but last)": 1 / GROUPS},
    )


def verdict(rows: list[list], quick: bool) -> str:
    if quick:
        return QUICK_VERDICT
    bi, causal = rows[0][5], rows[1][5]
    summary = f"accuracy on words with a right neighbour: bidirectional {bi:.2f}, causal {causal:.2f} (chance {1 / GROUPS:.2f})"
    if bi >= causal + 0.2:
        return f"confirmed: {summary}"
    return f"not seen at this scale: {summary}"


def _plot(by_position: dict[str, torch.Tensor], path: Path) -> Path:
    from seqlab.plots import _save, plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, acc in by_position.items():
        ax.plot(range(len(acc)), acc.numpy(), marker="o", label=name)
    ax.axhline(1 / GROUPS, color="grey", linestyle=":", label="chance")
    ax.set_xlabel("position in the row (the last word's tag is 'end')")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_title("Tag = group of the next word")
    ax.legend()
    return _save(fig, path)
