"""`seqlab` command line: a thin skin over `seqlab.api`.

Every command parses its options, calls the API and prints; an expected error is one red line
and exit code 1 (see `_errors.handle_errors`).
"""

from __future__ import annotations

import gc
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from seqlab import __version__
from seqlab.cli._errors import OneLineUsageErrors, handle_errors, print_error
from seqlab.cli._output import check_writable, write_atomic
from seqlab.cli.augment import augment
from seqlab.cli.bench import bench_app
from seqlab.cli.data import data_app
from seqlab.cli.experiment import experiment_app
from seqlab.cli.export import export_run
from seqlab.cli.generate import evaluate_language_model, generate, perplexity, report_language_model
from seqlab.cli.ner import evaluate_tagger, ner, report_tagger
from seqlab.cli.pretrain import fill_mask, pretrain_app, report_pretrained
from seqlab.cli.report import report_run
from seqlab.cli.serve import serve
from seqlab.cli.translate import compare_translation, evaluate_translation, report_translation, translate
from seqlab.errors import SeqlabError

app = typer.Typer(
    help="seqlab: train, compare, inspect and serve sequence models for NLP (offline-first).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=OneLineUsageErrors,  # click's usage errors as one `error:` line too (exit code 2)
)
app.add_typer(data_app, name="data", help="Built-in datasets: list, fetch, verify.")
app.add_typer(pretrain_app, name="pretrain", help="Pretrain a BERT-style encoder here (masked-LM, optionally NSP).")
app.add_typer(bench_app, name="bench", help="Benchmarks: seqlab bench generate, seqlab bench all [--quick].")
app.add_typer(
    experiment_app, name="experiment", help="The course's theory claims as experiments (seqlab experiment NAME --quick)."
)
console = Console(soft_wrap=True)  # never re-wrap result lines in logs and pipes

OverridesArg = Annotated[
    Optional[list[str]],
    typer.Argument(help="Config overrides as section.key=value, e.g. train.epochs=5 model.preset=tiny.", show_default=False),
]


def setup_logging(verbose: bool = False) -> None:
    """Log lines on stderr: coloured at a terminal, plain `seqlab: ...` otherwise."""
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, show_time=False, markup=False)
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("seqlab: %(message)s"))
    root = logging.getLogger("seqlab")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO if _rank_zero() else logging.WARNING)
    root.propagate = False


