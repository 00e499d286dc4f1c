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

import json
import logging
import math
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from seqlab import plots
from seqlab.config import ARCHS, RunConfig, TransformerModelConfig, build_config
from seqlab.data.datasets import load_examples
from seqlab.data.readers import Example
from seqlab.errors import SeqlabError
from seqlab.files import write_json, write_text
from seqlab.models import count_parameters
from seqlab.published import REFERENCES, classify_protocol, published
from seqlab.tasks.classify import recipe as classify

log = logging.getLogger("seqlab")

# Named recipes: transfer learning at each depth, next to the from-scratch architectures.
RECIPES: dict[str, list[str]] = {
    "minilm": ["model.arch=hf", "model.model=minilm-l6", "model.strategy=full"],
    "minilm-llrd": ["model.arch=hf", "model.model=minilm-l6", "model.strategy=llrd"],
    "minilm-frozen": ["model.arch=hf", "model.model=minilm-l6", "model.strategy=frozen"],
    # Kim (2014)'s CNNs: CNN-rand (300-d, filters 3/4/5 x 100), and with pretrained vectors
    # fine-tuned (non-static) or frozen (static).
    "cnn-rand": ["model.arch=cnn", "model.preset=base"],
    "cnn+glove": ["model.arch=cnn", "model.preset=base", "model.embeddings=glove-6b-50d"],
    "cnn+glove-static": ["model.arch=cnn", "model.preset=base", "model.embeddings=glove-6b-50d", "model.embeddings_mode=static"],
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
    if entry == "transformer+mlm" and not cast(TransformerModelConfig, cfg.model).init:  # its recipe sets a transformer
        raise SeqlabError(
            "transformer+mlm needs a pretrained encoder: add transformer+mlm:model.init=RUN (from `seqlab pretrain mlm`)"
        )
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


def run_one(
    cfg: RunConfig,
    name: str,
    subset: str,
    train: list[Example],
    valid: list[Example],
    test: list[Example],
    fold: int,
    min_epoch_examples: int = 0,
) -> FoldResult:
    """Train one entry on `train` (early stopping on `valid`) and score it on `test`."""
    epoch = train * epoch_repeats(len(train), min_epoch_examples)
    with tempfile.TemporaryDirectory(prefix="seqlab-compare-") as work:
        fitted = classify.fit_classifier(cfg, epoch, valid, Path(work), progress="off", loggers=False)
    metrics = classify.evaluate_examples(
        fitted.model, fitted.tokenizer, fitted.labels, test, cfg.tokenizer.max_length, cfg.model.head == "sigmoid"
    )
    return FoldResult(
        name,
        fold,
        cfg.train.seed,
        subset,
        len(train),
        metrics["accuracy"],
        metrics["macro_f1"],
        count_parameters(fitted.model),
        fitted.result.seconds,
        fitted.result.epochs,
        metrics["sentences_per_second"],
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
        splits = classify.Splits(
            rest[valid_count:], rest[:valid_count], test, {"train": "folds", "valid": "folds", "test": f"fold {index + 1}"}
        )
        classify.check_labels(splits)
        result.append(splits)
    return result


def compare(
    base: dict,
    archs: list[str],
    overrides: list[str],
    cv: int | None = None,
    train_sizes: Sequence[int | None] = (None,),
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
                    log.info(
                        "%s, %d examples, fold %d/%d, seed %d: accuracy %.4f (%.0f s)",
                        entry,
                        r.train_size,
                        index + 1,
                        len(folds),
                        r.seed,
                        r.accuracy,
                        r.train_seconds,
                    )
                    if on_result:
                        on_result(r)
    return results


def summarise(results: list[FoldResult]) -> list[dict]:
    """One row per (entry, training size): means and standard deviations over folds."""
    rows = []
    for key in dict.fromkeys((r.arch, r.subset) for r in results):
        mine = [r for r in results if (r.arch, r.subset) == key]
        accuracies = [r.accuracy for r in mine]
        rows.append(
            {
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
            }
        )
    return rows


def add_published(rows: list[dict], dataset: str, cv: int | None) -> list[dict]:
    """Each row gains `published` (the paper's accuracy in percent, or None) and `published_by`
    ("Kim 2014, CNN-non-static") where a paper reports the same protocol (`seqlab.published`)."""
    protocol = classify_protocol(cv)
    for row in rows:
        paper = published(dataset, protocol, row["arch"]) if protocol and row["subset"] == "all" else None
        row["published"] = paper.score if paper else None
        row["published_by"] = f"{paper.paper}, {paper.model}" if paper else None
        row["published_note"] = paper.note if paper else None
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The summary as a Markdown table; with a "published" column (and the references below
    it) when a paper reports any row's protocol."""
    papers = any(r.get("published") is not None for r in rows)
    lines = [
        "| arch | train examples | runs | accuracy (mean ± std) | "
        + ("published | " if papers else "")
        + "macro-F1 | parameters | train time / run | inference sent/s |",
        "|---|---|---|---|" + ("---|" if papers else "") + "---|---|---|---|",
    ]
    for r in rows:
        shown = (f"{r['published']:.1f} ({r['published_by']}) | " if r.get("published") is not None else "– | ") if papers else ""
        lines.append(
            f"| {r['arch']} | {r['train_size']:,} | {r['runs']} | {100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_std']:.2f} | "
            f"{shown}{100 * r['macro_f1_mean']:.2f} | {r['parameters']:,} | {r['train_seconds']:.1f} s | {r['sentences_per_second']:,.0f} |"
        )
    if papers:
        papers_cited = dict.fromkeys(r["published_by"].split(",")[0] for r in rows if r.get("published") is not None)
        notes = dict.fromkeys((r["arch"], r["published_note"]) for r in rows if r.get("published_note"))
        lines += ["", *(f"- {REFERENCES[paper]}" for paper in papers_cited), *(f"- {arch}: {note}" for arch, note in notes)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the comparison's files


def run(
    base: dict,
    archs: list[str],
    overrides: Sequence[str] = (),
    cv: int | None = None,
    output_dir: str | Path | None = None,
    train_sizes: str | None = None,
    seeds: int = 1,
    min_epoch_examples: int = 2000,
) -> tuple[list[dict], Path]:
    """Train every entry of `archs` (architectures or recipes such as `minilm-frozen`) on the
    same data, `seeds` times each; write results.json, table.md and a chart (comparison.png, or
    learning_curve.png when several `train_sizes` are given, e.g. "100,500,all") into
    `output_dir`. Finished runs are appended to partial.jsonl as they come. A training set
    smaller than `min_epoch_examples` is repeated within each epoch (0: never), so small sets
    get as many optimiser steps per epoch as a set of that size.

    Returns:
        (one summary row per entry and size, the output folder).
    """
    archs = parse_archs(",".join(archs))
    sizes = parse_sizes(train_sizes)
    output = Path(output_dir or Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}")
    output.mkdir(parents=True, exist_ok=True)

    def save_partial(result: FoldResult) -> None:
        with open(output / "partial.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(vars(result)) + "\n")

    results = compare(base, archs, list(overrides), cv, sizes, seeds, save_partial, min_epoch_examples)
    dataset = base.get("data", {}).get("train", "rt-polarity")
    rows = add_published(summarise(results), dataset, cv)
    write_json(
        output / "results.json",
        {
            "cv": cv,
            "train_sizes": train_sizes,
            "seeds": seeds,
            "min_epoch_examples": min_epoch_examples,
            "summary": rows,
            "runs": [vars(r) for r in results],
        },
    )
    write_text(output / "table.md", markdown_table(rows) + "\n")
    protocol = f"{cv}-fold CV" if cv else "held-out test split"
    title = f"{base.get('data', {}).get('train', 'rt-polarity')} · {protocol}"
    if len(sizes) > 1:
        plots.learning_curve_by_size(rows, output / "learning_curve.png", title)
    else:
        plots.comparison(rows, output / "comparison.png", title)
    return rows, output
