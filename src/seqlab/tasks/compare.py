"""Side-by-side comparison of classifier architectures on one dataset.

With `cv=k` every architecture is trained k times, each time holding out one of k folds for
testing (the protocol of Kim, 2014, on MR), with a slice of the remaining data for early
stopping. Without it, each architecture is trained once on the configured train/valid/test split.
"""

from __future__ import annotations

import logging
import random
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from seqlab.config import ARCHS, RunConfig, build_config
from seqlab.data.datasets import load_examples
from seqlab.data.readers import Example
from seqlab.errors import SeqlabError
from seqlab.tasks import classify

log = logging.getLogger("seqlab")


@dataclass
class FoldResult:
    arch: str
    fold: int
    accuracy: float
    macro_f1: float
    parameters: int
    train_seconds: float
    epochs: int
    sentences_per_second: float


def arch_config(base: dict, arch: str, overrides: list[str]) -> RunConfig:
    """The base config with `model.arch=arch`; an override written `ARCH:key=value` applies to
    that architecture only (sizes differ between families)."""
    mine = [o.split(":", 1)[1] for o in overrides if ":" in o.split("=", 1)[0] and o.split(":", 1)[0] == arch]
    shared = [o for o in overrides if ":" not in o.split("=", 1)[0]]
    model = {k: v for k, v in base.get("model", {}).items() if k in ("preset", "head")}
    return build_config({**base, "model": {**model, "arch": arch}}, [*shared, *mine])


def parse_archs(text: str) -> list[str]:
    archs = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in archs if a not in ARCHS]
    if unknown or not archs:
        raise SeqlabError(f"unknown architecture {unknown[0] if unknown else text!r}; choose from {', '.join(ARCHS)}")
    return archs


def folds_of(examples: list[Example], k: int, seed: int) -> list[list[Example]]:
    """k disjoint folds of a seeded shuffle; sizes differ by at most one."""
    if not 2 <= k <= len(examples):
        raise SeqlabError(f"--cv {k} needs 2 ≤ k ≤ the number of examples ({len(examples)})")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [[examples[i] for i in order[fold::k]] for fold in range(k)]


def run_one(cfg: RunConfig, train: list[Example], valid: list[Example], test: list[Example], fold: int) -> FoldResult:
    with tempfile.TemporaryDirectory(prefix="seqlab-compare-") as work:
        fitted = classify.fit_classifier(cfg, train, valid, Path(work), progress="off", loggers=False)
    metrics = classify.evaluate_examples(
        fitted.model, fitted.tokenizer, fitted.labels, test, cfg.tokenizer.max_length, cfg.model.head == "sigmoid"
    )
    return FoldResult(
        cfg.model.arch, fold, metrics["accuracy"], metrics["macro_f1"], classify.count_parameters(fitted.model),
        fitted.result.seconds, fitted.result.epochs, metrics["sentences_per_second"],
    )


def compare(base: dict, archs: list[str], overrides: list[str], cv: int | None = None) -> list[FoldResult]:
    """Train and test every architecture; returns one result per (architecture, fold)."""
    configs = {arch: arch_config(base, arch, overrides) for arch in archs}  # all config errors first
    first = configs[archs[0]]
    results: list[FoldResult] = []
    if cv:
        data = first.data
        examples = load_examples(data.train, text_column=data.text_column, label_column=data.label_column, max_chars=data.max_chars)
        folds = folds_of(examples, cv, data.split_seed)
        for arch, cfg in configs.items():
            for index, test in enumerate(folds):
                rest = [ex for j, fold in enumerate(folds) if j != index for ex in fold]
                valid_count = round(len(rest) * cfg.data.valid_fraction)
                train, valid = rest[valid_count:], rest[:valid_count]
                splits = classify.Splits(train, valid, test, {"train": "folds", "valid": "folds", "test": f"fold {index + 1}"})
                classify.check_labels(splits)
                results.append(run_one(cfg, train, valid, test, index))
                log.info("%s fold %d/%d: accuracy %.4f (%.0f s)", arch, index + 1, cv, results[-1].accuracy, results[-1].train_seconds)
    else:
        splits = classify.load_splits(first)
        if not splits.test:
            raise SeqlabError("comparison needs test data: set data.test=FILE or data.test_fraction>0, or use --cv")
        for arch, cfg in configs.items():
            results.append(run_one(cfg, splits.train, splits.valid, splits.test, 0))
            log.info("%s: accuracy %.4f (%.0f s)", arch, results[-1].accuracy, results[-1].train_seconds)
    return results


def summarise(results: list[FoldResult]) -> list[dict]:
    """One row per architecture: means and standard deviations over folds."""
    rows = []
    for arch in dict.fromkeys(r.arch for r in results):
        mine = [r for r in results if r.arch == arch]
        accuracies = [r.accuracy for r in mine]
        rows.append({
            "arch": arch,
            "runs": len(mine),
            "accuracy_mean": statistics.fmean(accuracies),
            "accuracy_std": statistics.stdev(accuracies) if len(mine) > 1 else 0.0,
            "macro_f1_mean": statistics.fmean(r.macro_f1 for r in mine),
            "parameters": mine[0].parameters,
            "train_seconds": statistics.fmean(r.train_seconds for r in mine),
            "epochs": statistics.fmean(r.epochs for r in mine),
            "sentences_per_second": statistics.median(r.sentences_per_second for r in mine),
        })
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| arch | runs | accuracy (mean ± std) | macro-F1 | parameters | train time / run | inference sent/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {r['runs']} | {100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_std']:.2f} | "
            f"{100 * r['macro_f1_mean']:.2f} | {r['parameters']:,} | {r['train_seconds']:.1f} s | {r['sentences_per_second']:,.0f} |"
        )
    return "\n".join(lines)
