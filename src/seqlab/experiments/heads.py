"""`seqlab experiment heads` (course Q7, Q9, Q16): what do the heads of multi-head attention do?

Each head of a Transformer layer has its own query, key and value projections, so it can learn
its own notion of "which other words matter here". This experiment looks at a Transformer
classifier trained on real sentences (rt-polarity, through `seqlab.api.train`, or a finished
run given with `run=`), in two ways:

- **Maps**: every head's (T × T) attention weights on a few test sentences
  (`ClassifierPipeline.attention`), one panel per (layer, head), and per-head statistics over
  the test sentences: normalised entropy (1 = spread evenly, 0 = on one token), mean distance
  attended, and the weight on the token itself, its left and right neighbours and the first
  token.
- **Ablation** (Michel et al., 2019): test accuracy with one head removed at a time (its output
  multiplied by 0 before the heads are mixed: `MultiHeadAttention.head_mask`), against the
  full model. A head whose removal costs nothing was redundant for this task.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import torch

from seqlab import api
from seqlab.config import build_config
from seqlab.errors import SeqlabError
from seqlab.experiments import ExperimentResult
from seqlab.tasks.classify import recipe as classify
from seqlab.tasks.classify.pipeline import ClassifierPipeline

NAME = "heads"
PATTERNS = ("self", "previous", "next", "first")  # where a head's weight can concentrate


def settings(quick: bool) -> dict:
    """The model trained when no run is given; quick: the table's shape in seconds, no verdict."""
    if quick:
        return {
            "overrides": [
                "model.d_model=32",
                "model.num_heads=4",
                "model.num_layers=1",
                "model.ff_dim=64",
                "data.limit=400",
                "train.epochs=1",
                "tokenizer.max_length=48",
            ],
            "test": 150,
            "maps": 1,
        }
    return {
        "overrides": [
            "model.preset=small",
            "model.num_heads=4",
            "model.num_layers=2",
            "train.epochs=4",
            "train.max_minutes=4",
            "tokenizer.max_length=64",
        ],
        "test": None,
        "maps": 2,
    }


def run(quick: bool, output: Path, run_dir: Path | None = None, seed: int = 13) -> ExperimentResult:
    """Per-head attention maps, statistics and ablation; writes `heads_attention*.png`,
    `heads_ablation.png`."""
    s = settings(quick)
    given = str(run_dir) if run_dir is not None else "trained here"
    with tempfile.TemporaryDirectory(prefix="seqlab-heads-") as work:
        if run_dir is None:
            cfg = build_config(
                {"task": "classify"},
                [
                    "model.arch=transformer",
                    "data.train=rt-polarity",
                    f"train.seed={seed}",
                    f"output_dir={work}",
                    "name=heads",
                    *s["overrides"],
                ],
            )
            run_dir = api.train(cfg, progress="off")
        pipe = api.load_classifier(run_dir, backend="torch")
        if pipe.config.model.arch != "transformer":
            raise SeqlabError(f"run {run_dir} is a {pipe.config.model.arch} model; the heads experiment needs a transformer run")
        test = classify.load_splits(pipe.config).test[: s["test"]]
        if not test:
            raise SeqlabError(f"run {run_dir}'s data has no test split; the ablation needs one")
        plots = [
            _plot_maps(pipe, ex.text, output / f"heads_attention{i + 1}.png") for i, ex in enumerate(_readable(test, s["maps"]))
        ]
        stats = head_statistics(pipe, [ex.text for ex in test])
        full, ablated = ablate(pipe, test)
    rows = [
        [
            layer,
            head,
            round(st["entropy"], 3),
            round(st["distance"], 2),
            *(round(st[p], 3) for p in PATTERNS),
            _role(st),
            round(ablated[layer, head], 4),
            round(ablated[layer, head] - full, 4),
            st["words"],
        ]
        for (layer, head), st in stats.items()
    ]
    plots.append(_plot_ablation(rows, full, output / "heads_ablation.png"))
    columns = [
        "layer",
        "head",
        "entropy (norm.)",
        "mean distance",
        *(f"weight on {p}" for p in PATTERNS),
        "pattern",
        "accuracy without head",
        "Δ accuracy",
        "most attended (× uniform share)",
    ]
    return ExperimentResult(
        NAME,
        columns,
        rows,
        verdict=verdict(rows, full, quick),
        plots=plots,
        settings={
            **s,
            "run": given,
            "seed": seed,
            "full_accuracy": full,
            "test_sentences": len(test),
            "model": pipe.config.model.model_dump(),
        },
    )


