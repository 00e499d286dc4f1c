"""`seqlab bench all`: every task's performance benchmark in one run, written into docs/benchmarks.md.

Each benchmark is one of the scripts in `benchmarks/` (or `seqlab bench generate`), run as its own
process (`BENCHMARKS`: the command, a smoke configuration for `--quick`, what it measures and the
ratio its task issue asks for). The scripts already take the median of their repeats and print
Markdown tables with the ratios; this module runs them one after the other, keeps their tables,
and writes one generated block into docs/benchmarks.md between `START` and `END`, headed by the
machine (CPU model, cores, SIMD flags, torch's CPU capability), the package versions and the load
average. Everything outside the markers (the hand-written sections) is left as it is.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from seqlab.errors import SeqlabError

START = "<!-- seqlab bench:start -->"
END = "<!-- seqlab bench:end -->"
SECTION = "## All benchmarks in one run (`seqlab bench all`)"

# The instruction-set extensions that decide which kernels run: vector width (AVX2, AVX-512),
# int8 dot products (VNNI), bf16 arithmetic (AVX512_BF16, AMX).
SIMD_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
PACKAGES = ("torch", "lightning", "transformers", "tokenizers", "onnxruntime", "onnx", "spacy", "numpy")


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: `python ARGS...` from the repository root. `{out}` in an argument becomes the
    folder for its files. `quick` is the smoke configuration (None: there is none; skipped)."""

    name: str
    issue: str
    measures: str
    ratio: str
    full: tuple[str, ...]
    quick: tuple[str, ...] | None


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "throughput",
        "task classify",
        "training tokens/s per architecture, length-bucketed vs random-order batches",
        "bucketed / random-order tokens/s",
        ("benchmarks/throughput.py", "--repeats", "5", "--batches", "40"),
        ("benchmarks/throughput.py", "--archs", "lstm,cnn,transformer", "--repeats", "1", "--batches", "2", "--batch-size", "8"),
    ),
    Benchmark(
        "onnx-vs-torch",
        "issue 3",
        "sentences/s of ONNX Runtime and PyTorch, fp32, same inputs",
        "ONNX Runtime / PyTorch sentences/s",
        ("benchmarks/onnx_vs_torch.py", "--archs", "cnn,bilstm,transformer", "--repeats", "5"),
        ("benchmarks/onnx_vs_torch.py", "--archs", "cnn", "--sentences", "32", "--repeats", "1"),
    ),
    Benchmark(
        "minilm-inference",
        "issue 3",
        "MiniLM-L6 encoder: seqlab's inference paths against HF fp32 eager",
        "speed-up of each path over HF fp32 eager",
        ("benchmarks/minilm_inference.py", "--repeats", "7"),
        ("benchmarks/minilm_inference.py", "--repeats", "1", "--batch", "4", "--length", "16"),
    ),
    Benchmark(
        "ner-speed",
        "issue 6",
        "words/s of seqlab's spaCy NER path against `nlp.pipe` on the same texts",
        "seqlab / nlp.pipe words/s (target ≥ 0.95)",
        ("benchmarks/ner_speed.py", "--texts", "1000", "--repeats", "5", "--batch-size", "256"),
        ("benchmarks/ner_speed.py", "--texts", "40", "--repeats", "1"),
    ),
    Benchmark(
        "generate",
        "issue 4 §4",
        "greedy decoding at batch 1: seqlab's paths against HF generate",
        "speed-up of each path over HF generate fp32",
        ("-m", "seqlab.cli.main", "bench", "generate", "--threads", "1,default"),
        (
            "-m",
            "seqlab.cli.main",
            "bench",
            "generate",
            "--models",
            "gpt2-tiny",
            "--repeats",
            "1",
            "--new-tokens",
            "8",
            "--prompt-tokens",
            "8",
            "--in-process",
        ),
    ),
    Benchmark(
        "lm-quality",
        "issue 4",
        "char GPT: held-out loss per second of training, seqlab against nanoGPT's baby GPT",
        "validation loss at equal training time (and tokens/s)",
        ("benchmarks/lm_quality.py", "--seconds", "64", "--plot", "{out}/lm_quality.png"),
        ("benchmarks/lm_quality.py", "--seconds", "2", "--eval-every", "2", "--plot", "{out}/lm_quality.png"),
    ),
    Benchmark(
        "ner-silver",
        "issue 6",
        "three taggers on silver NER: entity F1 and words/s against spaCy",
        "F1 and words/s of each tagger next to spaCy's",
        ("benchmarks/ner_silver.py", "--minutes", "15", "15", "25", "--output", "{out}/ner-silver"),
        None,
    ),
    Benchmark(
        "classify-cv",
        "task classify",
        "MR 10-fold cross-validation accuracy of CNN, BiLSTM, Transformer (Kim's protocol)",
        "accuracy against CNN-rand's published 76.1%",
        ("benchmarks/classify_cv.py", "--archs", "cnn,bilstm,transformer", "--output", "{out}/mr-cv10"),
        None,
    ),
    Benchmark(
        "batched-generate",
        "issue 19 §1",
        "aggregate tokens/s of batched greedy generation at batch 1/4/16: seqlab's pipeline against HF generate, smollm2-135m",
        "seqlab / HF tokens/s at the same batch size",
        ("benchmarks/batched_generate.py", "--batch-sizes", "1,4,16", "--new-tokens", "64", "--repeats", "3"),
        (
            "benchmarks/batched_generate.py",
            "--paths",
            "hf-fp32,seqlab-fp32",
            "--batch-sizes",
            "1,2",
            "--new-tokens",
            "4",
            "--repeats",
            "1",
        ),
    ),
    Benchmark(
        "serve-generate",
        "issue 19 §2",
        "streaming clients on /v1/generate (continuous batching, smollm2-135m, --engine seqlab) against one client at a time",
        "aggregate tokens/s, 16 clients / 1 client (target ≥ 4)",
        (
            "benchmarks/serve_load.py",
            "--task",
            "generate",
            "--run",
            "smollm2=smollm2-135m",
            "--engine",
            "seqlab",
            "--clients",
            "16",
            "--duration",
            "60",
            "--threads",
            "2",
        ),
        (
            "benchmarks/serve_load.py",
            "--task",
            "generate",
            "--run",
            "smollm2=smollm2-135m",
            "--engine",
            "seqlab",
            "--clients",
            "2",
            "--duration",
            "3",
            "--warmup",
            "1",
            "--new-tokens",
            "4",
            "--threads",
            "2",
        ),
    ),
)
BY_NAME = {b.name: b for b in BENCHMARKS}


