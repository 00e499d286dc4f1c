"""The one training loop: Lightning's `Trainer`, set up the same way for every task.

A task supplies a `LightningModule` (loss, metrics, optimiser) and data loaders; `fit` adds
seeding, checkpoints (best + last, for `--resume`), early stopping on a validation metric,
CSV and TensorBoard logs, and progress: a rich bar for a person at a terminal, one plain line
per epoch otherwise. Every task's `configure_optimizers` returns `with_lr_schedule(...)`, so
`train.lr_schedule`/`warmup_steps`/`min_lr` mean the same everywhere (`lr_factor`).
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.utilities import GradClipAlgorithmType
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import DataLoader

from seqlab.config import TrainConfig

log = logging.getLogger("seqlab")

# Lightning's start-up chatter (GPU/TPU availability, "few workers" hints) says nothing a seqlab
# user can act on: the data sets are small and in memory, so worker processes would only cost.
for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.WARNING)
for _pattern in (".*does not have many workers.*", ".*smaller than the logging interval.*",
                 ".*LeafSpec.*", ".*isinstance.*treespec.*", ".*Checkpoint directory .* exists.*",
                 ".*have no `val_dataloader`.*", ".*module\\(s\\) in eval mode.*"):
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
        # Lightning 2 runs validation inside the training epoch, so both sets of metrics are in.
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if "_step" not in k}
        shown = "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
        log.info("epoch %d/%d  %s", trainer.current_epoch + 1, trainer.max_epochs, shown)


def resolve_precision(precision: str) -> str:
    """'auto' → 'bf16-mixed' where the hardware has bf16 arithmetic (a CUDA GPU that supports
    it, or a CPU with AVX512_BF16/AMX), else '32-true': on CPUs without it bf16 is emulated and
    slower than fp32."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if bf16_supported() else "32-true"


def make_optimizer(module: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser `cfg` names over the trainable parameters of `module`, with BERT's and GPT's
    weight-decay exemption: biases and LayerNorm gains (tensors under 2-d) are not decayed."""
    params = [p for p in module.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)
    if cfg.optimizer == "adadelta":
        return torch.optim.Adadelta(groups, lr=cfg.lr)
    optimizer = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    # One fused kernel for all parameters is several times faster on CPU than the loop over
    # tensors (in bf16 too: `_BF16Mixed` clips its gradients).
    return optimizer(groups, lr=cfg.lr, betas=cfg.betas, fused=True)


# --------------------------------------------------------------------------- learning-rate schedule


def lr_factor(step: int, cfg: TrainConfig, horizon: int) -> float:
    """The learning rate at optimiser step `step` (0-based) as a fraction of `cfg.lr`.

    nanoGPT's schedule: linear warm-up lr·(step+1)/(warmup_steps+1) for the first
    `warmup_steps` steps, then `cfg.lr_schedule` from lr down to `cfg.min_lr` at step `horizon`
    (cosine: half a cosine wave; linear: a straight line; constant: lr), and min_lr after it.
    """
    if step < cfg.warmup_steps:
        return (step + 1) / (cfg.warmup_steps + 1)
    floor = cfg.min_lr / cfg.lr
    if cfg.lr_schedule == "constant":
        return 1.0
    if step >= horizon:
        return floor
    progress = (step - cfg.warmup_steps) / max(horizon - cfg.warmup_steps, 1)
    shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if cfg.lr_schedule == "cosine" else 1.0 - progress
    return floor + shape * (1.0 - floor)


def schedule_horizon(module: L.LightningModule, cfg: TrainConfig) -> int:
    """The step where a decaying schedule reaches min_lr: `train.max_steps`, else epochs ×
    batches per epoch (Lightning's estimate, which is the smaller of the two when both are
    set). `train.max_minutes` does not shorten it: a run stopped by the clock ends above min_lr."""
    return int(min(cfg.max_steps or math.inf, module.trainer.estimated_stepping_batches))


def with_lr_schedule(module: L.LightningModule, optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    """What a task's `configure_optimizers` returns: the optimiser alone for a constant lr
    without warm-up, else the optimiser with a per-step `LambdaLR` following `lr_factor` (it
    scales every parameter group's own lr, so layer-wise lr groups keep their ratios)."""
    if cfg.lr_schedule == "constant" and not cfg.warmup_steps:
        return optimizer
    horizon = schedule_horizon(module, cfg)
    if cfg.lr_schedule != "constant":
        clock = " (train.max_minutes may stop training before it ends)" if cfg.max_minutes else ""
        log.info("lr: %d warm-up steps, then %s from %g to %g over steps %d-%d%s",
                 cfg.warmup_steps, cfg.lr_schedule, cfg.lr, cfg.min_lr, cfg.warmup_steps, horizon, clock)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg, horizon))
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

    def clip_gradients(self, optimizer: torch.optim.Optimizer, clip_val: float = 0.0,
                       gradient_clip_algorithm: GradClipAlgorithmType = GradClipAlgorithmType.NORM) -> None:
        Precision.clip_gradients(self, optimizer, clip_val, gradient_clip_algorithm)


