"""`seqlab experiment pretraining` (course Q1, Q12, Q20): does pretraining help, and when?

BERT's recipe: first train an encoder on unlabelled text to fill in masked words (MLM), which
needs no labels, then fine-tune it with a classification head on the labelled task. The claim:
the pretrained encoder already knows words and how they combine, so it needs fewer labels.

Here, with the project's own pieces: a BERT-style encoder pretrained with masked-LM
(`seqlab.api.pretrain`, task `pretrain`) on the *training and validation texts* of the
rt-polarity split (labels ignored; no test sentence is seen), then the `transformer+mlm` recipe
of `seqlab compare classify` (the same encoder fine-tuned) against `transformer` (the same
architecture from random weights), across training-set sizes (`seqlab.api.compare` with
`train_sizes`: nested subsamples, the same test sentences for every run). `init=` takes a
pretrained run made elsewhere instead (e.g. pretrained longer, or on more text).
"""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

from seqlab import api
from seqlab.config import build_config
from seqlab.experiments import QUICK_VERDICT, ExperimentResult
from seqlab.plots import learning_curve_by_size
from seqlab.tasks.classify import recipe as classify

NAME = "pretraining"
ENTRIES = ("transformer", "transformer+mlm")


def settings(quick: bool) -> dict:
    """Pretraining and fine-tuning budgets; quick: the table's shape in seconds, no verdict."""
    if quick:
        return {
            "texts": 400,
            "pretrain": ["model.preset=tiny", "train.epochs=1", "tokenizer.vocab_size=500"],
            "sizes": "40,80",
            "seeds": 1,
            "min_epoch_examples": 0,
            "classify": ["model.preset=tiny", "train.epochs=1"],
        }
    return {
        "texts": None,
        "pretrain": ["model.preset=small", "train.epochs=6", "train.max_minutes=3"],
        "sizes": "100,500,2000",
        "seeds": 1,
        "min_epoch_examples": 1000,
        "classify": ["model.preset=small", "train.max_minutes=1.5"],
    }


def run(quick: bool, output: Path, init: Path | None = None, seed: int = 13) -> ExperimentResult:
    """Accuracy of the pretrained and the from-scratch Transformer at each training size;
    writes `pretraining_curve.png` and `compare.md` (the comparison's own table)."""
    s = settings(quick)
    base = {"data": {"train": "rt-polarity"}, "tokenizer": {"max_length": 64}, "train": {"seed": seed}}
    with tempfile.TemporaryDirectory(prefix="seqlab-pretraining-") as work:
        pretrained = {"run": str(init), "made": "given"} if init else _pretrain(base, s, Path(work), seed)
        overrides = [*s["classify"], f"transformer+mlm:model.init={pretrained['run']}"]
        rows, compared = api.compare(
            base,
            list(ENTRIES),
            overrides,
            output_dir=Path(work) / "compare",
            train_sizes=s["sizes"],
            seeds=s["seeds"],
            min_epoch_examples=s["min_epoch_examples"],
        )
        output.mkdir(parents=True, exist_ok=True)
        (output / "compare.md").write_text((compared / "table.md").read_text(encoding="utf-8"), encoding="utf-8")
    plot = learning_curve_by_size(
        rows,
        output / "pretraining_curve.png",
        "rt-polarity: MLM-pretrained encoder fine-tuned vs the same Transformer from scratch",
    )
    table = []
    for size in dict.fromkeys(r["train_size"] for r in rows):
        scratch, tuned = (next(r for r in rows if r["train_size"] == size and r["arch"] == e) for e in ENTRIES)
        table.append(
            [
                size,
                scratch["runs"],
                round(scratch["accuracy_mean"], 4),
                round(tuned["accuracy_mean"], 4),
                round(tuned["accuracy_mean"] - scratch["accuracy_mean"], 4),
                scratch["parameters"],
                tuned["parameters"],
            ]
        )
    return ExperimentResult(
        NAME,
        [
            "train examples",
            "runs",
            "from scratch",
            "MLM-pretrained, fine-tuned",
            "Δ (pretrained − scratch)",
            "parameters (scratch)",
            "parameters (pretrained)",
        ],
        table,
        verdict=verdict(table, pretrained, quick),
        plots=[plot],
        settings={**s, "seed": seed, "pretrained": pretrained, "summary": rows},
    )


def _pretrain(base: dict, s: dict, work: Path, seed: int) -> dict:
    """Masked-LM pretraining on the split's training and validation texts (never the test
    split's) → {"run", "mlm_accuracy", "epochs", "texts"}."""
    cfg = build_config({"task": "classify", **base}, ["model.arch=transformer"])
    splits = classify.load_splits(cfg)
    texts = [ex.text for ex in splits.train + splits.valid][: s["texts"]]
    corpus = work / "texts.csv"
    with open(corpus, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text"])
        writer.writerows([t] for t in texts)
    mlm = build_config(
        {"task": "pretrain"},
        [
            f"data.train={corpus}",
            f"output_dir={work}",
            "name=mlm",
            f"train.seed={seed}",
            "tokenizer.max_length=64",
            *s["pretrain"],
        ],
    )
    run_dir = api.pretrain(mlm, progress="off")
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    held = metrics.get("test") or metrics.get("valid") or {}
    return {
        "run": str(run_dir),
        "made": "pretrained here (a temporary folder, removed afterwards)",
        "texts": len(texts),
        "epochs": metrics["epochs"],
        "mlm_accuracy": held.get("mlm_accuracy"),
    }


def verdict(rows: list[list], pretrained: dict, quick: bool, noise: float = 0.02) -> str:
    """Does pretraining help where labels are few, and does the help shrink with more? A gap
    under `noise` (2 points: the spread between seeds of these small models) counts as none."""
    if quick:
        return QUICK_VERDICT
    gains = {r[0]: r[4] for r in rows}
    smallest = min(gains)
    text = ", ".join(f"{n:,}: {100 * g:+.1f}" for n, g in gains.items())
    mlm = pretrained.get("mlm_accuracy")
    scale = (
        f" (MLM accuracy {100 * mlm:.1f}% after {pretrained['epochs']} epochs on {pretrained['texts']:,} sentences)"
        if mlm
        else ""
    )
    if gains[smallest] >= noise and all(g > -noise for g in gains.values()):
        return f"confirmed: pretraining helps, most with the fewest labels; points gained by training size {text}{scale}"
    if gains[smallest] >= noise:
        return f"confirmed, but only with the fewest labels; points gained by training size {text}{scale}"
    return (
        f"not seen at this scale: points gained by training size {text}{scale}; a few CPU minutes of MLM on "
        f"under 10k sentences teach the encoder too little to beat random weights (see issue 3's MiniLM curve for "
        f"what a well-pretrained encoder gives)"
    )
