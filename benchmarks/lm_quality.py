"""Training quality per second: seqlab's char GPT vs nanoGPT's CPU "baby GPT", 64 s each.

    python benchmarks/lm_quality.py [--data ../shared/data/tinyshakespeare.txt] [--seconds 64]
        [--eval-every 8] [--runs seqlab,nanogpt] [--threads N] [--plot docs/img/lm_quality.png]
        [--json FILE] [seqlab overrides, e.g. train.lr=0.002 ...]

Both models learn the characters of tiny-shakespeare: the first 90% trains, the last 10% is held
out (`lm.split_text`, as published results use). Each trains for `--seconds` of *training* time
on the same machine in the same process, one after the other:

- **seqlab**: `seqlab.trainer.fit` with `tasks.lm`'s module and loaders, the settings of
  `SEQLAB` below (+ any overrides): what `seqlab train lm` runs (the command is printed).
- **nanoGPT**: the CPU "baby GPT" of nanoGPT's README (`--device=cpu --compile=False
  --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000
  --lr_decay_iters=2000 --dropout=0.0` on config/train_shakespeare_char.py), re-implemented
  here faithfully (`NanoGPT`, `train_nanogpt`): bias-free LayerNorm/Linear, exact GELU, tied
  embedding, GPT-2 init, fp32 on CPU, AdamW (0.9, 0.99) with weight decay 0.1 on 2-d tensors,
  lr 1e-3 with 100 warm-up iterations and cosine decay to 1e-4 at iteration 2000, gradient
  clipping at 1.0, batches of random windows. It stops at 2000 iterations or at the time
  budget, whichever comes first.

Every `--eval-every` seconds (and at 0 s and at the end) the clock stops and the model is scored
in fp32 on the *whole* held-out 10% (111,539 characters), read in consecutive windows of the
model's own context (`lm.heldout_windows`: every character scored once). Training time counts
everything else: batches, forward, backward, clipping, optimiser, and for seqlab Lightning's
own work (logging, the epoch checkpoints). Prints a Markdown table (with `uptime` before and
after: the machine is shared) and draws validation loss against training seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import nn

from seqlab.config import build_config
from seqlab.tasks.lm import recipe as lm
from seqlab.trainer import fit, resolve_precision

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"

# seqlab's settings for the 64-second run, chosen with this script (`--runs seqlab` and a fixed
# train.max_steps; held-out loss when the schedule ends). In ~64 s this data set is not seen
# once, and the loss is limited by optimiser steps more than by tokens or model size:
# - 4 layers (nanoGPT's size), 12 × 64, lr 4e-3 cosine: ~1,300 steps fit, 1.86; 2,380 steps
#   (~115 s) reach 1.73. Peak lr 2e-3/3e-3/4e-3/6e-3 after 2,380 steps: 1.765/1.739/1.727/1.728.
# - The same width with 2 layers takes ~half the time per step: 2,300 steps (64 s) reach 1.735;
#   3 layers (1,700 steps) 1.770; 2 × d=192 (1,550) 1.794; 4 × d=96 (1,800) 1.820.
# - 2 layers, batches of 16 × 64 (1,850 steps, 62 s): 1.719; 24 × 64 (1,400, 72 s): 1.714;
#   32 × 64 (1,100, 70 s): 1.717; 8 × 128 (1,850, 69 s): 1.773.
# - lr 6e-3 with 50 warm-up steps, decayed linearly to 0, was as good as or better than cosine
#   to 1e-4 (1.735 vs 1.740) and than 8e-3 (1.746).
SEQLAB = [
    "model.arch=gpt",
    "model.preset=small",
    "model.num_layers=2",
    "model.dropout=0",
    "model.bias=false",
    "tokenizer.max_length=64",
    "train.batch_size=16",
    "train.precision=auto",
    "train.optimizer=adamw",
    "train.betas=[0.9,0.99]",
    "train.weight_decay=0.1",
    "train.grad_clip=1.0",
    "train.lr=0.006",
    "train.lr_schedule=linear",
    "train.warmup_steps=50",
    "train.min_lr=0",
    "train.max_steps=1900",
    "train.epochs=1000",
    "train.patience=null",
]


# --------------------------------------------------------------------------- clock and curve


@dataclass
class Curve:
    """Validation loss against training seconds (evaluations excluded)."""

    name: str
    block: int
    batch: int
    points: list[tuple[float, int, float]] = field(default_factory=list)  # (seconds, step, val loss)
    started: float = 0.0
    paused: float = 0.0  # seconds spent evaluating so far
    wall: float = 0.0

    def start(self) -> None:
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.started - self.paused

    def record(self, step: int, evaluate) -> float:
        """Stop the clock, score the held-out text, restart the clock."""
        began = time.perf_counter()
        seconds = self.seconds()
        loss = evaluate()
        self.points.append((seconds, step, loss))
        self.paused += time.perf_counter() - began
        print(f"  {self.name}: {seconds:6.1f} s  step {step:5d}  val loss {loss:.4f}", flush=True)
        return loss


def due(curve: Curve, every: float) -> bool:
    last = curve.points[-1][0] if curve.points else 0.0
    return curve.seconds() >= (math.floor(last / every + 1e-9) + 1) * every


# --------------------------------------------------------------------------- seqlab


class Budget(Callback):
    """Scores the model every `every` seconds of training and stops it at `seconds`."""

    def __init__(self, curve: Curve, seconds: float, every: float, evaluate):
        self.curve, self.budget, self.every, self.evaluate = curve, seconds, every, evaluate

    def on_train_start(self, trainer, module) -> None:
        self.curve.start()
        self.curve.record(0, self.evaluate)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        done = self.curve.seconds() >= self.budget
        if done or due(self.curve, self.every):
            self.curve.record(trainer.global_step, self.evaluate)
            module.train()
        if done:
            trainer.should_stop = True

    def on_train_end(self, trainer, module) -> None:
        if self.curve.points[-1][1] != trainer.global_step:  # stopped by max_steps between evaluations
            self.curve.record(trainer.global_step, self.evaluate)


def run_seqlab(data: Path, overrides: list[str], seconds: float, every: float) -> tuple[Curve, int, str]:
    cfg = build_config({"task": "lm"}, [f"data.train={data}", "data.valid_fraction=0.1", "data.test_fraction=0", *overrides])
    splits = lm.split_text(cfg)
    codec = lm.Codec(lm.learn_tokenizer(cfg, splits.train))
    train_ids, valid_ids = codec.encode_stream(splits.train), codec.encode_stream(splits.valid)
    torch.manual_seed(cfg.train.seed)
    model = lm.build_lm(cfg, codec.vocab_size)
    block = cfg.tokenizer.max_length
    curve = Curve("seqlab", block, cfg.train.batch_size)

    def evaluate() -> float:
        with torch.autocast("cpu", enabled=False):
            return lm.evaluate(model, valid_ids, len(splits.valid), block, batch_size=64)["loss"]

    train_loader, _ = lm.make_loaders(cfg, train_ids, valid_ids)
    budget = Budget(curve, seconds, every, evaluate)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        fit(
            lm.LanguageModelModule(model, cfg.train),
            train_loader,
            None,
            Path(work),
            cfg.train,
            progress="off",
            callbacks=[budget],
        )
    curve.wall = time.perf_counter() - began
    command = "seqlab train lm " + shlex.join(["--data", str(data), *overrides])
    described = (
        f"{cfg.model.num_layers} layers, d={cfg.model.d_model}, {cfg.model.num_heads} heads, context {block}, "
        f"batch {cfg.train.batch_size}, {resolve_precision(cfg.train.precision)}, lr {cfg.train.lr:g} "
        f"{cfg.train.lr_schedule} → {cfg.train.min_lr:g} over {cfg.train.max_steps or '?'} steps"
    )
    return curve, sum(p.numel() for p in model.parameters()), described + f"; `{command}`"


# --------------------------------------------------------------------------- nanoGPT, re-implemented


@dataclass
class BabyConfig:
    """nanoGPT's CPU baby GPT (README), on config/train_shakespeare_char.py."""

    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    batch_size: int = 12
    dropout: float = 0.0
    bias: bool = False  # train.py's default
    learning_rate: float = 1e-3
    max_iters: int = 2000
    lr_decay_iters: int = 2000
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 1e-1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    seed: int = 1337


