"""Micro-batching: concurrent requests of one padded shape share one forward pass.

Requests wait in a bounded asyncio queue (`Overloaded` when it is full: the server answers 503).
One worker task takes the oldest request, then gathers up to `max_batch - 1` more of the same
key for at most `max_wait_s`, and runs the batch in a single worker thread, so the event loop
keeps accepting and parsing requests while the model runs. Requests of another key wait for
the next round, oldest first. A request whose caller gave up (timeout, disconnect) before its
batch ran is dropped from it.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any


class Overloaded(Exception):
    """The queue is full; retry later."""


@dataclasses.dataclass
class _Item:
    key: Hashable
    payload: Any
    future: asyncio.Future
    enqueued: float


_STOP = object()


class Batcher:
    """`run(payloads) -> outputs` (one output per payload, same order) called on batches."""

    def __init__(
        self,
        run: Callable[[Sequence[Any]], Sequence[Any]],
        *,
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        on_batch: Callable[[int, float, list[float]], None] | None = None,
    ):
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._on_batch = on_batch  # (batch size, forward seconds, queue seconds of each)
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="forward")

    def depth(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.max_queue)
        self._task = asyncio.create_task(self._loop(), name="batcher")

    async def stop(self) -> None:
        """Runs what is queued, then stops the worker."""
        if self._task is None:
            return
        await self._queue.put(_STOP)
        await self._task
        self._executor.shutdown(wait=True)

    async def call_direct(self, payloads: Sequence[Any]) -> Sequence[Any]:
        """Runs `payloads` on the forward thread outside the queue (warm-up)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, payloads)

    async def submit(self, key: Hashable, payload: Any) -> Any:
        """Queues one request and waits for its output; raises Overloaded when full."""
        if self._task is None or self._task.done():
            raise RuntimeError("the batcher is not running")
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Item(key, payload, future, time.perf_counter()))
        except asyncio.QueueFull:
            raise Overloaded from None
        return await future

    async def _loop(self) -> None:
        carry: collections.deque[_Item] = collections.deque()  # other keys, oldest first
        stopping = False
        while True:
            if carry:
                first = carry.popleft()
            elif stopping:
                return
            else:
                first = await self._queue.get()
                if first is _STOP:
                    return
            batch = [first]
            for item in list(carry):
                if len(batch) < self.max_batch and item.key == first.key:
                    batch.append(item)
                    carry.remove(item)
            deadline = time.perf_counter() + self.max_wait_s
            while len(batch) < self.max_batch and not stopping:
                timeout = deadline - time.perf_counter()
                try:
                    if timeout > 0:
                        item = await asyncio.wait_for(self._queue.get(), timeout)
                    else:
                        item = self._queue.get_nowait()  # take what is already waiting
                except (TimeoutError, asyncio.QueueEmpty):
                    break
                if item is _STOP:
                    stopping = True
                elif item.key == first.key:
                    batch.append(item)
                else:
                    carry.append(item)
            await self._run_batch([item for item in batch if not item.future.done()])

    async def _run_batch(self, batch: list[_Item]) -> None:
        if not batch:
            return
        start = time.perf_counter()
        waits = [start - item.enqueued for item in batch]
        try:
            outputs = await self.call_direct([item.payload for item in batch])
        except Exception as e:  # each caller gets the error of its batch
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(e)
            return
        seconds = time.perf_counter() - start
        if self._on_batch is not None:
            self._on_batch(len(batch), seconds, waits)
        for item, output in zip(batch, outputs, strict=True):
            if not item.future.done():
                item.future.set_result(output)
