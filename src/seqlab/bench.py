"""Decoding speed, side by side: seqlab's paths against Hugging Face `generate` (`seqlab bench generate`).

Protocol: greedy decoding at batch 1 of `new_tokens` tokens after a `prompt_tokens`-token prompt.
A path's time is the whole call (prompt and every step), and tokens/s = new_tokens / time. Every
path decodes once untimed (warm-up: allocations, kernel choice), then the timed repeats go round
robin over the paths of a model (path 1, 2, ..., 1, 2, ...), so a change in the machine's load
touches them alike; the median repeat is reported.

Paths (`PATHS`): `hf-fp32` is `transformers` `generate` in float32, the reference; the `seqlab-*`
paths run `seqlab.decoding.generate` with the weights converted by `quantize.with_dtype`.
GPT-2-format models run in seqlab's own GPT (`GPT.from_gpt2`), Llama models (SmolLM2) in
seqlab's own Llama (`Llama.from_llama`); the `-compiled` paths also compile it with
`torch.compile` (their warm-up decodes the full length, paying every compilation).
`seqlab-fp32-nocache` recomputes the whole sequence at every step.

Models (`MODELS`): `gpt2-shapes` is GPT-2 small's configuration with random weights (seeded; fine
for speed, so no perplexity), `gpt2-tiny` a 2-layer one for tests, and `smollm2-135m` the real
built-in model, whose prompt is the start of held-out Shakespeare (the last 10% of the built-in
text) and whose perplexity is measured on the next `ppl_tokens` tokens, per path.

Memory: with `isolate=True` each path lives in its own worker process (spawned), which builds and
converts its model once and then decodes on request, so paths still alternate. Peak memory is
that process's peak resident set size (VmHWM) during a timed decode: after building, the memory
freed by the conversion is handed back (`malloc_trim`), and the peak is reset to the current
size (`/proc/self/clear_refs`, Linux) just before the decode. It therefore covers the resident
weights, the cache, the activations and the runtime (torch and transformers themselves, about
450 MB here), not the loading. Where the reset is impossible it is the process's lifetime peak
(`resource.getrusage`), and `peak_rss_note` says so. In-process (`isolate=False`, tests) no
memory is reported.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from seqlab.errors import SeqlabError


@dataclass(frozen=True)
class DecodePath:
    """One way to decode: who drives it, the weights' dtype, and whether a KV cache is kept."""

    name: str
    engine: str  # "hf" (transformers generate) or "seqlab" (seqlab.decoding)
    dtype: str  # a `quantize.DTYPES` key
    cache: bool = True
    compile: bool = False  # torch.compile seqlab's model (the warm-up pays the compilation)


PATHS = {
    p.name: p
    for p in (
        DecodePath("hf-fp32", "hf", "fp32"),
        DecodePath("seqlab-fp32", "seqlab", "fp32"),
        DecodePath("seqlab-fp32-nocache", "seqlab", "fp32", cache=False),
        DecodePath("seqlab-bf16", "seqlab", "bf16"),
        DecodePath("seqlab-int8", "seqlab", "int8"),
        DecodePath("seqlab-bf16-int8", "seqlab", "bf16-int8"),
        DecodePath("seqlab-bf16-int4", "seqlab", "bf16-int4"),
        DecodePath("seqlab-fp32-compiled", "seqlab", "fp32", compile=True),
        DecodePath("seqlab-bf16-int4-compiled", "seqlab", "bf16-int4", compile=True),
    )
}

# GPT-2 configurations with random weights (transformers.GPT2Config keyword arguments).
GPT2_SHAPES: dict[str, dict[str, Any]] = {
    "gpt2-shapes": {},  # GPT-2 small: 12 layers × 768, 124M parameters
    "gpt2-tiny": {
        "n_layer": 2,
        "n_head": 2,
        "n_embd": 32,
        "vocab_size": 100,
        "n_positions": 512,
        "bos_token_id": 0,
        "eos_token_id": 0,
    },
}
MODELS = [*GPT2_SHAPES, "smollm2-135m"]


def default_paths(model: str) -> list[str]:
    """Every path but the compiled one (its compilation takes minutes; name it in `--paths`);
    without a cache only for the GPT-2 shapes (recomputing a 30-layer model at every step takes
    minutes per run and shows nothing new)."""
    return [name for name, p in PATHS.items() if not p.compile and (p.cache or model in GPT2_SHAPES)]


@dataclass(frozen=True)
class BenchSettings:
    new_tokens: int = 128
    prompt_tokens: int = 32
    repeats: int = 3
    threads: int | None = None  # torch threads per path; None: torch's default
    ppl_tokens: int = 2048  # held-out tokens for perplexity (real weights only)
    isolate: bool = True  # a worker process per path (peak memory per path)


