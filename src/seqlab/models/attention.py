"""Attention: the one shared concept of every attention-based model in seqlab.

Scaled dot-product attention (Vaswani et al., 2017), multi-head attention, and the attentions of
RNN encoder-decoders over their encoder's outputs (Bahdanau's additive, Luong's dot and general)
live here and nowhere else. Every attention can return its weights; the fused PyTorch kernel is
used only when the weights are not asked for, since it never materialises them.

Masks follow one convention everywhere: a boolean tensor where True means "may attend".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout: float = 0.0,
    need_weights: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """softmax(Q Kᵀ / √d) V.

    Args:
        query: (B, H, Tq, D).
        key: (B, H, Tk, D), or (B, H_kv, Tk, D) with H a multiple of H_kv (grouped-query
            attention: each key/value head serves H / H_kv consecutive query heads).
        value: (B, H, Tk, Dv) or (B, H_kv, Tk, Dv).
        mask: boolean, broadcastable to (B, H, Tq, Tk); True = may attend. Every query row must
            allow at least one key (padded *queries* still see the real keys, so this holds).
        dropout: dropout on the attention weights (pass 0.0 at inference).
        need_weights: also return the (B, H, Tq, Tk) weights; forces the readable path.

    Returns:
        (output (B, H, Tq, Dv), weights or None). Rows of the weights sum to 1 and masked keys
        get exactly zero weight.
    """
    # grouped-query attention: H_kv key/value heads (a plain bool even while ONNX export traces sizes)
    grouped = bool(key.size(-3) != query.size(-3))
    dtype = query.dtype
    if not need_weights:
        extra = {"enable_gqa": True} if grouped else {}
        # a KV cache may keep float32 keys for bfloat16 queries (`gpt.KVCache`): compute in its dtype
        out = F.scaled_dot_product_attention(query.to(key.dtype), key, value, attn_mask=mask, dropout_p=dropout, **extra)
        return out.to(dtype), None
    query = query.to(key.dtype)
    if grouped:  # each key/value head serves H / H_kv consecutive query heads
        key = key.repeat_interleave(query.size(-3) // key.size(-3), dim=-3)
        value = value.repeat_interleave(query.size(-3) // value.size(-3), dim=-3)
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))  # (B, H, Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    out = F.dropout(weights, p=dropout) @ value  # (B, H, Tq, Dv)
    return out.to(dtype), weights.to(dtype)


class MultiHeadAttention(nn.Module):
    """Multi-head attention: h heads each attend in a d_model/h subspace, then are mixed.

    Self-attention when query, key and value are the same sequence; cross-attention when the
    keys and values come from another one (an encoder's outputs).
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        # (H,) multipliers of each head's output before the heads are mixed; 0 removes a head
        # (head ablation, Michel et al., 2019). Not a parameter or buffer: never saved or trained.
        self.head_mask: torch.Tensor | None = None

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        need_weights: bool = False,
        past_key_value: tuple[torch.Tensor, torch.Tensor] | None = None,
        use_cache: bool = False,
        static_key_value: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None] | tuple[torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, torch.Tensor]]:
        """Attend from `query` to `key`/`value` (default: self-attention).

        Args:
            query: (B, Tq, d_model).
            key, value: (B, Tk, d_model); default to `query`.
            key_padding_mask: (B, Tk_all) bool, True = real token; padded keys get zero weight.
            attn_mask: (Tq, Tk_all) or (B, Tq, Tk_all) bool, True = may attend (e.g. a causal
                mask: `causal_mask`).
            need_weights: also return the per-head weights (B, H, Tq, Tk_all).
            past_key_value: a KV cache, the projected keys and values of earlier steps, each
                (B, H, T_past, head_dim); this step's keys and values are appended after them,
                so Tk_all = T_past + Tk and the masks cover the past keys first. Or an object
                whose `update(keys, values)` stores this step's and returns all of them (a
                preallocated cache, e.g. a `gpt.KVCache` layer).
            use_cache: also return this layer's (keys, values), each (B, H, Tk_all, head_dim),
                to pass as `past_key_value` at the next step.
            static_key_value: keys and values projected earlier and used as they are, each
                (B, H, Tk, head_dim): a decoder's cross-attention over the encoder's states,
                projected once per sentence; `key`/`value` are then not read.

        Returns:
            (output (B, Tq, d_model), weights or None), plus (keys, values) with `use_cache`.
        """
        key = query if key is None else key
        value = key if value is None else value
        q = self._split_heads(self.q_proj(query))
        if static_key_value is not None:
            k, v = static_key_value
        else:
            k = self._split_heads(self.k_proj(key))  # (B, H, Tk, hd)
            v = self._split_heads(self.v_proj(value))
        if isinstance(past_key_value, tuple):
            # the past keys were projected at earlier steps; only the new tokens are projected now
            k = torch.cat([past_key_value[0], k], dim=2)  # (B, H, T_past + Tk, hd)
            v = torch.cat([past_key_value[1], v], dim=2)
        elif past_key_value is not None:  # a preallocated cache writes them in place, no concatenation
            k, v = past_key_value.update(k, v)  # (B, H, T_past + Tk, hd)
        mask = combine_masks(key_padding_mask, attn_mask)
        dropout = self.dropout if self.training else 0.0
        out, weights = scaled_dot_product_attention(q, k, v, mask, dropout, need_weights)
        if self.head_mask is not None:
            out = out * self.head_mask.to(out)[None, :, None, None]  # (B, H, Tq, hd)
        batch, _, length, _ = out.shape
        out = out.transpose(1, 2).reshape(batch, length, -1)  # (B, Tq, d_model)
        if use_cache:
            return self.out_proj(out), weights, (k, v)
        return self.out_proj(out), weights


