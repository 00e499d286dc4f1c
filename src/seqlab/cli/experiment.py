"""`seqlab experiment NAME [--quick]`: run one experiment, print its table, save table and plot.

A thin skin over `seqlab.experiments.*`; mounted by the main CLI as `seqlab experiment`.
Each experiment is one command below; keep each block self-contained.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from seqlab.cli._errors import handle_errors  # noqa: F401  (used by the commands below)
from seqlab.experiments import ExperimentResult

experiment_app = typer.Typer(
    help="The course's theory claims as experiments; each prints a table and saves a plot.", no_args_is_help=True
)
_out = Console(highlight=False, width=None if sys.stdout.isatty() else 180)

QuickOpt = Annotated[
    bool, typer.Option("--quick", help="A smoke run (seconds): tiny models and data; the table's shape, not a verdict.")
]
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

SeedOpt = Annotated[int, typer.Option(help="Seed of the synthetic data and the models' initialisation.")]


@experiment_app.command("parallelism")
@handle_errors
def parallelism_cmd(
    quick: QuickOpt = False,
    output: OutputOpt = Path("runs/experiments/parallelism"),
    seed: SeedOpt = 0,
    threads: Annotated[int, typer.Option(min=0, help="torch CPU threads while timing (0: as set, e.g. by OMP_NUM_THREADS).")] = 0,
) -> None:
    """Training tokens/s, time per epoch and forward time per layer against sequence length
    (16 … 512) for RNN, LSTM, GRU, CNN and Transformer of matched parameter counts (Q6, Q14, Q19)."""
    from seqlab.experiments import parallelism

    show(parallelism.run(quick, output, seed=seed, threads=threads or None), output)


@experiment_app.command("long-range")
@handle_errors
def long_range_cmd(quick: QuickOpt = False, output: OutputOpt = Path("runs/experiments/long-range"), seed: SeedOpt = 0) -> None:
    """Accuracy against distance k when the label is a token k positions back, behind
    distractors: RNN, LSTM and Transformer (Q2, Q13)."""
    from seqlab.experiments import long_range

    show(long_range.run(quick, output, seed=seed), output)


@experiment_app.command("positions")
@handle_errors
def positions_cmd(quick: QuickOpt = False, output: OutputOpt = Path("runs/experiments/positions"), seed: SeedOpt = 0) -> None:
    """Which marker came first? A Transformer with no, sinusoidal and learned position
    encodings; plots the encodings and their similarity by distance (Q15)."""
    from seqlab.experiments import positions

    show(positions.run(quick, output, seed=seed), output)


@experiment_app.command("bidirectional")
@handle_errors
def bidirectional_cmd(
    quick: QuickOpt = False, output: OutputOpt = Path("runs/experiments/bidirectional"), seed: SeedOpt = 0
) -> None:
    """Tag each word by the word after it: a bidirectional encoder against the same encoder
    with a causal mask (Q1, Q5, Q18)."""
    from seqlab.experiments import bidirectional

    show(bidirectional.run(quick, output, seed=seed), output)


@experiment_app.command("heads")
@handle_errors
def heads_cmd(
    quick: QuickOpt = False,
    output: OutputOpt = Path("runs/experiments/heads"),
    run: Annotated[
        Path | None,
        typer.Option("--run", help="A finished transformer classify run to inspect (default: train one on rt-polarity)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Training seed of the model trained here.")] = 13,
) -> None:
    """Per-head attention maps of a Transformer classifier on real sentences, what each head
    attends to, and test accuracy with each head removed (Q7, Q9, Q16)."""
    from seqlab.experiments import heads

    show(heads.run(quick, output, run_dir=run, seed=seed), output)


@experiment_app.command("decoder")
@handle_errors
def decoder_cmd(
    quick: QuickOpt = False,
    output: OutputOpt = Path("runs/experiments/decoder"),
    seed: Annotated[int, typer.Option(help="Training seed.")] = 13,
) -> None:
    """Step-by-step greedy decoding with the KV cache, decoder self- and cross-attention maps,
    and seq2seq with and without attention by source length (Q4, Q8, Q10, Q11, Q17)."""
    from seqlab.experiments import decoder

    show(decoder.run(quick, output, seed=seed), output)


@experiment_app.command("pretraining")
@handle_errors
def pretraining_cmd(
    quick: QuickOpt = False,
    output: OutputOpt = Path("runs/experiments/pretraining"),
    init: Annotated[
        Path | None,
        typer.Option("--init", help="A finished pretrain run to fine-tune (default: pretrain one here on the training texts)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 13,
) -> None:
    """An MLM-pretrained Transformer encoder fine-tuned against the same Transformer trained
    from scratch, across training-set sizes (Q1, Q12, Q20)."""
    from seqlab.experiments import pretraining

    show(pretraining.run(quick, output, init=init, seed=seed), output)


@experiment_app.command("attention-vs-fixed-context")
@handle_errors
def attention_vs_fixed_context_cmd(
    quick: QuickOpt = False,
    output: OutputOpt = Path("runs/experiments/attention-vs-fixed-context"),
    seed: Annotated[int, typer.Option(help="Training seed.")] = 13,
) -> None:
    """The seq2seq bottleneck in one picture: exact match by source length for an RNN
    encoder-decoder with one fixed context vector and the same with Bahdanau attention (Q2, Q3, Q11)."""
    from seqlab.experiments import attention_vs_fixed_context

    show(attention_vs_fixed_context.run(quick, output, seed=seed), output)


# --------------------------------------------------------------------------- augmentation (issue 7)


@experiment_app.command("augmentation")
@handle_errors
def augmentation_cli(
    quick: QuickOpt = False,
    output: OutputOpt = Path("runs/experiments/augmentation"),
    data: Annotated[str, typer.Option(help="Built-in dataset or labelled .csv/.tsv/.jsonl file.")] = "rt-polarity",
    train_sizes: Annotated[str, typer.Option(help="Training-set sizes before augmentation, e.g. 100,500,1000.")] = "",
    methods: Annotated[str, typer.Option(help="none,synonym,eda,backtranslate,contextual (none: the baseline).")] = "",
    archs: Annotated[str, typer.Option(help="Architectures, e.g. cnn,bilstm.")] = "",
    seeds: Annotated[int, typer.Option(help="Repeats with different seeds and subsamples (0: the preset's).")] = 0,
    n: Annotated[int, typer.Option("-n", help="Variants per training example (0: the preset's, 4).")] = 0,
    forward: Annotated[
        Path | None, typer.Option(help="backtranslate: English → pivot translate run or HF seq2seq folder.")
    ] = None,
    backward: Annotated[
        Path | None, typer.Option(help="backtranslate: pivot → English translate run or HF seq2seq folder.")
    ] = None,
    via: Annotated[
        str | None,
        typer.Option(help="backtranslate: both runs, RUN_EN_FR,RUN_FR_EN (e.g. trained on tatoeba-en-fr and tatoeba-fr-en)."),
    ] = None,
    mlm: Annotated[Path | None, typer.Option(help="contextual: a pretrain run or HF masked-LM folder.")] = None,
) -> None:
    """Does augmentation help? Test accuracy per training size, method and architecture, mean ± std over seeds."""
    from seqlab.errors import SeqlabError
    from seqlab.experiments import augmentation

    def numbers(text: str) -> list[int] | None:
        try:
            return [int(p) for p in text.split(",") if p.strip()] or None
        except ValueError:
            raise SeqlabError(f"--train-sizes takes whole numbers, e.g. 100,500,1000 (got {text!r})") from None

    def names(text: str) -> list[str] | None:
        return [p.strip() for p in text.split(",") if p.strip()] or None

    options: dict[str, dict[Any, Any]] = {
        "backtranslate": {k: v for k, v in (("forward", forward), ("backward", backward), ("via", via)) if v},
        "contextual": {"model": mlm} if mlm else {},
    }
    result = augmentation.run(
        quick,
        output,
        data=data,
        train_sizes=numbers(train_sizes),
        methods=names(methods),
        archs=names(archs),
        seeds=seeds or None,
        n=n or None,
        method_options=options,
    )
    show(result, output)
