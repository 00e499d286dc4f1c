"""One decoding module for every language model in seqlab.

The algorithms (greedy, sampling with temperature / top-k / top-p, repetition penalty,
no-repeat-n-gram, beam search, stop strings, streaming) are written once, against
`IncrementalLM`: prefill a left-padded batch, then feed one token per row per step. Each model
family supplies a small adapter: `HFCausalLM` (any `transformers` causal LM), `SeqlabGPT` and
`SeqlabRNN`. `as_incremental(model)` picks the adapter.

Conventions shared by `generate`, `stream` and `beam_search`:

* Prompts are a (B, T) id tensor, LEFT-padded, with a (B, T) mask (True/1 = real token). Every
  row needs at least one real token. `left_pad` builds both from lists of ids.
* The result is the new tokens of each row, without prompt and padding. An end-of-sequence
  token that ends a row is INCLUDED (as in Hugging Face `generate`); a stop string is NOT: the
  tokens that spell it are trimmed, and so is a token that straddles its start.
* A finished row is fed `pad_token_id` (the first eos id when unset) until every row is done.
* `max_new_tokens` is measured against the padded prompt length for the context limit.
* Sampling with `seed` draws from its own `torch.Generator`; the global RNG is untouched.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from torch import Tensor

from seqlab.errors import SeqlabError

State = Any
Decode = Callable[[list[int]], str]

# Beam search scores finished/blocked candidates with this instead of -inf, as Hugging Face does,
# so sums never turn into NaN.
_BLOCKED = -1.0e9


# ---------------------------------------------------------------------------------------------
# Configuration


class GenerationConfig(BaseModel):
    """Every decoding setting, validated when built: a bad value or combination raises
    `SeqlabError` with one line naming the setting and its valid range.

    `top_k`, `top_p` and `temperature` apply only with `do_sample=True`, `length_penalty` (and
    `early_stopping=False`) only with `num_beams > 1`; setting them otherwise is an error rather
    than silently ignored. The one exception is `temperature=0`, which means greedy decoding as
    in the OpenAI API, llama.cpp and vLLM: it turns sampling off, and with it top-k and top-p.
    `seed` only matters for sampling (greedy and beam search are deterministic anyway).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = 50
    do_sample: bool = False
    temperature: float = Field(
        1.0,
        description="sampling temperature: logits / temperature (< 1 sharper, > 1 flatter); "
        "0 means greedy decoding (do_sample=False, top_k and top_p off), as in the OpenAI API, "
        "llama.cpp and vLLM",
    )
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: bool = True
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None

    def __init__(self, **settings: Any):
        try:
            super().__init__(**settings)
        except ValidationError as err:
            raise SeqlabError(_describe(err)) from None

    @classmethod
    def create(cls, **settings: Any) -> GenerationConfig:
        """The same as `GenerationConfig(**settings)`; named for call sites that build from
        user input (CLI flags, a request body)."""
        return cls(**settings)

    @model_validator(mode="before")
    @classmethod
    def _temperature_zero_is_greedy(cls, settings: Any) -> Any:
        """`temperature=0` is the limit of ever sharper sampling: always the likeliest token. It
        is written as greedy decoding, so the config says what will run."""
        if isinstance(settings, dict) and _is_zero(settings.get("temperature")):
            return {**settings, "do_sample": False, "temperature": 1.0, "top_k": 0, "top_p": 1.0}
        return settings

    @field_validator("max_new_tokens")
    @classmethod
    def _positive_length(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"max_new_tokens must be >= 1 (got {value})")
        return value

    @field_validator("top_k", "no_repeat_ngram_size")
    @classmethod
    def _non_negative(cls, value: int, info: Any) -> int:
        if value < 0:
            raise ValueError(f"{info.field_name} must be >= 0, 0 = off (got {value})")
        return value

    @field_validator("top_p")
    @classmethod
    def _probability(cls, value: float) -> float:
        if not 0.0 < value <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], 1 = off (got {value})")
        return value

    @field_validator("repetition_penalty")
    @classmethod
    def _positive_penalty(cls, value: float) -> float:
        if not value > 0.0:
            raise ValueError(f"repetition_penalty must be > 0, 1 = off (got {value})")
        return value

    @field_validator("num_beams")
    @classmethod
    def _beams(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"num_beams must be >= 1, 1 = no beam search (got {value})")
        return value

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: list[str]) -> list[str]:
        if any(s == "" for s in value):
            raise ValueError("stop strings must be non-empty")
        return value

    @field_validator("eos_token_id", "pad_token_id")
    @classmethod
    def _token_ids(cls, value: int | list[int] | None, info: Any) -> int | list[int] | None:
        ids = [value] if isinstance(value, int) else value or []
        if any(i < 0 for i in ids):
            raise ValueError(f"{info.field_name} must be >= 0 (got {value})")
        return value

    @model_validator(mode="after")
    def _combinations(self) -> GenerationConfig:
        if self.do_sample:
            if not self.temperature > 0.0:
                raise ValueError(f"temperature must be > 0 when sampling, or 0 for greedy decoding (got {self.temperature})")
            if self.num_beams > 1:
                raise ValueError(f"num_beams must be 1 when sampling (got {self.num_beams}); beams do not sample")
        else:
            for name, off in (("temperature", 1.0), ("top_k", 0), ("top_p", 1.0)):
                if getattr(self, name) != off:
                    raise ValueError(f"{name}={getattr(self, name)} needs do_sample=true (it only shapes sampling)")
        if self.num_beams == 1 and self.length_penalty != 1.0:
            raise ValueError(f"length_penalty={self.length_penalty} needs num_beams > 1 (it only ranks beams)")
        if self.num_beams == 1 and not self.early_stopping:
            raise ValueError("early_stopping=false needs num_beams > 1 (it says when beam search ends)")
        return self

    @property
    def eos_ids(self) -> list[int]:
        """The end-of-sequence ids as a list (empty: rows end only at max_new_tokens or a stop)."""
        if self.eos_token_id is None:
            return []
        return [self.eos_token_id] if isinstance(self.eos_token_id, int) else list(self.eos_token_id)

    @property
    def fill_id(self) -> int | None:
        """What a finished row is fed: pad_token_id, else the first eos id, else None."""
        if self.pad_token_id is not None:
            return self.pad_token_id
        return self.eos_ids[0] if self.eos_ids else None


