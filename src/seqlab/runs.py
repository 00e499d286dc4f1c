"""Run folders: what `train` writes and `load` reads.

```
runs/<name>/
  config.yaml        the full resolved config (re-running it reproduces the run)
  tokenizer.json     the vocabulary
  labels.json        label names, index order
  model.safetensors  the best weights (written after training: its absence marks an unfinished run)
  encoder/           arch hf only: the fine-tuned encoder, `save_pretrained` (transformers loads it)
  metrics.json       final evaluation
  manifest.json      seed, package versions, data hash, timings
  checkpoints/ logs/ for --resume and learning curves
```
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from torch import nn

from seqlab.config import RunConfig, load_config, save_config
from seqlab.data.tokenize import load_tokenizer
from seqlab.errors import SeqlabError

CONFIG, WEIGHTS, TOKENIZER, LABELS = "config.yaml", "model.safetensors", "tokenizer.json", "labels.json"
ENCODER = "encoder"  # a pretrained encoder's save_pretrained folder (arch hf); model.safetensors holds the head
METRICS, MANIFEST = "metrics.json", "manifest.json"


def run_dir_for(cfg: RunConfig) -> Path:
    name = cfg.name or f"{cfg.task}-{cfg.model.arch}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(cfg.output_dir) / name


def start_run(cfg: RunConfig) -> Path:
    """Create a fresh run folder and write its config; refuse to overwrite an existing run."""
    run_dir = run_dir_for(cfg)
    if run_dir.exists():
        hint = "" if (run_dir / WEIGHTS).exists() else f", or continue it with --resume {run_dir}"
        raise SeqlabError(f"run folder {run_dir} already exists; choose another name=...{hint}")
    run_dir.mkdir(parents=True)
    save_config(cfg, run_dir / CONFIG)
    return run_dir


def discard_run(run_dir: Path) -> None:
    """Remove a run folder that failed before it held anything worth resuming."""
    shutil.rmtree(run_dir, ignore_errors=True)


LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


@contextmanager
def guard_new_run(run_dir: Path, fresh: bool) -> Iterator[None]:
    """Remove a run folder this call created if anything fails before its first checkpoint,
    so a failure leaves nothing half-written; with a checkpoint, keep it for --resume."""
    try:
        yield
    except BaseException:
        if fresh and not (run_dir / LAST_CHECKPOINT).exists():
            discard_run(run_dir)
        raise


def raise_if_interrupted(interrupted: bool, run_dir: Path, resume_command: str) -> None:
    """Ctrl-C or SIGTERM ended training early: say how to continue (or that nothing was kept)."""
    if not interrupted:
        return
    if not (run_dir / LAST_CHECKPOINT).exists():
        raise SeqlabError("training interrupted before the first checkpoint; nothing was kept")
    raise SeqlabError(f"training interrupted; continue it with `{resume_command} --resume {run_dir}`")


def task_of(path: str | Path | None) -> str | None:
    """The task of a run folder's saved config (None when there is no config to read)."""
    config = Path(path) / CONFIG if path is not None else None
    return load_config(config).task if config is not None and config.is_file() else None


def resumable_config(run_dir: Path, task: str) -> RunConfig:
    """The config of an unfinished `task` run that `--resume` can continue; else one clear line."""
    if not (run_dir / CONFIG).is_file():
        raise SeqlabError(f"{run_dir} is not a seqlab run folder (no {CONFIG})")
    if (run_dir / WEIGHTS).exists():
        raise SeqlabError(f"run {run_dir} already finished; train a new one instead of --resume")
    if not (run_dir / LAST_CHECKPOINT).exists():
        raise SeqlabError(f"run {run_dir} has no {LAST_CHECKPOINT} to resume from")
    cfg = load_config(run_dir / CONFIG)
    if cfg.task != task:
        raise SeqlabError(f"run {run_dir} is a {cfg.task} run, not {task}")
    return cfg