def bf16_supported() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def _progress_callbacks(progress: str) -> list[Callback]:
    if progress == "bar":
        return [RichProgressBar(leave=True)]
    return [EpochLines()] if progress == "lines" else []


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
    checkpoint = ModelCheckpoint(
        dirpath=work_dir / "checkpoints", filename="best", monitor=monitor,
        mode=monitor_mode(monitor), save_last=True, save_top_k=1, enable_version_counter=False,
    )
    callbacks = [checkpoint, *_progress_callbacks(progress), *callbacks]
    if val_loader is not None and cfg.patience:
        callbacks.append(EarlyStopping(monitor=monitor, mode=monitor_mode(monitor), patience=cfg.patience))
    logger_list = (
        [CSVLogger(work_dir, name="logs", version=""), TensorBoardLogger(work_dir, name="logs", version="tensorboard")]
        if loggers else False
    )
    if loggers and (cfg.lr_schedule != "constant" or cfg.warmup_steps):
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    precision = resolve_precision(cfg.precision)
    every_steps = cfg.eval_every_steps if val_loader is not None else None
    trainer = L.Trainer(
        max_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        max_time={"minutes": cfg.max_minutes} if cfg.max_minutes else None,
        # steps counted across epochs: validation every n steps, and not at each epoch's end
        val_check_interval=every_steps,
        check_val_every_n_epoch=None if every_steps else 1,
        accelerator="auto",
        devices=1,
        plugins=[_BF16Mixed("cuda" if torch.cuda.is_available() else "cpu")] if precision == "bf16-mixed" else None,
        precision=None if precision == "bf16-mixed" else precision,
        gradient_clip_val=cfg.grad_clip,
        callbacks=callbacks,
        logger=logger_list,
        log_every_n_steps=cfg.log_every_n_steps,
        enable_progress_bar=progress == "bar",
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=work_dir,
    )
    last = work_dir / "checkpoints" / "last.ckpt"
    started = time.perf_counter()
    try:
        trainer.fit(module, train_loader, val_loader, ckpt_path=last if resume and last.exists() else None)
    except SystemExit:
        # Lightning turns Ctrl-C into sys.exit(1) after a graceful shutdown; report it instead,
        # so the caller can say how to resume.
        if not trainer.interrupted:
            raise
        signal.signal(signal.SIGINT, signal.default_int_handler)
    seconds = time.perf_counter() - started
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
    if best is not None and best.exists():
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    score = checkpoint.best_model_score
    return FitResult(
        best_checkpoint=best,
        best_score=float(score) if score is not None else None,
        epochs=trainer.current_epoch,
        seconds=seconds,
        interrupted=trainer.interrupted,
    )