# ---------------------------------------------------------------------------------------------
# One path of one model: build, decode, score


class _Runner:
    """A path's model, its prompt and its decode call."""

    def __init__(
        self, model: str, path: DecodePath, settings: BenchSettings, prompt: torch.Tensor, eval_ids: torch.Tensor | None
    ):
        from seqlab import decoding
        from seqlab.tasks.lm import pipeline as generation
        from seqlab.tasks.lm import quantize

        self.path, self.settings = path, settings
        self.prompt, self.eval_ids = prompt, eval_ids
        hf_model = _random_gpt2(model) if model in GPT2_SHAPES else _smollm2()
        if path.engine == "hf":
            self.model: Any = hf_model  # a transformers model (.generate) or, below, seqlab's GPT / Llama
            self.lm = None
            return
        # seqlab's own GPT (GPT-2 shapes) or Llama (SmolLM2) with the same weights
        hf_model = generation._as_seqlab_gpt(hf_model, model)
        self.model = quantize.with_dtype(hf_model, path.dtype)
        if path.compile:
            generation.compiled(self.model)
        self.lm = decoding.as_incremental(self.model) if path.cache else _Recompute(self.model)

    def decode(self, new_tokens: int | None = None) -> list[int]:
        """Greedy decoding of the prompt → the new token ids."""
        from seqlab import decoding

        n = new_tokens or self.settings.new_tokens
        if self.lm is None:
            with torch.inference_mode():
                out = self.model.generate(
                    self.prompt, attention_mask=torch.ones_like(self.prompt), max_new_tokens=n, do_sample=False
                )
            return out[0, self.prompt.size(1) :].tolist()
        return decoding.generate(self.lm, self.prompt, None, decoding.GenerationConfig(max_new_tokens=n))[0]

    def warm_up(self) -> None:
        """Decode once untimed: 16 tokens, or for a compiled path the full length, so that every
        recompilation (torch.compile specialises the first lengths it sees, then turns them
        dynamic) happens before the clock runs."""
        self.decode(self.settings.new_tokens if self.path.compile else min(16, self.settings.new_tokens))

    def timed(self, isolated: bool) -> dict[str, Any]:
        reset = isolated and _reset_peak_rss()
        start = time.perf_counter()
        tokens = self.decode()
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "tokens": tokens, "peak_rss_mb": _peak_rss_mb() if isolated else None, "peak_reset": reset}

    def perplexity(self) -> float | None:
        """Perplexity of the held-out tokens under this path's weights (None: random weights)."""
        if self.eval_ids is None or not self.path.cache:
            return None
        from seqlab.tasks.lm import inference as lm

        return lm.evaluate(self.model, self.eval_ids, 1, block=512, batch_size=4)["perplexity"]


