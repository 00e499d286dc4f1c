"""`seqlab export`: a thin skin over `seqlab.tasks.classify.export.export_onnx`.

Registered by the main CLI: `app.command("export")(export_run)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from seqlab.cli._errors import handle_errors
from seqlab.errors import SeqlabError

_out = Console(soft_wrap=True, highlight=False)


@handle_errors
def export_run(
    run: Annotated[Path, typer.Argument(help="A classifier run folder.")],
    fmt: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    quantize: Annotated[
        Optional[str], typer.Option(help="Also write an int8 model (int8 weights, dynamic int8 activations): int8.")
    ] = None,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="A .onnx file or a folder (default: the run folder).")
    ] = None,
    optimize: Annotated[
        bool, typer.Option("--optimize/--no-optimize", help="ONNX Runtime's transformer fusions (hf encoders, transformer).")
    ] = True,
) -> None:
    """Write a classifier as ONNX (dynamic batch and sequence axes), checked against PyTorch:
    `seqlab export RUN --quantize int8`, then `seqlab predict RUN --backend onnx ...`."""
    from seqlab.tasks.classify.export import export_onnx, int8_path

    if fmt != "onnx":
        raise SeqlabError(f"unknown export format {fmt!r}; seqlab exports: onnx")
    written = export_onnx(run, output=output, quantize=quantize, optimize=optimize)
    _out.print(f"[green]exported[/green] {written}" + (f" and {int8_path(written)}" if quantize else ""))
