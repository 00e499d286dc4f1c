"""In-flight (continuous) batching: sequences join and leave a running decode batch at token
boundaries, each with its own decoding settings and its own text.

`seqlab.decoding.generate` decodes a batch that starts together and runs until its last row is
done. A server gets prompts one by one, at any time, with different settings; here every
sequence is a `Row` (its prompt, `GenerationConfig`, tokens so far, and callbacks that receive
its text), and a batch steps all of its rows together, one token each per step:

```
step:     1    2    3    4    5    6    7
row A:    a1   a2   a3   a4 (eos: leaves)
row B:         b0   b1   b2   b3   b4   b5      (joined at step 2: prefilled, then stepped)
row C:                        c0   c1   c2      (took A's place)
```

Two batches, by what the model's KV cache allows:

* `InflightBatch` (seqlab's GPT and Llama): a new sequence joins at any step. Its prompt is
  prefilled on its own (with the others that arrive at the same step), and its KV cache is
  merged into the batch's, right-aligned with zero padding on the left that the batch's (B, L)
  mask hides, exactly as `decoding.left_pad` pads prompts. Each row keeps its own positions, so
  a row decodes as it would alone. A row that is done leaves at once, and the cache columns that
  no row needs any more are dropped.
* `StaticBatch` (any `decoding.IncrementalLM`: transformers models, seqlab's RNN): sequences that
  arrive together are prefilled together; later ones wait until the batch is empty; a row that
  is done still leaves at once (`reorder`). Merging a new row into a transformers cache is not
  done here.

Rows choose their tokens with `decoding`'s logit processors applied to their own logits row,
in `decoding`'s order, with their own `torch.Generator` when they have a seed: a greedy row gives
the tokens it gives alone (up to floating-point rounding in the batched products), a sampled
row with a seed draws as the same request alone does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor

from seqlab.decoding import (
    Decode,
    GenerationConfig,
    IncrementalLM,
    _context_length,
    _pending,
    _stop_cut,
    apply_repetition_penalty,
    apply_temperature,
    as_incremental,
    ban_repeated_ngrams,
    left_pad,
    top_k_filter,
    top_p_filter,
)
from seqlab.errors import SeqlabError

if TYPE_CHECKING:
    from seqlab.models.gpt import KVCache

Sink = Callable[[str], None]


def _ignore(_: str) -> None:
    pass


class Row:
    """One sequence being decoded.

    Args:
        prompt: its token ids (at least one).
        config: its settings (`num_beams` must be 1).
        decode: token ids → text.
        on_piece: called with each new piece of text as soon as it is chosen; a piece that may
            be the start of a stop string is held back until it is clear it is not, so the
            pieces add up to the final text.
        on_done: called once, with the whole new text, when the row is done (eos, a stop
            string, max_new_tokens). Not called for a cancelled row.
        on_error: called once, with a one-line reason, when the row cannot go on (`fail`).

    Attributes:
        done: finished (no more tokens). `cancelled`: its client went away (set from any
            thread; the batch drops the row before its next step).
        next_token: the token chosen last, which the next step feeds.
    """

    def __init__(
        self,
        prompt: Sequence[int],
        config: GenerationConfig,
        decode: Decode,
        on_piece: Sink = _ignore,
        on_done: Sink = _ignore,
        on_error: Sink = _ignore,
    ):
        if not prompt:
            raise SeqlabError("decoding: every prompt needs at least one token")
        if config.num_beams != 1:
            raise SeqlabError(
                f"generation: in-flight batching decodes greedy or sampled rows, not beam search (num_beams={config.num_beams})"
            )
        self.prompt, self.config, self.decode = list(prompt), config, decode
        self.on_piece, self.on_done, self.on_error = on_piece, on_done, on_error
        self.eos = set(config.eos_ids)
        self.tokens: list[int] = []  # the new tokens, without an ending eos
        self.steps = 0
        self.next_token = -1
        self.done = self.cancelled = False
        self.text = ""  # released so far
        # a row that needs only argmax: the batch picks all of those with one call
        self.plain = not config.do_sample and config.repetition_penalty == 1.0 and not config.no_repeat_ngram_size
        self.generator: torch.Generator | None = None  # made at the first draw, on the logits' device
        self._seen: Tensor | None = None  # (1, V) ids in the sequence, for the repetition penalty
        self._history = list(prompt) if config.no_repeat_ngram_size else None

    @property
    def live(self) -> bool:
        return not (self.done or self.cancelled)

    @torch.inference_mode()
    def choose(self, logits: Tensor) -> int:
        """The next token from this row's (1, V) float logits, as `decoding.generate` picks it."""
        cfg = self.config
        if cfg.repetition_penalty != 1.0:
            if self._seen is None:
                self._seen = torch.zeros_like(logits, dtype=torch.bool)
                self._seen[0, self.prompt] = True
            logits = apply_repetition_penalty(logits, self._seen, cfg.repetition_penalty)
        if self._history is not None:
            logits = ban_repeated_ngrams(logits, [self._history], cfg.no_repeat_ngram_size)
        if not cfg.do_sample:
            return int(logits.argmax(-1))
        if cfg.temperature != 1.0:
            logits = apply_temperature(logits, cfg.temperature)
        if cfg.top_k:
            logits = top_k_filter(logits, cfg.top_k)
        if cfg.top_p < 1.0:
            logits = top_p_filter(logits, cfg.top_p)
        if cfg.seed is not None and self.generator is None:
            self.generator = torch.Generator(device=logits.device).manual_seed(cfg.seed)
        return int(torch.multinomial(logits.softmax(-1), 1, generator=self.generator))

    @torch.inference_mode()
    def accept(self, token: int) -> None:
        """Take `token` as the row's next one: end the row at eos, a stop string or
        max_new_tokens, and release the text that is safe to show."""
        self.steps += 1
        if self._seen is not None:
            self._seen[0, token] = True
        if self._history is not None:
            self._history.append(token)
        self.next_token = token
        if token in self.eos:
            self._finish()
            return
        self.tokens.append(token)
        if self.config.stop:
            cut = _stop_cut(self.tokens, self.config.stop, self.decode)
            if cut is not None:
                del self.tokens[cut:]
                self._finish()
                return
        if self.steps == self.config.max_new_tokens:
            self._finish()
            return
        text = self.decode(self.tokens)
        if text.endswith("\ufffd"):  # wait out half a UTF-8 character
            return
        safe = len(text) - _pending(text, self.config.stop) if self.config.stop else len(text)
        if safe > len(self.text):
            self._release(text[len(self.text) : safe])

    def fail(self, reason: str) -> None:
        """End the row without its text (the batch it was in failed)."""
        if not self.done:
            self.done = True
            if not self.cancelled:
                self.on_error(reason)

    def _release(self, piece: str) -> None:
        self.text += piece
        if not self.cancelled:
            self.on_piece(piece)

    def _finish(self) -> None:
        self.done = True
        rest = self.decode(self.tokens)[len(self.text) :]
        if rest:
            self._release(rest)
        if not self.cancelled:
            self.on_done(self.text)


