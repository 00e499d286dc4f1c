"""GPT (Radford et al., 2018; 2019): a decoder-only Transformer language model, from scratch.

    token embedding + position → N × [x + CausalSelfAttention(LN(x)), x + MLP(LN(x))] → LN → ·Eᵀ

Each position predicts the next token, seeing only itself and earlier positions. The blocks are
pre-norm as in GPT-2, the MLP is Linear(d→ff) · GELU (tanh approximation, as GPT-2) ·
Linear(ff→d), and the output layer reuses the token embedding (weight tying). Attention comes
from `seqlab.models.attention`, so every layer can return its weights.

Decoding feeds one token at a time; a `KVCache` keeps every layer's keys and values so that a
step projects only the new token. Batches are padded on the *left* (the newest tokens line up
at the right edge); position ids then count only real tokens, so a padded row gives the same
logits as the same row alone. `GPT.from_gpt2` loads GPT-2 weights from `transformers`.
"""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn

from seqlab.models.attention import MultiHeadAttention, causal_mask
from seqlab.models.outputs import LMOutput
from seqlab.models.transformer import POSITIONS


@dataclass
class GPTConfig:
    """The sizes of a `GPT`; `GPT(**dataclasses.asdict(config))` builds it."""

    vocab_size: int
    d_model: int = 128
    num_heads: int = 4
    num_layers: int = 2
    ff_dim: int = 512
    max_len: int = 256
    positions: str = "learned"
    dropout: float = 0.1
    tie_weights: bool = True
    bias: bool = True
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {sorted(POSITIONS)}, not {self.positions!r}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by num_heads={self.num_heads}")


