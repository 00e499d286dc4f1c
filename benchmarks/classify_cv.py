"""MR (rt-polarity) 10-fold cross-validation of the from-scratch classifiers (no pretrained vectors).

    python benchmarks/classify_cv.py [--archs cnn,bilstm,transformer] [--cv 10] [--output runs/bench/mr-cv10]

The same as the command it prints, `seqlab compare classify ... --cv 10`: the protocol of Kim
(2014) on MR, so the numbers compare with CNN-rand's 76.1%. Writes results.json, table.md and
comparison.png, and prints the Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import logging
import shlex

import torch

from seqlab import api
from seqlab.tasks.classify.compare import markdown_table

# The settings recorded in docs/benchmarks.md. Shared: up to 25 epochs with early stopping on
# validation accuracy (patience 3). Per architecture (ARCH:key=value): Kim's CNN-rand sizes
# (preset base); the Transformer wants a smaller learning rate and more dropout on 9.5k sentences.
OVERRIDES = [
    "train.epochs=25",
    "cnn:model.preset=base",
    "transformer:train.lr=0.0005",
    "transformer:model.dropout=0.3",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="cnn,bilstm,transformer")
    parser.add_argument("--cv", type=int, default=10)
    parser.add_argument("--output", default="runs/bench/mr-cv10")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads; 1 lets two benchmark processes share a 2-core machine without spinning",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    command = [
        "seqlab",
        "compare",
        "classify",
        "--data",
        "rt-polarity",
        "--archs",
        args.archs,
        "--cv",
        str(args.cv),
        "--output",
        args.output,
        *OVERRIDES,
    ]
    print("equivalent command:", shlex.join(command), flush=True)
    rows, folder = api.compare("classify", args.archs, OVERRIDES, data="rt-polarity", cv=args.cv, output_dir=args.output)
    print(markdown_table(rows))
    print(f"\nresults in {folder}")


if __name__ == "__main__":
    main()