@dataclass
class BenchRun:
    """What one benchmark printed: its Markdown tables (with the line before each), exit status, time."""

    benchmark: Benchmark
    command: list[str]
    returncode: int | None  # None: skipped
    seconds: float
    tables: str
    tail: str = ""


# --------------------------------------------------------------------------- the machine


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return ""


def machine_info(cpuinfo: str | None = None) -> dict:
    """CPU model, logical and physical cores, the SIMD flags present, torch's CPU capability,
    Python and package versions (without importing the packages), OS. `cpuinfo`: the text of
    /proc/cpuinfo (read when None)."""
    import torch

    text = _cpuinfo() if cpuinfo is None else cpuinfo
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
    present = set(flags.group(1).split()) if flags else set()
    cores = {
        (p, c) for p, c in re.findall(r"^physical id\s*:\s*(\d+)\s*$.*?^core id\s*:\s*(\d+)\s*$", text, re.MULTILINE | re.DOTALL)
    }
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": model.group(1).strip() if model else (platform.processor() or platform.machine()),
        "logical_cores": os.cpu_count(),
        "physical_cores": len(cores) or None,
        "simd": [f for f in SIMD_FLAGS if f in present],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions,
    }


# --------------------------------------------------------------------------- running


def select(only: str | None) -> list[Benchmark]:
    """The benchmarks named in `only` (comma-separated), in `BENCHMARKS` order; all when None."""
    if not only:
        return list(BENCHMARKS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise SeqlabError(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(BY_NAME)}")
    return [b for b in BENCHMARKS if b.name in names]


def repository_root() -> Path:
    """The source checkout holding `benchmarks/` (the scripts are not part of the installed package)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "benchmarks").is_dir():
        raise SeqlabError(f"no benchmarks/ folder next to {root / 'src'}: run `seqlab bench all` from a source checkout")
    return root


def run_benchmarks(
    benchmarks: Sequence[Benchmark],
    quick: bool,
    output: Path,
    root: Path,
    say: Callable[[str], None] = lambda _: None,
    timeout: float | None = None,
) -> list[BenchRun]:
    """Run each benchmark, one after the other, in its own process from `root`; a failure is
    recorded and the next one runs. Files a benchmark writes go under `output/<name>`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")]))}
    results = []
    for bench in benchmarks:
        args = bench.quick if quick else bench.full
        if args is None:
            say(f"{bench.name}: skipped (no smoke configuration)")
            results.append(BenchRun(bench, [], None, 0.0, ""))
            continue
        folder = (output / bench.name).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, *(a.replace("{out}", str(folder)) for a in args)]
        say(f"{bench.name}: {' '.join(command[1:])}")
        started = time.perf_counter()
        try:
            done = subprocess.run(command, check=False, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
            code, stdout, stderr = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as error:
            code, stdout, stderr = -1, _text(error.stdout), f"timed out after {timeout:g} s"
        seconds = time.perf_counter() - started
        (folder / "stdout.txt").write_text(stdout, encoding="utf-8")
        (folder / "stderr.txt").write_text(stderr, encoding="utf-8")
        tail = "\n".join((stderr or stdout).strip().splitlines()[-3:]) if code else ""
        results.append(BenchRun(bench, command, code, seconds, markdown_tables(stdout), tail))
        say(f"{bench.name}: exit {code}, {seconds:.0f} s")
    return results


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def markdown_tables(stdout: str) -> str:
    """The Markdown tables in a benchmark's output, each with the non-empty line before it (its
    settings) and the lines right after it that state a ratio (`a / b = x`)."""
    lines = stdout.splitlines()
    kept: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("|"):
            before = next((lines[j] for j in range(i - 1, max(i - 3, -1), -1) if lines[j].strip()), "")
            if before and not before.startswith("|") and before not in kept:
                kept.append(before)
            while i < len(lines) and lines[i].startswith("|"):
                kept.append(lines[i])
                i += 1
            while i < len(lines) and " = " in lines[i]:
                kept.append(lines[i])
                i += 1
            kept.append("")
            continue
        i += 1
    return "\n".join(kept).strip()


# --------------------------------------------------------------------------- the generated block


def render_block(
    runs: Sequence[BenchRun], machine: dict, quick: bool, load: tuple[float, float], when: dt.datetime | None = None
) -> str:
    """The Markdown between the markers: machine, versions, and each benchmark's command and tables."""
    when = when or dt.datetime.now(dt.timezone.utc)
    command = "seqlab bench all" + (" --quick" if quick else "")
    cores = f"{machine['logical_cores']} logical cores" + (
        f" ({machine['physical_cores']} physical)" if machine.get("physical_cores") else ""
    )
    lines = [
        f"_Generated by `{command}` on {when:%Y-%m-%d %H:%M} UTC; rerun it to refresh this block, do not edit it by hand._",
        "",
        (
            f"- **Machine**: {machine['cpu']}, {cores}, {machine['os']}; torch CPU capability "
            f"`{machine['torch_cpu_capability']}`, {machine['torch_threads']} torch threads in the parent process"
        ),
        f"- **SIMD flags**: {', '.join(machine['simd']) or 'none of ' + ', '.join(SIMD_FLAGS)}",
        f"- **Versions**: {', '.join(f'{k} {v}' for k, v in machine['versions'].items())}",
        f"- **Load average** (1 min): {load[0]:.2f} before, {load[1]:.2f} after (the machine may be shared)",
        "- Each benchmark reports the **median of its repeats** (see its script for the protocol).",
    ]
    if quick:
        lines.append(
            "- **Smoke configuration** (`--quick`): tiny sizes and one repeat, to check that every benchmark "
            "runs; these numbers are not measurements to compare. The hand-written sections above hold those."
        )
    for run in runs:
        bench = run.benchmark
        lines += [
            "",
            f"#### {bench.name} ({bench.issue})",
            "",
            f"{bench.measures[:1].upper()}{bench.measures[1:]}. Ratio: {bench.ratio}.",
            "",
        ]
        if run.returncode is None:
            lines.append("Skipped: no smoke configuration (a full run takes long; run it without `--quick`).")
            continue
        shown = " ".join(_shell_word(a) for a in ["python", *run.command[1:]])
        lines += [f"`{shown}` — exit {run.returncode}, {run.seconds:.0f} s", ""]
        if run.tables:
            lines.append(run.tables)
        if run.returncode:
            lines += ["", "```", run.tail or "(no output)", "```"]
    return "\n".join(lines) + "\n"


def _shell_word(arg: str) -> str:
    return arg if re.fullmatch(r"[\w./,:=@%+-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


def write_block(path: Path, block: str) -> None:
    """Put `block` between START and END in `path`, leaving every other line as it is. Without the
    markers, a section holding them is appended. Written to a temporary file first, then moved."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if not _has_markers(text, path):
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{START}\n{block}{END}\n"
    else:
        head, rest = text.split(START, 1)
        text = head + START + "\n" + block + END + rest.split(END, 1)[1]
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(text, encoding="utf-8")
    scratch.replace(path)


def bench_all(
    quick: bool,
    only: str | None,
    output: Path,
    docs: Path | None,
    say: Callable[[str], None] = lambda _: None,
    timeout: float | None = None,
) -> tuple[list[BenchRun], str]:
    """Run the selected benchmarks and (unless `docs` is None) write the block into `docs`.
    → (the runs, the block)."""
    benchmarks = select(only)
    root = repository_root()
    if docs is not None and docs.exists():
        _has_markers(docs.read_text(encoding="utf-8"), docs)  # broken markers fail before hours of benchmarks, not after
    before = os.getloadavg()[0]
    runs = run_benchmarks(benchmarks, quick, output, root, say, timeout)
    block = render_block(runs, machine_info(), quick, (before, os.getloadavg()[0]))
    if docs is not None:
        write_block(docs, block)
    return runs, block


def _has_markers(text: str, path: Path) -> bool:
    """True when `text` holds START then END once each, False when neither; else an error."""
    starts, ends = text.count(START), text.count(END)
    if starts == ends == 0:
        return False
    if starts == ends == 1 and text.index(START) < text.index(END):
        return True
    raise SeqlabError(f"{path}: the markers {START} / {END} must appear once each, in that order; fix them by hand")
