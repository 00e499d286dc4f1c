"""What every classifier returns, so tasks never branch on the model family."""

from __future__ import annotations

from typing import NamedTuple

import torch


class ClassifierOutput(NamedTuple):
    """logits: (B, C) (C = 1 for a sigmoid head); attentions: one (B, H, T, T) tensor per layer
    when the model has attention and it was asked for, else None."""

    logits: torch.Tensor
    attentions: list[torch.Tensor] | None = None


def masked_pool(states: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Pool (B, T, D) states over the real positions of a (B, T) bool mask → (B, D).

    Padded positions never influence the result, so a sentence pools the same alone or in a
    padded batch.
    """
    if how == "max":
        return states.masked_fill(~mask[..., None], float("-inf")).max(dim=1).values
    if how == "mean":
        weights = mask[..., None].to(states.dtype)
        return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
    raise ValueError(f"unknown pooling {how!r}")