def combine_masks(key_padding_mask: torch.Tensor | None, attn_mask: torch.Tensor | None) -> torch.Tensor | None:
    """Merge a (B, Tk) padding mask and a (Tq, Tk)/(B, Tq, Tk) mask into one (B|1, 1, Tq|1, Tk)."""
    mask = None
    if key_padding_mask is not None:
        mask = key_padding_mask[:, None, None, :]  # (B, 1, 1, Tk)
    if attn_mask is not None:
        extra = attn_mask[None, None] if attn_mask.dim() == 2 else attn_mask[:, None]
        mask = extra if mask is None else mask & extra
    return mask


def causal_mask(query_len: int, key_len: int, device: torch.device | None = None) -> torch.Tensor:
    """(Tq, Tk) bool, True = may attend, for queries that are the *last* Tq of Tk positions (the
    earlier Tk - Tq come from a KV cache): query i sits at position Tk - Tq + i and sees keys
    0..Tk - Tq + i, never a later one."""
    return torch.ones(query_len, key_len, dtype=torch.bool, device=device).tril(diagonal=key_len - query_len)


# ---------------------------------------------------------------------------------------------
# Attention over an encoder's outputs, for RNN encoder-decoders (Bahdanau et al., 2015; Luong et
# al., 2015). One or more decoder queries attend over the source; the weights are always
# computed (they are small: target × source) and always returned.


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax over the last axis of (B, Tq, S) scores, with padded keys ((B, S) mask, True =
    real) at exactly zero weight. Every row needs at least one real key."""
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
    return scores.softmax(dim=-1)


class AdditiveAttention(nn.Module):
    """Bahdanau attention: score(q, k) = vᵀ tanh(W q + U k).

    `project_keys` computes U k once per source sentence; pass the result as `projected_keys`
    at every decoder step.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int):
        super().__init__()
        self.query_proj = nn.Linear(query_dim, attn_dim, bias=False)
        self.key_proj = nn.Linear(key_dim, attn_dim)
        self.score = nn.Linear(attn_dim, 1, bias=False)  # v

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """(B, S, key_dim) → (B, S, attn_dim)."""
        return self.key_proj(keys)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor | None = None,
        projected_keys: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query: (B, Tq, query_dim); keys (= values): (B, S, key_dim); mask: (B, S), True = real
        → (context (B, Tq, key_dim), weights (B, Tq, S))."""
        projected = self.project_keys(keys) if projected_keys is None else projected_keys
        hidden = torch.tanh(self.query_proj(query)[:, :, None, :] + projected[:, None, :, :])  # (B, Tq, S, A)
        weights = masked_softmax(self.score(hidden).squeeze(-1), mask)  # (B, Tq, S)
        return weights @ keys, weights


class MultiplicativeAttention(nn.Module):
    """Luong attention: score(q, k) = qᵀ k ("dot", query and keys of one size) or qᵀ W k
    ("general"). Unscaled, as Luong et al. and the course's dot-product attention."""

    def __init__(self, query_dim: int, key_dim: int, kind: str = "general"):
        super().__init__()
        if kind not in ("dot", "general"):
            raise ValueError(f"kind must be dot or general, not {kind!r}")
        if kind == "dot" and query_dim != key_dim:
            raise ValueError(f"dot attention needs queries and keys of one size (got {query_dim} and {key_dim})")
        self.weight = nn.Linear(key_dim, query_dim, bias=False) if kind == "general" else None

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """(B, S, key_dim) → W k (B, S, query_dim); the keys themselves for "dot"."""
        return keys if self.weight is None else self.weight(keys)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor | None = None,
        projected_keys: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query: (B, Tq, query_dim); keys (= values): (B, S, key_dim); mask: (B, S), True = real
        → (context (B, Tq, key_dim), weights (B, Tq, S))."""
        projected = self.project_keys(keys) if projected_keys is None else projected_keys
        weights = masked_softmax(query @ projected.transpose(1, 2), mask)  # (B, Tq, S)
        return weights @ keys, weights
