"""`seqlab generate` and `seqlab perplexity`: a thin skin over `api.load_generator`.

Registered by the main CLI: `app.command()(generate)`, `app.command()(perplexity)`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional, cast

import typer
from rich.console import Console

from seqlab.cli._errors import handle_errors
from seqlab.errors import SeqlabError

_out = Console(soft_wrap=True, highlight=False)

ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="An lm run folder, built-in smollm2-135m, a transformers folder, or a hub id (gpt2 where the hub is reachable).",
    ),
]


@handle_errors
def generate(
    prompts: Annotated[Optional[list[str]], typer.Argument(help="Prompt(s) to continue.", show_default=False)] = None,
    model: ModelOption = "smollm2-135m",
    max_new_tokens: Annotated[int, typer.Option(help="Tokens to add after the prompt.")] = 50,
    do_sample: Annotated[
        Optional[bool],
        typer.Option(
            "--sample/--greedy",
            help="Sample (default when a temperature, top-k or top-p is given) or take the likeliest token.",
            show_default=False,
        ),
    ] = None,
    temperature: Annotated[
        Optional[float],
        typer.Option(
            help="Sampling temperature (lower is more conservative; 0 = greedy, as in the OpenAI API, llama.cpp and vLLM)."
        ),
    ] = None,
    top_k: Annotated[Optional[int], typer.Option(help="Sample only among the k likeliest tokens (0: off).")] = None,
    top_p: Annotated[
        Optional[float], typer.Option(help="Nucleus sampling: the smallest set of tokens holding this probability, in (0, 1].")
    ] = None,
    repetition_penalty: Annotated[float, typer.Option(help="> 1 discourages tokens already in the text (CTRL).")] = 1.0,
    no_repeat_ngram_size: Annotated[int, typer.Option(help="Never repeat an n-gram of this size (0: off).")] = 0,
    num_beams: Annotated[int, typer.Option("--beams", help="Beam search with this many beams (1: greedy/sampling).")] = 1,
    length_penalty: Annotated[float, typer.Option(help="Beam search: score / length^penalty (> 1 favours longer text).")] = 1.0,
    stop: Annotated[Optional[list[str]], typer.Option(help="Stop when the text produces this string (repeatable).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for reproducible sampling.")] = None,
    dtype: Annotated[
        str,
        typer.Option(
            help="Weights for decoding: fp32; bf16 (CPUs with bf16 instructions); int8 (dynamic quantisation: fastest, but it can cost much perplexity); bf16-int8 (weight-only int8, bf16 activations); bf16-int4 (weight-only 4-bit groups as llama.cpp's Q4_1, output layer int8, bf16 activations: the fewest bytes); auto (bf16-int8 where the CPU has bf16, else fp32). `seqlab bench generate` compares them."
        ),
    ] = "fp32",
    engine: Annotated[
        str,
        typer.Option(
            help="hf: run the model in transformers; seqlab: run GPT-2 weights in seqlab's own GPT, Llama weights (smollm2-135m) in seqlab's own Llama (fewer operations per step)."
        ),
    ] = "hf",
    compile_model: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="torch.compile seqlab's model (with --engine seqlab or an lm run): faster steps after minutes of compilation; for long or repeated generation.",
        ),
    ] = False,
    input: Annotated[Optional[Path], typer.Option("--input", help="A file with one prompt per line.")] = None,
    batch_size: Annotated[
        int, typer.Option(help="Prompts decoded together (left-padded; a row that ends stops while the others go on).")
    ] = 16,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            help='Write one JSON line per prompt ({"prompt", "generated"}) to this file, atomically, instead of printing.',
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per prompt.")] = False,
) -> None:
    """Continue text with a language model: `seqlab generate --model smollm2-135m "The capital of France is"`.

    The course's GPT-2 call: `seqlab generate --model gpt2 "Natural Language Processing with
    transformers is" --max-new-tokens 80 --temperature 0.7 --top-k 50 --top-p 0.95`. One prompt at
    a terminal streams its tokens as they come. Many prompts: `seqlab generate --input prompts.txt
    --batch-size 16 --output generated.jsonl`.
    """
    from seqlab import api
    from seqlab.decoding import GenerationConfig

    texts = list(prompts or [])
    if input is not None:
        texts += _read_prompts(input)
    if not texts:
        raise SeqlabError('give a prompt: seqlab generate --model smollm2-135m "The capital of France is"')
    sampling = do_sample if do_sample is not None else any(v is not None for v in (temperature, top_k, top_p))
    settings = {
        "max_new_tokens": max_new_tokens,
        "do_sample": sampling,
        "repetition_penalty": repetition_penalty,
        "no_repeat_ngram_size": no_repeat_ngram_size,
        "num_beams": num_beams,
        "length_penalty": length_penalty,
        "stop": stop or [],
        "seed": seed,
    }
    settings.update({k: v for k, v in {"temperature": temperature, "top_k": top_k, "top_p": top_p}.items() if v is not None})
    GenerationConfig.create(**settings)  # a bad setting fails before the model loads (seconds for a large one)
    if batch_size < 1:
        raise SeqlabError(f"--batch-size must be at least 1, got {batch_size}")
    pipe = api.load_generator(model, dtype=dtype, engine=engine, compile=compile_model)
    if output is not None:
        _write_generations(output, texts, pipe.generate(texts, batch_size=batch_size, **settings))
        return
    if len(texts) == 1 and num_beams == 1 and not as_json:
        _out.print(texts[0], end="", style="bold")
        for piece in pipe.stream(texts[0], **settings):
            _out.print(piece, end="", markup=False)
            sys.stdout.flush()
        _out.print()
        return
    for prompt, text in zip(texts, pipe.generate(texts, batch_size=batch_size, **settings)):
        if as_json:
            _out.print(json.dumps({"prompt": prompt, "generated": text}, ensure_ascii=False), markup=False)
        else:
            _out.print(f"[bold]{prompt}[/bold]{text}")


def _write_generations(path: Path, prompts: list[str], texts: list[str]) -> None:
    """One JSON line per prompt, all or nothing (`seqlab.files`)."""
    from seqlab.files import atomic_open

    with atomic_open(path) as handle:
        for prompt, text in zip(prompts, texts):
            handle.write(json.dumps({"prompt": prompt, "generated": text}, ensure_ascii=False) + "\n")
    _out.print(f"wrote {len(texts)} generation(s) to {path}", markup=False)


def _read_prompts(path: Path) -> list[str]:
    from seqlab.data.readers import read_texts

    return read_texts(path)


@handle_errors
def perplexity(
    run: Annotated[Optional[str], typer.Argument(help="An lm run folder (or give --model).", show_default=False)] = None,
    model: Annotated[
        Optional[str],
        typer.Option("--model", "-m", help="An lm run folder, built-in smollm2-135m, a transformers folder, or a hub id."),
    ] = None,
    data: Annotated[str, typer.Option(help="Text to score: a .txt file, shakespeare, wikitext-2, or a built-in dataset.")] = "",
    split: Annotated[
        Optional[str],
        typer.Option(
            help="A standard split of --data: wikitext-2 --split test is wikitext-2:test (valid, test; default: the name's own)."
        ),
    ] = None,
) -> None:
    """Perplexity and bits per character of a language model on held-out text:
    `seqlab perplexity RUN --data wikitext-2 --split test`."""
    from seqlab import api
    from seqlab.data.datasets import builtin_split
    from seqlab.tasks.lm.inference import load_text

    if (run is None) == (model is None):
        raise SeqlabError("give the model once: `seqlab perplexity RUN --data TEXT` or `--model NAME`")
    if not data:
        raise SeqlabError("say what to score: --data FILE.txt, --data wikitext-2 --split test, ...")
    if split is not None:
        if ":" in data or builtin_split(f"{data}:{split}") is None:  # (a dataset without splits raises its own line)
            raise SeqlabError(f"--split applies to a built-in dataset with standard splits, such as wikitext-2; not {data}")
        data = f"{data}:{split}"
    model = model or run  # exactly one was given (checked above)
    scores = api.load_generator(cast(str, model)).perplexity(load_text(data))
    _out.print(
        f"{model} on {data}: loss {scores['loss']:.4f} nats/token, perplexity {scores['perplexity']:.2f}, "
        f"{scores['bits_per_char']:.3f} bits/char ({scores['tokens']:,} tokens, {scores['characters']:,} characters)"
    )


def evaluate_language_model(run: Path, data: str, as_json: bool) -> None:
    """`seqlab evaluate RUN --data TEXT` for an lm run: loss, perplexity, bits per character."""
    from seqlab import api

    scores = api.evaluate(run, data)
    if as_json:
        print(json.dumps(scores, indent=2))
        return
    _out.print(
        f"{run} on {data}: loss {scores['loss']:.4f} nats/token, perplexity {scores['perplexity']:.2f}, "
        f"{scores['bits_per_char']:.3f} bits/char ({scores['tokens']:,} tokens, {scores['characters']:,} characters)"
    )


def report_language_model(run_dir: Path) -> None:
    """One line: the run folder, held-out loss, perplexity and bits per character, epochs."""
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    split = "test" if "test" in metrics else "valid"
    held = metrics.get(split)
    shown = (
        f"{split} loss {held['loss']:.4f}, perplexity {held['perplexity']:.2f}, {held['bits_per_char']:.3f} bits/char"
        if held
        else "no held-out text"
    )
    _out.print(f"[green]trained[/green] {run_dir}  ({shown}, {metrics['epochs']} epochs)")