def write_json(path: Path, payload: object) -> None:
    """Write JSON through a temporary file, so a crash never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def save_weights(model: nn.Module, path: Path, skip_prefix: str | None = None) -> None:
    """Save the state dict as safetensors (less the keys under `skip_prefix`, saved elsewhere)."""
    tmp = path.with_suffix(".tmp")
    state = {
        k: v.detach().contiguous() for k, v in model.state_dict().items()
        if skip_prefix is None or not k.startswith(skip_prefix)
    }
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(path)


def load_weights(model: nn.Module, path: Path, skip_prefix: str | None = None) -> None:
    """Load safetensors weights; every key of the model (outside `skip_prefix`) must be there."""
    try:
        state = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise SeqlabError(f"{path} is not a readable safetensors file ({err})") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if skip_prefix is None or not k.startswith(skip_prefix)]
    if missing or unexpected:
        raise SeqlabError(f"{path} does not match the model in config.yaml (missing {missing[:3]}, unexpected {unexpected[:3]})")


def data_hash(texts_and_labels: Iterable[tuple[str, str]]) -> str:
    """sha256 over the examples actually used, so a manifest pins the data, not just its name."""
    digest = hashlib.sha256()
    for text, label in texts_and_labels:
        digest.update(text.encode("utf-8") + b"\t" + label.encode("utf-8") + b"\n")
    return digest.hexdigest()


def manifest(cfg: RunConfig, data: dict, parameters: int, started: float, prepared: float, train_seconds: float,
             **extra: object) -> dict:
    """What a finished run records about itself: seed, versions, the data it saw (with hashes),
    size and timings (started/prepared are `time.perf_counter()` readings)."""
    return {
        "seed": cfg.train.seed,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": environment(),
        "data": data,
        **extra,
        "parameters": parameters,
        "timings": {"prepare_s": prepared - started, "train_s": train_seconds, "total_s": time.perf_counter() - started},
    }


def environment() -> dict[str, str]:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("seqlab", "torch", "lightning", "tokenizers", "torchmetrics", "safetensors"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


@dataclass
class RunFiles:
    """The parts of a finished classification run folder."""

    path: Path
    config: RunConfig
    tokenizer: Tokenizer
    labels: list[str]


def open_run(path: str | Path) -> RunFiles:
    """Read a run folder's config, tokenizer and labels, naming whatever is missing."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise SeqlabError(f"run folder {run_dir} does not exist; train one with `seqlab train classify ...`")
    if not (run_dir / CONFIG).is_file():
        raise SeqlabError(f"{run_dir} is not a seqlab run folder (no {CONFIG})")
    if not (run_dir / WEIGHTS).is_file():
        raise SeqlabError(f"run {run_dir} has no {WEIGHTS}: it did not finish; continue it with `seqlab train --resume {run_dir}`")
    config = load_config(run_dir / CONFIG)
    if config.task == "lm":
        raise SeqlabError(f"{run_dir} is a language model, not a classifier; use `seqlab generate --model {run_dir} PROMPT` or `seqlab perplexity --model {run_dir} --data FILE`")
    if config.task == "tag":
        raise SeqlabError(f"{run_dir} is a tagger, not a classifier; use `seqlab ner --model {run_dir} TEXT`")
    if config.task == "translate":
        raise SeqlabError(f"{run_dir} is a translation model, not a classifier; use `seqlab translate {run_dir} TEXT`")
    if config.task != "classify":
        raise SeqlabError(f"{run_dir} is a {config.task} run, not a classifier; use `seqlab fill-mask {run_dir} TEXT`, "
                          f"or fine-tune it with `seqlab train classify --arch transformer --init {run_dir}`")
    tokenizer = load_tokenizer(run_dir / TOKENIZER)
    return RunFiles(run_dir, config, tokenizer, read_labels(run_dir))


def read_labels(run_dir: Path) -> list[str]:
    path = run_dir / LABELS
    if not path.is_file():
        raise SeqlabError(f"{path} is missing: the run folder has no label names")
    return json.loads(path.read_text(encoding="utf-8"))
