"""Side-by-side comparison of classifiers on one dataset.

With `cv=k` every entry is trained k times, each time holding out one of k folds for testing
(the protocol of Kim, 2014, on MR), with a slice of the remaining data for early stopping.
Without it, each entry is trained once on the configured train/valid/test split. With
`train_sizes`, each training set is also cut to the first n examples of a seeded shuffle: a
learning curve, which is where transfer learning shows (pretrained models need fewer labels).

An entry is an architecture (`cnn`) or a named recipe (`minilm-frozen`, `cnn+spacy-md`, see
`RECIPES`); an override written `ENTRY:key=value` applies to that entry only.
"""

from __future__ import annotations

import logging
import math
import random
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from seqlab.config import ARCHS, RunConfig, build_config
from seqlab.data.datasets import load_examples
from seqlab.data.readers import Example
from seqlab.errors import SeqlabError
from seqlab.tasks import classify

log = logging.getLogger("seqlab")

# Named recipes: transfer learning at each depth, next to the from-scratch architectures.
RECIPES: dict[str, list[str]] = {
    "minilm": ["model.arch=hf", "model.model=minilm-l6", "model.strategy=full"],
    "minilm-llrd": ["model.arch=hf", "model.model=minilm-l6", "model.strategy=llrd"],
    "minilm-frozen": ["model.arch=hf", "model.model=minilm-l6", "model.strategy=frozen"],
    "cnn+spacy-md": ["model.arch=cnn", "model.preset=base", "model.embeddings=spacy-md"],
    "cnn+spacy-md-static": ["model.arch=cnn", "model.preset=base", "model.embeddings=spacy-md", "model.embeddings_mode=static"],
    "bilstm+spacy-md": ["model.arch=bilstm", "model.embed_dim=300", "model.embeddings=spacy-md"],
    "transformer+mlm": ["model.arch=transformer"],  # needs transformer+mlm:model.init=RUN
}
ENTRIES = (*ARCHS, *RECIPES)


@dataclass
class FoldResult:
    arch: str
    fold: int
    seed: int  # training seed of this run
    subset: str  # the requested training size ("100", ..., "all")
    train_size: int  # examples actually trained on
    accuracy: float
    macro_f1: float
    parameters: int
    train_seconds: float
    epochs: int
    sentences_per_second: float


def arch_config(base: dict, entry: str, overrides: list[str]) -> RunConfig:
    """The base config for one entry: its recipe, then shared overrides, then `ENTRY:` ones."""
    mine = [o.split(":", 1)[1] for o in overrides if _target(o) == entry]
    shared = [o for o in overrides if _target(o) is None]
    recipe = RECIPES.get(entry, [f"model.arch={entry}"])
    model = {k: v for k, v in base.get("model", {}).items() if k in ("preset", "head")}
    cfg = build_config({**base, "model": model}, [*recipe, *shared, *mine])
    if entry == "transformer+mlm" and not cfg.model.init:
        raise SeqlabError("transformer+mlm needs a pretrained encoder: add transformer+mlm:model.init=RUN (from `seqlab pretrain mlm`)")
    return cfg


def _target(override: str) -> str | None:
    """'cnn:model.x=1' → 'cnn'; 'model.x=1' → None (the colon must come before the '=')."""
    key = override.split("=", 1)[0]
    return key.split(":", 1)[0] if ":" in key else None


def parse_archs(text: str) -> list[str]:
    archs = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in archs if a not in ENTRIES]
    if unknown or not archs:
        raise SeqlabError(f"unknown architecture {unknown[0] if unknown else text!r}; choose from {', '.join(ENTRIES)}")
    return archs


def parse_sizes(text: str | None) -> list[int | None]:
    """'100,500,all' → [100, 500, None] (None: the whole training set)."""
    if not text:
        return [None]
    sizes: list[int | None] = []
    for part in text.split(","):
        part = part.strip()
        if part == "all":
            sizes.append(None)
        elif part.isdigit() and int(part) > 1:
            sizes.append(int(part))
        else:
            raise SeqlabError(f"--train-sizes takes numbers above 1 and 'all', e.g. 100,500,all (got {part!r})")
    return sizes


def folds_of(examples: list[Example], k: int, seed: int) -> list[list[Example]]:
    """k disjoint folds of a seeded shuffle; sizes differ by at most one."""
    if not 2 <= k <= len(examples):
        raise SeqlabError(f"--cv {k} needs 2 ≤ k ≤ the number of examples ({len(examples)})")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [[examples[i] for i in order[fold::k]] for fold in range(k)]


def subsample(train: list[Example], size: int | None, seed: int) -> list[Example]:
    """The first `size` examples of a seeded shuffle, so smaller sets nest inside larger ones."""
    if size is None or size >= len(train):
        return train
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    return [train[i] for i in order[:size]]


