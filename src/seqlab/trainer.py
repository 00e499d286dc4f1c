"""The one training loop: Lightning's `Trainer`, set up the same way for every task.

A task supplies a `LightningModule` (loss, metrics, optimiser) and data loaders; `fit` adds
seeding, checkpoints (best + last, for `--resume`), early stopping on a validation metric,
CSV and TensorBoard logs, and progress: a rich bar for a person at a terminal, one plain line
per epoch otherwise. Every task's `configure_optimizers` returns `with_lr_schedule(...)`, so
`train.lr_schedule`/`warmup_steps`/`min_lr` mean the same everywhere (`lr_factor`).

Two things hold for every task:
- Exact resume: checkpoints are written atomically (temporary file, then `os.replace`), also
  every `train.checkpoint_every_steps` steps mid-epoch, and carry the RNG states and the
  training sampler's place in the epoch (`BucketBatchSampler` loaders); a classifier killed at
  any point and continued with `--resume` ends with the metrics of a run never stopped.
- Data parallelism: `train.devices`/`num_nodes` > 1 runs Lightning's DDP (gloo on CPUs, NCCL
  on GPUs). The training sampler hands each process its slice of every global batch, so
  `train.batch_size` is the global batch whatever the number of processes.
"""

from __future__ import annotations

import csv
import logging
import math
import pickle
import random
import signal
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    RichProgressBar,
    Timer,
)
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.utilities import GradClipAlgorithmType
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import DataLoader

from seqlab.config import TrainConfig
from seqlab.data.batching import ResumableLoader, training_loader
from seqlab.errors import SeqlabError
from seqlab.files import atomic_path
from seqlab.hardware import bf16_supported  # (also re-exported: benchmarks ask trainer)

log = logging.getLogger("seqlab")

# Lightning's start-up chatter (GPU/TPU availability, "few workers" hints) says nothing a seqlab
# user can act on: the data sets are small and in memory, so worker processes would only cost.
for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.WARNING)
for _pattern in (
    ".*does not have many workers.*",
    ".*smaller than the logging interval.*",
    ".*LeafSpec.*",
    ".*isinstance.*treespec.*",
    ".*Checkpoint directory .* exists.*",
    ".*have no `val_dataloader`.*",
    ".*module\\(s\\) in eval mode.*",
    ".*Experiment logs directory .* exists and is not empty.*",
):  # (ResumedCSVLogger keeps the rows)
    warnings.filterwarnings("ignore", _pattern)


@dataclass
class FitResult:
    """What one call to `fit` did."""

    best_checkpoint: Path | None
    best_score: float | None
    epochs: int
    seconds: float
    interrupted: bool


class EpochLines(Callback):
    """One plain log line per epoch: for logs, pipes and CI, where a live bar is noise."""

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero:  # (DDP: the metrics are reduced across ranks; say them once)
            return
        # Lightning 2 runs validation inside the training epoch, so both sets of metrics are in.
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if "_step" not in k}
        shown = "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
        log.info("epoch %d/%d  %s", trainer.current_epoch + 1, trainer.max_epochs, shown)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file beside the target, flushed to disk, then
    renamed over it: a process killed while saving leaves the previous checkpoint intact."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        with atomic_path(path, durable=True) as tmp:
            torch.save(checkpoint, tmp)


class LastCheckpoint(ModelCheckpoint):
    """`checkpoints/last.ckpt`, the state `--resume` continues from: after every validation
    (at the epoch's end), every `every_steps` optimiser steps mid-epoch (if set), and when
    training ends.

    (Lightning's own `save_last=True` writes last.ckpt only when the monitored metric improved,
    so a resumed run could restart epochs back.) A ModelCheckpoint subclass because Lightning
    runs those after all other callbacks, after the best-checkpoint callback has updated the
    best score that this checkpoint must carry. The last batch of an epoch is left to the
    checkpoint after its validation, so a resumed run does not validate an epoch twice.
    """

    def __init__(self, path: Path, every_steps: int | None):
        super().__init__(dirpath=path.parent, filename=path.stem, save_top_k=0, enable_version_counter=False)
        self.path, self.every_steps = path, every_steps
        self._saved_step: int | None = None

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if (
            self.every_steps
            and trainer.global_step % self.every_steps == 0
            and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        ):
            self._save_last(trainer)

    # When validation runs once per epoch, save at the epoch's end (as Lightning's own
    # checkpoints do): a checkpoint taken between validation and the end of the epoch would
    # resume into an epoch end without its validation metrics.
    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last(trainer)

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking and not self._should_save_on_train_epoch_end(trainer):
            self._save_last(trainer)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._save_last(trainer)

    def _save_last(self, trainer: L.Trainer) -> None:
        if self._saved_step == trainer.global_step:  # (the same on every rank: saving is collective)
            return
        self._saved_step = trainer.global_step
        trainer.save_checkpoint(self.path)  # (every rank calls it; only rank 0 writes)


