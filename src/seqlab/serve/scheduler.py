"""One scheduler per served language model: the requests of /v1/generate decoded together on
the model's inference thread, joining and leaving the running batch at token boundaries.

```
request ─ submit ─▶ waiting (≤ max_queue, else 503) ─▶ running batch (≤ max_active rows)
                                                        │ every step: one token per row
                           pieces ◀── event loop ◀──────┘ (call_soon_threadsafe)
```

The scheduler's thread is the model's only inference thread: it steps the batch (see
`seqlab.inflight`: in-flight batching for seqlab's GPT and Llama, static batches for other
models) and, between two steps, runs the other work on the model (`call`: beam search, which
does not batch with the others). A ticket whose client went away is cancelled; its row leaves
the batch before the next step and its slot goes to the next waiting request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import torch

from seqlab.decoding import Decode, GenerationConfig
from seqlab.errors import SeqlabError
from seqlab.inflight import Batch, InflightBatch, Row, choose, drop_finished
from seqlab.serve.batching import QueueFull

log = logging.getLogger("seqlab")


class Ticket:
    """A request's place in a `Scheduler`: what its row produces arrives on the event loop that
    submitted it, as ("piece", text), then ("done", whole text) or ("error", reason)."""

    def __init__(self, scheduler: Scheduler, loop: asyncio.AbstractEventLoop):
        self._scheduler, self._loop = scheduler, loop
        self._events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.row: Row

    def _put(self, kind: str, value: str) -> None:  # on the scheduler's thread
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            self.row.cancelled = True

    async def next(self) -> tuple[str, str]:
        """The next (kind, value): kind is piece, done or error."""
        return await self._events.get()

    async def text(self) -> str:
        """The whole new text, once the row is done.

        Raises:
            RuntimeError: the batch failed (a bug, logged by the scheduler).
        """
        while True:
            kind, value = await self.next()
            if kind == "done":
                return value
            if kind == "error":
                raise RuntimeError(value)

    def cancel(self) -> None:
        """The client went away: drop the request (its row leaves at the next step). Safe to
        call more than once, and after the row is done."""
        self._scheduler._cancel(self)


class Scheduler:
    """Decodes submitted prompts on one thread, at most `max_active` at a time.

    Args:
        name: the model's name (thread name, messages).
        batch: what decodes (`inflight.batch_for(model)`).
        max_active: most rows decoding at once.
        max_queue: most requests waiting for a row; `submit` raises `QueueFull` beyond.
    """

    def __init__(self, name: str, batch: Batch, max_active: int = 16, max_queue: int = 64):
        self.name, self.batch = name, batch
        self.max_active, self.max_queue = max_active, max_queue
        self.mode = "in-flight" if isinstance(batch, InflightBatch) else "static"
        self._changed = threading.Condition()
        self._waiting: deque[Ticket] = deque()
        self._jobs: deque[tuple[Future, Callable[..., Any], tuple]] = deque()
        self._closed = False
        # counters, for /v1/models and tests
        self.steps = 0  # batch steps
        self.stepped = 0  # rows fed, over all steps: stepped / steps is the mean batch
        self.joined = 0
        self.cancelled = 0
        self.tokens = 0  # tokens chosen, over all rows
        self._thread = threading.Thread(target=self._loop, name=f"seqlab-{name}", daemon=True)
        self._thread.start()

    @property
    def active(self) -> int:
        """Rows in the running batch that are still decoding."""
        return sum(row.live for row in list(self.batch.rows))

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def describe(self) -> dict[str, Any]:
        return {
            "batching": self.mode,
            "max_active": self.max_active,
            "max_queue": self.max_queue,
            "active": self.active,
            "waiting": self.waiting,
            "steps": self.steps,
            "mean_batch": round(self.stepped / self.steps, 2) if self.steps else 0.0,
            "requests": self.joined,
            "cancelled": self.cancelled,
            "tokens": self.tokens,
        }

    # ------------------------------------------------------------------------- the event loop's side

    def submit(self, prompt: Sequence[int], config: GenerationConfig, decode: Decode) -> Ticket:
        """Queue one prompt (token ids) with its settings; call from the event loop.

        Raises:
            QueueFull: `max_queue` requests are already waiting.
            SeqlabError: settings the batch cannot decode (beam search), or a prompt that does
                not fit the model's context with max_new_tokens.
        """
        limit = self.batch.context_length
        if limit is not None and len(prompt) + config.max_new_tokens > limit:
            raise SeqlabError(
                f"generation: a {len(prompt)}-token prompt and max_new_tokens={config.max_new_tokens} "
                f"do not fit the model's context of {limit} tokens"
            )
        ticket = Ticket(self, asyncio.get_running_loop())
        ticket.row = Row(
            prompt,
            config,
            decode,
            on_piece=lambda piece: ticket._put("piece", piece),
            on_done=lambda text: ticket._put("done", text),
            on_error=lambda reason: ticket._put("error", reason),
        )
        with self._changed:
            if self._closed:
                raise SeqlabError(f"model {self.name!r} is shutting down")
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(self.name, len(self._waiting))
            self._waiting.append(ticket)
            self._changed.notify()
        return ticket

    def call(self, fn: Callable[..., Any], *args: Any) -> Future:
        """`fn(*args)` on the scheduler's thread, between two steps of the batch."""
        future: Future = Future()
        with self._changed:
            if self._closed:
                raise SeqlabError(f"model {self.name!r} is shutting down")
            self._jobs.append((future, fn, args))
            self._changed.notify()
        return future

    def _cancel(self, ticket: Ticket) -> None:
        with self._changed:
            if not ticket.row.live:
                return
            ticket.row.cancelled = True
            try:
                self._waiting.remove(ticket)
            except ValueError:  # already decoding: it leaves the batch before the next step
                pass
            self.cancelled += 1

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread: waiting requests and running rows end with an error event."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join(timeout)

    # ------------------------------------------------------------------------- the model's thread

    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                drop_finished(self.batch)
                with self._changed:
                    while not (self._closed or self._waiting or self._jobs or self.batch.rows):
                        self._changed.wait()
                    if self._closed:
                        break
                    jobs = list(self._jobs)
                    self._jobs.clear()
                    joining = self._take_joining()
                for future, fn, args in jobs:
                    _run_job(future, fn, args)
                self._step(joining)
        for row in [*self.batch.rows, *(ticket.row for ticket in self._waiting)]:
            row.fail(f"model {self.name!r} is shutting down")
        for future, _, _ in self._jobs:
            future.cancel()

    def _take_joining(self) -> list[Row]:
        """Waiting rows for the free slots, oldest first (under the lock)."""
        joining: list[Row] = []
        if not self.batch.admits():
            return joining
        free = self.max_active - len(self.batch.rows)
        while free > 0 and self._waiting:
            row = self._waiting.popleft().row
            if row.live:
                joining.append(row)
                free -= 1
        return joining

    def _step(self, joining: list[Row]) -> None:
        """New rows join (prefill, first token), then every row gets its next token. A failure
        of the model fails the rows it held (a bug: logged in full) and empties the batch."""
        try:
            if joining:
                self.joined += len(joining)
                self.tokens += len(joining)
                choose(joining, self.batch.add(joining))
                drop_finished(self.batch)
            if self.batch.rows:
                self.steps += 1
                self.stepped += len(self.batch.rows)
                self.tokens += len(self.batch.rows)
                choose(self.batch.rows, self.batch.step())
        except Exception:  # noqa: BLE001 - every row of the batch hears of it
            log.exception("generation failed on %s", self.name)
            for row in {id(r): r for r in [*self.batch.rows, *joining]}.values():
                row.fail("internal error while generating")
            drop_finished(self.batch)


def _run_job(future: Future, fn: Callable[..., Any], args: tuple) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(fn(*args))
    except BaseException as err:  # noqa: BLE001 - handed to the caller
        future.set_exception(err)
