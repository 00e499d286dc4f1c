"""A Transformer encoder written from scratch (Vaswani et al., 2017), used as a classifier.

token embedding · √d + positional encoding → N × [pre-norm self-attention, pre-norm feed-forward]
→ final LayerNorm → pooling ([CLS], mean or max) → dropout → linear.

Pre-norm blocks (Xiong et al., 2020) train stably without a learning-rate warm-up, which
matters for small data. Attention comes from `seqlab.models.attention` and can return its
weights for every layer.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from seqlab.models.attention import MultiHeadAttention
from seqlab.models.outputs import ClassifierOutput, masked_pool


class SinusoidalPositions(nn.Module):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(…): fixed, no parameters,
    defined for any length."""

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        self.register_buffer("table", self._table(d_model, max_len), persistent=False)

    @staticmethod
    def _table(d_model: int, length: int) -> torch.Tensor:
        position = torch.arange(length, dtype=torch.float32)[:, None]  # (L, 1)
        rate = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        table = torch.zeros(length, d_model)
        table[:, 0::2] = torch.sin(position * rate)
        table[:, 1::2] = torch.cos(position * rate[: d_model // 2])
        return table  # (L, d_model)

    def forward(self, length: int) -> torch.Tensor:
        """→ (length, d_model)."""
        if length > self.table.size(0):  # sinusoids extend to any length
            self.table = self._table(self.table.size(1), length).to(self.table.device)
        return self.table[:length]

    def at(self, position_ids: torch.Tensor) -> torch.Tensor:
        """Vectors by position id: (B, T) long → (B, T, d_model). For rows that do not start at
        position 0 (a decoder's KV cache, left padding)."""
        self(int(position_ids.max()) + 1 if position_ids.numel() else 0)  # extend the table if needed
        return self.table[position_ids]


class LearnedPositions(nn.Module):
    """One trained vector per position, as in BERT and GPT-2; limited to `max_len`."""

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, length: int) -> torch.Tensor:
        """→ (length, d_model)."""
        if length > self.embedding.num_embeddings:
            raise ValueError(f"sequence of {length} positions exceeds max_len={self.embedding.num_embeddings}")
        return self.embedding.weight[:length]

    def at(self, position_ids: torch.Tensor) -> torch.Tensor:
        """Vectors by position id: (B, T) long → (B, T, d_model). For rows that do not start at
        position 0 (a decoder's KV cache, left padding)."""
        if position_ids.numel() and int(position_ids.max()) >= self.embedding.num_embeddings:
            raise ValueError(
                f"position {int(position_ids.max())} exceeds max_len={self.embedding.num_embeddings} "
                "(learned positions cover 0..max_len-1)"
            )
        return self.embedding(position_ids)


POSITIONS = {"sinusoidal": SinusoidalPositions, "learned": LearnedPositions}


class EncoderLayer(nn.Module):
    """x + SelfAttention(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(d_model)
        self.attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.ff_norm = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(
            nn.Linear(d_model, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, padding_mask: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, d_model); padding_mask: (B, T), True = real → (x, weights (B, H, T, T) | None)."""
        attended, weights = self.attention(
            self.attn_norm(x), key_padding_mask=padding_mask, need_weights=need_weights
        )
        x = x + self.dropout(attended)
        x = x + self.dropout(self.feed_forward(self.ff_norm(x)))
        return x, weights


class TransformerEncoder(nn.Module):
    """Token + position (+ segment) embeddings and a stack of encoder layers → contextual states
    (B, T, d). `num_segments` > 0 adds BERT's token-type embeddings (segment A/B of a pair);
    0, the default, has none, so models without segments keep their parameters."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int = 256,
        dropout: float = 0.1,
        positional: str = "sinusoidal",
        max_len: int = 512,
        pad_id: int = 0,
        num_segments: int = 0,
    ):
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        # std d^-1/2, so that after the √d scale in `forward` tokens and positions are both ~unit size
        nn.init.normal_(self.embedding.weight, std=d_model**-0.5)
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        self.positions = POSITIONS[positional](d_model, max_len)
        self.segments = nn.Embedding(num_segments, d_model) if num_segments else None
        if self.segments is not None:
            nn.init.normal_(self.segments.weight, std=0.02)  # BERT's initialiser
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(d_model, num_heads, ff_dim, dropout) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model)

    def forward(
        self,
        embedded: torch.Tensor,
        padding_mask: torch.Tensor,
        need_weights: bool = False,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """embedded: (B, T, d) token vectors (already embedded, so callers may prepend [CLS]);
        padding_mask: (B, T); token_type_ids: (B, T) segment ids, default all 0 (used only with
        segments) → (states (B, T, d), per-layer weights or None)."""
        x = embedded * math.sqrt(self.d_model) + self.positions(embedded.size(1))
        if self.segments is not None:
            if token_type_ids is None:
                x = x + self.segments.weight[0]  # one segment: every token is in segment A
            else:
                x = x + self.segments(token_type_ids)
        x = self.dropout(x)
        attentions = [] if need_weights else None
        for layer in self.layers:
            x, weights = layer(x, padding_mask, need_weights)
            if need_weights:
                attentions.append(weights)
        return self.final_norm(x), attentions


class TransformerClassifier(nn.Module):
    """A Transformer encoder with a pooling head.

    Args:
        vocab_size, num_outputs: token ids and classes (1 for a sigmoid head).
        d_model, num_heads, num_layers, ff_dim, dropout, positional, max_len: encoder sizes.
        pooling: "cls" (a learned [CLS] vector prepended to every sentence), "mean" or "max".
        pad_id: the padding token id.
        num_segments: segment embeddings in the encoder (2 for an encoder pretrained as BERT).
        prepend_cls: False when the vocabulary itself puts a [CLS] token first (a WordPiece
            vocabulary pretrained here): "cls" pooling then reads that token's state.
    """

    def __init__(
        self,
        vocab_size: int,
        num_outputs: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int = 256,
        dropout: float = 0.1,
        positional: str = "sinusoidal",
        max_len: int = 512,
        pooling: str = "mean",
        pad_id: int = 0,
        num_segments: int = 0,
        prepend_cls: bool = True,
    ):
        super().__init__()
        self.pooling = pooling
        self.prepend_cls = prepend_cls and pooling == "cls"
        self.encoder = TransformerEncoder(
            vocab_size, d_model, num_heads, num_layers, ff_dim, dropout, positional, max_len + 1, pad_id, num_segments
        )
        if self.prepend_cls:
            self.cls = nn.Parameter(torch.randn(d_model) * 0.02)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, num_outputs)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, need_weights: bool = False
    ) -> ClassifierOutput:
        """input_ids, attention_mask: (B, T) → logits (B, C), and per-layer attention weights
        (B, H, T', T') when asked (T' = T + 1 with a prepended [CLS], the [CLS] row first)."""
        embedded = self.encoder.embedding(input_ids)  # (B, T, d)
        mask = attention_mask
        if self.prepend_cls:
            cls = self.cls.expand(input_ids.size(0), 1, -1)
            embedded = torch.cat([cls, embedded], dim=1)  # (B, T+1, d)
            mask = torch.cat([mask.new_ones(mask.size(0), 1), mask], dim=1)
        states, attentions = self.encoder(embedded, mask, need_weights)
        features = states[:, 0] if self.pooling == "cls" else masked_pool(states, mask, self.pooling)
        return ClassifierOutput(self.head(self.dropout(features)), attentions)
