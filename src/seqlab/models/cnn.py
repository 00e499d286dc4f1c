"""Convolutional sentence classifier of Kim (2014), "Convolutional Neural Networks for Sentence
Classification".

Embedding → parallel 1-D convolutions of several widths → ReLU → max-over-time pooling →
dropout → linear. The course's CNN is the one-width case: Conv1D(128, 5) with a sigmoid head.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from seqlab.models.outputs import ClassifierOutput, init_embeddings


class KimCNN(nn.Module):
    """Kim's CNN with "wide" convolutions.

    Each filter of width w slides over the sentence padded with w-1 zero vectors on both sides,
    and only windows that touch at least one real token are pooled. Because the padding
    embedding is zero, a sentence gives the same features alone or in a longer padded batch,
    and sentences shorter than the widest filter still work.

    Args:
        vocab_size: number of token ids.
        num_outputs: classes (1 for a sigmoid head on a binary task).
        embed_dim: embedding size (300 in Kim's paper).
        filter_sizes: window widths (3, 4, 5 in the paper).
        num_filters: feature maps per width (100 in the paper).
        dropout: before the head (0.5 in the paper).
        pad_id: the padding token id (its embedding stays zero).
    """

    def __init__(
        self,
        vocab_size: int,
        num_outputs: int,
        embed_dim: int = 300,
        filter_sizes: tuple[int, ...] = (3, 4, 5),
        num_filters: int = 100,
        dropout: float = 0.5,
        pad_id: int = 0,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        init_embeddings(self.embedding)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, num_filters, width, padding=width - 1) for width in filter_sizes)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(num_filters * len(filter_sizes), num_outputs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, need_weights: bool = False) -> ClassifierOutput:
        """input_ids, attention_mask: (B, T) → logits (B, C)."""
        lengths = attention_mask.sum(dim=1)  # (B,)
        embedded = self.embedding(input_ids).transpose(1, 2)  # (B, E, T)
        pooled = []
        for conv in self.convs:
            width = cast(nn.Conv1d, conv).kernel_size[0]
            feature_map = torch.relu(conv(embedded))  # (B, F, T + w - 1)
            # window t covers tokens t-w+1 .. t; it touches a real token iff t < length + w - 1
            positions = torch.arange(feature_map.size(-1), device=input_ids.device)
            valid = positions[None, :] < (lengths[:, None] + width - 1)  # (B, T + w - 1)
            feature_map = feature_map.masked_fill(~valid[:, None, :], float("-inf"))
            pooled.append(feature_map.max(dim=-1).values)  # (B, F)
        features = torch.cat(pooled, dim=-1)  # (B, F·len(widths))
        return ClassifierOutput(self.head(self.dropout(features)))