def _is_zero(value: Any) -> bool:
    """A temperature of exactly 0 (an int or float; not False, not None)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def _describe(err: ValidationError) -> str:
    """The first validation problem as one line: 'generation: top_p must be in (0, 1] ...'."""
    first = err.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "config"  # not the union member tried
    if first["type"] == "value_error":
        message = str(first["ctx"]["error"])
    elif first["type"] == "extra_forbidden":
        message = f"unknown setting {field!r}"
    else:
        message = f"{field}: {first['msg']} (got {first.get('input')!r})"
    return f"generation: {message}"


# ---------------------------------------------------------------------------------------------
# Logit processors: pure functions on (B, V) float logits, in the order decoding applies them


def apply_repetition_penalty(logits: Tensor, previous: Tensor, penalty: float) -> Tensor:
    """CTRL's penalty (Keskar et al., 2019) as Hugging Face applies it: for every token already in
    the sequence, a positive logit is divided by `penalty` and a negative one multiplied.

    Args:
        logits: (B, V).
        previous: (B, L) ids already in each sequence (prompt included), or a (B, V) bool mask of
            the ids seen.
    """
    if previous.dtype == torch.bool:
        seen = previous
    else:
        seen = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, previous, True)
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)


def ban_repeated_ngrams(logits: Tensor, sequences: Sequence[Sequence[int]], n: int) -> Tensor:
    """Forbid (-inf) every token that would repeat an n-gram already in the row's sequence
    (prompt included). n=1 forbids every token seen so far.

    Args:
        logits: (B, V).
        sequences: B lists of the ids so far.
    """
    logits = logits.clone()
    for row, seq in enumerate(sequences):
        if len(seq) + 1 < n:
            continue
        tail = tuple(seq[len(seq) - n + 1 :]) if n > 1 else ()
        banned = [seq[i + n - 1] for i in range(len(seq) - n + 1) if tuple(seq[i : i + n - 1]) == tail]
        if banned:
            logits[row, banned] = float("-inf")
    return logits


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """Sharpen (< 1) or flatten (> 1) the distribution: logits / temperature."""
    return logits / temperature


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the k largest logits per row (and any tied with the k-th); the rest become -inf."""
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filtering (Holtzman et al., 2020): keep the smallest set of most likely tokens whose
    probability reaches p, including the token that crosses it; always at least one token."""
    ascending, order = torch.sort(logits, dim=-1)
    cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
    drop = cumulative <= 1.0 - p  # the unlikely tail, which together stays under 1 - p
    drop[..., -1] = False
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


# ---------------------------------------------------------------------------------------------
# The adapter protocol and the three adapters


@runtime_checkable
class IncrementalLM(Protocol):
    """What a language model offers the decoders.

    `prefill` reads a left-padded (B, T) batch with its bool mask (True = real) and returns the
    next-token logits (B, V) in float32 and an opaque state. `step` feeds one token per row and
    returns the next logits; the adapter grows its own mask and positions. `reorder` selects or
    duplicates batch rows of a state (beam search). `context_length` is the most positions the
    model takes, None for unlimited.
    """

    context_length: int | None

    def prefill(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, State]: ...

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]: ...

    def reorder(self, state: State, index: Tensor) -> State: ...


class _GrowingMask:
    """A (B, n) attention mask that gains a column of ones per step without allocating every
    step: the buffer is all ones past the prompt and doubles when full; `grow` returns a slice."""

    def __init__(self, mask: Tensor):
        self.length = mask.size(1)
        self.buffer = torch.ones(mask.size(0), 2 * self.length + 16, dtype=mask.dtype, device=mask.device)
        self.buffer[:, : self.length] = mask

    def grow(self) -> Tensor:
        if self.length == self.buffer.size(1):
            self.buffer = torch.cat([self.buffer, torch.ones_like(self.buffer)], dim=1)
        self.length += 1
        return self.buffer[:, : self.length]

    def reorder(self, index: Tensor) -> None:
        self.buffer = self.buffer.index_select(0, index)


@dataclass
class _CacheState:
    cache: Any
    mask: _GrowingMask | None  # None: no row is padded (seqlab's GPT then needs no mask)
    positions: Tensor | None = None  # (B,) the position of the next token of each row


def _require_eval(model: torch.nn.Module) -> None:
    if model.training:
        raise SeqlabError("decoding: the model is in training mode (dropout on); call model.eval() first")


def _context_length(model: Any) -> int | None:
    for owner in (model, getattr(model, "config", None)):
        for name in ("context_length", "max_len", "max_seq_len", "block_size", "max_position_embeddings"):
            value = getattr(owner, name, None)
            if isinstance(value, int):
                return value
    return None


class HFCausalLM:
    """Any `transformers` causal LM, decoded with its `DynamicCache`. The mask is always passed
    and positions are `mask.cumsum(-1) - 1` (0 on padding), as `generate` does, so a left-padded
    row decodes like the row alone."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.context_length = _context_length(model)
        accepts = inspect.signature(model.forward).parameters
        # Only the last position's logits are needed; skipping the rest also matches generate().
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in accepts else {}
        # transformers 5 renamed `past_key_values` to `cache` (inputs and outputs).
        self._cache_name = "cache" if "cache" in accepts else "past_key_values"

    @torch.inference_mode()
    def prefill(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, _CacheState]:
        from transformers import DynamicCache

        _require_eval(self.model)
        mask = attention_mask.long()
        positions = (mask.cumsum(-1) - 1).clamp_min(0)  # (B, T)
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{self._cache_name: DynamicCache(config=cast(Any, self.model).config)},  # a transformers model
            **self._last_only,
        )
        state = _CacheState(getattr(out, self._cache_name), _GrowingMask(mask), positions[:, -1] + 1)
        return out.logits[:, -1].float(), state

    @torch.inference_mode()
    def step(self, tokens: Tensor, state: _CacheState) -> tuple[Tensor, _CacheState]:
        assert state.mask is not None and state.positions is not None  # prefill sets both
        out = self.model(
            input_ids=tokens[:, None],
            attention_mask=state.mask.grow(),
            position_ids=state.positions[:, None],
            use_cache=True,
            **{self._cache_name: state.cache},
            **self._last_only,
        )
        state.cache = getattr(out, self._cache_name)
        state.positions += 1
        return out.logits[:, -1].float(), state

    @torch.inference_mode()
    def reorder(self, state: _CacheState, index: Tensor) -> _CacheState:
        assert state.mask is not None and state.positions is not None  # prefill sets both
        state.cache.reorder_cache(index)
        state.mask.reorder(index)
        state.positions = state.positions.index_select(0, index)
        return state