def _rank_zero() -> bool:
    """False in a DDP rank other than 0 (started by Lightning's launcher or torchrun), which
    logs only warnings and errors: rank 0 speaks for the run. (`seqlab.runs.is_rank_zero`,
    without importing torch at start-up.)"""
    import os

    return all(os.environ.get(key, "0") == "0" for key in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def _version(value: bool) -> None:
    if value:
        console.print(f"seqlab {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More log lines.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    setup_logging(verbose)


# --------------------------------------------------------------------------- train


@app.command(context_settings={"allow_extra_args": False})
@handle_errors
def train(
    target: Annotated[
        Optional[str], typer.Argument(help="Task name (classify, lm, tag, translate) or a CONFIG.yaml file.", show_default=False)
    ] = None,
    overrides: OverridesArg = None,
    arch: Annotated[
        Optional[str],
        typer.Option(
            help="classify: lstm, gru, rnn, bilstm, bigru, cnn, transformer, hf (a pretrained encoder); lm: rnn, lstm, gru, gpt, hf (a pretrained causal LM); tag: bilstm-crf, transformer, hf (token classification); translate: seq2seq, seq2seq-attn, transformer (encoder-decoders)."
        ),
    ] = None,
    model: Annotated[
        Optional[str],
        typer.Option(help="--arch hf: built-in minilm-l6 (classify) or smollm2-135m (lm), a model folder or a hub id."),
    ] = None,
    data: Annotated[
        Optional[str],
        typer.Option(help="Built-in dataset (see `seqlab data list`) or a file: .csv/.tsv/.jsonl (classify), also .txt (lm)."),
    ] = None,
    level: Annotated[Optional[str], typer.Option(help="Tokens: word, char or bpe (lm default: char).")] = None,
    valid: Annotated[Optional[str], typer.Option(help="Validation file (default: 10% of the training data).")] = None,
    test: Annotated[Optional[str], typer.Option(help="Test file (default: 10% of the training data).")] = None,
    text_column: Annotated[
        Optional[str], typer.Option(help="Column holding the text (default: text/sentence/review...).")
    ] = None,
    label_column: Annotated[
        Optional[str], typer.Option(help="Column holding the label (default: label/sentiment/class...).")
    ] = None,
    preset: Annotated[Optional[str], typer.Option(help="Model size: tiny, small or base.")] = None,
    init: Annotated[
        Optional[str],
        typer.Option(
            help="Fine-tune the encoder of a run made by `seqlab pretrain mlm` (--arch transformer; its sizes and vocabulary)."
        ),
    ] = None,
    embeddings: Annotated[
        Optional[str],
        typer.Option(help="Pretrained word vectors: spacy-md (300-d; sets the embedding size) or a spaCy model/vocab folder."),
    ] = None,
    embeddings_mode: Annotated[
        Optional[str], typer.Option(help="static (frozen vectors) or non-static (fine-tuned, default).")
    ] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum epochs (early stopping may end sooner).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Examples per batch.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (weights, batch order).")] = None,
    max_minutes: Annotated[
        Optional[float], typer.Option(help="Stop training after this many minutes (the best epoch so far is kept).")
    ] = None,
    name: Annotated[Optional[str], typer.Option(help="Run folder name under --output-dir.")] = None,
    output_dir: Annotated[Optional[str], typer.Option(help="Where run folders go (default runs/).")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue an unfinished run folder from its last checkpoint.")] = None,
    devices: Annotated[
        Optional[int],
        typer.Option(help="Training processes (CPU) or GPUs on this machine; > 1 trains data-parallel (DDP; every task)."),
    ] = None,
    num_nodes: Annotated[
        Optional[int], typer.Option(help="Machines in DDP training (start each rank with torchrun; see README).")
    ] = None,
    strategy: Annotated[
        Optional[str], typer.Option(help="auto or ddp (re-runs this command once per extra process), ddp_spawn.")
    ] = None,
) -> None:
    """Train a model into a run folder: `seqlab train classify --arch cnn --data rt-polarity`,
    `seqlab train lm --arch gpt --level char --data shakespeare`."""
    from seqlab import api
    from seqlab.config import load_config
    from seqlab.runs import is_rank_zero

    if resume is not None:
        if target or overrides or devices or num_nodes or strategy:
            raise SeqlabError("--resume continues a run with its saved config; drop the task, overrides and DDP options")
        run_dir = api.train(resume=resume)
    else:
        settings = {
            "arch": arch,
            "model": model,
            "data": data,
            "valid": valid,
            "test": test,
            "text_column": text_column,
            "label_column": label_column,
            "preset": preset,
            "init": init,
            "embeddings": embeddings,
            "embeddings_mode": embeddings_mode,
            "level": level,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "max_minutes": max_minutes,
            "devices": devices,
            "num_nodes": num_nodes,
            "strategy": strategy,
            "name": name,
            "output_dir": output_dir,
        }
        if target is None:
            raise SeqlabError(
                "say what to train: `seqlab train classify --arch cnn --data rt-polarity` or `seqlab train CONFIG.yaml`"
            )
        if target.endswith((".yaml", ".yml")):
            given = [
                f"{api.SHORTCUTS[k]}={json.dumps(v) if isinstance(v, str) else v}" for k, v in settings.items() if v is not None
            ]
            cfg = load_config(target, [*given, *(overrides or [])])
        else:
            cfg = api.configure(target, overrides or [], **settings)
        run_dir = api.train(cfg)
    if is_rank_zero():  # (DDP: the other ranks wrote nothing to report)
        _report_run(run_dir)
        if (run_dir / "report.html").is_file():
            console.print(f"report: {run_dir / 'report.html'}", highlight=False)


def _report_run(run_dir: Path) -> None:
    from seqlab.runs import task_of

    task = task_of(run_dir)
    reports = {"pretrain": report_pretrained, "lm": report_language_model, "tag": report_tagger, "translate": report_translation}
    if task in reports:
        return reports[task](run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    parts = [f"{split} accuracy {100 * metrics[split]['accuracy']:.2f}%" for split in ("valid", "test") if split in metrics]
    console.print(f"[green]trained[/green] {run_dir}  ({', '.join(parts) or 'no held-out data'}, {metrics['epochs']} epochs)")


# --------------------------------------------------------------------------- evaluate / predict

BackendOption = Annotated[
    str,
    typer.Option(
        help="torch; onnx or onnx-int8 (RUN/model.onnx, model.int8.onnx from `seqlab export`); auto: an hf run's "
        "model.int8.onnx, else model.onnx, else torch."
    ),
]


@app.command()
@handle_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run folder.")],
    data: Annotated[str, typer.Option(help="Built-in dataset or labelled .csv/.tsv/.jsonl file.")],
    text_column: Annotated[Optional[str], typer.Option(help="Column holding the text.")] = None,
    label_column: Annotated[Optional[str], typer.Option(help="Column holding the label.")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Confusion-matrix PNG (default RUN/confusion_matrix.png).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    backend: BackendOption = "auto",
    beam: Annotated[
        Optional[int], typer.Option(help="translate: beam size (1: greedy); default: the run's translate.beam.")
    ] = None,
    direction: Annotated[
        Optional[str], typer.Option(help="translate, built-in Tatoeba data: en-fr or fr-en (en-es, es-en); default: the run's.")
    ] = None,
) -> None:
    """Score a run on labelled data with its task's metrics: a classifier's accuracy, macro-F1
    and confusion matrix; a tagger's entity precision, recall and F1 per type; a translator's
    BLEU and chrF by source length; a language model's perplexity."""
    from seqlab import api, plots
    from seqlab.runs import task_of

    task = task_of(run)
    if task == "tag":
        return evaluate_tagger(run, data, as_json)
    if task == "translate":
        return evaluate_translation(run, data, beam=beam, as_json=as_json, direction=direction)
    if beam is not None or direction is not None:
        raise SeqlabError(f"--beam and --direction are for translate runs; {run} is a {task} run")
    if task == "lm":
        return evaluate_language_model(run, data, as_json)
    pipe = api.load_classifier(run, backend=backend)
    metrics = api.evaluate(pipe, data, text_column=text_column, label_column=label_column)
    image = plots.confusion_matrix(
        metrics["confusion_matrix"], metrics["labels"], plot or run / "confusion_matrix.png", title=f"{run.name} on {data}"
    )
    if as_json:
        print(json.dumps({**metrics, "confusion_matrix_png": str(image)}, indent=2))
        return
    console.print(
        f"{run} on {data}: accuracy [bold]{100 * metrics['accuracy']:.2f}%[/bold], macro-F1 {100 * metrics['macro_f1']:.2f}% "
        f"({metrics['examples']:,} examples, {metrics['sentences_per_second']:,.0f} sentences/s)"
    )
    table = Table("true \\ predicted", *metrics["labels"])
    for label, row in zip(metrics["labels"], metrics["confusion_matrix"]):
        table.add_row(label, *map(str, row))
    console.print(table)
    console.print(f"confusion matrix: {image}")


@contextmanager
def _loading() -> Iterator[None]:
    """Load torch and a model without the cyclic garbage collector: they make ~165,000 objects
    that live as long as the process, which the collector would walk several times over while
    they are made (~0.15 s CPU) and find nothing to free. Frozen afterwards, later collections
    skip them too."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@app.command()
@handle_errors
def predict(
    run: Annotated[Path, typer.Argument(help="A run folder.")],
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts to classify.", show_default=False)] = None,
    input: Annotated[
        Optional[Path],
        typer.Option("--input", "-i", help="A .txt file (one text per line) or .csv/.tsv/.jsonl with a text column."),
    ] = None,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Write one JSON line per text here instead of printing.")
    ] = None,
    text_column: Annotated[Optional[str], typer.Option(help="Text column of --input.")] = None,
    backend: BackendOption = "auto",
) -> None:
    """Label and class probabilities for each text."""
    from seqlab.data.readers import read_texts

    if output is not None:
        check_writable(output)  # before the model is loaded
    with _loading():
        from seqlab import api

        pipe = api.load_classifier(run, backend=backend)
    items = list(texts or [])
    if input is not None:
        items += read_texts(input, text_column=text_column, max_chars=pipe.config.data.max_chars)
    if not items:
        raise SeqlabError("nothing to predict: give texts as arguments or --input FILE")
    predictions = pipe.predict(items)
    if output is not None:
        write_atomic(
            output,
            "".join(json.dumps({"text": text, **pred}, ensure_ascii=False) + "\n" for text, pred in zip(items, predictions)),
        )
        console.print(f"wrote {len(predictions):,} predictions to {output}")
        return
    for text, pred in zip(items, predictions):
        probs = "  ".join(f"{k}={v:.3f}" for k, v in pred["probabilities"].items())
        console.print(f"[bold]{pred['label']}[/bold]  {probs}  [dim]{text[:80]}[/dim]", highlight=False)


# --------------------------------------------------------------------------- compare / tour


@app.command()
@handle_errors
def compare(
    task: Annotated[
        str,
        typer.Argument(
            help="Task to compare on: classify or translate (--archs seq2seq,seq2seq-attn,transformer --data numbers-en-fr)."
        ),
    ],
    overrides: OverridesArg = None,
    data: Annotated[str, typer.Option(help="Built-in dataset or a .csv/.tsv/.jsonl file.")] = "rt-polarity",
    archs: Annotated[
        str,
        typer.Option(
            help="Comma-separated architectures or recipes (minilm, minilm-frozen, minilm-llrd, cnn-rand, cnn+glove, cnn+glove-static, cnn+spacy-md, transformer+mlm)."
        ),
    ] = "lstm,bilstm,cnn,transformer",
    cv: Annotated[
        Optional[int], typer.Option(help="k-fold cross-validation (Kim 2014 used 10 on MR); default: one held-out split.")
    ] = None,
    train_sizes: Annotated[
        Optional[str], typer.Option(help="Learning curve: train on these many examples, e.g. 100,500,2000,all.")
    ] = None,
    seeds: Annotated[
        int, typer.Option(help="Repeat every run with this many training seeds (and subsamples): mean ± std without --cv.")
    ] = 1,
    min_epoch_examples: Annotated[
        int,
        typer.Option(
            help="Repeat a smaller training set within each epoch up to this many examples, so small sets get enough steps (0: off)."
        ),
    ] = 2000,
    output: Annotated[Optional[Path], typer.Option(help="Folder for results.json, table.md, comparison.png.")] = None,
    budget: Annotated[
        Optional[str],
        typer.Option(help="translate: every entry's training time, e.g. 45m, 2h (train.max_minutes; the lr decay ends with it)."),
    ] = None,
) -> None:
    """Train several architectures on the same data and compare them in a table and a chart.

    Overrides apply to every architecture; prefix one with ARCH: to aim it at one
    (cnn:model.num_filters=100).
    """
    from seqlab import api

    if task == "translate":  # the classify defaults of --data and --archs mean "the translate defaults"
        return compare_translation(
            None if data == "rt-polarity" else data,
            None if archs == "lstm,bilstm,cnn,transformer" else archs,
            overrides or [],
            seeds,
            output,
            budget,
        )
    if task != "classify":
        raise SeqlabError(f"unknown task {task!r}; seqlab compares: classify, translate")
    if budget is not None:
        raise SeqlabError("--budget is for compare translate; a classifier comparison trains for train.epochs")
    rows, folder = api.compare(
        "classify",
        archs,
        overrides or [],
        data=data,
        output_dir=output,
        seeds=seeds,
        cv=cv,
        train_sizes=train_sizes,
        min_epoch_examples=min_epoch_examples,
    )
    papers = any(r.get("published") is not None for r in rows)
    table = Table(
        "arch",
        "train ex.",
        "runs",
        "accuracy",
        *(["published"] if papers else []),
        "macro-F1",
        "parameters",
        "train s/run",
        "sent/s",
        title=f"{data} · {f'{cv}-fold CV' if cv else 'test split'}{f' · {seeds} seeds' if seeds > 1 else ''}",
    )
    for r in rows:
        paper = [f"{r['published']:.1f} ({r['published_by']})" if r.get("published") is not None else "–"] if papers else []
        table.add_row(
            r["arch"],
            f"{r['train_size']:,}",
            str(r["runs"]),
            f"{100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_std']:.2f}",
            *paper,
            f"{100 * r['macro_f1_mean']:.2f}",
            f"{r['parameters']:,}",
            f"{r['train_seconds']:.1f}",
            f"{r['sentences_per_second']:,.0f}",
        )
    console.print(table)
    chart = "learning_curve.png" if train_sizes and "," in train_sizes else "comparison.png"
    console.print(f"results: {folder}/results.json, {folder}/table.md, chart: {folder}/{chart}")


@app.command()
@handle_errors
def tour(
    output: Annotated[Path, typer.Option(help="Where the tour's runs and plots go.")] = Path("runs/tour"),
) -> None:
    """The course's practical tasks, one after another, on real data (a few minutes on a laptop CPU)."""
    from seqlab.tour import run_tour

    run_tour(output, console)


app.command("fill-mask")(fill_mask)
app.command()(generate)
app.command()(perplexity)
app.command("export")(export_run)
app.command("report")(report_run)
app.command()(ner)
app.command()(translate)
app.command()(augment)
app.command()(serve)


def main() -> None:
    """Console entry point: expected errors are one line; Ctrl-C is a quiet exit 130."""
    try:
        app()
    except KeyboardInterrupt:
        print_error("interrupted")
        sys.exit(130)
    finally:
        # The process ends here. Interpreter shutdown runs the cyclic garbage collector over every
        # object still alive (after `import torch`, some 165,000): frozen, they are skipped, which
        # takes ~0.25 s CPU off every command (docs/benchmarks.md, "Time to first prediction").
        gc.freeze()


if __name__ == "__main__":
    main()