def epoch_repeats(size: int, min_epoch_examples: int) -> int:
    """How many times a training set of `size` examples is repeated in one epoch."""
    return max(1, math.ceil(min_epoch_examples / size)) if size else 1


def run_one(cfg: RunConfig, name: str, subset: str, train: list[Example], valid: list[Example], test: list[Example], fold: int,
            min_epoch_examples: int = 0) -> FoldResult:
    """Train one entry on `train` (early stopping on `valid`) and score it on `test`."""
    epoch = train * epoch_repeats(len(train), min_epoch_examples)
    with tempfile.TemporaryDirectory(prefix="seqlab-compare-") as work:
        fitted = classify.fit_classifier(cfg, epoch, valid, Path(work), progress="off", loggers=False)
    metrics = classify.evaluate_examples(
        fitted.model, fitted.tokenizer, fitted.labels, test, cfg.tokenizer.max_length, cfg.model.head == "sigmoid"
    )
    return FoldResult(
        name, fold, cfg.train.seed, subset, len(train), metrics["accuracy"], metrics["macro_f1"], classify.count_parameters(fitted.model),
        fitted.result.seconds, fitted.result.epochs, metrics["sentences_per_second"],
    )


def splits_for(cfg: RunConfig, cv: int | None) -> list[classify.Splits]:
    """One train/valid/test split per fold (or the configured split when cv is None)."""
    if not cv:
        splits = classify.load_splits(cfg)
        if not splits.test:
            raise SeqlabError("comparison needs test data: set data.test=FILE or data.test_fraction>0, or use --cv")
        return [splits]
    data = cfg.data
    examples = load_examples(data.train, text_column=data.text_column, label_column=data.label_column, max_chars=data.max_chars)
    folds = folds_of(examples, cv, data.split_seed)
    result = []
    for index, test in enumerate(folds):
        rest = [ex for j, fold in enumerate(folds) if j != index for ex in fold]
        valid_count = round(len(rest) * data.valid_fraction)
        splits = classify.Splits(rest[valid_count:], rest[:valid_count], test, {"train": "folds", "valid": "folds", "test": f"fold {index + 1}"})
        classify.check_labels(splits)
        result.append(splits)
    return result


def compare(
    base: dict,
    archs: list[str],
    overrides: list[str],
    cv: int | None = None,
    train_sizes: list[int | None] = (None,),
    seeds: int = 1,
    on_result: Callable[[FoldResult], None] | None = None,
    min_epoch_examples: int = 0,
) -> list[FoldResult]:
    """Train and test every entry on every fold, training-set size and seed (an epoch holds at
    least `min_epoch_examples` examples, see the module docstring).

    `on_result` sees each run as it finishes (the CLI saves partial results with it, so a long
    experiment that stops early keeps what it measured).
    """
    if seeds < 1:
        raise SeqlabError(f"--seeds must be at least 1 (got {seeds})")
    configs = {entry: arch_config(base, entry, overrides) for entry in archs}  # all config errors first
    folds = splits_for(configs[archs[0]], cv)
    results: list[FoldResult] = []
    for size in train_sizes:
        for entry, cfg in configs.items():
            for index, split in enumerate(folds):
                for repeat in range(seeds):
                    seeded = cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": cfg.train.seed + repeat})})
                    train = subsample(split.train, size, cfg.data.split_seed + index + 1000 * repeat)
                    r = run_one(seeded, entry, str(size or "all"), train, split.valid, split.test, index, min_epoch_examples)
                    results.append(r)
                    log.info("%s, %d examples, fold %d/%d, seed %d: accuracy %.4f (%.0f s)",
                             entry, r.train_size, index + 1, len(folds), r.seed, r.accuracy, r.train_seconds)
                    if on_result:
                        on_result(r)
    return results


def summarise(results: list[FoldResult]) -> list[dict]:
    """One row per (entry, training size): means and standard deviations over folds."""
    rows = []
    for key in dict.fromkeys((r.arch, r.subset) for r in results):
        mine = [r for r in results if (r.arch, r.subset) == key]
        accuracies = [r.accuracy for r in mine]
        rows.append({
            "arch": key[0],
            "subset": key[1],
            "train_size": round(statistics.fmean(r.train_size for r in mine)),
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
        "| arch | train examples | runs | accuracy (mean ± std) | macro-F1 | parameters | train time / run | inference sent/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {r['train_size']:,} | {r['runs']} | {100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_std']:.2f} | "
            f"{100 * r['macro_f1_mean']:.2f} | {r['parameters']:,} | {r['train_seconds']:.1f} s | {r['sentences_per_second']:,.0f} |"
        )
    return "\n".join(lines)
