"""`seqlab translate`, and the translate parts of `seqlab evaluate`, `seqlab compare translate`
and `seqlab train translate`'s report: a thin skin over `api.load_translator` and
`api.compare_translation`.

Registered by the main CLI: `app.command()(translate)`; `evaluate`, `compare` and `train` call
`evaluate_translation`, `compare_translation` and `report_translation` for translate runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from seqlab.cli._errors import handle_errors
from seqlab.cli._output import check_writable, write_atomic
from seqlab.errors import SeqlabError

_out = Console(soft_wrap=True, highlight=False)


@handle_errors
def translate(
    run: Annotated[Path, typer.Argument(help="A translate run folder (seqlab train translate).")],
    texts: Annotated[Optional[list[str]], typer.Argument(help="Sentences to translate.", show_default=False)] = None,
    beam: Annotated[Optional[int], typer.Option(help="Beam size (1: greedy); default: the run's translate.beam.")] = None,
    length_penalty: Annotated[
        Optional[float], typer.Option(help="Beam search: score / length^penalty (> 1 favours longer output).")
    ] = None,
    max_length_ratio: Annotated[
        Optional[float],
        typer.Option(help="Stop a translation at this many times its source tokens (+ translate.max_length_offset)."),
    ] = None,
    attention: Annotated[
        Optional[Path],
        typer.Option(help="Draw the alignments: out.png (the first sentence) or out.html (every sentence, one offline page)."),
    ] = None,
    input: Annotated[
        Optional[Path],
        typer.Option("--input", "-i", help="A .txt file, one sentence per line (or a .tsv of pairs: its sources)."),
    ] = None,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Write one JSON line per sentence here instead of printing.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per sentence.")] = False,
    n_best: Annotated[
        int,
        typer.Option(
            "--n-best", help="Show the best N translations of each sentence with their scores (beam search; N <= --beam)."
        ),
    ] = 1,
) -> None:
    """Translate sentences with a trained model: `seqlab translate runs/tatoeba "I would like a cup of coffee." --beam 5 --attention a.html`."""
    from seqlab import api

    for path in (output, attention):
        if path is not None:
            check_writable(path)  # before the model is loaded
    pipe = api.load_translator(run)
    items = list(texts or [])
    if input is not None:
        items += _read_sentences(input, pipe.config.data.max_chars)
    if not items:
        raise SeqlabError("nothing to translate: give sentences as arguments or --input FILE")
    settings = {"beam": beam, "length_penalty": length_penalty, "max_length_ratio": max_length_ratio}
    if n_best < 1:
        raise SeqlabError(f"--n-best must be at least 1 (got {n_best})")
    pipe.settings(**settings)  # a bad --beam or --max-length-ratio fails before anything is decoded
    if n_best > 1 and n_best > (beam or pipe.config.translate.beam):
        raise SeqlabError(f"--n-best {n_best} needs a beam at least as wide: add --beam {n_best}")
    if attention is not None:  # first, so a wrong file type or a model without attention fails fast
        image = pipe.save_attention(items, attention, **settings)
        _out.print(f"alignments: {image}", style="dim")
    if n_best > 1:
        records = [
            {"source": text, "translations": found}
            for text, found in zip(items, pipe.translate(items, n_best=n_best, **settings))
        ]
    else:
        records = [{"source": text, "translation": out} for text, out in zip(items, pipe.translate(items, **settings))]
    if output is not None:
        write_atomic(output, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
        _out.print(f"wrote {len(records):,} translations to {output}")
        return
    for record in records:
        if as_json:
            _out.print(json.dumps(record, ensure_ascii=False), markup=False)
        elif n_best > 1:
            _out.print(f"[dim]{escape(record['source'])}[/dim]")
            for rank, found in enumerate(record["translations"], 1):
                _out.print(f"  {rank}. [bold]{escape(found['translation'])}[/bold]  [dim](score {found['score']:.3f})[/dim]")
        else:
            _out.print(f"[dim]{escape(record['source'])}[/dim] → [bold]{escape(record['translation'])}[/bold]")


def _read_sentences(path: Path, max_chars: int) -> list[str]:
    from seqlab.data.parallel import read_tsv
    from seqlab.data.readers import read_texts

    if path.suffix.lower() == ".tsv":
        return [pair.source for pair in read_tsv(path, max_chars=max_chars)]
    return read_texts(path, max_chars=max_chars)


def evaluate_translation(
    run: Path, data: str, beam: int | None = None, as_json: bool = False, direction: str | None = None
) -> None:
    """`seqlab evaluate RUN --data ...` for a translate run: sacreBLEU BLEU and chrF with their
    signatures, and BLEU by source length."""
    from seqlab import api

    metrics = api.evaluate(run, data, beam=beam, direction=direction)
    if as_json:
        print(json.dumps(metrics, indent=2, ensure_ascii=False))
        return
    entropy = (
        ""
        if metrics["attention_entropy"] is None
        else f", attention entropy {metrics['attention_entropy']:.2f} nats ({metrics['attention_entropy_normalized']:.2f} of uniform)"
    )
    _out.print(f"{run} on {escape(metrics['scored'])}")
    _out.print(f"BLEU [bold]{metrics['bleu']:.2f}[/bold]  {escape(metrics['bleu_signature'])}")
    _out.print(f"chrF [bold]{metrics['chrf']:.2f}[/bold]  {escape(metrics['chrf_signature'])}")
    _out.print(
        f"{metrics['examples']:,} sources, {metrics['references']:,} references; exact match {100 * metrics['exact_match']:.2f}%; "
        f"beam {metrics['beam']}, {metrics['sentences_per_second']:,.0f} sentences/s"
    )
    _out.print(
        f"token accuracy: teacher-forced {100 * metrics['teacher_forced_accuracy']:.2f}%, "
        f"free-running {100 * metrics['free_running_accuracy']:.2f}%{entropy}"
    )
    if metrics["unknown_source_tokens"] or metrics["truncated_sources"]:
        _out.print(
            f"{metrics['unknown_source_tokens']:,} unknown source tokens, {metrics['truncated_sources']:,} sources truncated"
        )
    unit = metrics["by_length"][0]["unit"] if metrics["by_length"] else "chars"
    table = Table(f"source {'words' if unit == 'words' else 'chars'}", "sources", "BLEU", "exact match", title="by source length")
    for row in metrics["by_length"]:
        table.add_row(row["bucket"], f"{row['examples']:,}", f"{row['bleu']:.2f}", f"{100 * row['exact_match']:.2f}%")
    _out.print(table)


def compare_translation(
    data: str | None, archs: str | None, overrides: list[str], seeds: int, output: Path | None, budget: str | None = None
) -> None:
    """`seqlab compare translate --archs seq2seq,bahdanau,luong,transformer --data tatoeba-en-fr --budget 45m`."""
    from seqlab import api
    from seqlab.tasks.translate.compare import DEFAULT_ENTRIES, parse_budget

    data = data or "numbers-en-fr"
    minutes = parse_budget(budget)
    rows, folder = api.compare_translation(
        {"data": {"train": data}},
        (archs or ",".join(DEFAULT_ENTRIES)).split(","),
        overrides,
        output,
        seeds,
        budget_minutes=minutes,
    )
    table = Table(
        "model",
        "parameters",
        "train s",
        "tgt tok/s",
        "exact match",
        "BLEU",
        "chrF",
        "TF acc.",
        "FR acc.",
        "beam sent/s",
        "speed-up",
        title=f"{data} · test split · beam {rows[0]['beam']}" + (f" · {minutes:g} min each" if minutes else ""),
    )
    for r in rows:
        table.add_row(
            r["arch"],
            f"{r['parameters']:,}",
            f"{r['train_seconds']:.0f}",
            f"{r['train_target_tokens_per_second']:,.0f}",
            f"{100 * r['exact_match']:.2f}%",
            f"{r['bleu']:.2f}",
            f"{r['chrf']:.2f}",
            f"{100 * r['teacher_forced_accuracy']:.2f}%",
            f"{100 * r['free_running_accuracy']:.2f}%",
            f"{r['beam_sentences_per_second']:,.0f}",
            f"{r['batched_speedup']:.1f}×",
        )
    _out.print(table)
    _out.print(f"BLEU: {rows[0]['bleu_signature']}")
    _out.print(f"results: {folder}/results.json, {folder}/table.md (BLEU by source length), chart: {folder}/comparison.png")


def report_translation(run_dir: Path) -> None:
    """One line: the run folder, test BLEU and exact match, epochs."""
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    split = "test" if "test" in metrics else "valid"
    held = metrics.get(split)
    shown = (
        f"{split} BLEU {held['bleu']:.2f}, exact match {100 * held['exact_match']:.2f}% (beam {held['beam']})"
        if held
        else "no held-out pairs"
    )
    _out.print(f"[green]trained[/green] {run_dir}  ({shown}, {metrics['epochs']} epochs)")