class ResumeState(Callback):
    """What Lightning's checkpoint leaves out and an exact resume needs: the RNG states (dropout
    masks, masking, sampling) and the training sampler's place in its epoch.

    Lightning restores a stateful loader only when the checkpoint ends mid-epoch; restoring it
    here too means the epoch after an end-of-epoch checkpoint gets the same order as well.
    """

    def __init__(self, train_loader: DataLoader):
        self.train_loader = train_loader

    def on_save_checkpoint(self, trainer: L.Trainer, module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["seqlab"] = {"rng": _rng_states(), "sampler": _loader_state(self.train_loader)}

    def on_load_checkpoint(self, trainer: L.Trainer, module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("seqlab")
        if not saved:  # a checkpoint from before seqlab saved this: resume as before
            return
        _set_rng_states(saved["rng"])
        if saved["sampler"] is not None and isinstance(self.train_loader, ResumableLoader):
            self.train_loader.load_state_dict(saved["sampler"])


class ResumedCSVLogger(CSVLogger):
    """Lightning's CSVLogger deletes an existing metrics.csv; a resumed run keeps the rows that
    its checkpoint had already seen (those up to `until_step`: later ones are logged again)."""

    def __init__(self, save_dir: Path, until_step: int | None):
        super().__init__(save_dir, name="logs", version="")
        path = Path(self.log_dir) / "metrics.csv"
        self._kept: list[dict[str, str]] = []
        if until_step is not None and path.is_file():
            with path.open(newline="", encoding="utf-8") as handle:
                self._kept = [row for row in csv.DictReader(handle) if int(row.get("step") or 0) <= until_step]

    @property
    def experiment(self) -> Any:
        fresh = self._experiment is None
        writer = super().experiment
        if fresh and self._kept and isinstance(writer, ExperimentWriter):  # (a dummy on ranks other than 0)
            writer.metrics[:0] = self._kept  # type: ignore[assignment]  # rows as read (str); Lightning annotates float but writes any value
            writer.save()  # at once: the writer has just deleted the file
            self._kept = []
        return writer


def _rng_states() -> dict[str, Any]:
    import numpy as np

    # legacy=True (the default) returns the tuple; numpy's stubs give the union with the dict form
    kind, keys, pos, has_gauss, gauss = cast("tuple[str, np.ndarray, int, int, float]", np.random.get_state())
    return {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],  # (lists: checkpoints load with weights_only)
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_states(states: dict[str, Any]) -> None:
    import numpy as np

    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def _loader_state(loader: DataLoader) -> dict[str, int] | None:
    return loader.state_dict() if isinstance(loader, ResumableLoader) else None


def resolve_precision(precision: str) -> str:
    """'auto' → 'bf16-mixed' where the hardware has bf16 arithmetic (a CUDA GPU that supports
    it, or a CPU with AVX512_BF16/AMX), else '32-true': on CPUs without it bf16 is emulated and
    slower than fp32."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if bf16_supported() else "32-true"


def make_optimizer(module: nn.Module, cfg: TrainConfig, groups: list[dict] | None = None) -> torch.optim.Optimizer:
    """The optimiser `cfg` names over the trainable parameters of `module`, with BERT's and GPT's
    weight-decay exemption: biases and LayerNorm gains (tensors under 2-d) are not decayed.
    Every task builds its optimiser here.

    Args:
        groups: parameter groups of the task's own (layer-wise learning rates: each group with
            its "lr" and "weight_decay"), instead of the two default groups.
    """
    if groups is None:
        params = [p for p in module.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)
    if cfg.optimizer == "adadelta":
        return torch.optim.Adadelta(groups, lr=cfg.lr)
    optimizer = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    # One fused kernel for all parameters is several times faster on CPU than the loop over
    # tensors (in bf16 too: `_BF16Mixed` clips its gradients).
    return optimizer(groups, lr=cfg.lr, betas=cfg.betas, fused=True)


# --------------------------------------------------------------------------- learning-rate schedule


def lr_factor(step: int, cfg: TrainConfig, horizon: int, clock: float = 0.0) -> float:
    """The learning rate at optimiser step `step` (0-based) as a fraction of `cfg.lr`.

    nanoGPT's schedule: linear warm-up lr·(step+1)/(warmup_steps+1) for the first
    `warmup_steps` steps, then `cfg.lr_schedule` from lr down to `cfg.min_lr` at step `horizon`
    (cosine: half a cosine wave; linear: a straight line; constant: lr), and min_lr after it.
    inverse_sqrt (Vaswani et al., 2017; fairseq's) is lr·sqrt(warmup_steps/(step+1)) after the
    warm-up, with no horizon, never below min_lr.

    Args:
        clock: the share of the wall-clock budget spent (0-1; `train.schedule_clock`): cosine
            and linear go by whichever of steps and time is further along, so the decay reaches
            min_lr when `train.max_minutes` runs out even if `horizon` is far away.
    """
    if step < cfg.warmup_steps:
        return (step + 1) / (cfg.warmup_steps + 1)
    floor = cfg.min_lr / cfg.lr
    if cfg.lr_schedule == "constant":
        return 1.0
    if cfg.lr_schedule == "inverse_sqrt":
        return max(floor, math.sqrt(cfg.warmup_steps / (step + 1)))
    progress = max((step - cfg.warmup_steps) / max(horizon - cfg.warmup_steps, 1), min(clock, 1.0))
    if progress >= 1.0:
        return floor
    shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if cfg.lr_schedule == "cosine" else 1.0 - progress
    return floor + shape * (1.0 - floor)


def schedule_horizon(module: L.LightningModule, cfg: TrainConfig) -> int:
    """The step where a decaying schedule reaches min_lr: `train.max_steps`, else epochs ×
    batches per epoch (Lightning's estimate, which is the smaller of the two when both are
    set). `train.max_minutes` does not shorten it, unless `train.schedule_clock` makes the
    decay follow the clock too (`lr_factor`)."""
    return int(min(cfg.max_steps or math.inf, module.trainer.estimated_stepping_batches))


def budget_spent(trainer: L.Trainer, minutes: float) -> float:
    """The share of a `minutes` budget that training has used, as Lightning's `Timer` (the one
    that enforces `max_time`) counts it: training time only, carried over by --resume."""
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)  # type: ignore[attr-defined]  # Lightning sets Trainer.callbacks in its connector, unseen by mypy
    if timer is None:
        return 0.0
    return timer.time_elapsed("train") / (60.0 * minutes)


def with_lr_schedule(module: L.LightningModule, optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    """What a task's `configure_optimizers` returns: the optimiser alone for a constant lr
    without warm-up, else the optimiser with a per-step `LambdaLR` following `lr_factor` (it
    scales every parameter group's own lr, so layer-wise lr groups keep their ratios)."""
    if cfg.lr_schedule == "constant" and not cfg.warmup_steps:
        return optimizer
    horizon = schedule_horizon(module, cfg)
    by_clock = cfg.schedule_clock and cfg.max_minutes is not None and cfg.lr_schedule in ("cosine", "linear")
    if cfg.lr_schedule == "inverse_sqrt":
        log.info("lr: %d warm-up steps to %g, then inverse square root (floor %g)", cfg.warmup_steps, cfg.lr, cfg.min_lr)
    elif cfg.lr_schedule != "constant":
        if by_clock:
            clock = f" or when the {cfg.max_minutes:g}-minute budget ends, whichever comes first"
        else:
            clock = " (train.max_minutes may stop training before it ends)" if cfg.max_minutes else ""
        log.info(
            "lr: %d warm-up steps, then %s from %g to %g over steps %d-%d%s",
            cfg.warmup_steps,
            cfg.lr_schedule,
            cfg.lr,
            cfg.min_lr,
            cfg.warmup_steps,
            horizon,
            clock,
        )
    trainer = module.trainer if by_clock else None  # (the clock is read only when the budget shapes the schedule)

    def factor(step: int) -> float:
        spent = budget_spent(trainer, cast(float, cfg.max_minutes)) if trainer is not None else 0.0
        return lr_factor(step, cfg, horizon, spent)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class _BF16Mixed(MixedPrecision):
    """bf16 autocast, with two differences from Lightning's own:

    - Lightning refuses to clip the gradients of a fused optimiser under any mixed precision,
      since with fp16 such an optimiser unscales them itself; bf16 has no gradient scaler, so
      the gradients are clipped as they are.
    - On a CPU, training steps use PyTorch's plain (math) attention kernel: the CPU
      flash-attention kernel's backward pass is about 3× slower in bf16 than in fp32, slower
      than the plain kernel's bf16 matrix products (a char GPT trained 1.3-1.9× faster so).
    """

    def __init__(self, device: str):
        super().__init__("bf16-mixed", device)

    @contextmanager
    def train_step_context(self) -> Iterator[None]:
        kernels = sdpa_kernel([SDPBackend.MATH]) if self.device == "cpu" else nullcontext()
        with super().train_step_context(), kernels:
            yield

    def clip_gradients(
        self,
        optimizer: torch.optim.Optimizer,
        clip_val: float = 0.0,
        gradient_clip_algorithm: GradClipAlgorithmType = GradClipAlgorithmType.NORM,
    ) -> None:
        Precision.clip_gradients(self, optimizer, clip_val, gradient_clip_algorithm)


def _progress_callbacks(progress: str) -> list[Callback]:
    if progress == "bar":
        return [RichProgressBar(leave=True)]
    return [EpochLines()] if progress == "lines" else []


def global_mean(module: L.LightningModule, total: torch.Tensor, count: int | torch.Tensor) -> torch.Tensor:
    """`total / count` as this process's share of the mean over the whole global batch.

    Under DDP each process sees a slice of every global batch, and DDP averages the processes'
    gradients. A per-process mean (its own total / its own count of tokens or words) would
    weigh the slices equally however many tokens each holds; dividing by the global count
    / world size instead makes that average exactly the gradient of the global mean, what one
    process computes (one all-reduce of the count per step; nothing extra on one process).
    Logged with `sync_dist=True`, the processes' values average to the global mean.

    Args:
        total: the summed loss of this process's examples (a tensor; may have a shape, e.g.
            (2,) for two losses, with `count` of the same shape).
        count: what the loss is a mean over (tokens, words, masked positions) in this process.
    """
    count = torch.as_tensor(count, dtype=torch.float32, device=total.device)
    trainer = module._trainer
    if trainer is None or trainer.world_size == 1 or not torch.distributed.is_initialized():
        return total / count.clamp(min=1)
    count = count.clone()
    torch.distributed.all_reduce(count)  # (a sum; without the barrier Lightning's strategy.reduce adds)
    return total / (count / trainer.world_size).clamp(min=1e-9)


def monitor_mode(metric: str) -> str:
    return "min" if metric.endswith("loss") else "max"


def fit(
    module: L.LightningModule,
    train_loader: DataLoader,
    val_loader: DataLoader | None,
    work_dir: Path,
    cfg: TrainConfig,
    *,
    resume: bool = False,
    progress: str | None = None,
    loggers: bool = True,
    callbacks: Sequence[Callback] = (),
) -> FitResult:
    """Train `module` and leave the best weights loaded in it.

    Args:
        module: the task's LightningModule; it must log `cfg.monitor` during validation.
        train_loader, val_loader: batches; without validation data the last epoch is kept and
            early stopping is off.
        work_dir: `checkpoints/` and `logs/` are written under it.
        cfg: the training section of the run config.
        resume: continue from `work_dir/checkpoints/last.ckpt` (model, optimiser, epoch, early
            stopping state).
        progress: "bar" (rich progress bar), "lines" (one log line per epoch) or "off";
            default: a bar when stdout is a terminal, lines otherwise.
        loggers: write CSV and TensorBoard logs (off for cross-validation folds); with a
            learning-rate schedule the lr of every step is logged too (`lr-<Optimizer>`).
        callbacks: more Lightning callbacks (e.g. a benchmark's timer).

    Training stops at `cfg.epochs`, `cfg.max_steps` or `cfg.max_minutes`, whichever comes first;
    validation runs after each epoch, or every `cfg.eval_every_steps` optimiser steps.
    """
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    progress = progress or ("bar" if sys.stdout.isatty() else "lines")
    monitor = cfg.monitor if val_loader is not None else "train_loss"
    train_loader = training_loader(train_loader)
    checkpoint = ModelCheckpoint(
        dirpath=work_dir / "checkpoints",
        filename="best",
        monitor=monitor,
        mode=monitor_mode(monitor),
        save_top_k=1,
        enable_version_counter=False,
    )
    last_path = work_dir / "checkpoints" / "last.ckpt"
    resume_from = last_path if resume and last_path.exists() else None
    resume_step = _global_step(resume_from)  # (also: a damaged checkpoint is one clear line, before anything starts)
    last = LastCheckpoint(last_path, cfg.checkpoint_every_steps)
    callbacks = [checkpoint, last, ResumeState(train_loader), *_progress_callbacks(progress), *callbacks]
    if val_loader is not None and cfg.patience:
        callbacks.append(EarlyStopping(monitor=monitor, mode=monitor_mode(monitor), patience=cfg.patience))
    logger_list = (
        [ResumedCSVLogger(work_dir, resume_step), TensorBoardLogger(work_dir, name="logs", version="tensorboard")]
        if loggers
        else False
    )
    if loggers and (cfg.lr_schedule != "constant" or cfg.warmup_steps):
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    trainer = _make_trainer(
        cfg,
        callbacks,
        logger_list,
        progress,
        work_dir,
        validate=val_loader is not None,
        shards_itself=isinstance(train_loader, ResumableLoader),
    )
    started = time.perf_counter()
    try:
        trainer.fit(module, train_loader, val_loader, ckpt_path=resume_from)
    except SystemExit:
        # Lightning turns Ctrl-C into sys.exit(1) after a graceful shutdown; report it instead,
        # so the caller can say how to resume.
        if not trainer.interrupted:
            raise
        signal.signal(signal.SIGINT, signal.default_int_handler)
    seconds = time.perf_counter() - started
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
    score, epochs = checkpoint.best_model_score, trainer.current_epoch
    if best is not None and best.exists():  # (under DDP on several machines, only rank 0's has it)
        saved = torch.load(best, map_location="cpu", weights_only=True)
        module.load_state_dict(saved["state_dict"])
        if cfg.strategy in ("ddp_spawn", "ddp_fork") and score is None:
            # the ranks ran in child processes: their callbacks' state comes back only on disk
            score, epochs = _spawned_results(saved, work_dir / "checkpoints" / "last.ckpt")
    return FitResult(
        best_checkpoint=best,
        best_score=float(score) if score is not None else None,
        epochs=epochs,
        seconds=seconds,
        interrupted=trainer.interrupted,
    )


def _make_trainer(
    cfg: TrainConfig, callbacks: list[Callback], logger: Any, progress: str, work_dir: Path, validate: bool, shards_itself: bool
) -> L.Trainer:
    """The Lightning Trainer for `fit`: limits, validation schedule, devices/DDP, precision."""
    precision = resolve_precision(cfg.precision)
    every_steps = cfg.eval_every_steps if validate else None
    plugins: list[Any] = [AtomicCheckpointIO()]
    if precision == "bf16-mixed":
        plugins.append(_BF16Mixed("cuda" if torch.cuda.is_available() else "cpu"))
    return L.Trainer(
        max_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        max_time={"minutes": cfg.max_minutes} if cfg.max_minutes else None,  # type: ignore[dict-item]  # Lightning passes it to timedelta, which takes floats; its stub says int
        # steps counted across epochs: validation every n steps, and not at each epoch's end
        val_check_interval=every_steps,
        check_val_every_n_epoch=None if every_steps else 1,
        accelerator="auto",
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        # seqlab's batch sampler shards itself (see BucketBatchSampler); Lightning would try to
        # rebuild it around a DistributedSampler
        use_distributed_sampler=not shards_itself,
        plugins=plugins,
        precision=None if precision == "bf16-mixed" else precision,  # type: ignore[arg-type]  # a config string Lightning validates; its stub wants its Literal
        gradient_clip_val=cfg.grad_clip,
        callbacks=callbacks,
        logger=logger,
        log_every_n_steps=cfg.log_every_n_steps,
        enable_progress_bar=progress == "bar",
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=work_dir,
    )


def _global_step(checkpoint: Path | None) -> int | None:
    """The optimiser step a checkpoint was taken at; one clear line if it cannot be read."""
    if checkpoint is None:
        return None
    try:
        return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"])
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as err:  # (a damaged file)
        reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise SeqlabError(f"{checkpoint} is unreadable ({reason}); the run cannot be resumed from it: train it again") from None


def _spawned_results(best: dict[str, Any], last_path: Path) -> tuple[Any, int]:
    """The best score and the epochs trained, read from the checkpoints that rank 0 of a
    `ddp_spawn`/`ddp_fork` run wrote (the launcher sends back the weights and best path, not these)."""
    score = next(
        (
            state["best_model_score"]
            for key, state in best.get("callbacks", {}).items()
            if key.startswith("ModelCheckpoint") and state.get("best_model_score") is not None
        ),
        None,
    )
    last = torch.load(last_path, map_location="cpu", weights_only=True) if last_path.exists() else best
    return score, int(last["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"]) + 1
