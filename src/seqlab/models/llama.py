"""A Llama-family decoder (SmolLM2, Llama 2/3-style models), top to bottom in one file.

What it changes from seqlab's GPT (`models/gpt.py`), each a choice of the Llama papers:
RMSNorm instead of LayerNorm (no mean, no bias), rotary positions (each query/key pair of
features turned by an angle proportional to the position, so a dot product sees only the
*relative* offset), grouped-query attention (fewer key/value heads than query heads: a smaller
KV cache), and a SwiGLU feed-forward (down(silu(gate(x)) · up(x))). It shares the GPT's KV cache,
its masks and its `forward` signature, so `seqlab.decoding` drives both alike.

Built for decoding speed as much as for reading: the query/key/value projections are one matrix
and the gate/up projections another, so a decoding step at batch 1 runs about a third of the
operations of the transformers implementation (whose per-operation overhead, not arithmetic,
dominates a 30-layer model of this size on a CPU). `Llama.from_llama` takes the weights of a
transformers `LlamaForCausalLM` and gives the same logits (tested on tiny random configs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seqlab.models.attention import scaled_dot_product_attention
from seqlab.models.gpt import KVCache, _LayerCache, decoder_inputs, output_logits
from seqlab.models.outputs import LMOutput


@dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int
    d_model: int = 576
    num_heads: int = 9
    num_kv_heads: int = 3
    num_layers: int = 30
    ff_dim: int = 1536
    max_len: int = 8192
    rope_theta: float = 10000.0
    rms_eps: float = 1e-5
    tie_weights: bool = True

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads


class RotaryPositions(nn.Module):
    """Rotary position embedding (Su et al., 2021) in the "rotate half" layout of Llama: feature
    i and i + D/2 of each head form a pair turned by position · θ^(-2i/D)."""

    inverse_frequency: torch.Tensor  # a buffer

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        inverse = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim)  # (D/2,)
        self.register_buffer("inverse_frequency", inverse, persistent=False)

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """position_ids (B, T) → (cos, sin), each (B, 1, T, D), computed in float32."""
        angles = position_ids[..., None].float() * self.inverse_frequency  # (B, T, D/2)
        angles = torch.cat([angles, angles], dim=-1)[:, None]  # (B, 1, T, D)
        return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, D) turned pair by pair: x·cos + rotate_half(x)·sin."""
    half = x.size(-1) // 2
    turned = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + turned * sin


class GroupedQueryAttention(nn.Module):
    """Causal self-attention with rotary positions and `num_kv_heads` key/value heads shared by
    groups of query heads (the attention itself: `attention.scaled_dot_product_attention`)."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = config.num_heads, config.num_kv_heads, config.head_dim
        sizes = (self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim, self.num_kv_heads * self.head_dim)
        self.split_sizes = sizes
        self.qkv_proj = nn.Linear(config.d_model, sum(sizes), bias=False)  # [q; k; v] in one product
        self.out_proj = nn.Linear(sizes[0], config.d_model, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        cache: _LayerCache | None,
        need_weights: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, d); rotary (cos, sin) (B, 1, T, D); mask (T, T_all) / (B, T, T_all) bool or
        None → (out (B, T, d), weights (B, H, T, T_all) or None)."""
        batch, length, _ = x.shape
        q, k, v = self.qkv_proj(x).split(self.split_sizes, dim=-1)
        q = q.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = k.view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, T, D)
        v = v.view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q, k = rotate(q, *rotary), rotate(k, *rotary)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, Hkv, T_all, D)
        if mask is not None and mask.dim() == 3:
            mask = mask[:, None]  # (B, 1, T, T_all): the same for every head
        out, weights = scaled_dot_product_attention(q, k, v, mask, need_weights=need_weights)
        out = out.transpose(1, 2).reshape(batch, length, -1)  # (B, T, H·D)
        return self.out_proj(out), weights