def choose(rows: Sequence[Row], logits: Tensor) -> None:
    """Every row's next token from its row of `logits` (B, V): the rows that only need argmax in
    one call, the others each through its own processors."""
    plain = [i for i, row in enumerate(rows) if row.plain]
    picked: dict[int, int] = {}
    if plain:
        best = (logits if len(plain) == len(rows) else logits[plain]).argmax(-1).tolist()
        picked = dict(zip(plain, best))
    for i, row in enumerate(rows):
        row.accept(picked[i] if i in picked else row.choose(logits[i : i + 1]))


class Batch(Protocol):
    """What `Scheduler` and `run` drive: `add` prefills new rows and returns their (J, V) logits,
    `step` feeds every row's `next_token` and returns (B, V) logits, `keep` keeps rows by index."""

    rows: list[Row]
    context_length: int | None

    def admits(self) -> bool: ...

    def add(self, rows: list[Row]) -> Tensor: ...

    def step(self) -> Tensor: ...

    def keep(self, index: list[int]) -> None: ...


@dataclass
class _Running:
    """The state of a non-empty `InflightBatch`: `cache` (B rows, length L), `mask` (B, L) bool
    (True = a real position of that row), `positions` (B,) the position of each row's next token
    (its real tokens so far)."""

    cache: KVCache
    mask: Tensor
    positions: Tensor


