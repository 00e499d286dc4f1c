"""`seqlab experiment augmentation`: does augmenting a small training set help a classifier?

For every training-set size, method, architecture and seed: take the first `size` examples of a
seeded shuffle of the training split (`tasks.compare.subsample`, so smaller sets nest inside
larger ones), add `n` variants of each (`seqlab.tasks.augment.pipeline`; method "none" adds nothing), train the
classifier with the comparison's own recipe (`tasks.compare.run_one`: early stopping on the
untouched validation split, at least `min_epoch_examples` examples per epoch, so every cell gets
the same number of optimiser steps) and score it on the untouched test split. The table gives
test accuracy mean ± std over seeds per cell and the change against "none"; the plot draws
accuracy against training-set size, one line per method and architecture.

Back-translation needs a text → pivot and a pivot → text translation model, and contextual
substitution a masked LM: pass them with `method_options` (`--forward/--backward`, `--mlm`);
without them those methods are refused with one line, never silently replaced.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from pathlib import Path

from seqlab.data.readers import Example
from seqlab.errors import SeqlabError
from seqlab.experiments import QUICK_VERDICT, ExperimentResult

log = logging.getLogger("seqlab")

NAME = "augmentation"
METHODS = ("none", "synonym", "eda", "backtranslate", "contextual")


def settings(quick: bool) -> dict:
    """The budget: a smoke run (seconds) or the issue's full grid (hours of CPU)."""
    if quick:
        return {
            "train_sizes": [40],
            "methods": ["none", "eda"],
            "archs": ["cnn"],
            "seeds": 1,
            "n": 2,
            "overrides": ["model.preset=tiny", "train.epochs=1", "train.batch_size=32"],
            "min_epoch_examples": 0,
            "test_limit": 200,
        }
    return {
        "train_sizes": [100, 500, 1000],
        "methods": list(METHODS),
        "archs": ["cnn", "bilstm"],
        "seeds": 5,
        "n": 4,
        "overrides": [],
        "min_epoch_examples": 2000,
        "test_limit": None,
    }


def run(
    quick: bool,
    output: Path,
    data: str = "rt-polarity",
    train_sizes: Sequence[int] | None = None,
    methods: Sequence[str] | None = None,
    archs: Sequence[str] | None = None,
    seeds: int | None = None,
    n: int | None = None,
    overrides: Sequence[str] = (),
    method_options: dict[str, dict] | None = None,
) -> ExperimentResult:
    """Accuracy per (size, method, arch) over seeds; writes `augmentation.png`, `runs.jsonl`.

    Args:
        quick: Tiny models and data (a smoke run); the other arguments override its settings.
        data: Built-in dataset or labelled file (split 80/10/10 by `data.split_seed`).
        method_options: Options per method, e.g. {"contextual": {"model": RUN}}.
    """
    from seqlab.tasks.classify import compare as comparison
    from seqlab.tasks.classify import recipe as classify

    s = settings(quick)
    sizes = list(train_sizes or s["train_sizes"])
    methods = list(methods or s["methods"])
    archs = list(archs or s["archs"])
    seeds = seeds or s["seeds"]
    n = n or s["n"]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise SeqlabError(f"unknown method {unknown[0] if unknown else ''!r}; choose from {', '.join(METHODS)}")
    if seeds < 1 or any(size < 2 for size in sizes):
        raise SeqlabError("--seeds must be ≥ 1 and every --train-sizes value ≥ 2")
    options = _method_options(methods, method_options or {})
    extra = [*s["overrides"], *overrides]
    configs = {
        arch: comparison.arch_config({"data": {"train": data}}, arch, extra) for arch in comparison.parse_archs(",".join(archs))
    }
    splits = classify.load_splits(next(iter(configs.values())))
    test = splits.test[: s["test_limit"]] if s["test_limit"] else splits.test
    output.mkdir(parents=True, exist_ok=True)
    (output / "runs.jsonl").unlink(missing_ok=True)  # this run's records only
    results = []
    for size in sizes:
        for repeat in range(seeds):
            train = comparison.subsample(splits.train, size, splits_seed(configs, repeat))
            for method in methods:
                augmented = augment_examples(train, method, n, repeat, options.get(method, {}))
                for arch, cfg in configs.items():
                    seeded = cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": cfg.train.seed + repeat})})
                    r = comparison.run_one(seeded, arch, str(size), augmented, splits.valid, test, 0, s["min_epoch_examples"])
                    results.append(
                        {
                            "size": size,
                            "method": method,
                            "arch": arch,
                            "seed": repeat,
                            "examples": len(augmented),
                            "accuracy": r.accuracy,
                            "macro_f1": r.macro_f1,
                            "train_seconds": r.train_seconds,
                            "epochs": r.epochs,
                        }
                    )
                    log.info(
                        "augmentation %s, %s, %d (+%d) examples, seed %d: accuracy %.4f",
                        method,
                        arch,
                        size,
                        len(augmented) - len(train),
                        repeat,
                        r.accuracy,
                    )
                    _append(output / "runs.jsonl", results[-1])
    rows = summarise(results)
    plot = _plot(rows, output / "augmentation.png", data)
    return ExperimentResult(
        NAME,
        COLUMNS,
        rows,
        verdict=verdict(rows, quick),
        plots=[plot],
        settings={
            "data": data,
            "train_sizes": sizes,
            "methods": methods,
            "archs": archs,
            "seeds": seeds,
            "n": n,
            "overrides": extra,
            "min_epoch_examples": s["min_epoch_examples"],
            "test_examples": len(test),
            "valid_examples": len(splits.valid),
            "method_options": {k: {o: str(v) for o, v in d.items()} for k, d in options.items()},
        },
    )