class NanoBlock(nn.Module):
    def __init__(self, c: BabyConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.attn_proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.ln_2 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.mlp_proj = nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)
        self.n_head = c.n_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))  # nn.GELU(): exact erf GELU


class NanoGPT(nn.Module):
    """nanoGPT's model.py with dropout 0 (the baby GPT's), layer by layer."""

    def __init__(self, c: BabyConfig, vocab_size: int):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.h = nn.ModuleList(NanoBlock(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight  # weight tying
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):  # nanoGPT's c_proj: the residual projections
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)


def nanogpt_lr(c: BabyConfig, it: int) -> float:
    """nanoGPT's get_lr."""
    if it < c.warmup_iters:
        return c.learning_rate * (it + 1) / (c.warmup_iters + 1)
    if it > c.lr_decay_iters:
        return c.min_lr
    decay_ratio = (it - c.warmup_iters) / (c.lr_decay_iters - c.warmup_iters)
    return c.min_lr + 0.5 * (1.0 + math.cos(math.pi * decay_ratio)) * (c.learning_rate - c.min_lr)


@torch.no_grad()
def nanogpt_heldout_loss(model: NanoGPT, ids: torch.Tensor, block: int) -> float:
    """Mean loss per character over the whole held-out text, in consecutive windows."""
    model.eval()
    windows = lm.heldout_windows(ids, block)
    nats, count = 0.0, 0
    for start in range(0, len(windows), 64):
        batch = lm.collate_windows(windows[start : start + 64])
        targets = batch["targets"].masked_fill(batch["targets"] == lm.IGNORE, -1)
        n = int((targets != -1).sum())
        nats += float(model(batch["input_ids"], targets)) * n
        count += n
    model.train()
    return nats / count