class _Recompute:
    """Decoding without a KV cache: every step runs the model over the whole sequence again
    (only the last position's logits are computed, as with the cache)."""

    def __init__(self, model: torch.nn.Module):
        from seqlab.decoding import _context_length

        self.model = model
        self.context_length = _context_length(model)

    @torch.inference_mode()
    def _last_logits(self, ids: torch.Tensor) -> torch.Tensor:
        from seqlab.models.gpt import GPT
        from seqlab.models.llama import Llama

        if isinstance(self.model, (GPT, Llama)):
            return self.model(ids, logits_to_keep=1).logits[:, -1].float()
        return self.model(input_ids=ids, use_cache=False, logits_to_keep=1).logits[:, -1].float()

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._last_logits(input_ids), input_ids

    def step(self, tokens: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.cat([ids, tokens[:, None]], dim=1)
        return self._last_logits(ids), ids

    def reorder(self, ids: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return ids.index_select(0, index)


def _random_gpt2(name: str) -> torch.nn.Module:
    """A seeded random GPT-2 of the named shape that never stops early (no eos): every process
    builds the same weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**GPT2_SHAPES[name])).eval()
    model.generation_config.eos_token_id = None  # decode exactly new_tokens, like seqlab's paths
    model.generation_config.pad_token_id = 0
    return model


def _smollm2() -> torch.nn.Module:
    """The built-in SmolLM2-135M, never stopping early."""
    from seqlab import hub

    model, _ = hub.load_causal_lm("smollm2-135m")
    model.generation_config.eos_token_id = None  # decode exactly new_tokens
    return model


def _inputs(model: str, settings: BenchSettings) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(the (1, prompt_tokens) prompt, the held-out ids for perplexity or None), made once by
    the parent: random ids for random weights; for SmolLM2 the start of held-out Shakespeare
    (the last 10% of the built-in text) and the tokens after it."""
    if model in GPT2_SHAPES:
        from transformers import GPT2Config

        vocab = GPT2Config(**GPT2_SHAPES[model]).vocab_size
        return torch.randint(0, vocab, (1, settings.prompt_tokens), generator=torch.Generator().manual_seed(1)), None
    from transformers import AutoTokenizer

    from seqlab import hub
    from seqlab.tasks.lm.inference import load_text

    tokenizer = AutoTokenizer.from_pretrained(hub.resolve_causal_lm(model))
    text = load_text("shakespeare", max_chars=100_000_000)
    held_out = text[int(0.9 * len(text)) :][: 8 * (settings.prompt_tokens + settings.ppl_tokens)]
    ids = torch.tensor(tokenizer(held_out, add_special_tokens=False)["input_ids"])
    end = settings.prompt_tokens + settings.ppl_tokens
    return ids[None, : settings.prompt_tokens], ids[settings.prompt_tokens : end]


def _trim_heap() -> None:
    """Hand the memory freed while loading and converting back to the system (glibc keeps it
    in its heap otherwise), so that the resident size is the path's, not its conversion's."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    """Reset this process's peak resident set size to its current size (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    """This process's peak resident set size in MB (VmHWM; else getrusage's lifetime peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KB on Linux


# ---------------------------------------------------------------------------------------------
# Workers: one process per path, driven over a pipe


def _serve(conn: Any, model: str, path: DecodePath, settings: BenchSettings, inputs: tuple) -> None:
    """A worker process: build the runner, then answer ("warmup" | "timed" | "ppl" | "stop")."""
    try:
        if settings.threads:
            torch.set_num_threads(settings.threads)
        runner = _Runner(model, path, settings, *inputs)
        _trim_heap()
        conn.send(("ok", None))
        while True:
            try:
                command = conn.recv()
            except EOFError:  # the parent is gone
                return
            if command == "stop":
                return
            result: dict[str, Any] | float | None
            if command == "warmup":
                runner.warm_up()
                result = None
            elif command == "timed":
                result = runner.timed(isolated=True)
            else:
                result = runner.perplexity()
            conn.send(("ok", result))
    except Exception as err:  # noqa: BLE001 (any failure is reported to the parent, which raises it)
        conn.send(("error", f"{type(err).__name__}: {err}"))


class _Worker:
    """A path in its own process; `call(command)` waits for its answer."""

    def __init__(self, model: str, path: DecodePath, settings: BenchSettings, inputs: tuple):
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, model, path, settings, inputs), daemon=True)
        self.process.start()
        self.name = f"{model} {path.name}"
        self._answer()  # built

    def _answer(self) -> Any:
        try:
            status, value = self.conn.recv()
        except EOFError:
            raise SeqlabError(f"benchmark worker for {self.name} died (out of memory?)") from None
        if status == "error":
            raise SeqlabError(f"benchmark {self.name}: {value}")
        return value

    def call(self, command: str) -> Any:
        self.conn.send(command)
        return self._answer()

    def close(self) -> None:
        try:
            self.conn.send("stop")
        except OSError:
            pass
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()


class _InProcess:
    """The same interface without a process (tests; no memory figures)."""

    def __init__(self, model: str, path: DecodePath, settings: BenchSettings, inputs: tuple):
        self.runner = _Runner(model, path, settings, *inputs)

    def call(self, command: str) -> Any:
        if command == "warmup":
            return self.runner.warm_up()
        if command == "timed":
            return self.runner.timed(isolated=False)
        return self.runner.perplexity()

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# The benchmark


def bench_generate(
    models: list[str],
    paths: list[str] | None = None,
    settings: BenchSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the decoding benchmark (see the module docstring).

    Args:
        models: `MODELS` names.
        paths: `PATHS` names (default: `default_paths(model)`); `hf-fp32` is always run first,
            since speed-ups and token equality are measured against it.
        settings: lengths, repeats, threads, isolation.
        progress: called with a line of text as the benchmark advances.

    Returns:
        One row per (model, path): model, path, dtype, cache, threads, tokens_per_s, ms_per_token,
        seconds (every repeat), peak_rss_mb, peak_rss_note, speedup_vs_hf (median time of
        hf-fp32 / this path's), same_tokens_as_hf, first_difference (index of the first new
        token that differs from hf-fp32's, or None), perplexity and ppl_change_pct (vs hf-fp32;
        None for random weights).
    """
    settings = settings or BenchSettings()
    say = progress or (lambda line: None)
    for name in models:
        if name not in MODELS:
            raise SeqlabError(f"unknown benchmark model {name!r}; choose {', '.join(MODELS)}")
    unknown = [p for p in paths or [] if p not in PATHS]
    if unknown:
        raise SeqlabError(f"unknown benchmark path {unknown[0]!r}; choose {', '.join(PATHS)}")
    if settings.repeats < 1 or settings.new_tokens < 1 or settings.prompt_tokens < 1:
        raise SeqlabError("repeats, new tokens and prompt tokens must be at least 1")
    rows = []
    for model in models:
        chosen = ["hf-fp32"] + [p for p in (paths or default_paths(model)) if p != "hf-fp32"]
        rows += _bench_model(model, [PATHS[p] for p in chosen], settings, say)
    return rows


def _bench_model(model: str, paths: list[DecodePath], settings: BenchSettings, say: Callable[[str], None]) -> list[dict]:
    kind = _Worker if settings.isolate else _InProcess
    inputs = _inputs(model, settings)
    workers: dict[str, Any] = {}
    try:
        for path in paths:
            say(f"{model}: loading {path.name}")
            workers[path.name] = kind(model, path, settings, inputs)
        for name, worker in workers.items():
            say(f"{model}: warm-up {name}")
            worker.call("warmup")
        runs: dict[str, list[dict]] = {name: [] for name in workers}
        for repeat in range(settings.repeats):
            for name, worker in workers.items():
                result = worker.call("timed")
                runs[name].append(result)
                say(
                    f"{model}: repeat {repeat + 1}/{settings.repeats} {name}: "
                    f"{settings.new_tokens / result['seconds']:.1f} tokens/s"
                )
        perplexities: dict[str, float | None] = {}
        for name, worker in workers.items():
            if model in GPT2_SHAPES:
                perplexities[name] = None
                continue
            say(f"{model}: perplexity {name}")
            perplexities[name] = worker.call("ppl")
    finally:
        for worker in workers.values():
            worker.close()
    return _rows(model, paths, runs, perplexities, settings)


def _rows(
    model: str,
    paths: list[DecodePath],
    runs: dict[str, list[dict]],
    perplexities: dict[str, float | None],
    settings: BenchSettings,
) -> list[dict]:
    reference_time = statistics.median(r["seconds"] for r in runs["hf-fp32"])
    reference_tokens = runs["hf-fp32"][0]["tokens"]
    reference_ppl = perplexities.get("hf-fp32")
    rows = []
    for path in paths:
        results = runs[path.name]
        seconds = statistics.median(r["seconds"] for r in results)
        tokens = results[0]["tokens"]
        differs = next((i for i, (a, b) in enumerate(zip(tokens, reference_tokens)) if a != b), None)
        if differs is None and len(tokens) != len(reference_tokens):
            differs = min(len(tokens), len(reference_tokens))
        peaks = [r["peak_rss_mb"] for r in results if r["peak_rss_mb"] is not None]
        ppl = perplexities.get(path.name)
        rows.append(
            {
                "model": model,
                "path": path.name,
                "dtype": path.dtype,
                "cache": path.cache,
                "threads": settings.threads or torch.get_num_threads(),
                "new_tokens": settings.new_tokens,
                "prompt_tokens": settings.prompt_tokens,
                "tokens_per_s": settings.new_tokens / seconds,
                "ms_per_token": 1000 * seconds / settings.new_tokens,
                "seconds": [r["seconds"] for r in results],
                "peak_rss_mb": max(peaks) if peaks else None,
                "peak_rss_note": None if not peaks else ("decode" if all(r["peak_reset"] for r in results) else "lifetime"),
                "speedup_vs_hf": reference_time / seconds,
                "same_tokens_as_hf": differs is None,
                "first_difference": differs,
                "perplexity": ppl,
                "ppl_change_pct": None if ppl is None or not reference_ppl else 100 * (ppl / reference_ppl - 1),
            }
        )
    return rows


COLUMNS = [
    "model",
    "path",
    "threads",
    "tokens/s",
    "ms/token",
    "peak RSS MB",
    "× HF fp32",
    "same tokens as HF",
    "perplexity",
    "Δ ppl",
]


def table_cells(row: dict[str, Any]) -> list[str]:
    """A row as the text of `COLUMNS`."""
    same = "yes" if row["same_tokens_as_hf"] else f"no (from token {row['first_difference']})"
    peak = (
        "—" if row["peak_rss_mb"] is None else f"{row['peak_rss_mb']:,.0f}" + ("*" if row["peak_rss_note"] == "lifetime" else "")
    )
    ppl = "—" if row["perplexity"] is None else f"{row['perplexity']:.3f}"
    change = "—" if row["ppl_change_pct"] is None else f"{row['ppl_change_pct']:+.2f}%"
    return [
        row["model"],
        row["path"],
        str(row["threads"]),
        f"{row['tokens_per_s']:.1f}",
        f"{row['ms_per_token']:.1f}",
        peak,
        f"{row['speedup_vs_hf']:.2f}×",
        same,
        ppl,
        change,
    ]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a GitHub markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(table_cells(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def settings_dict(settings: BenchSettings) -> dict[str, Any]:
    return asdict(settings)
