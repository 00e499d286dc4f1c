"""BERT for pretraining (Devlin et al., 2019): seqlab's Transformer encoder with segment
embeddings, a masked-LM head and a next-sentence-prediction head.

    [CLS] A [SEP] B [SEP] → token·√d + position + segment → N pre-norm layers → LayerNorm → states
      ├─ masked positions → dense → GELU → LayerNorm → ·Eᵀ + b    masked LM (decoder tied to E)
      └─ [CLS] state      → dense → tanh ("pooler") → linear(2)   is B the sentence after A?

The encoder is `seqlab.models.transformer.TransformerEncoder`, built exactly as
`TransformerClassifier` builds it. A classifier with the same sizes, `num_segments=2` and
`prepend_cls=False` therefore takes the `encoder.*` weights of this model unchanged: that is
fine-tuning (`seqlab train classify --init RUN`).

Differences from the original BERT: pre-norm layers (which train without a learning-rate
warm-up), sinusoidal positions by default, and the decoder is applied only where a prediction
is needed (see `forward`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from seqlab.models.transformer import TransformerEncoder


class BertPretrainingOutput(NamedTuple):
    """mlm_logits: (N, V) at the selected positions, or (B, T, V) without a selection;
    nsp_logits: (B, 2), index 1 = "B follows A"; attentions: per layer (B, H, T, T), or None."""

    mlm_logits: torch.Tensor
    nsp_logits: torch.Tensor
    attentions: list[torch.Tensor] | None = None


class BertForPretraining(nn.Module):
    """A BERT-style encoder with its two pretraining heads.

    Args:
        vocab_size: wordpiece vocabulary size.
        d_model, num_heads, num_layers, ff_dim, dropout, positional: encoder sizes, as in
            `TransformerClassifier`.
        max_len: longest input in tokens.
        num_segments: segment (token type) embeddings: 2 for sentence pairs.
        pad_id: the padding token id.
    """

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
        num_segments: int = 2,
        pad_id: int = 0,
    ):
        super().__init__()
        # max_len + 1 positions, as TransformerClassifier has, so the weights fit it exactly
        self.encoder = TransformerEncoder(
            vocab_size, d_model, num_heads, num_layers, ff_dim, dropout, positional, max_len + 1, pad_id, num_segments
        )
        self.mlm_transform = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.LayerNorm(d_model))
        self.mlm_bias = nn.Parameter(torch.zeros(vocab_size))  # the decoder's weight is the embedding
        self.pooler = nn.Sequential(nn.Linear(d_model, d_model), nn.Tanh())
        self.nsp_head = nn.Linear(d_model, 2)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        select: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> BertPretrainingOutput:
        """input_ids, attention_mask (True = real token), token_type_ids: (B, T); select: (B, T)
        bool, the positions to predict (default: all) → `BertPretrainingOutput`."""
        embedded = self.encoder.embedding(input_ids)  # (B, T, d)
        states, attentions = self.encoder(embedded, attention_mask, need_weights, token_type_ids)  # (B, T, d)
        # Only ~15% of positions are masked, and with thousands of wordpieces the (·, V) decoder
        # costs more than the encoder: project just the selected states.
        hidden = states if select is None else states[select]  # (B, T, d) or (N, d)
        mlm_logits = F.linear(self.mlm_transform(hidden), self.encoder.embedding.weight, self.mlm_bias)
        nsp_logits = self.nsp_head(self.pooler(states[:, 0]))  # (B, 2), from [CLS]
        return BertPretrainingOutput(mlm_logits, nsp_logits, attentions)
