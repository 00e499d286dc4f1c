"""`seqlab ner`, and the tag-run parts of `seqlab train` / `seqlab evaluate`: a thin skin over
`api.ner`, `api.load_ner` and `api.load_tagger`.

Registered by the main CLI: `app.command()(ner)`; `evaluate` hands tag runs to `evaluate_tagger`
and `train` reports them with `report_tagger`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from seqlab.cli._errors import handle_errors
from seqlab.cli._output import check_writable, write_atomic
from seqlab.errors import SeqlabError

_out = Console(soft_wrap=True, highlight=False)
FORMATS = ("list", "json", "html")
INPUT_MAX_CHARS = 10_000_000  # long documents are tagged in pieces (seqlab.tasks.tag.pipeline.chunk_text)


@handle_errors
def ner(
    texts: Annotated[list[str] | None, typer.Argument(help="Text(s) to find entities in.", show_default=False)] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="spaCy pipeline: en_core_web_sm (built in), en_core_web_md, an installed package or a folder; or a tag run folder.",
        ),
    ] = "en_core_web_sm",
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="list: [(text, label), ...]; json: character offsets and label descriptions; html: displaCy page.",
        ),
    ] = "list",
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="A .txt file (one text per line) or .csv/.tsv/.jsonl with a text column.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write here instead of printing: FILE.jsonl (one JSON object per text) or FILE.html."
        ),
    ] = None,
    text_column: Annotated[str | None, typer.Option(help="Text column of --input.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Texts per nlp.pipe batch (default: the pipeline's own).")] = None,
    processes: Annotated[int, typer.Option(help="nlp.pipe worker processes.")] = 1,
) -> None:
    """Named entities: `seqlab ner "Apple is looking at buying U.K. startup for $1 billion"`
    prints [('Apple', 'ORG'), ('U.K.', 'GPE'), ('$1 billion', 'MONEY')]."""
    from seqlab import api
    from seqlab.data.readers import read_texts
    from seqlab.tasks.tag import pipeline as named_entities

    if format not in FORMATS:
        raise SeqlabError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if output is not None:
        check_writable(output)  # before the pipeline is loaded
    items = list(texts or [])
    if input is not None:
        items += read_texts(input, text_column=text_column, max_chars=INPUT_MAX_CHARS)
    if not items:
        raise SeqlabError('give a text: seqlab ner "Apple is looking at buying U.K. startup for $1 billion" (or --input FILE)')
    as_html = format == "html" or (output is not None and output.suffix.lower() in (".html", ".htm"))
    pipe = api.load_ner(model)
    results = pipe.entities(items, batch_size=batch_size, n_process=processes)
    if as_html:
        page = named_entities.as_html(items, results, title=f"seqlab ner · {pipe.name}")
        if output is None:
            print(page)
            return
        write_atomic(output, page)
        _out.print(f"wrote {len(items):,} texts with {sum(map(len, results)):,} entities to {output}")
        return
    if output is not None:
        write_atomic(
            output, "".join(json.dumps(named_entities.as_json(t, r), ensure_ascii=False) + "\n" for t, r in zip(items, results))
        )
        _out.print(f"wrote {len(items):,} texts with {sum(map(len, results)):,} entities to {output}")
        return
    for text, entities in zip(items, results):
        if format == "json":
            print(json.dumps(named_entities.as_json(text, entities), ensure_ascii=False))
        else:
            print([e.pair for e in entities])


def evaluate_tagger(run: Path, data: str, as_json: bool) -> None:
    """`seqlab evaluate RUN --data FILE|silver-ner` for a tag run: entity P/R/F1 per type."""
    from seqlab import api

    metrics = api.evaluate(api.load_tagger(run), data)
    what = metrics["data"]
    if as_json:
        print(json.dumps(metrics, indent=2))
        return
    _out.print(
        f"{run} on {what}: entity F1 [bold]{100 * metrics['f1']:.2f}%[/bold] (precision {100 * metrics['precision']:.2f}%, "
        f"recall {100 * metrics['recall']:.2f}%; {metrics['support']:,} entities in {metrics['sentences']:,} sentences, "
        f"{metrics['words_per_second']:,.0f} words/s)"
    )
    _out.print(per_type_table(metrics))


def per_type_table(metrics: dict) -> Table:
    table = Table("type", "precision", "recall", "F1", "support")
    for name, row in metrics["per_type"].items():
        table.add_row(
            name, f"{100 * row['precision']:.1f}", f"{100 * row['recall']:.1f}", f"{100 * row['f1']:.1f}", f"{row['support']:,}"
        )
    table.add_row(
        "[bold]overall[/bold]",
        f"{100 * metrics['precision']:.1f}",
        f"{100 * metrics['recall']:.1f}",
        f"{100 * metrics['f1']:.1f}",
        f"{metrics['support']:,}",
    )
    return table


def report_tagger(run_dir: Path) -> None:
    """One line: the run folder, held-out entity F1 (against silver labels where they are), epochs."""
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    silver = " vs silver labels" if metrics.get("labels") == "silver" else ""
    parts = [f"{split} entity F1{silver} {100 * metrics[split]['f1']:.2f}%" for split in ("valid", "test") if split in metrics]
    _out.print(f"[green]trained[/green] {run_dir}  ({', '.join(parts) or 'no held-out data'}, {metrics['epochs']} epochs)")