def _readable(examples: list, count: int) -> list:
    """Short sentences (8-14 words) first: a map of 60 tokens is unreadable."""
    fitting = [ex for ex in examples if 8 <= len(ex.text.split()) <= 14]
    return (fitting or examples)[:count]


def head_statistics(
    pipe: ClassifierPipeline, texts: list[str], min_count: int = 10
) -> dict[tuple[int, int], dict[str, float | str]]:
    """Per (layer, head), averaged over the queries of every text with at least two tokens:
    normalised entropy, mean |query − key| distance, the weight on the query itself, the token
    before, the token after and the first position; and "words", the three tokens (seen at
    least `min_count` times) that the head attends to most, as a multiple of the uniform share
    1/T (what a head attends to by *content* rather than by position)."""
    sums: dict[tuple[int, int], dict[str, float]] = {}
    received: dict[tuple[int, int], dict[str, list[float]]] = {}  # token → [summed lift, occurrences]
    count = 0
    for text in texts:
        tokens, layers = pipe.attention(text)  # per layer (H, T, T)
        length = layers[0].size(-1)
        if length < 2:
            continue
        count += 1
        positions = torch.arange(length)
        distance = (positions[:, None] - positions[None, :]).abs().float()  # (T, T)
        for layer, weights in enumerate(layers):
            entropy = -(weights * weights.clamp_min(1e-12).log()).sum(-1) / math.log(length)  # (H, T)
            per = {
                "entropy": entropy.mean(-1),
                "distance": (weights * distance).sum(-1).mean(-1),
                "self": weights.diagonal(dim1=-2, dim2=-1).mean(-1),
                "previous": weights.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1) / length,  # the first query has none
                "next": weights.diagonal(offset=1, dim1=-2, dim2=-1).sum(-1) / length,
                "first": weights[..., 0].mean(-1),
            }
            lift = weights.mean(-2) * length  # (H, T): weight each key receives, 1 = the uniform share
            for head in range(weights.size(0)):
                slot = sums.setdefault((layer, head), dict.fromkeys(per, 0.0))
                for key, values in per.items():
                    slot[key] += float(values[head])
                words = received.setdefault((layer, head), {})
                for token, value in zip(tokens, lift[head].tolist()):
                    entry = words.setdefault(token, [0.0, 0])
                    entry[0] += value
                    entry[1] += 1
    if not count:
        raise SeqlabError("no test sentence has two tokens or more; nothing to measure attention on")
    result: dict[tuple[int, int], dict[str, float | str]] = {}
    for key, slot in sums.items():
        frequent = {t: v[0] / v[1] for t, v in received[key].items() if v[1] >= min_count}
        top = sorted(frequent, key=frequent.get, reverse=True)[:3]
        result[key] = {
            **{name: value / count for name, value in slot.items()},
            "words": ", ".join(f"{t} ×{frequent[t]:.1f}" for t in top),
        }
    return result


def _role(stats: dict[str, float]) -> str:
    """The pattern holding the most weight, if it holds over 40% of it; else the spread."""
    pattern = max(PATTERNS, key=lambda p: stats[p])
    if stats[pattern] > 0.4:
        return f"{pattern} token"
    return "broad" if stats["entropy"] > 0.7 else "content-dependent"


