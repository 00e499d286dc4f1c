"""Dynamic micro-batching: requests that arrive within a few milliseconds of each other are run
as one call of the model.

A model's forward pass on 32 texts costs far less than 32 passes on one text (the Python and
tokenizer overhead is paid once, and the matrix products get wider), so under concurrent load
the server gathers requests into batches:

```
request A ──┐                  ┌── results[0:2] → A
request B ──┼─ wait ≤ 5 ms ──▶ run(key, [a1, a2, b1, c1]) ─┼── results[2:3] → B
request C ──┘  or 32 items     (one executor thread)        └── results[3:4] → C
```

Only requests with the same `key` (e.g. the same beam width) share a call. The call runs on the
model's own single-thread executor, so the event loop keeps accepting requests meanwhile and a
model never runs two batches at once. If a batched call fails, each request in it is retried on
its own, so one bad input fails only the request that sent it. When `max_pending` requests
already wait, `submit` raises `QueueFull` (the server answers 503) instead of queueing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

BatchFn = Callable[[Hashable, list[Any]], Sequence[Any]]


class QueueFull(Exception):
    """A model's queue holds as many requests as it may: the server answers 503 with Retry-After."""

    def __init__(self, model: str, waiting: int):
        super().__init__(f"model {model!r} is busy: {waiting} requests are already waiting (--max-queue); retry shortly")


@dataclass
class _Request:
    key: Hashable
    items: list[Any]
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Gathers `submit`ted items into batches for one model.

    Args:
        run: `run(key, items) -> results`, one result per item, in order (a pipeline call).
        executor: where `run` executes (the model's own thread).
        max_batch_size: most items per call; 1 turns batching off (each request alone).
        max_wait_ms: how long the first request of a batch waits for others.
        max_pending: most requests waiting for a batch; `submit` raises `QueueFull` beyond.
        name: the model's name, for that error.
    """

    def __init__(
        self,
        run: BatchFn,
        executor: Executor,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_pending: int = 1_000_000,
        name: str = "model",
    ):
        self.run = run
        self.max_pending = max_pending
        self.name = name
        self.executor = executor
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.calls = 0  # batched calls made, and items they held: for tests and /v1/models
        self.items = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, items: list[Any], key: Hashable = None) -> list[Any]:
        """Results for `items` (one per item), computed in some batch; raises what `run` raised
        for these items alone."""
        self._bind_to_running_loop()
        if len(self._pending) >= self.max_pending:
            raise QueueFull(self.name, len(self._pending))
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(key, list(items), future))
        self._arrived.set()
        return await future

    def _bind_to_running_loop(self) -> None:
        """Start the gathering task on the loop that serves requests (a test client may run
        several loops one after the other; requests of a finished loop are gone with it)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._loop = loop
        self._pending: list[_Request] = []
        self._arrived = asyncio.Event()
        self._task = loop.create_task(self._gather_forever())

    async def close(self) -> None:
        if self._loop is asyncio.get_running_loop() and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _gather_forever(self) -> None:
        while True:
            await self._arrived.wait()
            await self._wait_for_company()
            batch = self._take_batch()
            if self._pending:  # left over from a full batch: go round again at once
                self._arrived.set()
            else:
                self._arrived.clear()
            for key, group in _by_key(batch).items():
                await self._run_group(key, group)

    async def _wait_for_company(self) -> None:
        """Wait until the batch is full or the first request has waited `max_wait`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while self._pending_items() < self.max_batch_size:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:  # (the builtin TimeoutError only from Python 3.11)
                return

    def _pending_items(self) -> int:
        return sum(len(r.items) for r in self._pending)

    def _take_batch(self) -> list[_Request]:
        """Whole requests, oldest first, up to `max_batch_size` items (at least one request);
        requests whose caller already gave up (timeout, disconnect) are dropped."""
        batch: list[_Request]
        batch, size = [], 0
        while self._pending and (not batch or size + len(self._pending[0].items) <= self.max_batch_size):
            request = self._pending.pop(0)
            if not request.future.done():
                batch.append(request)
                size += len(request.items)
        return batch

    async def _run_group(self, key: Hashable, group: list[_Request]) -> None:
        items = [item for request in group for item in request.items]
        try:
            results = await self._call(key, items)
        except Exception as err:  # noqa: BLE001 - handed to the requests below
            if len(group) == 1:
                _settle(group[0].future, error=err)
                return
            for request in group:  # find who sent the input that failed: each request alone
                await self._run_group(key, [request])
            return
        start = 0
        for request in group:
            _settle(request.future, result=list(results[start : start + len(request.items)]))
            start += len(request.items)

    async def _call(self, key: Hashable, items: list[Any]) -> Sequence[Any]:
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self.executor, self.run, key, items)
        if len(results) != len(items):
            raise RuntimeError(f"batch function returned {len(results)} results for {len(items)} items")
        self.calls += 1
        self.items += len(items)
        return results


def _by_key(batch: list[_Request]) -> dict[Hashable, list[_Request]]:
    groups: dict[Hashable, list[_Request]] = {}
    for request in batch:
        groups.setdefault(request.key, []).append(request)
    return groups


def _settle(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # the caller gave up meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