def splits_seed(configs: dict, repeat: int) -> int:
    """The subsample seed of repeat `repeat`: the same for every method and arch, so they compete on equal data."""
    cfg = next(iter(configs.values()))
    return cfg.data.split_seed + 1 + 1000 * repeat


def _method_options(methods: list[str], given: dict[str, dict]) -> dict[str, dict]:
    """Fail before training when a model-based method has no model to run."""
    bt = set(given.get("backtranslate", {}))
    if "backtranslate" in methods and not ({"forward", "backward"} <= bt or "via" in bt):
        raise SeqlabError(
            "method backtranslate needs --forward RUN (English → pivot) and --backward RUN (pivot → English), "
            "or --via RUN_EN_FR,RUN_FR_EN; seqlab ships no English translation model, so train two on "
            "tatoeba-en-fr and tatoeba-fr-en or bring them, or leave the method out"
        )
    if "contextual" in methods and "model" not in given.get("contextual", {}):
        raise SeqlabError(
            "method contextual needs --mlm RUN (a `seqlab pretrain mlm` run or an HF masked-LM folder), or leave it out"
        )
    return {m: dict(given.get(m, {})) for m in methods if m != "none"}


def augment_examples(train: list[Example], method: str, n: int, seed: int, options: dict) -> list[Example]:
    """The training examples followed by up to `n` distinct new variants of each, labels kept."""
    if method == "none":
        return list(train)
    from seqlab.tasks.augment.pipeline import augment

    variants = augment([ex.text for ex in train], method, n, seed, **options)
    extra = [Example(text, ex.label) for ex, texts in zip(train, variants) for text in dict.fromkeys(texts) if text != ex.text]
    return list(train) + extra


COLUMNS = [
    "train size",
    "method",
    "arch",
    "examples after augmentation",
    "runs",
    "accuracy mean",
    "accuracy std",
    "Δ vs none (paired mean)",
    "Δ std",
    "seeds better",
]


def summarise(results: list[dict]) -> list[list]:
    """One row per (size, method, arch): accuracy mean and std over seeds, and the paired change
    against "none" (same seed, same subsample): its mean, std and on how many seeds it was > 0."""
    rows = []
    accuracy = {(r["size"], r["method"], r["arch"], r["seed"]): r["accuracy"] for r in results}
    for key in dict.fromkeys((r["size"], r["method"], r["arch"]) for r in results):
        mine = [r for r in results if (r["size"], r["method"], r["arch"]) == key]
        acc = [r["accuracy"] for r in mine]
        deltas = [
            r["accuracy"] - accuracy[(key[0], "none", key[2], r["seed"])]
            for r in mine
            if key[1] != "none" and (key[0], "none", key[2], r["seed"]) in accuracy
        ]
        paired = (
            [
                round(statistics.fmean(deltas), 4),
                round(statistics.stdev(deltas), 4) if len(deltas) > 1 else 0.0,
                f"{sum(d > 0 for d in deltas)}/{len(deltas)}",
            ]
            if deltas
            else ["", "", ""]
        )
        rows.append(
            [
                key[0],
                key[1],
                key[2],
                round(statistics.fmean(r["examples"] for r in mine)),
                len(mine),
                round(statistics.fmean(acc), 4),
                round(statistics.stdev(acc), 4) if len(acc) > 1 else 0.0,
                *paired,
            ]
        )
    return rows


def verdict(rows: list[list], quick: bool) -> str:
    """Per cell: helps (better on every seed), hurts (worse on every seed) or mixed."""
    if quick:
        return QUICK_VERDICT
    lines = []
    for size, method, arch, _, _runs, _, _, delta, delta_std, better in rows:
        if delta == "":
            continue
        wins, total = map(int, better.split("/"))
        word = "helps" if wins == total else "hurts" if wins == 0 else "mixed"
        lines.append(
            f"{method} on {arch} at {size}: {100 * delta:+.2f} ± {100 * delta_std:.2f} points, better on {better} seeds ({word})"
        )
    return "\n".join(lines)


def _append(path: Path, record: dict) -> None:
    import json

    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _plot(rows: list[list], path: Path, data: str) -> Path:
    from seqlab.plots import _save, plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for method, arch in dict.fromkeys((r[1], r[2]) for r in rows):
        mine = sorted((r for r in rows if (r[1], r[2]) == (method, arch)), key=lambda r: r[0])
        ax.errorbar(
            [r[0] for r in mine],
            [r[5] for r in mine],
            yerr=[r[6] for r in mine],
            marker="o",
            capsize=3,
            label=f"{method} ({arch})",
            linestyle="--" if method == "none" else "-",
        )
    ax.set_xscale("log")
    ax.set_xlabel("training examples before augmentation")
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.set_title(f"Augmentation on {data}")
    ax.legend(fontsize=8)
    return _save(fig, path)