def ablate(pipe: ClassifierPipeline, examples: list) -> tuple[float, dict[tuple[int, int], float]]:
    """(test accuracy of the full model, accuracy with each (layer, head) removed in turn)."""
    cfg = pipe.config

    def accuracy() -> float:
        with torch.inference_mode():
            return classify.evaluate_examples(
                pipe.model, pipe.tokenizer, pipe.labels, examples, cfg.tokenizer.max_length, pipe.sigmoid
            )["accuracy"]

    full = accuracy()
    result = {}
    for layer, block in enumerate(pipe.model.encoder.layers):
        attention = block.attention
        for head in range(attention.num_heads):
            attention.head_mask = torch.ones(attention.num_heads)
            attention.head_mask[head] = 0.0
            try:
                result[layer, head] = accuracy()
            finally:
                attention.head_mask = None
    return full, result


def verdict(rows: list[list], full: float, quick: bool) -> str:
    """What the measured heads show: positional or content patterns, and how much each head matters."""
    if quick:
        return "quick run: the table's shape only, too small a model and budget for a verdict"
    positional = sorted({r[8] for r in rows if r[8].endswith("token")})
    favourites = {r[11].split(" ×")[0] for r in rows if r[11]}  # each head's most attended word
    worst = min(rows, key=lambda r: r[10])
    harmless = sum(abs(r[10]) < 0.005 for r in rows)
    cost = (
        f"removing one head costs at most {max(0.0, -100 * worst[10]):.1f} points (layer {worst[0]} head {worst[1]}; "
        f"all heads {100 * full:.1f}%), and {harmless} of {len(rows)} heads cost < 0.5 point"
    )
    if positional:
        return f"confirmed: some heads attend by position ({', '.join(positional)}), others by content; {cost}"
    if len(favourites) > 1:
        examples = "; ".join(f"layer {r[0]} head {r[1]}: {r[11]}" for r in rows[:2])
        return (
            f"confirmed, but the heads differ by content, not by position ({len(favourites)} different most-attended "
            f"words among {len(rows)} heads, e.g. {examples}), and they are largely redundant: {cost}"
        )
    return f"not seen at this scale: every head attends alike; {cost}"


def _plot_maps(pipe: ClassifierPipeline, text: str, path: Path) -> Path:
    """One panel per (layer, head): the head's (T × T) weights on `text`."""
    from seqlab.plots import _save, plt

    tokens, layers = pipe.attention(text)
    heads = layers[0].size(0)
    size = 0.22 * len(tokens) + 1.2
    fig, axes = plt.subplots(len(layers), heads, figsize=(size * heads, size * len(layers)), squeeze=False)
    for layer, weights in enumerate(layers):
        for head in range(heads):
            ax = axes[layer][head]
            ax.imshow(weights[head], cmap="viridis", vmin=0.0)  # colour scale per panel: broad heads are faint at 0-1
            ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
            ax.set_yticks(range(len(tokens)), tokens if head == 0 else [], fontsize=7)
            ax.set_title(f"layer {layer} · head {head}", fontsize=9)
    fig.suptitle(f"attention per head (rows: queries, columns: keys; colour scale per panel)\n{text}", fontsize=10)
    return _save(fig, path)


def _plot_ablation(rows: list[list], full: float, path: Path) -> Path:
    from seqlab.plots import _save, plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(rows) + 2), 3.6))
    names = [f"L{r[0]}H{r[1]}" for r in rows]
    ax.bar(names, [100 * r[9] for r in rows], color="#4C72B0", label="one head removed")
    ax.axhline(100 * full, color="#DD8452", linestyle="--", label=f"all heads ({100 * full:.1f}%)")
    values = [100 * r[9] for r in rows] + [100 * full]
    ax.set_ylim(max(0.0, min(values) - 5), min(100.0, max(values) + 3))
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Head ablation: accuracy with one head's output zeroed")
    ax.legend(fontsize=8)
    return _save(fig, path)
