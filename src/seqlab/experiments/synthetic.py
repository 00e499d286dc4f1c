"""Synthetic tasks for the theory experiments, and the small loop that trains on them.

Every generator is seeded and returns tensors of fixed-length rows (no padding: every row of a
task has the same length, so the attention mask is all True):

- `long_range(n, k)`: classify a row by its first token, read k positions before the last one,
  behind k distractors drawn from the same tokens (`long-range` experiment).
- `which_first(n, length)`: does marker A come before marker B? Both classes hold the same
  tokens, only their order differs (`positions` experiment).
- `next_word_tags(n, length)`: tag each token with the group of the token *after* it (needs
  right context; `bidirectional` experiment).
- `random_rows(n, length)`: random tokens and labels, for speed measurements (`parallelism`).

Token id 0 is padding (`PAD_ID`) and never generated. The functions below are a stable interface
that other experiments import: (ids (N, T) long, labels (N,) or (N, T) long).

`train_synthetic` is a plain loop rather than `seqlab.trainer.fit`: these runs are a few hundred
steps of a model with a few thousand parameters, where Lightning's start-up, checkpoints and
logs would take longer than the training itself (an experiment trains up to ~20 of them). It uses
the shared optimiser (`seqlab.trainer.make_optimizer`) and gradient clipping of `TrainConfig`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from seqlab.config import TrainConfig
from seqlab.data.batching import PAD_ID
from seqlab.models import count_parameters
from seqlab.trainer import make_optimizer

Forward = Callable[[nn.Module, torch.Tensor], torch.Tensor]
"""(model, ids (B, T)) → logits (B, K) for row labels or (B, T, K) for token labels."""


def long_range(
    n: int, k: int, num_classes: int = 4, num_distractors: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of k + 1 tokens whose label is the first token, k positions before the last one.

    Vocabulary: value tokens 1..C (C = num_classes) and distractor tokens C+1..C+D. Position 0
    holds a value token; positions 1..k are drawn from *all* tokens, values included, so the
    answer is "the value at the start", not "the value that appears".

    Returns:
        ids (n, k + 1) long, labels (n,) long in [0, C): label = ids[:, 0] - 1.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    rest = torch.randint(1, num_classes + num_distractors + 1, (n, k), generator=g)
    ids = torch.cat([labels[:, None] + 1, rest], dim=1)
    return ids, labels


def long_range_vocab(num_classes: int = 4, num_distractors: int = 8) -> int:
    """The vocabulary size (padding included) of `long_range` with these sizes."""
    return num_classes + num_distractors + 1


MARK_A, MARK_B = 1, 2


def which_first(n: int, length: int, vocab_size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows holding marker A (id 1) and marker B (id 2) once each, at random distinct positions,
    among filler tokens 3..vocab_size-1.

    Rows of both classes are drawn from one distribution of token multisets; only the order of
    A and B differs, so a model that cannot see order is at chance (50%).

    Returns:
        ids (n, length) long, labels (n,) long: 1 if A comes before B, else 0.
    """
    if length < 2 or vocab_size < 4:
        raise ValueError("which_first needs length ≥ 2 and vocab_size ≥ 4")
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab_size, (n, length), generator=g)
    order = torch.rand(n, length, generator=g).argsort(dim=1)  # a random permutation per row
    pos_a, pos_b = order[:, 0], order[:, 1]
    rows = torch.arange(n)
    ids[rows, pos_a] = MARK_A
    ids[rows, pos_b] = MARK_B
    return ids, (pos_a < pos_b).long()


def next_word_tags(
    n: int, length: int, num_groups: int = 4, vocab_size: int = 17, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of random words 1..vocab_size-1; each word's tag is the group of the *next* word.

    group(w) = (w - 1) % num_groups; the last word of a row has tag `num_groups` ("end"). A
    left-to-right model has not seen the next word when it tags this one: its best is chance,
    1 / num_groups, on every word but the last.

    Returns:
        ids (n, length) long, tags (n, length) long in [0, num_groups].
    """
    if length < 2:
        raise ValueError("next_word_tags needs length ≥ 2")
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab_size, (n, length), generator=g)
    tags = torch.full((n, length), num_groups, dtype=torch.long)
    tags[:, :-1] = (ids[:, 1:] - 1) % num_groups
    return ids, tags


def random_rows(
    n: int, length: int, vocab_size: int = 64, num_classes: int = 2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens 1..vocab_size-1 and random labels: for timing, where the content is irrelevant.

    Returns:
        ids (n, length) long, labels (n,) long in [0, num_classes).
    """
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, vocab_size, (n, length), generator=g), torch.randint(0, num_classes, (n,), generator=g)


def all_real(ids: torch.Tensor) -> torch.Tensor:
    """The attention mask of fixed-length rows: (B, T) all True."""
    return ids != PAD_ID


def train_synthetic(
    model: nn.Module,
    forward: Forward,
    ids: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
) -> float:
    """Train `model` for `steps` optimiser steps on random batches; → the last 20 steps' mean loss.

    Args:
        model: any seqlab model; `forward(model, ids)` gives its logits.
        ids: (N, T) long; labels: (N,) or (N, T) long, matching the logits (B, K) or (B, T, K).
        steps, batch_size, lr: the budget; Adam with `TrainConfig`'s defaults otherwise
            (gradient clipping at `grad_clip`).
    """
    cfg = TrainConfig(lr=lr)
    optimizer = make_optimizer(model, cfg)
    g = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, ids.size(0), (batch_size,), generator=g)
        logits = forward(model, ids[batch])
        loss = loss_fn(logits.reshape(-1, logits.size(-1)), labels[batch].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cast(float, cfg.grad_clip))  # the experiments set it
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    tail = losses[-20:]
    return sum(tail) / max(len(tail), 1)


@torch.no_grad()
def predict(model: nn.Module, forward: Forward, ids: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Argmax predictions, (N,) or (N, T) long, in eval mode."""
    model.eval()
    return torch.cat([forward(model, ids[i : i + batch_size]).argmax(-1) for i in range(0, ids.size(0), batch_size)])


def accuracy(model: nn.Module, forward: Forward, ids: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of predictions (rows or tokens) equal to `labels`."""
    return float((predict(model, forward, ids) == labels).float().mean())


def matched_width(build: Callable[[int], nn.Module], target: int, widths: range = range(4, 1025, 4)) -> int:
    """The width (from `widths`) whose model `build(width)` has the parameter count closest to
    `target`: how models of different families are made the same size for a comparison."""
    lo, hi = 0, len(widths) - 1
    while lo < hi:  # parameter counts grow with width: find the first width reaching the target
        mid = (lo + hi) // 2
        if count_parameters(build(widths[mid])) < target:
            lo = mid + 1
        else:
            hi = mid
    candidates = [widths[i] for i in (lo - 1, lo) if 0 <= i < len(widths)]
    return min(candidates, key=lambda w: abs(count_parameters(build(w)) - target))