class SeqlabGPT:
    """seqlab's own GPT (`seqlab.models.gpt`) or Llama (`seqlab.models.llama`): `forward(input_ids, attention_mask (B, T_past + T),
    cache) -> LMOutput(logits, cache, attentions)`, positions computed from the mask by the model,
    `KVCache.reorder(index)`."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.context_length = _context_length(model)
        accepts = inspect.signature(model.forward).parameters
        self._options: dict[str, Any] = {"use_cache": True} if "use_cache" in accepts else {}
        if "logits_to_keep" in accepts:  # only the last position's logits are needed
            self._options["logits_to_keep"] = 1

    @torch.inference_mode()
    def prefill(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, _CacheState]:
        _require_eval(self.model)
        mask = attention_mask.bool()
        # Without padding the model needs no mask: positions count from the cache length, and a
        # single new token may see every cached key, so each step skips building one.
        padded = not bool(mask.all())
        out = self.model(input_ids, attention_mask=mask if padded else None, cache=None, **self._options)
        if out.cache is None:
            raise SeqlabError("decoding: the GPT returned no KV cache; it cannot decode incrementally")
        return out.logits[:, -1].float(), _CacheState(out.cache, _GrowingMask(mask) if padded else None)

    @torch.inference_mode()
    def step(self, tokens: Tensor, state: _CacheState) -> tuple[Tensor, _CacheState]:
        mask = state.mask.grow() if state.mask is not None else None
        out = self.model(tokens[:, None], attention_mask=mask, cache=state.cache, **self._options)
        state.cache = out.cache
        return out.logits[:, -1].float(), state

    @torch.inference_mode()
    def reorder(self, state: _CacheState, index: Tensor) -> _CacheState:
        reordered = state.cache.reorder(index)
        state.cache = state.cache if reordered is None else reordered  # in place or returned
        if state.mask is not None:
            state.mask.reorder(index)
        return state


class SeqlabRNN:
    """seqlab's `RNNLanguageModel` (`seqlab.models.rnn`): `forward(input_ids, state, lengths) ->
    LMOutput(logits, cache=state)` on packed, right-padded sequences, and `reorder_state`.

    A left-padded prompt is right-aligned first, so the recurrence never reads a pad and each
    row's state is the one it would have alone."""

    context_length: int | None = None

    def __init__(self, model: torch.nn.Module):
        self.model = model

    @torch.inference_mode()
    def prefill(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, State]:
        _require_eval(self.model)
        lengths = attention_mask.sum(-1)  # (B,)
        T = input_ids.size(1)
        shift = (torch.arange(T, device=input_ids.device) + (T - lengths)[:, None]).clamp_max(T - 1)
        right = input_ids.gather(1, shift)  # (B, T) real tokens first; the tail is ignored by packing
        out = self.model(right, state=None, lengths=lengths)
        last = out.logits[torch.arange(input_ids.size(0), device=input_ids.device), lengths - 1]  # (B, V)
        return last.float(), out.cache

    @torch.inference_mode()
    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        out = self.model(tokens[:, None], state=state)
        return out.logits[:, -1].float(), out.cache

    @torch.inference_mode()
    def reorder(self, state: State, index: Tensor) -> State:
        from seqlab.models.rnn import reorder_state

        return reorder_state(state, index)


def as_incremental(model: Any) -> IncrementalLM:
    """The adapter for `model`: an `IncrementalLM` is returned as it is; a `transformers` model,
    seqlab's GPT or its RNN language model is wrapped."""
    from seqlab.models.gpt import GPT
    from seqlab.models.llama import Llama
    from seqlab.models.rnn import RNNLanguageModel

    if isinstance(model, IncrementalLM):
        return model
    # A transformers model exists only once transformers is imported: a seqlab run decodes
    # without paying for that import (seconds).
    transformers = sys.modules.get("transformers")
    if transformers is not None and isinstance(model, transformers.PreTrainedModel):
        return HFCausalLM(model)
    if isinstance(model, (GPT, Llama)):
        return SeqlabGPT(model)
    if isinstance(model, RNNLanguageModel):
        return SeqlabRNN(model)
    raise SeqlabError(f"decoding: cannot decode with a {type(model).__name__}; expected a language model")


# ---------------------------------------------------------------------------------------------
# Prompts


def left_pad(
    prompts: Sequence[Sequence[int]], pad_id: int = 0, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """Lists of ids → (B, T) left-padded ids and the (B, T) bool mask (True = real)."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise SeqlabError("decoding: every prompt needs at least one token")
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), width), dtype=torch.bool, device=device)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.as_tensor(list(prompt), dtype=torch.long)
        mask[row, width - len(prompt) :] = True
    return ids, mask


def _check_prompts(
    lm: IncrementalLM, input_ids: Tensor, attention_mask: Tensor | None, config: GenerationConfig, decode: Decode | None
) -> Tensor:
    """Validate the call; returns the bool mask."""
    GenerationConfig(**config.model_dump())  # again: `model_copy(update=...)` skips validation
    shape = tuple(input_ids.shape)
    if input_ids.dim() != 2 or 0 in shape:
        raise SeqlabError(f"decoding: input_ids must be a non-empty (batch, length) tensor (got shape {shape})")
    mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    if mask.shape != input_ids.shape:
        raise SeqlabError(f"decoding: attention_mask shape {tuple(mask.shape)} differs from input_ids {shape}")
    if not mask[:, -1].all() or (mask[:, 1:].long() < mask[:, :-1].long()).any():
        raise SeqlabError("decoding: prompts must be left-padded (padding first, every row ending in a real token)")
    limit, length = lm.context_length, input_ids.size(1)
    if limit is not None and length >= limit:
        raise SeqlabError(f"decoding: the prompt has {length} positions; the model takes at most {limit - 1}")
    if limit is not None and length + config.max_new_tokens > limit:
        raise SeqlabError(
            f"generation: max_new_tokens must be <= {limit - length} after a {length}-token prompt "
            f"(the model takes {limit} positions; got {config.max_new_tokens})"
        )
    if config.stop and decode is None:
        raise SeqlabError("generation: stop strings need a decode function (token ids → text)")
    return mask


def _real_tokens(input_ids: Tensor, mask: Tensor) -> list[list[int]]:
    return [row[keep].tolist() for row, keep in zip(input_ids, mask)]


def _seen_tokens(input_ids: Tensor, mask: Tensor, vocab_size: int) -> Tensor:
    """(B, V) bool: which ids occur among each row's real prompt tokens."""
    counts = torch.zeros(input_ids.size(0), vocab_size, dtype=torch.long, device=input_ids.device)
    return counts.scatter_add_(1, input_ids, mask.long()) > 0


# ---------------------------------------------------------------------------------------------
# Stop strings


def _stop_cut(tokens: list[int], stops: Sequence[str], decode: Decode) -> int | None:
    """None while the decoded tokens hold no stop string; else how many tokens to keep so the
    text ends before the earliest stop string (a token straddling its start is dropped)."""
    text = decode(tokens)
    starts = [i for i in (text.find(s) for s in stops) if i >= 0]
    if not starts:
        return None
    cut = min(starts)
    keep = len(tokens) - 1
    while keep > 0 and len(decode(tokens[:keep])) > cut:
        keep -= 1
    return keep


def _pending(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of `text` could be the beginning of a stop string."""
    longest = 0
    for s in stops:
        for size in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:size]):
                longest = size
                break
    return longest


# ---------------------------------------------------------------------------------------------
# Greedy and sampling


class _Sampler:
    """Greedy or sampled decoding of a left-padded batch, one step at a time.

    `pick()` chooses the next token per row from the current logits (finished rows get the fill
    id) and `feed(tokens)` runs the model on them. The buffers are made once, here.
    """

    def __init__(self, lm: IncrementalLM, input_ids: Tensor, mask: Tensor, config: GenerationConfig):
        self.lm, self.config = lm, config
        with torch.inference_mode():
            self.logits, self.state = lm.prefill(input_ids, mask)
        device, B = self.logits.device, input_ids.size(0)
        eos = config.eos_ids
        self.eos = torch.tensor(eos, device=device) if eos else None
        self.fill = config.fill_id
        self.done = torch.zeros(B, dtype=torch.bool, device=device)
        self.seen = None
        if config.repetition_penalty != 1.0:
            self.seen = _seen_tokens(input_ids.to(device), mask.to(device), self.logits.size(-1))
        self.history = _real_tokens(input_ids, mask) if config.no_repeat_ngram_size else None
        self.generator = None
        if config.do_sample and config.seed is not None:
            self.generator = torch.Generator(device=device).manual_seed(config.seed)

    @torch.inference_mode()
    def pick(self) -> Tensor:
        """(B,) the next token of every row."""
        cfg, logits = self.config, self.logits
        if self.seen is not None:
            logits = apply_repetition_penalty(logits, self.seen, cfg.repetition_penalty)
        if self.history is not None:
            logits = ban_repeated_ngrams(logits, self.history, cfg.no_repeat_ngram_size)
        if cfg.do_sample:
            if cfg.temperature != 1.0:
                logits = apply_temperature(logits, cfg.temperature)
            if cfg.top_k:
                logits = top_k_filter(logits, cfg.top_k)
            if cfg.top_p < 1.0:
                logits = top_p_filter(logits, cfg.top_p)
            tokens = torch.multinomial(logits.softmax(-1), 1, generator=self.generator).squeeze(1)
        else:
            tokens = logits.argmax(-1)
        if self.fill is not None:
            tokens.masked_fill_(self.done, self.fill)
        if self.eos is not None:
            self.done |= torch.isin(tokens, self.eos)
        if self.seen is not None:
            self.seen.scatter_(1, tokens[:, None], True)
        if self.history is not None:
            for seq, token in zip(self.history, tokens.tolist()):
                seq.append(token)
        return tokens

    @torch.inference_mode()
    def feed(self, tokens: Tensor) -> None:
        self.logits, self.state = self.lm.step(tokens, self.state)


def _token_steps(
    lm: IncrementalLM,
    input_ids: Tensor,
    mask: Tensor,
    config: GenerationConfig,
    decode: Decode | None,
    kept: dict[int, int],
) -> Iterator[Tensor]:
    """Yield the (B,) tokens of each step until every row is done or max_new_tokens. A row that
    spells a stop string is done; `kept[row]` then says how many of its tokens survive trimming."""
    sampler = _Sampler(lm, input_ids, mask, config)
    rows: list[list[int]] = [[] for _ in range(input_ids.size(0))]
    eos, ended = set(config.eos_ids), set()
    can_finish = sampler.eos is not None or bool(config.stop)
    for step in range(config.max_new_tokens):
        tokens = sampler.pick()
        if config.stop:
            for row, token in enumerate(tokens.tolist()):
                if row in ended:
                    continue
                rows[row].append(token)
                cut = (
                    None if token in eos else _stop_cut(rows[row], config.stop, cast(Decode, decode))
                )  # stop needs decode: _check_prompts
                if token in eos or cut is not None:
                    ended.add(row)
                if cut is not None:
                    kept[row] = cut
                    sampler.done[row] = True
        yield tokens
        if step + 1 == config.max_new_tokens or (can_finish and bool(sampler.done.all())):
            return
        sampler.feed(tokens)


def generate(
    lm: Any,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    config: GenerationConfig | None = None,
    decode: Decode | None = None,
) -> list[list[int]]:
    """Decode a left-padded batch: greedy, sampled or (num_beams > 1) beam search.

    Args:
        lm: an `IncrementalLM`, or a model `as_incremental` knows.
        input_ids: (B, T) left-padded prompt ids.
        attention_mask: (B, T) True/1 on real tokens; None when no row is padded.
        config: the settings (defaults: 50 greedy tokens).
        decode: token ids → text; needed only for stop strings.

    Returns:
        B lists of new token ids: no prompt, no padding; a final eos is included, a stop string
        is trimmed.
    """
    config = config or GenerationConfig()
    lm = as_incremental(lm)
    if config.num_beams > 1:
        return beam_search(lm, input_ids, attention_mask, config, decode)
    mask = _check_prompts(lm, input_ids, attention_mask, config, decode)
    kept: dict[int, int] = {}
    columns = list(_token_steps(lm, input_ids, mask, config, decode, kept))
    rows = torch.stack(columns, dim=1).tolist()  # (B, steps)
    eos = set(config.eos_ids)
    results = []
    for row, tokens in enumerate(rows):
        if row in kept:
            tokens = tokens[: kept[row]]
        else:
            end = next((i for i, t in enumerate(tokens) if t in eos), None)
            tokens = tokens if end is None else tokens[: end + 1]
        results.append(tokens)
    return results


def stream(
    lm: Any,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    config: GenerationConfig | None = None,
    decode: Decode | None = None,
) -> Iterator[Tensor]:
    """Decode like `generate` (greedy or sampled), yielding a (B,) tensor of new tokens per step as
    soon as it is chosen; finished rows yield the fill id (pad, else eos) until all are done.

    With stop strings (one prompt only) a token that may begin a stop string is held back until
    it is clear it does not, so the tokens yielded are exactly what `generate` returns.
    Arguments are checked when `stream` is called, not at the first `next`.
    """
    config = config or GenerationConfig()
    lm = as_incremental(lm)
    if config.num_beams > 1:
        raise SeqlabError(f"generation: stream() needs num_beams=1 (got {config.num_beams}); use generate() for beam search")
    mask = _check_prompts(lm, input_ids, attention_mask, config, decode)
    if config.stop and input_ids.size(0) != 1:
        raise SeqlabError(f"generation: stream() with stop strings takes one prompt (got {input_ids.size(0)}); use generate()")
    kept: dict[int, int] = {}
    steps = _token_steps(lm, input_ids, mask, config, decode, kept)
    return _held_back(steps, config, cast(Decode, decode), kept) if config.stop else steps  # stop needs decode: _check_prompts


def _held_back(steps: Iterator[Tensor], config: GenerationConfig, decode: Decode, kept: dict[int, int]) -> Iterator[Tensor]:
    """One prompt with stop strings: release a token only once the text up to it cannot be the
    start of a stop string."""
    tokens: list[int] = []
    released, device = 0, None
    for column in steps:
        tokens.append(int(column[0]))
        device = column.device
        if 0 in kept:
            break
        text = decode(tokens)
        safe = len(text) - _pending(text, config.stop)
        while released < len(tokens) and (safe == len(text) or len(decode(tokens[: released + 1])) <= safe):
            yield torch.tensor([tokens[released]], device=device)
            released += 1
    for token in tokens[released : kept.get(0, len(tokens))]:
        yield torch.tensor([token], device=device)


# ---------------------------------------------------------------------------------------------
# Beam search


@torch.inference_mode()
def beam_search(
    lm: Any,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    config: GenerationConfig | None = None,
    decode: Decode | None = None,
) -> list[list[int]]:
    """Beam search with `config.num_beams` beams per prompt, as Hugging Face's with
    `early_stopping=True`: every step keeps the best 2·beams (more with several eos ids)
    continuations of all beams; one that ends (eos, stop string, max_new_tokens) among the best
    `num_beams` becomes a hypothesis scored sum(log p) / new_length ** length_penalty; a prompt is
    done once it has `num_beams` hypotheses. Repetition penalty and no-repeat-n-gram apply to
    the log-probabilities.

    With `early_stopping=False` a prompt goes on until no running beam can beat its best
    hypothesis any more (the beam's sum of log p so far, over the most favourable length
    allowed, cannot reach it), and a better hypothesis replaces the worst. A very confident
    model (a trained translation model) needs it: its unlikely endings fill `num_beams`
    hypotheses before the likely, longer one ends.

    Returns:
        The best hypothesis of each prompt, in `generate`'s format.
    """
    return [hypotheses[0][1] for hypotheses in beam_hypotheses(lm, input_ids, attention_mask, config, decode)]


@torch.inference_mode()
def beam_hypotheses(
    lm: Any,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    config: GenerationConfig | None = None,
    decode: Decode | None = None,
    n_best: int = 1,
) -> list[list[tuple[float, list[int]]]]:
    """`beam_search`'s finished hypotheses of each prompt, best first: (score, tokens), score =
    sum(log p) / new_length ** length_penalty (an n-best list), at most `num_beams` per prompt.

    With `early_stopping=False` a prompt is searched until it has `n_best` hypotheses and no
    running beam could still beat the `n_best`-th (with the default 1: the best one), so a
    longer list costs more steps; it may hold fewer when the length limit ends the search."""
    config = config or GenerationConfig()
    lm = as_incremental(lm)
    mask = _check_prompts(lm, input_ids, attention_mask, config, decode)
    B, beams, N = input_ids.size(0), config.num_beams, config.max_new_tokens
    logits, state = lm.prefill(input_ids, mask)
    device, V = logits.device, logits.size(-1)
    expand = torch.arange(B, device=device).repeat_interleave(beams)  # every beam starts as its prompt
    state = lm.reorder(state, expand)
    logits = logits.index_select(0, expand)  # (B·beams, V)
    eos = torch.tensor(config.eos_ids, device=device) if config.eos_ids else None
    width = max(2, 1 + len(config.eos_ids)) * beams  # enough that `beams` survive even if eos wins
    scores = torch.full((B, beams), _BLOCKED, device=device)
    scores[:, 0] = 0.0  # the beams are identical at first: expand only one
    running = torch.zeros(B * beams, N, dtype=torch.long, device=device)  # generated tokens
    offsets = torch.arange(B, device=device)[:, None] * beams
    seen = None
    if config.repetition_penalty != 1.0:
        seen = _seen_tokens(input_ids.to(device), mask.to(device), V).index_select(0, expand)
    history = None
    if config.no_repeat_ngram_size:
        history = [list(h) for h in _real_tokens(input_ids, mask) for _ in range(beams)]
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
    done = [False] * B

    for step in range(N):
        logprobs = logits.log_softmax(-1)
        if seen is not None:
            logprobs = apply_repetition_penalty(logprobs, seen, config.repetition_penalty)
        if history is not None:
            logprobs = ban_repeated_ngrams(logprobs, history, config.no_repeat_ngram_size)
        totals = (logprobs + scores.view(-1, 1)).view(B, beams * V)
        top_scores, top = torch.topk(totals, width, dim=1)  # (B, width)
        parents = top // V + offsets  # (B, width) rows of `running`
        tokens = top % V
        if step + 1 == N:
            ends = torch.ones_like(tokens, dtype=torch.bool)
        elif eos is not None:
            ends = torch.isin(tokens, eos)
        else:
            ends = torch.zeros_like(tokens, dtype=torch.bool)
        cuts: dict[tuple[int, int], int] = {}
        if config.stop:
            _stop_candidates(
                running, parents, tokens, ends, step, config.stop, cast(Decode, decode), cuts
            )  # checked in _check_prompts

        _add_hypotheses(finished, ends[:, :beams], top_scores, parents, tokens, running, step, config, cuts, done)
        if config.early_stopping:
            done = [len(f) == beams for f in finished]
        else:
            # log p only falls as a beam grows, so its best possible score is its sum so far over
            # the length that divides it most (N with a positive length penalty)
            reach = max((step + 1) ** config.length_penalty, N**config.length_penalty)
            best = ((top_scores + ends * _BLOCKED).max(dim=1).values / reach).tolist()
            done = [d or (len(f) >= n_best and f[n_best - 1][0] >= s) for d, f, s in zip(done, finished, best)]
        if step + 1 == N or all(done):
            break

        # The best `beams` continuations that did not end go on.
        kept_scores, keep = torch.topk(top_scores + ends * _BLOCKED, beams, dim=1)  # (B, beams)
        scores = kept_scores
        chosen_parents = parents.gather(1, keep).view(-1)
        chosen = tokens.gather(1, keep).view(-1)  # (B·beams,)
        running = running.index_select(0, chosen_parents)
        running[:, step] = chosen
        if seen is not None:
            seen = seen.index_select(0, chosen_parents).scatter_(1, chosen[:, None], True)
        if history is not None:
            history = [history[p] + [t] for p, t in zip(chosen_parents.tolist(), chosen.tolist())]
        state = lm.reorder(state, chosen_parents)
        logits, state = lm.step(chosen, state)
    return finished


def _stop_candidates(
    running: Tensor,
    parents: Tensor,
    tokens: Tensor,
    ends: Tensor,
    step: int,
    stops: Sequence[str],
    decode: Decode,
    cuts: dict[tuple[int, int], int],
) -> None:
    """Mark the candidates whose text now holds a stop string as ended; `cuts` their kept length."""
    prefixes = running[:, :step].tolist()
    for b, (row_parents, row_tokens) in enumerate(zip(parents.tolist(), tokens.tolist())):
        for k, (parent, token) in enumerate(zip(row_parents, row_tokens)):
            cut = _stop_cut(prefixes[parent] + [token], stops, decode)
            if cut is not None:
                cuts[(b, k)] = cut
                ends[b, k] = True


def _add_hypotheses(
    finished: list[list[tuple[float, list[int]]]],
    ends: Tensor,
    top_scores: Tensor,
    parents: Tensor,
    tokens: Tensor,
    running: Tensor,
    step: int,
    config: GenerationConfig,
    cuts: dict[tuple[int, int], int],
    done: list[bool],
) -> None:
    """Add the candidates among the best `num_beams` that ended to their prompt's hypotheses,
    keeping the best `num_beams`; a prompt that is done takes no more."""
    if not bool(ends.any()):
        return
    norm = (step + 1) ** config.length_penalty
    for b, k in ends.nonzero().tolist():
        if done[b]:
            continue
        tokens_so_far = running[parents[b, k], :step].tolist() + [int(tokens[b, k])]
        if (b, k) in cuts:
            tokens_so_far = tokens_so_far[: cuts[(b, k)]]
        finished[b].append((float(top_scores[b, k]) / norm, tokens_so_far))
    for hypotheses in finished:
        hypotheses.sort(key=lambda h: -h[0])  # stable: earlier hypotheses win ties
        del hypotheses[config.num_beams :]
