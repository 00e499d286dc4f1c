"""The training loop's step knobs: lr schedules, warm-up, max_steps, eval_every_steps, betas."""

import math

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from seqlab.config import TrainConfig, build_config
from seqlab.errors import SeqlabError
from seqlab.trainer import fit, lr_factor, make_optimizer, with_lr_schedule


def train_cfg(*overrides):
    return build_config({}, list(overrides)).train


def test_warmup_then_cosine_reaches_min_lr_at_the_horizon():
    cfg = train_cfg("train.lr=0.001", "train.min_lr=0.0001", "train.lr_schedule=cosine", "train.warmup_steps=100")
    lr = [cfg.lr * lr_factor(step, cfg, horizon=2000) for step in (0, 49, 99, 100, 1050, 1999, 2000, 2500)]
    # nanoGPT's get_lr: lr·(it+1)/(warmup+1), then min_lr + ½(1 + cos(π·progress))·(lr - min_lr)
    assert lr[0] == pytest.approx(0.001 / 101)
    assert lr[1] == pytest.approx(0.001 * 50 / 101)
    assert lr[2] == pytest.approx(0.001 * 100 / 101)
    assert lr[3] == pytest.approx(0.001)  # the peak right after warm-up
    assert lr[4] == pytest.approx(0.00055)  # half way: the mean of lr and min_lr
    assert lr[5] == pytest.approx(0.0001 + 0.5 * (1 + math.cos(math.pi * 1899 / 1900)) * 0.0009)
    assert lr[6] == lr[7] == pytest.approx(0.0001)  # min_lr from the horizon on


def test_linear_and_constant_schedules():
    linear = train_cfg("train.lr=0.01", "train.lr_schedule=linear")
    assert [lr_factor(s, linear, horizon=10) for s in (0, 5, 10)] == pytest.approx([1.0, 0.5, 0.0])
    constant = train_cfg("train.warmup_steps=3")
    assert [lr_factor(s, constant, horizon=10) for s in (0, 2, 3, 50)] == pytest.approx([0.25, 0.75, 1.0, 1.0])


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.lr_schedule=exponential", "train.lr_schedule"),
        ("train.warmup_steps=-1", "train.warmup_steps"),
        ("train.min_lr=0.5", "train.min_lr"),  # above train.lr
        ("train.max_steps=0", "train.max_steps"),
        ("train.eval_every_steps=0", "train.eval_every_steps"),
        ("train.betas=[0.9,1.5]", "train.betas"),
    ],
)
def test_bad_step_knobs_are_one_line_errors_naming_the_key(override, key):
    with pytest.raises(SeqlabError, match=f"^config: {key}") as err:
        build_config({}, [override])
    assert "\n" not in str(err.value)


def test_warmup_must_end_before_max_steps():
    with pytest.raises(SeqlabError, match="train.warmup_steps: must be fewer than train.max_steps=5"):
        build_config({}, ["train.max_steps=5", "train.warmup_steps=5"])


class Regression(L.LightningModule):
    """A linear model that records the lr of every step and counts its validations."""

    def __init__(self, cfg):
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self.cfg = cfg
        self.lrs, self.validations = [], 0

    def training_step(self, batch, batch_idx):
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        x, y = batch
        loss = nn.functional.mse_loss(self.layer(x).squeeze(-1), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.layer(x).squeeze(-1), y))

    def on_validation_epoch_end(self):
        self.validations += 1

    def configure_optimizers(self):
        return with_lr_schedule(self, make_optimizer(self, self.cfg), self.cfg)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_fit_follows_the_schedule_and_stops_at_max_steps(tmp_path, precision):
    cfg = train_cfg(
        "train.optimizer=adamw",
        "train.lr=0.01",
        "train.min_lr=0.001",
        "train.lr_schedule=cosine",
        "train.warmup_steps=2",
        "train.max_steps=7",
        "train.eval_every_steps=3",
        "train.epochs=100",
        "train.betas=[0.8,0.95]",
        "train.grad_clip=1.0",
        f"train.precision={precision}",
        "train.monitor=val_loss",
    )
    data = TensorDataset(torch.randn(20, 4), torch.randn(20))
    module = Regression(cfg)
    fit(module, DataLoader(data, batch_size=5), DataLoader(data, batch_size=10), tmp_path, cfg, progress="off", loggers=False)
    assert module.trainer.global_step == 7  # 1¾ epochs of 4 batches: max_steps, not epochs, ended it
    assert module.lrs == pytest.approx([0.01 * lr_factor(step, cfg, horizon=7) for step in range(7)])
    assert module.validations == 2  # after steps 3 and 6, not at the epoch's end
    assert module.trainer.optimizers[0].defaults["betas"] == (0.8, 0.95)
    assert module.trainer.optimizers[0].defaults["fused"]  # bf16 clips a fused optimiser's gradients too


def test_a_constant_lr_without_warmup_keeps_the_bare_optimiser():
    cfg = train_cfg()
    module = Regression(cfg)
    assert isinstance(with_lr_schedule(module, make_optimizer(module, cfg), cfg), torch.optim.Optimizer)


def test_inverse_sqrt_and_the_clock_fitted_decay():
    inverse = TrainConfig(lr=1e-3, min_lr=1e-5, lr_schedule="inverse_sqrt", warmup_steps=100)
    assert [lr_factor(s, inverse, horizon=10) for s in (99, 100, 399, 10**9)] == pytest.approx(
        [100 / 101, math.sqrt(100 / 101), 0.5, 0.01]
    )
    clock = TrainConfig(lr=1e-3, min_lr=1e-5, lr_schedule="cosine", warmup_steps=10, max_minutes=45, schedule_clock=True)
    # far from the step horizon, the decay follows the share of the time budget spent
    assert lr_factor(100, clock, horizon=10**6, clock=0.5) == pytest.approx(0.01 + 0.5 * 0.99)
    assert lr_factor(100, clock, horizon=10**6, clock=1.0) == pytest.approx(0.01)
    assert lr_factor(100, clock, horizon=10**6) == pytest.approx(lr_factor(100, clock, horizon=10**6, clock=0.0))
    assert lr_factor(5, clock, horizon=10**6, clock=0.9) == pytest.approx(6 / 11)  # warm-up goes by steps
