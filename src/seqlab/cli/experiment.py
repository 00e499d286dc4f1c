"""`seqlab experiment NAME [--quick]`: run one experiment, print its table, save table and plot.

A thin skin over `seqlab.experiments.*`; mounted by the main CLI as `seqlab experiment`.
Each experiment is one command below; keep each block self-contained.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from seqlab.cli._errors import handle_errors  # noqa: F401  (used by the commands below)
from seqlab.experiments import ExperimentResult

experiment_app = typer.Typer(help="The course's theory claims as experiments; each prints a table and saves a plot.", no_args_is_help=True)
_out = Console(highlight=False, width=None if sys.stdout.isatty() else 180)

QuickOpt = Annotated[bool, typer.Option("--quick", help="A smoke run (seconds): tiny models and data; the table's shape, not a verdict.")]
OutputOpt = Annotated[Path, typer.Option(help="Where the table (table.md, results.json) and plots go.")]


def show(result: ExperimentResult, output: Path) -> None:
    """Print an experiment's table and verdict, and where its files went."""
    result.save(output)
    table = Table(*result.columns, title=result.name)
    for row in result.rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    _out.print(table)
    if result.verdict:
        _out.print(result.verdict)
    for plot in result.plots:
        _out.print(f"plot: {plot}")
    _out.print(f"table: {output / 'table.md'}")


# --------------------------------------------------------------------------- theory experiments (issue 9)


# --------------------------------------------------------------------------- augmentation (issue 7)
