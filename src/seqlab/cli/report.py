"""`seqlab report`: a thin skin over `seqlab.report.write_report`.

Registered by the main CLI: `app.command("report")(report_run)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from seqlab.cli._errors import handle_errors
from seqlab.cli._output import check_writable
from seqlab.errors import SeqlabError

_out = Console(soft_wrap=True, highlight=False)


@handle_errors
def report_run(
    run: Annotated[Path, typer.Argument(help="A run folder.")],
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="The HTML file to write (default: RUN/report.html).")
    ] = None,
) -> None:
    """Write a run's report: one self-contained HTML page (no network; pictures inside) with its
    scores, learning curves, the task's plots, sample predictions with the errors marked,
    attention maps where the model has them, and its config, data and versions. Training writes
    RUN/report.html already; this writes it again."""
    from seqlab import report

    if not run.is_dir():
        raise SeqlabError(f"run folder {run} does not exist")
    if output is not None:
        check_writable(output)  # before any work
    written = report.write_report(run, output)
    _out.print(f"[green]wrote[/green] {written}")
