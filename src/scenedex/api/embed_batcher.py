"""Dynamic batching for the embedding service: concurrent requests share one model batch.

The model runs on one thread (one device, one forward pass at a time). With batching on, items
submitted by any request wait in a queue; a collector takes up to ``max_batch`` of them, waiting
at most ``max_wait_s`` after the first arrives, and runs them as one forward pass. Items that
arrive while a pass runs form the next batch, so under load batches fill without waiting and a
lone request waits at most ``max_wait_s``. This is the scheme of NVIDIA Triton's dynamic batcher
(``max_queue_delay_microseconds``) and TorchServe's ``batch_size`` / ``max_batch_delay``.

With batching off, each request's items run as their own batch, one request at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BatchObserver = Callable[[int, Sequence[float]], None]
"""Called after each batch with its size and each item's queue wait (seconds)."""


@dataclass
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]
    queued_at: float


class DynamicBatcher(Generic[T, R]):
    """Runs ``run_batch(items) -> results`` (same length, same order) on ``executor``.

    - ``max_batch``: most items in one call of ``run_batch``.
    - ``max_wait_s``: longest time the first item of a batch waits for more (seconds).
    - ``enabled``: false runs each ``submit`` call's items as their own batches.
    - ``observe``: metrics hook, see ``BatchObserver``.

    An exception from ``run_batch`` fails every item of that batch (each awaiting ``submit``
    raises it). Create it inside the event loop that calls ``submit``; ``close`` stops it.
    """

    def __init__(
        self,
        run_batch: Callable[[list[T]], Sequence[R]],
        *,
        executor: Executor,
        max_batch: int,
        max_wait_s: float,
        enabled: bool = True,
        observe: BatchObserver | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._run_batch = run_batch
        self._executor = executor
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.enabled = enabled
        self._observe = observe
        self._queue: asyncio.Queue[_Pending[T, R]] = asyncio.Queue()
        self._collector: asyncio.Task[None] | None = None
        self._unbatched = asyncio.Lock()

    async def submit(self, items: Sequence[T]) -> list[R]:
        """The results of ``items``, in order, once their batches have run."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        if not self.enabled:
            results: list[R] = []
            queued_at = time.perf_counter()
            async with self._unbatched:  # one request at a time, like the batched path's one thread
                for start in range(0, len(items), self.max_batch):
                    chunk = list(items[start : start + self.max_batch])
                    if self._observe:
                        self._observe(len(chunk), [time.perf_counter() - queued_at] * len(chunk))
                    results.extend(await loop.run_in_executor(self._executor, self._run_batch, chunk))
            return results
        if self._collector is None or self._collector.done():
            self._collector = loop.create_task(self._collect())
        now = time.perf_counter()
        pending = [_Pending(item, loop.create_future(), now) for item in items]
        for entry in pending:
            self._queue.put_nowait(entry)
        return list(await asyncio.gather(*(entry.future for entry in pending)))

    async def close(self) -> None:
        """Stop the collector; items still queued fail with ``CancelledError``."""
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        while not self._queue.empty():
            self._queue.get_nowait().future.cancel()

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = batch[0].queued_at + self.max_wait_s
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            batch = [entry for entry in batch if not entry.future.cancelled()]
            if not batch:
                continue
            started = time.perf_counter()
            if self._observe:
                self._observe(len(batch), [started - entry.queued_at for entry in batch])
            try:
                results = await loop.run_in_executor(
                    self._executor, self._run_batch, [entry.item for entry in batch]
                )
            except Exception as error:  # the model failed: every item of the batch fails
                for entry in batch:
                    if not entry.future.done():
                        entry.future.set_exception(error)
                continue
            for entry, result in zip(batch, results, strict=True):
                if not entry.future.done():
                    entry.future.set_result(result)
