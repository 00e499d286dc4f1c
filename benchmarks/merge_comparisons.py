"""Merge the results of several `seqlab compare` runs into one table and learning curve.

    python benchmarks/merge_comparisons.py OUT_DIR RESULTS.json|partial.jsonl ... [--title T]

A long learning-curve experiment can be split across processes (for example the small training
sizes with several seeds in one, the full training set in another, each on its own CPU core);
this joins their per-run results (`results.json`, or the `partial.jsonl` of a comparison still
running) into `table.md` and `learning_curve.png`, exactly as one `seqlab compare` would.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from seqlab import plots
from seqlab.tasks.classify.compare import FoldResult, markdown_table, summarise


def read_runs(path: Path) -> list[FoldResult]:
    if path.suffix == ".jsonl":
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        records = json.loads(path.read_text(encoding="utf-8"))["runs"]
    return [FoldResult(**record) for record in records]


def size_order(subset: str) -> tuple[bool, int]:
    """'100' < '500' < ... < 'all'."""
    return (subset == "all", 0 if subset == "all" else int(subset))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--title", default="rt-polarity · held-out test split")
    args = parser.parse_args()

    results = [run for path in args.results for run in read_runs(path)]
    order = {arch: i for i, arch in enumerate(dict.fromkeys(r.arch for r in results))}
    results.sort(key=lambda r: (size_order(r.subset), order[r.arch]))
    rows = summarise(results)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "table.md").write_text(markdown_table(rows) + "\n", encoding="utf-8")
    plots.learning_curve_by_size(rows, args.output / "learning_curve.png", args.title)
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
