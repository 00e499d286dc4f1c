"""`seqlab pretrain mlm` and `seqlab fill-mask`: a thin skin over `api.pretrain` and `api.fill_mask`.

Mounted by the main CLI: `app.add_typer(pretrain_app, name="pretrain")` and
`app.command("fill-mask")(fill_mask)`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from seqlab.cli._errors import handle_errors
from seqlab.errors import SeqlabError

pretrain_app = typer.Typer(
    help="Pretrain a BERT-style encoder here: masked-LM, optionally with next-sentence prediction.",
    no_args_is_help=True,
)
_out = Console(soft_wrap=True, highlight=False)


@pretrain_app.command("mlm")
@handle_errors
def mlm(
    overrides: Annotated[
        Optional[list[str]],
        typer.Argument(
            help="Config overrides as section.key=value, e.g. pretrain.mask_prob=0.2 tokenizer.vocab_size=4000.",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        Optional[str],
        typer.Option(
            help="Text to pretrain on: shakespeare, a labelled built-in dataset (rt-polarity: each sentence its own "
            "document), or a .txt file (one sentence per line, blank lines between documents)."
        ),
    ] = None,
    nsp: Annotated[
        bool, typer.Option("--nsp", help="Also learn next-sentence prediction (needs documents of several sentences).")
    ] = False,
    preset: Annotated[Optional[str], typer.Option(help="Encoder size: tiny, small (default) or base.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum epochs (early stopping on val_loss may end sooner).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Examples per batch (default 32).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (default 0.001, AdamW).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (weights, examples, masks, batch order).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Run folder name under --output-dir.")] = None,
    output_dir: Annotated[Optional[str], typer.Option(help="Where run folders go (default runs/).")] = None,
    resume: Annotated[
        Optional[Path], typer.Option(help="Continue an unfinished pretraining run from its last checkpoint.")
    ] = None,
) -> None:
    """Pretrain a BERT-style encoder with masked-LM: `seqlab pretrain mlm --data shakespeare --nsp`.

    Then `seqlab fill-mask RUN "to be or not to [MASK]"` predicts masked words, and
    `seqlab train classify --arch transformer --init RUN` fine-tunes the encoder.
    """
    from seqlab import api
    from seqlab.config import build_config
    from seqlab.runs import is_rank_zero

    if resume is not None:
        if overrides or data or nsp:
            raise SeqlabError("--resume continues a run with its saved config; drop --data, --nsp and overrides")
        run_dir = api.pretrain(None, resume=resume)
        if is_rank_zero():  # (DDP: the other ranks wrote nothing to report)
            report_pretrained(run_dir)
        return
    if data is None:
        raise SeqlabError("say what to pretrain on: --data shakespeare, --data rt-polarity or --data FILE.txt")
    flags = {
        "data.train": data,
        "model.preset": preset,
        "train.epochs": epochs,
        "train.batch_size": batch_size,
        "train.lr": lr,
        "train.seed": seed,
        "name": name,
        "output_dir": output_dir,
        "pretrain.nsp": True if nsp else None,
    }
    given = [
        f"{key}={json.dumps(value) if isinstance(value, str) else value}" for key, value in flags.items() if value is not None
    ]
    cfg = build_config({"task": "pretrain"}, [*given, *(overrides or [])])
    run_dir = api.pretrain(cfg)
    if is_rank_zero():  # (DDP, train.devices > 1: the other ranks wrote nothing to report)
        report_pretrained(run_dir)


def report_pretrained(run_dir: Path) -> None:
    """One line: the run folder, held-out MLM accuracy and perplexity, NSP accuracy, epochs."""
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    held = metrics.get("test") or metrics.get("valid")
    split = "test" if "test" in metrics else "valid"
    parts = []
    if held:
        parts.append(f"{split} MLM accuracy {100 * held['mlm_accuracy']:.2f}%, perplexity {held['perplexity']:.1f}")
        if "nsp_accuracy" in held:
            parts.append(f"NSP accuracy {100 * held['nsp_accuracy']:.2f}%")
    _out.print(f"[green]pretrained[/green] {run_dir}  ({', '.join(parts) or 'no held-out text'}, {metrics['epochs']} epochs)")


@handle_errors
def fill_mask(
    run: Annotated[Path, typer.Argument(help="A run folder made by `seqlab pretrain mlm`.")],
    text: Annotated[str, typer.Argument(help='Text with one or more [MASK], e.g. "to be or not to [MASK]".')],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Predictions to show per [MASK].")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the predictions as JSON.")] = False,
) -> None:
    """The likeliest words for each [MASK] in TEXT, with their probabilities."""
    from seqlab import api

    predictions = api.fill_mask(run, text, top_k)
    if as_json:
        print(json.dumps(predictions, indent=2, ensure_ascii=False))
        return
    for number, candidates in enumerate(predictions, 1):
        shown = "  ".join(f"{c['token']} {c['probability']:.3f}" for c in candidates)
        _out.print(f"[MASK] {number}: {shown}", markup=False)
