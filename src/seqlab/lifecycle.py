"""The one run life cycle every task trains through.

```
resume? ── yes: the saved config and vocabulary ──┐
   └──── no: data checked, vocabulary learned ────┴─> run folder (config.yaml) ─> lock
      ─> vocabulary written (rank 0; other DDP ranks read it) ─> fit ─> weights, metrics.json,
         manifest.json (rank 0) ─> complete.json ─> report.html (derived; a failure only warns)
```

A task supplies the steps that differ as a `Recipe` (see `seqlab.tasks.base`); this module owns
the order, the guards and every write that is the same for all tasks: a run folder is created
only once its data have passed every check, it is removed if training fails before its first
checkpoint, only DDP rank 0 writes, and `complete.json` marks it finished.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from tokenizers import Tokenizer
from torch import nn

from seqlab import runs
from seqlab.config import RunConfig
from seqlab.data.tokenize import load_tokenizer
from seqlab.models import count_parameters

log = logging.getLogger("seqlab")


@dataclass
class Finished:
    """What a recipe reports once it has saved its model.

    Attributes:
        metrics: Written to metrics.json (`best_<monitor>` and `epochs` are added here).
        data: Per split, what training saw: source, counts, sha256 (manifest.json's "data").
        extra: Further manifest entries (truncation counts, word-vector coverage, ...).
    """

    metrics: dict[str, Any]
    data: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


class Fitted(Protocol):
    """A recipe's training result: at least the model and the loop's `train.FitResult`."""

    model: nn.Module
    result: Any


class Recipe(Protocol):
    """The steps of training that differ between tasks (data → vocabulary → model → metrics).

    `data` and `vocabulary` are whatever the task needs (splits; a tokenizer and label names);
    the life cycle only passes them along.
    """

    task: str

    def configure(self, cfg: RunConfig) -> RunConfig:
        """The config a fresh run really trains with (e.g. a pretrained encoder's sizes)."""
        ...

    def load_data(self, cfg: RunConfig) -> Any:
        """Read and check every split; raise `SeqlabError` on bad data (no folder exists yet)."""
        ...

    def learn_vocabulary(self, cfg: RunConfig, data: Any) -> Any:
        """Learn the vocabulary from the training split only."""
        ...

    def vocabulary_files(self, cfg: RunConfig) -> tuple[str, ...]:
        """The files `save_vocabulary` writes (DDP ranks other than 0 wait for them)."""
        ...

    def save_vocabulary(self, vocabulary: Any, run_dir: Path) -> None: ...

    def load_vocabulary(self, cfg: RunConfig, run_dir: Path) -> Any:
        """The vocabulary a run folder holds (for --resume and for DDP ranks other than 0)."""
        ...

    def describe(self, data: Any, vocabulary: Any) -> str:
        """One log line about the data, e.g. "8,000 train / 1,000 valid / 1,000 test examples"."""
        ...

    def fit(self, cfg: RunConfig, data: Any, vocabulary: Any, run_dir: Path, *, resume: bool, progress: str | None) -> Fitted: ...

    def finish(self, run_dir: Path, cfg: RunConfig, data: Any, vocabulary: Any, fitted: Any) -> Finished:
        """Evaluate on the held-out splits and save the weights (rank 0 only)."""
        ...


class TokenizerAndLabels:
    """The vocabulary steps of a task whose vocabulary is (tokenizer, label names), written as
    tokenizer.json and labels.json (classify, tag); a recipe inherits them and adds the rest."""

    def configure(self, cfg: RunConfig) -> RunConfig:
        return cfg

    def vocabulary_files(self, cfg: RunConfig) -> tuple[str, ...]:
        return runs.TOKENIZER, runs.LABELS

    def save_vocabulary(self, vocabulary: tuple[Tokenizer, list[str]], run_dir: Path) -> None:
        tokenizer, labels = vocabulary
        runs.save_tokenizer(tokenizer, run_dir / runs.TOKENIZER)
        runs.write_json(run_dir / runs.LABELS, labels)

    def load_vocabulary(self, cfg: RunConfig, run_dir: Path) -> tuple[Tokenizer, list[str]]:
        return load_tokenizer(run_dir / runs.TOKENIZER), runs.read_labels(run_dir)


def train_run(
    recipe: Recipe,
    cfg: RunConfig | None,
    *,
    resume: str | Path | None = None,
    progress: str | None = None,
    resume_command: str = "seqlab train",
) -> Path:
    """Train `recipe` into a new run folder, or continue the unfinished run `resume`.

    Every check on the data happens before the folder is created, so bad input leaves nothing
    behind; a crash mid-training removes the folder unless it already holds a checkpoint.

    Returns:
        The run folder.
    """
    started = time.perf_counter()
    fresh = resume is None
    if fresh:
        cfg = recipe.configure(cast(RunConfig, cfg))  # a fresh run is given its config
    else:
        run_dir = Path(cast("str | Path", resume))  # not fresh: resume is set
        cfg = runs.resumable_config(run_dir, recipe.task)
    rank_zero = runs.is_rank_zero()
    data = recipe.load_data(cfg)
    vocabulary = None
    if not fresh:
        vocabulary = recipe.load_vocabulary(cfg, run_dir)
    elif rank_zero:
        vocabulary = recipe.learn_vocabulary(cfg, data)
    if fresh:
        run_dir = runs.start_run(cfg)
    if vocabulary is None:  # a DDP rank other than 0: rank 0's vocabulary, so that token ids agree
        for name in recipe.vocabulary_files(cfg):
            runs.wait_for_rank_zero(run_dir / name)
        vocabulary = recipe.load_vocabulary(cfg, run_dir)
    prepared = time.perf_counter()
    log.info("run folder %s: %s", run_dir, recipe.describe(data, vocabulary))
    with runs.guard_new_run(run_dir, fresh=fresh):
        if fresh and rank_zero:
            recipe.save_vocabulary(vocabulary, run_dir)  # first: --resume needs the same ids
        fitted = recipe.fit(cfg, data, vocabulary, run_dir, resume=not fresh, progress=progress)
        runs.raise_if_interrupted(fitted.result.interrupted, run_dir, resume_command)
        if rank_zero:
            finished = recipe.finish(run_dir, cfg, data, vocabulary, fitted)
            metrics = {"best_" + cfg.train.monitor: fitted.result.best_score, "epochs": fitted.result.epochs, **finished.metrics}
            runs.write_json(run_dir / runs.METRICS, metrics)
            runs.write_json(
                run_dir / runs.MANIFEST,
                runs.manifest(
                    cfg, finished.data, count_parameters(fitted.model), started, prepared, fitted.result.seconds, **finished.extra
                ),
            )
            runs.finish_run(run_dir)  # complete.json marks the folder finished
            write_report(run_dir)  # (still holding the lock)
    return run_dir


def write_report(run_dir: Path) -> None:
    """The run's report.html (`seqlab.report`), drawn from the finished folder, which its
    attention maps load like any reader. It is derived (complete.json does not record it), so a
    report that fails costs a warning, never the run: `seqlab report RUN` writes it again."""
    from seqlab import report  # (matplotlib: imported only once a run has finished)

    try:
        report.write_report(run_dir)
    except Exception as err:  # noqa: BLE001 - whatever went wrong, the trained run stands
        log.warning("run %s finished, but its report could not be written (%s); try `seqlab report %s`", run_dir, err, run_dir)
