"""`seqlab bench generate`: decoding speed of seqlab's paths against Hugging Face `generate`;
`seqlab bench all`: every task's performance benchmark, written into docs/benchmarks.md.

A thin skin over `seqlab.bench`; mounted by the main CLI with `app.add_typer(bench_app, name="bench")`.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from seqlab.cli._errors import handle_errors
from seqlab.errors import SeqlabError

bench_app = typer.Typer(help="Benchmarks: seqlab bench generate, seqlab bench all.", no_args_is_help=True)
# Wide when piped, so the table keeps one line per row in logs and files.
_out = Console(highlight=False, width=None if sys.stdout.isatty() else 180)
log = logging.getLogger("seqlab")


@bench_app.command("generate")
@handle_errors
def generate_cmd(
    models: Annotated[
        str,
        typer.Option(help="Comma-separated: gpt2-shapes (GPT-2 small, random weights), smollm2-135m (real weights), gpt2-tiny."),
    ] = "gpt2-shapes,smollm2-135m",
    paths: Annotated[
        Optional[str],
        typer.Option(
            help="Comma-separated paths (default: all; no-cache only for GPT-2 shapes): hf-fp32, seqlab-fp32, seqlab-fp32-nocache, seqlab-bf16, seqlab-int8, seqlab-bf16-int8, seqlab-bf16-int4, and seqlab-fp32-compiled, seqlab-bf16-int4-compiled (torch.compile; minutes to compile, only when named).",
            show_default=False,
        ),
    ] = None,
    repeats: Annotated[int, typer.Option(help="Timed runs per path (after one warm-up); the median is reported.")] = 3,
    new_tokens: Annotated[int, typer.Option(help="Greedy tokens to generate per run.")] = 128,
    prompt_tokens: Annotated[int, typer.Option(help="Prompt length in tokens.")] = 32,
    threads: Annotated[
        Optional[str],
        typer.Option(
            help="torch threads per path; several, comma-separated (e.g. 1,2), run the whole benchmark once per count (default: torch's default).",
            show_default=False,
        ),
    ] = None,
    ppl_tokens: Annotated[int, typer.Option(help="Held-out tokens for the perplexity of each path (real weights only).")] = 2048,
    isolate: Annotated[
        bool,
        typer.Option(
            "--isolate/--in-process",
            help="Each path in its own process (peak memory per path) or all in this one (no memory figures).",
        ),
    ] = True,
    output: Annotated[
        Optional[Path],
        typer.Option(help="Also write the results: .json (rows and settings) or .md (the table).", show_default=False),
    ] = None,
) -> None:
    """Greedy decoding at batch 1, side by side: tokens/s, ms/token, peak memory, speed-up over
    HF generate fp32, identical greedy tokens, and perplexity per path (smollm2-135m).

    `seqlab bench generate --threads 1,2 --output bench.md` runs both thread counts.
    """
    from seqlab.bench import (
        COLUMNS,
        BenchSettings,
        bench_generate,
        markdown_table,
        settings_dict,
        table_cells,
    )

    if output is not None and output.suffix.lower() not in (".json", ".md"):
        raise SeqlabError(f"--output {output}: give a .json or .md file")
    counts = [None] if not threads else [_thread_count(t) for t in threads.split(",")]
    model_names = [m.strip() for m in models.split(",") if m.strip()]
    path_names = [p.strip() for p in paths.split(",") if p.strip()] if paths else None
    load_before = os.getloadavg()
    rows = []
    for count in counts:
        settings = BenchSettings(new_tokens, prompt_tokens, repeats, count, ppl_tokens, isolate)
        rows += bench_generate(model_names, path_names, settings, progress=log.info)
    load_after = os.getloadavg()

    table = Table(
        *COLUMNS, title=f"greedy decoding, batch 1, {prompt_tokens}-token prompt, {new_tokens} new tokens, median of {repeats}"
    )
    for row in rows:
        table.add_row(*table_cells(row))
    _out.print(table)
    load = f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after ({os.cpu_count()} CPUs)"
    _out.print(load)
    _out.print()
    _out.print(markdown_table(rows), markup=False)
    if output is not None:
        if output.suffix.lower() == ".json":
            meta = {
                "settings": {**settings_dict(settings), "threads": counts},
                "load_average_before": load_before,
                "load_average_after": load_after,
                "cpus": os.cpu_count(),
                "machine": platform.processor() or platform.machine(),
            }
            output.write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n", encoding="utf-8")
        else:
            output.write_text(markdown_table(rows) + f"\n{load}\n", encoding="utf-8")
        _out.print(f"wrote {output}")


@bench_app.command("all")
@handle_errors
def all_cmd(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Each benchmark in a smoke configuration (minutes in all): checks that they run; the numbers are not for comparison.",
        ),
    ] = False,
    only: Annotated[
        Optional[str],
        typer.Option(
            help="Comma-separated benchmark names (default: all): throughput, onnx-vs-torch, minilm-inference, ner-speed, generate, lm-quality, ner-silver, classify-cv.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[Path, typer.Option(help="Where each benchmark's files (stdout, stderr, plots, runs) go.")] = Path(
        "runs/bench-all"
    ),
    docs: Annotated[
        Path, typer.Option(help="The Markdown file whose generated block (between the seqlab bench markers) is rewritten.")
    ] = Path("docs/benchmarks.md"),
    write: Annotated[bool, typer.Option("--write/--no-write", help="Rewrite the block in --docs, or only print it.")] = True,
    timeout: Annotated[
        Optional[float],
        typer.Option(help="Seconds one benchmark may run before it is stopped and marked failed.", show_default=False),
    ] = None,
) -> None:
    """Run every task's performance benchmark, one process each, and write their tables with the
    machine (CPU, cores, SIMD flags), versions and load into docs/benchmarks.md, between
    `<!-- seqlab bench:start -->` and `<!-- seqlab bench:end -->`. A full run takes hours (the
    10-fold cross-validation and the silver NER taggers); `--only` picks some."""
    from seqlab.bench_all import bench_all

    runs, block = bench_all(quick, only, output, docs if write else None, say=log.info, timeout=timeout)
    table = Table("benchmark", "status", "seconds", title="seqlab bench all" + (" --quick" if quick else ""))
    for run in runs:
        status = "skipped" if run.returncode is None else ("ok" if run.returncode == 0 else f"exit {run.returncode}")
        table.add_row(run.benchmark.name, status, f"{run.seconds:.0f}")
    _out.print(table)
    if write:
        _out.print(f"wrote the generated block of {docs}; each benchmark's output is under {output}")
    else:
        _out.print(block, markup=False)
    if any(run.returncode for run in runs):
        raise typer.Exit(1)


def _thread_count(text: str) -> int | None:
    text = text.strip()
    if text in ("", "default"):
        return None
    if not text.isdigit() or int(text) < 1:
        raise SeqlabError(f"--threads {text!r}: give positive whole numbers (or default), comma-separated")
    return int(text)