class Block(nn.Module):
    """x + attention(RMSNorm(x)), then x + SwiGLU(RMSNorm(x))."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.ff_dim = config.ff_dim
        self.attn_norm = nn.RMSNorm(config.d_model, eps=config.rms_eps)
        self.attention = GroupedQueryAttention(config)
        self.mlp_norm = nn.RMSNorm(config.d_model, eps=config.rms_eps)
        self.gate_up_proj = nn.Linear(config.d_model, 2 * config.ff_dim, bias=False)  # [gate; up]
        self.down_proj = nn.Linear(config.ff_dim, config.d_model, bias=False)

    def forward(self, x, rotary, mask, cache, need_weights):
        attended, weights = self.attention(self.attn_norm(x), rotary, mask, cache, need_weights)
        x = x + attended
        gate, up = self.gate_up_proj(self.mlp_norm(x)).split(self.ff_dim, dim=-1)
        return x + self.down_proj(F.silu(gate) * up), weights


class Llama(nn.Module):
    """A Llama-family causal language model; `forward` as `GPT.forward` (see there)."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        if config.d_model % config.num_heads or config.num_heads % config.num_kv_heads:
            raise ValueError(
                f"{config.num_heads} heads must divide d_model={config.d_model} and be a multiple of "
                f"num_kv_heads={config.num_kv_heads}"
            )
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.rotary = RotaryPositions(config.head_dim, config.rope_theta)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.final_norm = nn.RMSNorm(config.d_model, eps=config.rms_eps)
        self.lm_head = None if config.tie_weights else nn.Linear(config.d_model, config.vocab_size, bias=False)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        position_ids: torch.Tensor | None = None,
        need_weights: bool = False,
        use_cache: bool = False,
        logits_to_keep: int = 0,
    ) -> LMOutput:
        """input_ids (B, T) → `LMOutput(logits (B, T, V), cache, attentions)`; see `GPT.forward`."""
        cache, position_ids, mask = decoder_inputs(input_ids, attention_mask, cache, position_ids, use_cache)
        x = self.token_embedding(input_ids)  # (B, T, d)
        rotary = self.rotary(position_ids, x.dtype)
        attentions: list[torch.Tensor] | None = [] if need_weights else None
        for i, block in enumerate(self.blocks):
            x, weights = block(x, rotary, mask, cache.layer(i) if cache is not None else None, need_weights)
            if need_weights:
                assert attentions is not None
                attentions.append(weights)
        if cache is not None:
            cache.advance(input_ids.size(1))
        return LMOutput(output_logits(self, x, logits_to_keep), cache, attentions)

    @classmethod
    def from_llama(cls, source: Any) -> Llama:
        """A transformers `LlamaForCausalLM` (or any model with its config and state-dict names)
        → a `Llama` with the same weights (q/k/v and gate/up stacked into one matrix each)."""
        hf = source.config
        # transformers 5 names it rope_parameters (rope_scaling before); plain rotary only
        rope = getattr(hf, "rope_parameters", None) or getattr(hf, "rope_scaling", None) or {}
        if (rope.get("rope_type") or rope.get("type") or "default") != "default":
            raise ValueError(
                f"rotary scaling {rope.get('rope_type') or rope.get('type')!r} is not supported; use the transformers engine"
            )
        if getattr(hf, "attention_bias", False) or getattr(hf, "mlp_bias", False) or hf.hidden_act != "silu":
            raise ValueError("only bias-free SiLU Llama layers are supported; use the transformers engine")
        if getattr(hf, "head_dim", hf.hidden_size // hf.num_attention_heads) * hf.num_attention_heads != hf.hidden_size:
            raise ValueError("head_dim × heads ≠ hidden size is not supported; use the transformers engine")
        config = LlamaConfig(
            vocab_size=hf.vocab_size,
            d_model=hf.hidden_size,
            num_heads=hf.num_attention_heads,
            num_kv_heads=hf.num_key_value_heads,
            num_layers=hf.num_hidden_layers,
            ff_dim=hf.intermediate_size,
            max_len=hf.max_position_embeddings,
            rope_theta=float(rope.get("rope_theta", getattr(hf, "rope_theta", 10000.0))),
            rms_eps=hf.rms_norm_eps,
            tie_weights=bool(hf.tie_word_embeddings),
        )
        weights = source.state_dict()
        model = cls(config)
        model.load_state_dict(_llama_to_seqlab(weights, config), strict=True)
        return model.to(next(source.parameters()).dtype).eval()


def _llama_to_seqlab(weights: dict[str, torch.Tensor], config: LlamaConfig) -> dict[str, torch.Tensor]:
    """transformers' Llama state-dict names → this module's (stacking q/k/v and gate/up)."""
    out = {"token_embedding.weight": weights["model.embed_tokens.weight"], "final_norm.weight": weights["model.norm.weight"]}
    if not config.tie_weights:
        out["lm_head.weight"] = weights["lm_head.weight"]
    for i in range(config.num_layers):
        src, dst = f"model.layers.{i}.", f"blocks.{i}."
        attn = src + "self_attn."
        out[dst + "attn_norm.weight"] = weights[src + "input_layernorm.weight"]
        out[dst + "mlp_norm.weight"] = weights[src + "post_attention_layernorm.weight"]
        out[dst + "attention.qkv_proj.weight"] = torch.cat([weights[attn + n + "_proj.weight"] for n in "qkv"])
        out[dst + "attention.out_proj.weight"] = weights[attn + "o_proj.weight"]
        out[dst + "gate_up_proj.weight"] = torch.cat([weights[src + "mlp.gate_proj.weight"], weights[src + "mlp.up_proj.weight"]])
        out[dst + "down_proj.weight"] = weights[src + "mlp.down_proj.weight"]
    return out
