"""`seqlab augment`: variants of texts, or of a whole data set file (a thin skin over `seqlab.tasks.augment.pipeline`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from seqlab.cli._errors import handle_errors
from seqlab.errors import SeqlabError

_out = Console(soft_wrap=True, highlight=False)
_err = Console(stderr=True)


@handle_errors
def augment(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to augment.", show_default=False)] = None,
    method: Annotated[str, typer.Option(help="synonym (WordNet), eda, backtranslate or contextual.")] = "synonym",
    n: Annotated[int, typer.Option("-n", help="Variants per text.")] = 4,
    seed: Annotated[int | None, typer.Option(help="Random seed (the same seed gives the same variants).")] = 0,
    synonyms: Annotated[
        Path | None, typer.Option(help='synonym/eda: a JSON dictionary {"happy": ["joyful", "cheerful"]} instead of WordNet.')
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(help="synonym/contextual: fraction of the words to replace (default 0.2 / 0.15; 1 with --synonyms)."),
    ] = None,
    tagger: Annotated[
        str | None, typer.Option(help="spacy (POS + entities, the synonym default) or wordnet (fast, no context).")
    ] = None,
    alpha_sr: Annotated[float | None, typer.Option(help="eda: synonym replacement rate (0.1).")] = None,
    alpha_ri: Annotated[float | None, typer.Option(help="eda: random insertion rate (0.1).")] = None,
    alpha_rs: Annotated[float | None, typer.Option(help="eda: random swap rate (0.1).")] = None,
    p_rd: Annotated[float | None, typer.Option(help="eda: random deletion probability (0.1).")] = None,
    model: Annotated[Path | None, typer.Option(help="contextual: a pretrain run or HF masked-LM folder.")] = None,
    forward: Annotated[Path | None, typer.Option(help="backtranslate: text → pivot translate run or HF seq2seq folder.")] = None,
    backward: Annotated[Path | None, typer.Option(help="backtranslate: pivot → text translate run or HF seq2seq folder.")] = None,
    via: Annotated[
        str | None,
        typer.Option(help="backtranslate: both translate runs, RUN_EN_FR,RUN_FR_EN (instead of --forward/--backward)."),
    ] = None,
    beam: Annotated[
        int | None, typer.Option(help="backtranslate: beam search (the forward run's n-best pivots) instead of sampling.")
    ] = None,
    min_chrf: Annotated[
        float | None,
        typer.Option(
            help="backtranslate: keep a round trip only if its chrF against the original reaches this (30; 0: no filter)."
        ),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help="backtranslate/contextual: sampling temperature (0.8; 0 = greedy).")
    ] = None,
    top_k: Annotated[
        int | None, typer.Option(help="backtranslate/contextual: sample among the k likeliest (contextual: 10).")
    ] = None,
    top_p: Annotated[float | None, typer.Option(help="backtranslate: nucleus sampling (0.95).")] = None,
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="A .csv/.tsv/.jsonl data set, or a CoNLL file (.conll, .iob, ...).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where the augmented data set goes (same kind of file).")
    ] = None,
    text_column: Annotated[str | None, typer.Option(help="Text column of --input.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of --input.")] = None,
    filter: Annotated[
        Path | None, typer.Option("--filter", help="Keep a variant only if this classifier run still predicts its label.")
    ] = None,
    min_confidence: Annotated[float, typer.Option(help="--filter: the probability the original label needs.")] = 0.8,
    as_json: Annotated[bool, typer.Option("--json", help="Print the variants as JSON.")] = False,
) -> None:
    """Augment texts: `seqlab augment "I am happy" --method synonym -n 4`, or a data set:
    `seqlab augment --input train.csv --output aug.csv --method eda -n 4` (labels and ids kept)."""
    from seqlab import api

    options = {
        "synonyms": synonyms,
        "rate": rate,
        "tagger": tagger,
        "alpha_sr": alpha_sr,
        "alpha_ri": alpha_ri,
        "alpha_rs": alpha_rs,
        "p_rd": p_rd,
        "model": model,
        "forward": forward,
        "backward": backward,
        "via": via,
        "beam": beam,
        "min_chrf": min_chrf,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
    }
    options = {k: v for k, v in options.items() if v is not None}
    if input is not None:
        if texts:
            raise SeqlabError("give texts as arguments or --input FILE, not both")
        if output is None:
            raise SeqlabError("--input needs --output FILE for the augmented data set")
        return _augment_file(input, output, method, n, seed, text_column, label_column, filter, min_confidence, options)
    if output is not None or filter is not None:
        raise SeqlabError("--output and --filter work on a data set: add --input FILE")
    if not texts:
        raise SeqlabError('nothing to augment: give texts, e.g. seqlab augment "a gorgeous, witty film", or --input FILE')
    variants = api.augment(texts, method, n, seed, **options)
    if as_json:
        print(json.dumps([{"text": t, "variants": v} for t, v in zip(texts, variants)], ensure_ascii=False, indent=2))
        return
    for text, outs in zip(texts, variants):
        _out.print(f"[bold]{text}[/bold]")
        for out in outs:
            _out.print(f"  {out}" if out != text else f"  [dim]{out} (unchanged)[/dim]")


def _augment_file(
    input: Path,
    output: Path,
    method: str,
    n: int,
    seed: int | None,
    text_column: str | None,
    label_column: str | None,
    filter_run: Path | None,
    min_confidence: float,
    options: dict,
) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from seqlab.tasks.augment.pipeline import augment_file

    # a bar for a person at a terminal; nothing in logs and pipes
    with Progress(
        TextColumn("augmenting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=_err,
        disable=not sys.stderr.isatty(),
        transient=True,
    ) as progress:
        task = progress.add_task("rows", total=None)
        result = augment_file(
            input,
            output,
            method,
            n,
            seed,
            text_column=text_column,
            label_column=label_column,
            filter_run=filter_run,
            min_confidence=min_confidence,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            **options,
        )
    dropped = f", {result.dropped:,} variants dropped by the filter" if filter_run is not None else ""
    _out.print(f"wrote {result.written:,} rows ({result.rows:,} originals and their variants{dropped}) to {result.output}")
