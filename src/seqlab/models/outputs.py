"""What every classifier and language model returns, so tasks never branch on the model family."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn


class ClassifierOutput(NamedTuple):
    """logits: (B, C) (C = 1 for a sigmoid head); attentions: one (B, H, T, T) tensor per layer
    when the model has attention and it was asked for, else None."""

    logits: torch.Tensor
    attentions: list[torch.Tensor] | None = None


class LMOutput(NamedTuple):
    """What every language model returns, so decoding never branches on the model family.

    logits: (B, T, V), next-token scores after each input position.
    cache: the state to pass back for the next step: a `gpt.KVCache` (None unless the cache was
        asked for), or a recurrent model's hidden state (an LSTM's (h, c), else h; each
        (layers, B, H)).
    attentions: one (B, H, T, T_past + T) tensor per layer when asked for, else None.
    """

    logits: torch.Tensor
    cache: Any = None
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


def init_embeddings(embedding: nn.Embedding, bound: float = 0.25) -> None:
    """U(-0.25, 0.25), as Kim (2014) initialised words without pretrained vectors: a variance
    close to word2vec's, where PyTorch's N(0, 1) default saturates the first layer of a 300-d
    model. The padding row stays zero."""
    with torch.no_grad():
        embedding.weight.uniform_(-bound, bound)
        if embedding.padding_idx is not None:
            embedding.weight[embedding.padding_idx].zero_()


class Seq2SeqOutput(NamedTuple):
    """What every encoder-decoder returns for a teacher-forced target.

    logits: (B, T, V), the next target token's scores after each decoder input position.
    alignments: (B, T, S) attention of each target position over the source tokens (rows sum
        to 1, padded source at 0): the RNN's attention, or a Transformer's last cross-attention
        layer averaged over heads; None for a model without attention or when not asked for.
    cross_attentions: a Transformer's per-layer (B, H, T, S) cross-attention weights, when
        asked for; else None.
    """

    logits: torch.Tensor
    alignments: torch.Tensor | None = None
    cross_attentions: list[torch.Tensor] | None = None