class KVCache:
    """Every layer's keys and values for the tokens seen so far, each (B, H, length, head_dim).

    The keys and values live in preallocated buffers, (B, H, capacity, head_dim) per layer, that
    `GPT.forward` writes each step's keys and values into in place, so a decoding step copies
    only the new token's keys rather than concatenating the whole past again. A full buffer
    doubles. An empty `KVCache()` may be passed at the first step.
    """

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None, capacity: int = 0):
        self.capacity = capacity  # positions to make room for at the first write (0: just enough + 64)
        self.length = 0  # positions cached so far (T_past), padding included
        self._keys: list[torch.Tensor] = []
        self._values: list[torch.Tensor] = []
        for keys, values in layers or []:
            self._keys.append(keys.clone())
            self._values.append(values.clone())
            self.length = keys.size(2)

    @property
    def layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (keys, values), each (B, H, length, head_dim): views into the buffers."""
        end = self.length
        return [(k[:, :, :end], v[:, :, :end]) for k, v in zip(self._keys, self._values)]

    def layer(self, index: int) -> _LayerCache:
        """What layer `index`'s attention writes to (its `past_key_value`)."""
        return _LayerCache(self, index)

    def update(self, index: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write layer `index`'s new keys and values ((B, H, T, head_dim)) after the cached ones
        → all of them, (B, H, length + T, head_dim) views. `advance(T)` then moves `length`."""
        start, end = self.length, self.length + keys.size(2)
        if index == len(self._keys):  # the first write of this layer
            batch, heads, _, dim = keys.shape
            room = max(end, self.capacity or end + 64)
            dtype = _cache_dtype(keys)
            self._keys.append(keys.new_empty(batch, heads, room, dim, dtype=dtype))
            self._values.append(values.new_empty(batch, heads, room, dim, dtype=dtype))
        elif end > self._keys[index].size(2):
            self._keys[index] = _grow(self._keys[index], end)
            self._values[index] = _grow(self._values[index], end)
        cached_keys, cached_values = self._keys[index], self._values[index]
        cached_keys[:, :, start:end] = keys
        cached_values[:, :, start:end] = values
        return cached_keys[:, :, :end], cached_values[:, :, :end]

    def advance(self, steps: int) -> None:
        """Count `steps` new positions as cached (after every layer has written them)."""
        self.length += steps

    def reorder(self, index: torch.Tensor) -> KVCache:
        """Keep batch rows `index` ((B',) long), in that order, in place: beam search calls it
        with the beams it keeps, so a row may be repeated or dropped. Returns self."""
        self._keys = [k.index_select(0, index) for k in self._keys]
        self._values = [v.index_select(0, index) for v in self._values]
        return self

    def crop(self, length: int) -> KVCache:
        """Forget every position from `length` on, in place (e.g. to roll back rejected draft
        tokens). Returns self."""
        self.length = min(self.length, length)
        return self

    def drop_front(self, positions: int) -> KVCache:
        """Forget the first `positions` positions of every row, in place (views of the same
        buffers: no copy). In-flight batching calls it once no row still needs them. Returns self."""
        if positions > 0:
            self._keys = [k[:, :, positions:] for k in self._keys]
            self._values = [v[:, :, positions:] for v in self._values]
            self.length -= positions
        return self

    @classmethod
    def merged(cls, caches: list[KVCache]) -> KVCache:
        """The rows of `caches`, one cache after another, in a new cache as long as the longest:
        a shorter cache's positions are moved right (right-aligned, as left padding is) and its
        first positions hold zero keys and values, for the attention mask to hide. In-flight
        batching adds newly prefilled sequences to the running batch with it."""
        length = max(cache.length for cache in caches)
        merged = cls()
        merged.length = length
        for layer in range(len(caches[0]._keys)):
            for name, target in (("_keys", merged._keys), ("_values", merged._values)):
                parts = [getattr(cache, name)[layer] for cache in caches]
                first = parts[0]
                rows = sum(part.size(0) for part in parts)
                buffer = first.new_empty(rows, first.size(1), length + 64, first.size(3))  # (B, H, room, D)
                start = 0
                for cache, part in zip(caches, parts):
                    end, pad = start + part.size(0), length - cache.length
                    buffer[start:end, :, :pad] = 0  # masked, but 0 · NaN would still be NaN
                    buffer[start:end, :, pad:length] = part[:, :, : cache.length]
                    start = end
                target.append(buffer)
        return merged


def _cache_dtype(keys: torch.Tensor) -> torch.dtype:
    """float32 for bfloat16/float16 keys on a CPU, else the keys' dtype. A decoding step's
    attention (one query against the cache) runs ~6× faster in float32 than in bfloat16 on a
    CPU (16 vs 94 µs for SmolLM2's heads here), and the cache is small next to the weights;
    `scaled_dot_product_attention` then computes in the cache's dtype."""
    if keys.device.type == "cpu" and keys.dtype in (torch.bfloat16, torch.float16):
        return torch.float32
    return keys.dtype


class _LayerCache:
    """One layer's view of a `KVCache`: `update(keys, values)` → all keys and values so far."""

    __slots__ = ("cache", "index")

    def __init__(self, cache: KVCache, index: int):
        self.cache, self.index = cache, index

    def update(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cache.update(self.index, keys, values)


def _grow(buffer: torch.Tensor, needed: int) -> torch.Tensor:
    """A (B, H, room, D) buffer with at least `needed` positions (doubling), the old ones kept."""
    room = max(needed, 2 * buffer.size(2))
    grown = buffer.new_empty(*buffer.shape[:2], room, buffer.size(3))
    grown[:, :, : buffer.size(2)] = buffer
    return grown


def decoder_inputs(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    cache: KVCache | None,
    position_ids: torch.Tensor | None,
    use_cache: bool,
) -> tuple[KVCache | None, torch.Tensor, torch.Tensor | None]:
    """The bookkeeping every decoder's `forward` shares (seqlab's GPT and Llama): the cache (a
    new `KVCache` with `use_cache`), the positions (B, T) and the attention mask.

    Positions default, with a mask, to the count of real tokens before each position
    (`cumsum - 1`, clamped at 0, so a left-padded row starts at 0); without one, to
    T_past..T_past + T - 1. Returns (cache, position_ids (B, T), mask as `decoding_mask`).

    Raises:
        ValueError: a mask that does not cover T_past + T positions.
    """
    batch, length = input_ids.shape
    if cache is None and use_cache:
        cache = KVCache()
    past = cache.length if cache is not None else 0
    total = past + length
    if attention_mask is not None:
        if attention_mask.shape != (batch, total):
            raise ValueError(
                f"attention_mask is {tuple(attention_mask.shape)}; it must cover the cached and "
                f"the new positions: ({batch}, {total})"
            )
        attention_mask = attention_mask.bool()
    if position_ids is None:
        if attention_mask is None:
            position_ids = torch.arange(past, total, device=input_ids.device).expand(batch, length)
        else:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)[:, past:]  # (B, T)
    return cache, position_ids, decoding_mask(attention_mask, length, total, input_ids.device)


class _DecoderStack(Protocol):
    """What `output_logits` reads of a decoder (GPT, Llama)."""

    @property
    def final_norm(self) -> nn.Module: ...
    @property
    def lm_head(self) -> nn.Module | None: ...
    @property
    def token_embedding(self) -> nn.Embedding: ...


def output_logits(model: _DecoderStack, x: torch.Tensor, logits_to_keep: int) -> torch.Tensor:
    """A decoder's last states (B, T, d) → logits (B, T_kept, V): only the last `logits_to_keep`
    positions (0: all; decoding needs one, and the output layer is the costliest product), through
    `model.final_norm` and `model.lm_head`, or the token embedding when the weights are tied."""
    if logits_to_keep:
        x = x[:, -logits_to_keep:]
    x = model.final_norm(x)
    if model.lm_head is None:  # tied: the token embedding is the output layer
        return F.linear(x, model.token_embedding.weight)
    return model.lm_head(x)  # its own layer (which inference may have replaced by a quantised one)


def decoding_mask(attention_mask: torch.Tensor | None, length: int, total: int, device: torch.device) -> torch.Tensor | None:
    """Who may attend to whom in a decoder: the new queries are the last `length` of `total`
    positions; each sees real keys at its own position or earlier → (T, T_all) or (B, T, T_all)
    bool, or None when every query sees every key (one new token and no padding)."""
    if attention_mask is None:
        return None if length == 1 else causal_mask(length, total, device)  # (T, T_all)
    mask = causal_mask(length, total, device) & attention_mask[:, None, :]  # (B, T, T_all)
    # A query on a left-padding token sees no real key at or before itself. An all-masked
    # row gives NaN, and NaN spreads even through zero weights (0·NaN) once it is a masked
    # value in the next layer, so every query may always see itself; real queries already do.
    query_positions = torch.arange(total - length, total, device=device)[:, None]  # (T, 1)
    own = torch.arange(total, device=device)[None, :] == query_positions  # (T, T_all)
    return mask | own


class Block(nn.Module):
    """x + CausalSelfAttention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float, bias: bool, eps: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(d_model, eps=eps, bias=bias)
        self.attention = MultiHeadAttention(d_model, num_heads, dropout=dropout, bias=bias)
        self.mlp_norm = nn.LayerNorm(d_model, eps=eps, bias=bias)
        self.mlp = nn.Sequential(
            OrderedDict(
                fc=nn.Linear(d_model, ff_dim, bias=bias),
                gelu=nn.GELU(approximate="tanh"),  # GPT-2's "gelu_new"
                proj=nn.Linear(ff_dim, d_model, bias=bias),
            )
        )
        self.dropout = nn.Dropout(dropout)  # on each residual branch

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        cache: _LayerCache | None,
        need_weights: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, d); mask: (T, T_all) or (B, T, T_all) bool, True = may attend, or None (all
        keys); cache: this layer's slot of a `KVCache` (x's keys and values are written to it)
        or None → (x, weights (B, H, T, T_all) | None)."""
        attended, weights = self.attention(self.attn_norm(x), attn_mask=mask, need_weights=need_weights, past_key_value=cache)
        x = x + self.dropout(attended)
        x = x + self.dropout(self.mlp(self.mlp_norm(x)))
        return x, weights


class GPT(nn.Module):
    """A GPT language model.

    Args:
        vocab_size: token ids.
        d_model, num_heads, num_layers, ff_dim: sizes (GPT-2 small: 768, 12, 12, 3072).
        max_len: positions the model is built for; learned positions cannot go beyond it.
        positions: "learned" (GPT-2) or "sinusoidal" (fixed, any length).
        dropout: on the embeddings, the attention weights and each residual branch.
        tie_weights: the output layer is the token embedding (GPT-2); else its own matrix.
        bias: biases in the linear layers and LayerNorms (GPT-2 has them).
        layer_norm_eps: LayerNorm's ε (GPT-2: 1e-5).
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int = 512,
        max_len: int = 256,
        positions: str = "learned",
        dropout: float = 0.1,
        tie_weights: bool = True,
        bias: bool = True,
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.config = GPTConfig(
            vocab_size,
            d_model,
            num_heads,
            num_layers,
            ff_dim,
            max_len,
            positions,
            dropout,
            tie_weights,
            bias,
            layer_norm_eps,
        )
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.positions = POSITIONS[positions](d_model, max_len)
        # Fixed sinusoids are ~unit size while tokens start at std 0.02: scale the tokens up by
        # √d, as Vaswani et al. do, so position does not drown them. Learned positions start at
        # the tokens' scale, so GPT-2 adds both as they are.
        self.embed_scale = math.sqrt(d_model) if positions == "sinusoidal" else 1.0
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, num_heads, ff_dim, dropout, bias, layer_norm_eps) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        # Tied: the logits are computed from the embedding matrix itself, so the weights are
        # stored once (safetensors refuses two names for one tensor).
        self.lm_head = None if tie_weights else nn.Linear(d_model, vocab_size, bias=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's initialisation: N(0, 0.02) everywhere, zero biases, and the two projections
        that write into the residual stream scaled by 1/√(2·layers), since each layer adds two
        such terms and the stream's variance would otherwise grow with depth."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for block in cast("list[Block]", self.blocks):
            for projection in (block.attention.out_proj, cast(nn.Linear, block.mlp.proj)):
                nn.init.normal_(projection.weight, std=0.02 / math.sqrt(2 * len(self.blocks)))

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
        """Next-token logits for every input position.

        Args:
            input_ids: (B, T) long, the new tokens (all of them, or those after the cache).
            attention_mask: (B, T_past + T) bool, True = real token, covering the cached
                positions first; None = no padding. Pad on the left for decoding.
            cache: a `KVCache` from earlier steps (updated in place), or None.
            position_ids: (B, T) long. Default: with a mask, the count of real tokens before
                each position (`cumsum - 1`, clamped at 0, so a left-padded row starts at 0);
                without one, T_past..T_past + T - 1.
            need_weights: also return every layer's attention weights.
            use_cache: return a cache even when none was passed in (a new `KVCache`).
            logits_to_keep: compute the logits of only the last this many positions (decoding
                needs just the last one); 0 = every position.

        Returns:
            `LMOutput(logits (B, T, V), cache: the updated KVCache, or None when neither `cache`
            nor `use_cache` was given, attentions: per layer (B, H, T, T_past + T) or None)`.

        Raises:
            ValueError: a mask that does not cover T_past + T positions, or a position beyond
                `max_len` with learned positions.
        """
        cache, position_ids, mask = decoder_inputs(input_ids, attention_mask, cache, position_ids, use_cache)
        x = self.token_embedding(input_ids) * self.embed_scale + self.positions.at(position_ids)  # (B, T, d)
        x = self.dropout(x)
        attentions: list[torch.Tensor] | None = [] if need_weights else None
        for i, block in enumerate(self.blocks):
            x, weights = block(x, mask, cache.layer(i) if cache is not None else None, need_weights)
            if need_weights:
                assert attentions is not None
                attentions.append(weights)
        if cache is not None:
            cache.advance(input_ids.size(1))
        return LMOutput(output_logits(self, x, logits_to_keep), cache, attentions)

    @classmethod
    def from_gpt2(cls, source: Any, config: Any = None) -> GPT:
        """A seqlab GPT with GPT-2's weights, giving the same logits as `transformers`.

        Args:
            source: a `transformers.GPT2LMHeadModel` (or `GPT2Model`), its `state_dict()` (then
                `config` is required), or a folder written by `save_pretrained` (config.json and
                model.safetensors, a sharded safetensors index, or pytorch_model.bin).
            config: a `transformers.GPT2Config` (or its dict) for a state dict.

        Returns:
            The model in eval mode, on the CPU, in the weights' dtype.
        """
        state, config = _read_gpt2(source, config)
        get = config.get
        activation = get("activation_function", "gelu_new")
        if activation not in ("gelu_new", "gelu_pytorch_tanh"):  # both are GELU's tanh approximation
            raise ValueError(f"GPT-2 weights with activation {activation!r}: only the tanh GELU is supported")
        if not get("scale_attn_weights", True) or get("scale_attn_by_inverse_layer_idx", False):
            raise ValueError("GPT-2 weights with non-standard attention scaling are not supported")
        if get("add_cross_attention", False):
            raise ValueError("GPT-2 weights with cross-attention are not supported")
        d_model = config["n_embd"]
        tied = get("tie_word_embeddings", True)
        model = cls(
            vocab_size=config["vocab_size"],
            d_model=d_model,
            num_heads=config["n_head"],
            num_layers=config["n_layer"],
            ff_dim=get("n_inner") or 4 * d_model,
            max_len=config["n_positions"],
            positions="learned",
            dropout=get("resid_pdrop", 0.1),
            tie_weights=tied,
            bias=True,
            layer_norm_eps=get("layer_norm_epsilon", 1e-5),
        )
        model.load_state_dict(_gpt2_to_seqlab(state, config["n_layer"], d_model, tied))
        return model.to(state["wte.weight"].dtype).eval()


def _read_gpt2(source: Any, config: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """→ (GPT-2 state dict with any "transformer." prefix removed, config as a dict)."""
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        state = _read_weights(folder)
    elif isinstance(source, nn.Module):
        state, config = source.state_dict(), source.config
    else:
        if config is None:
            raise ValueError("GPT.from_gpt2 needs the GPT2Config with a state dict")
        state = dict(source)
    config = config if isinstance(config, dict) else config.to_dict()
    prefix = "transformer."
    state = {key.removeprefix(prefix): tensor for key, tensor in state.items()}
    return state, config


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of a `save_pretrained` folder, whichever of its file layouts it has."""
    from safetensors.torch import load_file

    if (folder / "model.safetensors").exists():
        return load_file(folder / "model.safetensors")
    index = folder / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return {key: tensor for shard in shards for key, tensor in load_file(folder / shard).items()}
    if (folder / "pytorch_model.bin").exists():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{folder} holds no model.safetensors, safetensors index or pytorch_model.bin")


def _gpt2_to_seqlab(state: dict[str, torch.Tensor], num_layers: int, d_model: int, tied: bool) -> dict[str, torch.Tensor]:
    """Rename GPT-2's weights to this module's. GPT-2's `Conv1D` stores (in, out) where
    `nn.Linear` stores (out, in), hence the transposes; `c_attn` holds q, k and v side by side."""
    out = {
        "token_embedding.weight": state["wte.weight"],
        "positions.embedding.weight": state["wpe.weight"],
        "final_norm.weight": state["ln_f.weight"],
        "final_norm.bias": state["ln_f.bias"],
    }
    if not tied:
        out["lm_head.weight"] = state["lm_head.weight"]
    for i in range(num_layers):
        src, dst = f"h.{i}.", f"blocks.{i}."
        q, k, v = state[src + "attn.c_attn.weight"].split(d_model, dim=1)  # each (d, d), (in, out)
        q_bias, k_bias, v_bias = state[src + "attn.c_attn.bias"].split(d_model)
        for name, weight, bias in (("q_proj", q, q_bias), ("k_proj", k, k_bias), ("v_proj", v, v_bias)):
            out[f"{dst}attention.{name}.weight"] = weight.t()
            out[f"{dst}attention.{name}.bias"] = bias
        renames = {
            "ln_1": "attn_norm", "attn.c_proj": "attention.out_proj", "ln_2": "mlp_norm",
            "mlp.c_fc": "mlp.fc", "mlp.c_proj": "mlp.proj",
        }  # fmt: skip
        for old, new in renames.items():
            weight = state[f"{src}{old}.weight"]
            out[f"{dst}{new}.weight"] = weight if old.startswith("ln") else weight.t()
            out[f"{dst}{new}.bias"] = state[f"{src}{old}.bias"]
    return {key: tensor.contiguous() for key, tensor in out.items()}
