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
  complete.json      the size and sha256 of every file above (its absence marks an unfinished run)
  report.html        the run drawn for a person (`seqlab.report`; derived, so complete.json does not record it)
  checkpoints/ logs/ for --resume and learning curves
  .lock              while a process writes the folder: its pid (a second writer is refused)
```

Nothing is half-written: every file goes through a temporary name and `os.replace`, and a
folder counts as a finished run only once `complete.json` exists; `check_finished` (called by
every loader) refuses a folder without it, or one whose files no longer have the recorded sizes.
Under DDP only rank 0 writes (`is_rank_zero`); the other ranks read what it wrote.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import socket
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
from seqlab.files import atomic_path, write_json

log = logging.getLogger("seqlab")

CONFIG, WEIGHTS, TOKENIZER, LABELS = "config.yaml", "model.safetensors", "tokenizer.json", "labels.json"
ENCODER = "encoder"  # a pretrained encoder's save_pretrained folder (arch hf); model.safetensors holds the head
METRICS, MANIFEST = "metrics.json", "manifest.json"
COMPLETE, LOCK = "complete.json", ".lock"
# Lightning's DDP launcher re-runs the command once per extra process; rank 0 leaves the run
# folder it created here, so the others (whose clocks may name it a second later) find it.
RUN_DIR_ENV = "SEQLAB_RUN_DIR"
# How long a rank other than 0 waits for a file rank 0 writes (vocabulary, config) before
# concluding that the ranks do not share a file system.
SHARED_WAIT_S = 600.0


def is_rank_zero() -> bool:
    """True unless this process is a DDP rank other than 0: a rank started by torchrun/SLURM
    (RANK), or one Lightning's launcher started (LOCAL_RANK/NODE_RANK)."""
    env = os.environ
    if "RANK" in env:
        return int(env["RANK"]) == 0
    return int(env.get("NODE_RANK", "0")) == 0 and int(env.get("LOCAL_RANK", "0")) == 0


def run_dir_for(cfg: RunConfig) -> Path:
    if cfg.name is None and "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise SeqlabError(
            "every process torchrun starts names its own run folder: give the run a name (name=...) so all ranks use the same one"
        )
    name = cfg.name or f"{cfg.task}-{cfg.model.arch}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(cfg.output_dir) / name


def start_run(cfg: RunConfig) -> Path:
    """Create a fresh run folder and write its config; refuse to overwrite an existing run.

    A DDP rank other than 0 creates nothing: it returns rank 0's folder once its config is there.
    """
    if not is_rank_zero():
        run_dir = Path(os.environ[RUN_DIR_ENV]) if RUN_DIR_ENV in os.environ else run_dir_for(cfg)
        wait_for_rank_zero(run_dir / CONFIG)
        return run_dir
    run_dir = run_dir_for(cfg)
    if run_dir.exists():
        hint = "" if (run_dir / COMPLETE).exists() else f", or continue it with --resume {run_dir}"
        raise SeqlabError(f"run folder {run_dir} already exists; choose another name=...{hint}")
    run_dir.mkdir(parents=True)
    save_config(cfg, run_dir / CONFIG)
    if cfg.train.world_size > 1:
        os.environ[RUN_DIR_ENV] = str(run_dir.resolve())
    return run_dir


def wait_for_rank_zero(path: Path, timeout_s: float | None = None) -> None:
    """Block until rank 0 has written `path` (written atomically, so whole once it exists)."""
    deadline = time.monotonic() + (SHARED_WAIT_S if timeout_s is None else timeout_s)
    while not path.exists():
        if time.monotonic() > deadline:
            raise SeqlabError(
                f"waited for rank 0 to write {path}: under DDP every machine must see the run folder "
                f"(put output_dir on a shared file system)"
            )
        time.sleep(0.2)


def discard_run(run_dir: Path) -> None:
    """Remove a run folder that failed before it held anything worth resuming."""
    shutil.rmtree(run_dir, ignore_errors=True)


LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


@contextmanager
def guard_new_run(run_dir: Path, fresh: bool) -> Iterator[None]:
    """Hold the run folder's lock while training writes it, and remove a folder this call
    created if anything fails before its first checkpoint, so a failure leaves nothing
    half-written; with a checkpoint, keep it for --resume. (A DDP rank other than 0 writes
    nothing, so it neither locks nor removes.)"""
    if not is_rank_zero():
        yield
        return
    with run_lock(run_dir):
        if not fresh:  # a resumed run is unfinished until it writes its marker again
            (run_dir / COMPLETE).unlink(missing_ok=True)
        try:
            yield
        except BaseException:
            if fresh and not (run_dir / LAST_CHECKPOINT).exists():
                discard_run(run_dir)
            raise


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Be the only writer of `run_dir`: an exclusive `flock` on `run_dir/.lock`, which holds
    the owner's pid and host. The kernel drops the lock when its process dies (even by
    SIGKILL), so the lock of a dead process is simply taken over; a live owner's is refused.

    Raises:
        SeqlabError: another live process holds the lock.
    """
    path = run_dir / LOCK
    fd = _acquire_lock(path, run_dir)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # (still holding the lock: nobody can have taken it meanwhile)
        os.close(fd)


def _acquire_lock(path: Path, run_dir: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise SeqlabError(
                f"run folder {run_dir} is being written by {_lock_owner(path)}; wait for it to finish "
                "(two writers would mix their checkpoints)"
            ) from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:  # not unlinked by a releasing owner meanwhile
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    previous = os.read(fd, 200).decode("utf-8", "replace").strip()
    if previous:
        log.info("run folder %s: taking over the lock of %s, which is no longer running", run_dir, _describe_owner(previous))
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    return fd


def _lock_owner(path: Path) -> str:
    try:
        return _describe_owner(path.read_text(encoding="utf-8").strip())
    except OSError:
        return "another process"


def _describe_owner(text: str) -> str:
    pid, _, host = text.partition(" ")
    return f"process {pid} on {host}" if host else f"process {pid or '?'}"


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
    if (run_dir / COMPLETE).exists() and (run_dir / WEIGHTS).exists():
        raise SeqlabError(f"run {run_dir} already finished; train a new one instead of --resume")
    if not (run_dir / LAST_CHECKPOINT).exists():
        raise SeqlabError(f"run {run_dir} has no {LAST_CHECKPOINT} to resume from")
    cfg = load_config(run_dir / CONFIG)
    if cfg.task != task:
        raise SeqlabError(f"run {run_dir} is a {cfg.task} run, not {task}")
    return cfg


def save_tokenizer(tokenizer: Tokenizer, path: Path) -> None:
    """`tokenizer.save`, atomically (DDP ranks read it while rank 0 trains)."""
    with atomic_path(path) as tmp:
        tokenizer.save(str(tmp))


def shared_vocabulary(run_dir: Path) -> tuple[Tokenizer, list[str]]:
    """Rank 0's tokenizer and labels, for the other DDP ranks: a vocabulary learned again in
    another process may number its tokens differently (BPE merges tie-break differently)."""
    wait_for_rank_zero(run_dir / LABELS)  # (written after the tokenizer)
    return load_tokenizer(run_dir / TOKENIZER), read_labels(run_dir)


# The run's HTML report (`seqlab.report`): derived from the folder, written after complete.json
# and rewritten by `seqlab report`, so complete.json does not vouch for it.
REPORT = "report.html"
# Files a finished run does not vouch for: training leftovers, the lock, the report, and
# config.yaml, which is the user's to edit (it is validated whenever it is read).
_UNRECORDED = {"checkpoints", "logs", LOCK, COMPLETE, CONFIG, REPORT}


def finish_run(run_dir: Path) -> None:
    """Mark `run_dir` finished, as the last write of training (only the derived report.html
    follows): `complete.json` records the size and sha256 of every file in it (outside
    checkpoints/ and logs/). Only rank 0 calls this."""
    files = {}
    for path in sorted(run_dir.rglob("*")):
        relative = path.relative_to(run_dir)
        if path.is_file() and relative.parts[0] not in _UNRECORDED and not path.name.endswith(".tmp"):
            files[relative.as_posix()] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    write_json(run_dir / COMPLETE, {"finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": files})


def finished_config(path: str | Path, task: str, purpose: str) -> RunConfig:
    """The config of a finished run folder of `task`, or one line naming what is wrong: not a
    run folder, a run of another task (`purpose` says what needed this one), not finished."""
    run_dir = Path(path)
    if not (run_dir / CONFIG).is_file():
        raise SeqlabError(f"{run_dir} is not a seqlab run folder (no {CONFIG}); train one with `seqlab train {task}`")
    cfg = load_config(run_dir / CONFIG)
    if cfg.task != task:
        article = "an" if task == "lm" else "a"
        raise SeqlabError(
            f"run {run_dir} is a {cfg.task} run, not {article} {task} run: {purpose} needs one (seqlab train {task})"
        )
    if not (run_dir / WEIGHTS).is_file():
        raise SeqlabError(f"run {run_dir} did not finish (no {WEIGHTS}); continue it with `seqlab train --resume {run_dir}`")
    check_finished(run_dir)
    return cfg


def check_finished(run_dir: Path) -> None:
    """Refuse a run folder that did not finish, or whose files were cut short or changed size
    since (a crash, a partial copy): one line naming the problem.

    Sizes are compared on every load (cheap); `complete.json` keeps the sha256 too, for audits.
    """
    marker = run_dir / COMPLETE
    if not marker.is_file():
        action = (
            f"continue it with `seqlab train --resume {run_dir}`"
            if (run_dir / LAST_CHECKPOINT).exists()
            else "it was stopped before its first checkpoint: train it again"
        )
        raise SeqlabError(f"run {run_dir} did not finish (no {COMPLETE}); {action}")
    try:
        files = json.loads(marker.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise SeqlabError(f"run {run_dir} has an unreadable {COMPLETE}; train the run again") from None
    for name, record in files.items():
        path = run_dir / name
        if not path.is_file():
            raise SeqlabError(f"run {run_dir} is incomplete: {name} is missing; restore the folder or train the run again")
        size = path.stat().st_size
        if size != record["bytes"]:
            raise SeqlabError(
                f"run {run_dir} is damaged: {name} is {size:,} bytes, {record['bytes']:,} when the run "
                f"finished (cut short or changed); restore the folder or train the run again"
            )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(model: nn.Module, path: Path, skip_prefix: str | None = None) -> None:
    """Save the state dict as safetensors (less the keys under `skip_prefix`, saved elsewhere)."""
    state = {
        k: v.detach().contiguous() for k, v in model.state_dict().items() if skip_prefix is None or not k.startswith(skip_prefix)
    }
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})


def load_weights(model: nn.Module, path: Path, skip_prefix: str | None = None) -> None:
    """Load safetensors weights; every key of the model (outside `skip_prefix`) must be there."""
    try:
        state = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise SeqlabError(f"{path} is not a readable safetensors file ({err})") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a tensor of another shape: config.yaml was changed after training
        raise SeqlabError(f"{path} does not match the model in config.yaml ({str(err).splitlines()[-1].strip()[:200]})") from None
    missing = [k for k in missing if skip_prefix is None or not k.startswith(skip_prefix)]
    if missing or unexpected:
        raise SeqlabError(f"{path} does not match the model in config.yaml (missing {missing[:3]}, unexpected {unexpected[:3]})")


def data_hash(texts_and_labels: Iterable[tuple[str, str]]) -> str:
    """sha256 over the examples actually used, so a manifest pins the data, not just its name."""
    digest = hashlib.sha256()
    for text, label in texts_and_labels:
        digest.update(text.encode("utf-8") + b"\t" + label.encode("utf-8") + b"\n")
    return digest.hexdigest()


def manifest(
    cfg: RunConfig, data: dict, parameters: int, started: float, prepared: float, train_seconds: float, **extra: object
) -> dict:
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
        raise SeqlabError(
            f"run {run_dir} has no {WEIGHTS}: it did not finish; continue it with `seqlab train --resume {run_dir}`"
        )
    check_finished(run_dir)
    config = load_config(run_dir / CONFIG)
    if config.task == "lm":
        raise SeqlabError(
            f"{run_dir} is a language model, not a classifier; use `seqlab generate --model {run_dir} PROMPT` or `seqlab perplexity --model {run_dir} --data FILE`"
        )
    if config.task == "tag":
        raise SeqlabError(f"{run_dir} is a tagger, not a classifier; use `seqlab ner --model {run_dir} TEXT`")
    if config.task == "translate":
        raise SeqlabError(f"{run_dir} is a translation model, not a classifier; use `seqlab translate {run_dir} TEXT`")
    if config.task != "classify":
        raise SeqlabError(
            f"{run_dir} is a {config.task} run, not a classifier; use `seqlab fill-mask {run_dir} TEXT`, "
            f"or fine-tune it with `seqlab train classify --arch transformer --init {run_dir}`"
        )
    tokenizer = load_tokenizer(run_dir / TOKENIZER)
    return RunFiles(run_dir, config, tokenizer, read_labels(run_dir))


def read_labels(run_dir: Path) -> list[str]:
    path = run_dir / LABELS
    if not path.is_file():
        raise SeqlabError(f"{path} is missing: the run folder has no label names")
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise SeqlabError(f"{path} is not a readable label list ({err}); restore it or train the run again") from None
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise SeqlabError(f"{path} must hold a JSON list of label names; restore it or train the run again")
    return labels