def run_nanogpt(data: Path, seconds: float, every: float) -> tuple[Curve, int, str]:
    c = BabyConfig()
    text = data.read_text(encoding="utf-8")
    chars = sorted(set(text))  # nanoGPT's prepare.py: the vocabulary of the whole file (65)
    stoi = {ch: i for i, ch in enumerate(chars)}
    cut = len(text) - round(len(text) * 0.1)  # the same split as seqlab's (prepare.py: int(n * 0.9), one char apart)
    train_data = torch.tensor([stoi[ch] for ch in text[:cut]], dtype=torch.long)
    val_data = torch.tensor([stoi[ch] for ch in text[cut:]], dtype=torch.long)
    torch.manual_seed(c.seed)
    model = NanoGPT(c, len(chars))
    params = {pn: p for pn, p in model.named_parameters() if p.requires_grad}
    groups = [
        {"params": [p for p in params.values() if p.dim() >= 2], "weight_decay": c.weight_decay},
        {"params": [p for p in params.values() if p.dim() < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=c.learning_rate, betas=(c.beta1, c.beta2))  # fused only on CUDA in nanoGPT

    def get_batch() -> tuple[torch.Tensor, torch.Tensor]:
        ix = torch.randint(len(train_data) - c.block_size, (c.batch_size,))
        x = torch.stack([train_data[i : i + c.block_size] for i in ix])
        y = torch.stack([train_data[i + 1 : i + 1 + c.block_size] for i in ix])
        return x, y

    curve = Curve("nanoGPT", c.block_size, c.batch_size)

    def evaluate() -> float:
        return nanogpt_heldout_loss(model, val_data, c.block_size)

    began = time.perf_counter()
    curve.start()
    curve.record(0, evaluate)
    X, Y = get_batch()
    it = 0
    while True:
        lr = nanogpt_lr(c, it)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = model(X, Y)
        X, Y = get_batch()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        it += 1
        done = it >= c.max_iters or curve.seconds() >= seconds
        if done or due(curve, every):
            curve.record(it, evaluate)
        if done:
            break
    curve.wall = time.perf_counter() - began
    described = (
        "nanoGPT's CPU baby GPT, fp32: 4 layers, d=128, 4 heads, context 64, batch 12, "
        "lr 1e-3 cosine → 1e-4 over 2000 iterations (re-implemented in this script)"
    )
    return curve, sum(p.numel() for p in model.parameters()), described


# --------------------------------------------------------------------------- report


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "(uptime unavailable)"


def load_of(uptime_line: str) -> str:
    """'16:01:03 up 2:51, 0 user, load average: 7.57, 6.52, 4.31' → '7.57, 6.52, 4.31'."""
    return uptime_line.split("load average:")[-1].strip()


def plot(curves: list[Curve], goal: float, path: Path, note: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for curve in curves:
        xs, _, ys = zip(*curve.points)
        ax.plot(xs, ys, marker="o", markersize=3, label=f"{curve.name} (final {ys[-1]:.3f})")
    ax.axhline(goal, color="grey", linestyle="--", linewidth=1, label=f"goal ≤ {goal:.2f}")
    ax.set_xlabel("training seconds (evaluation excluded)")
    ax.set_ylabel("validation loss (nats/char, whole held-out 10%)")
    ax.set_title(f"tiny-shakespeare, char-level GPT, CPU\n{note}", fontsize=10)
    low = min(goal, *(p[2] for c in curves for p in c.points))
    ax.set_ylim(low - 0.1, 3.0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seconds", type=float, default=64.0)
    parser.add_argument("--eval-every", type=float, default=8.0)
    parser.add_argument("--runs", default="seqlab,nanogpt")
    parser.add_argument("--goal", type=float, default=1.80)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for both runs (default 1: on the shared 2-core machine two OpenMP threads "
        "run ~10× slower whenever another process holds a core; 0: torch's choice)",
    )
    parser.add_argument("--plot", type=Path, default=Path("docs/img/lm_quality.png"))
    parser.add_argument("--json", type=Path, default=None, help="also write the curves here")
    parser.add_argument("overrides", nargs="*", help="seqlab config overrides on top of SEQLAB")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="seqlab: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    for name in args.runs.split(","):
        before = uptime()
        print(f"{name}: {before}", flush=True)
        if name == "seqlab":
            curve, params, described = run_seqlab(args.data, [*SEQLAB, *args.overrides], args.seconds, args.eval_every)
        else:
            curve, params, described = run_nanogpt(args.data, args.seconds, args.eval_every)
        rows.append((curve, params, described, before, uptime()))

    print(
        f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads; {args.data.name}, first 90% / last 10%; "
        f"{args.seconds:g} s of training each\n"
    )
    print(
        "| run | configuration | parameters | steps | training s | tokens/s | val loss | goal ≤ "
        f"{args.goal:.2f} | load (uptime before → after) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for curve, params, described, before, after in rows:
        seconds, steps, loss = curve.points[-1]
        speed = steps * curve.batch * curve.block / max(seconds, 1e-9)
        print(
            f"| {curve.name} | {described} | {params:,} | {steps:,} | {seconds:.1f} | {speed:,.0f} | **{loss:.3f}** | "
            f"{'✓' if loss <= args.goal else '✗'} | {load_of(before)} → {load_of(after)} |"
        )
    print()
    for curve, *_ in rows:
        shown = ", ".join(f"{s:.0f}s {v:.3f}" for s, _, v in curve.points)
        print(f"{curve.name} curve: {shown}  (wall {curve.wall:.0f} s incl. evaluation)")
    loads = ", ".join(f"{r[0].name} {load_of(r[3]).split(',')[0]}" for r in rows)
    plot([r[0] for r in rows], args.goal, args.plot, f"{torch.get_num_threads()} thread(s); 1-min load before each run: {loads}")
    print(f"\nplot: {args.plot}")
    if args.json:
        args.json.write_text(
            json.dumps([{"name": c.name, "block": c.block, "batch": c.batch, "points": c.points} for c, *_ in rows], indent=1),
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