class InflightBatch:
    """The running batch of seqlab's GPT or Llama (see the module's docstring)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.context_length = _context_length(model)
        self.rows: list[Row] = []
        self.running: _Running | None = None  # None while the batch is empty
        self._full = True  # every position of every row is real: the model needs no mask
        self.device = next(model.parameters()).device

    def admits(self) -> bool:
        return True

    @torch.inference_mode()
    def add(self, rows: list[Row]) -> Tensor:
        from seqlab.models.gpt import KVCache

        ids, mask = left_pad([row.prompt for row in rows], device=self.device)  # (J, T)
        padded = not bool(mask.all())
        out = self.model(ids, attention_mask=mask if padded else None, cache=None, use_cache=True, logits_to_keep=1)
        positions = mask.sum(-1)  # (J,) the next position of each new row
        if self.running is None:
            self.running = _Running(out.cache, mask, positions)
        else:
            cache = KVCache.merged([self.running.cache, out.cache])
            both = [_pad_left(self.running.mask, cache.length), _pad_left(mask, cache.length)]
            self.running = _Running(cache, torch.cat(both), torch.cat([self.running.positions, positions]))
        self.rows += rows
        self._full = bool(self.running.mask.all())
        return out.logits[:, -1].float()

    @torch.inference_mode()
    def step(self) -> Tensor:
        running = self._running()
        tokens = torch.tensor([row.next_token for row in self.rows], device=self.device)  # (B,)
        running.mask = torch.cat([running.mask, running.mask.new_ones(len(self.rows), 1)], dim=1)  # (B, L + 1)
        out = self.model(
            tokens[:, None],
            attention_mask=None if self._full else running.mask,
            cache=running.cache,
            position_ids=running.positions[:, None],
            use_cache=True,
            logits_to_keep=1,
        )
        running.positions += 1
        return out.logits[:, -1].float()

    def keep(self, index: list[int]) -> None:
        running = self._running()
        self.rows = [self.rows[i] for i in index]
        if not self.rows:
            self.running, self._full = None, True
            return
        select = torch.tensor(index, device=self.device)
        running.cache.reorder(select)
        running.mask, running.positions = running.mask[select], running.positions[select]
        unused = int(running.mask.any(0).int().argmax())  # leading columns that no row needs any more
        if unused:
            running.cache.drop_front(unused)
            running.mask = running.mask[:, unused:]
        self._full = bool(running.mask.all())

    def _running(self) -> _Running:
        if self.running is None:
            raise RuntimeError("the batch is empty: add rows first")
        return self.running


def _pad_left(mask: Tensor, length: int) -> Tensor:
    """(B, T) bool → (B, length), False columns first."""
    return torch.cat([mask.new_zeros(mask.size(0), length - mask.size(1)), mask], dim=1)


class StaticBatch:
    """Any `decoding.IncrementalLM` (see the module's docstring): rows join only an empty batch."""

    def __init__(self, lm: IncrementalLM):
        self.lm = lm
        self.context_length = lm.context_length
        self.rows: list[Row] = []
        self.state = None
        self.device: torch.device | None = None

    def admits(self) -> bool:
        return not self.rows

    @torch.inference_mode()
    def add(self, rows: list[Row]) -> Tensor:
        if self.rows:
            raise RuntimeError("a static batch takes new rows only when it is empty")
        ids, mask = left_pad([row.prompt for row in rows])
        logits, self.state = self.lm.prefill(ids, mask)
        self.rows, self.device = list(rows), logits.device
        return logits

    @torch.inference_mode()
    def step(self) -> Tensor:
        tokens = torch.tensor([row.next_token for row in self.rows], device=self.device)
        logits, self.state = self.lm.step(tokens, self.state)
        return logits

    def keep(self, index: list[int]) -> None:
        self.rows = [self.rows[i] for i in index]
        if not self.rows:
            self.state = None
            return
        self.state = self.lm.reorder(self.state, torch.tensor(index, device=self.device))


def batch_for(model: torch.nn.Module | IncrementalLM) -> Batch:
    """`InflightBatch` for seqlab's GPT and Llama, `StaticBatch` for every other language model."""
    from seqlab.models.gpt import GPT
    from seqlab.models.llama import Llama

    if isinstance(model, (GPT, Llama)):
        return InflightBatch(model)
    return StaticBatch(as_incremental(model))


def tick(batch: Batch, joining: list[Row]) -> None:
    """One step of a batch: rows that are done or cancelled leave, `joining` rows are prefilled
    and get their first token, then every row gets its next token."""
    drop_finished(batch)
    if joining:
        choose(joining, batch.add(joining))
        drop_finished(batch)
    if batch.rows:
        choose(batch.rows, batch.step())


def drop_finished(batch: Batch) -> int:
    """Remove the rows that are done or cancelled; returns how many left."""
    live = [i for i, row in enumerate(batch.rows) if row.live]
    gone = len(batch.rows) - len(live)
    if gone:
        batch.keep(live)
    return gone


@torch.inference_mode()
def run(batch: Batch, rows: Sequence[Row], max_active: int) -> None:
    """Decode every row to its end, at most `max_active` at a time: a row joins as soon as
    another leaves (when the batch admits it). For offline use and tests; the server's
    `Scheduler` drives a batch the same way from its thread."""
    waiting = list(rows)
    while waiting or batch.rows:
        drop_finished(batch)
        joining: list[Row] = []
        if batch.admits():
            free = max_active - len(batch.rows)
            joining, waiting = waiting[:free], waiting[free:]
        tick(batch, joining)
