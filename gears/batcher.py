"""A dynamic batching queue: many callers, one model, one forward pass per batch.

Contract: :meth:`DynamicBatcher.submit` takes a list of items and returns a
future for their results, in order. A single background thread takes items off
the queue until it holds ``max_batch_size`` items or the oldest item has waited
``max_wait_ms``, then calls ``handler(items)`` once and hands each caller its
slice of the results. A caller's items may be split across batches; its future
completes when all of them are done. If ``handler`` raises, every future whose
items were in that batch fails with the same exception.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class _Request(Generic[In, Out]):
    items: Sequence[In]
    future: Future
    results: list = field(default_factory=list)
    pending: int = 0


class DynamicBatcher(Generic[In, Out]):
    def __init__(
        self,
        handler: Callable[[list[In]], Sequence[Out]],
        max_batch_size: int = 8,
        max_wait_ms: float = 2.0,
        name: str = "batcher",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self._handler = handler
        self.max_batch_size = max_batch_size
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self._queue: queue.Queue[tuple[_Request, int] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self.batches = 0
        self.items = 0

    def submit(self, items: Sequence[In]) -> Future:
        """Queue ``items``; the future resolves to their results in the same order."""
        future: Future = Future()
        if not items:
            future.set_result([])
            return future
        request = _Request(items=items, future=future, results=[None] * len(items))
        request.pending = len(items)
        for index in range(len(items)):
            self._queue.put((request, index))
        return future

    @property
    def queued(self) -> int:
        """Items waiting for a batch (approximate, as ``queue.Queue.qsize``)."""
        return self._queue.qsize()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _collect(self) -> list[tuple[_Request, int]] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                if remaining > 0:
                    entry = self._queue.get(timeout=remaining)
                else:
                    entry = self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is None:
                self._queue.put(None)  # let the loop see the stop after this batch
                break
            batch.append(entry)
        return batch

    def _run(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            try:
                outputs = self._handler([req.items[i] for req, i in batch])
                if len(outputs) != len(batch):
                    raise RuntimeError(f"handler returned {len(outputs)} results for {len(batch)}")
            except BaseException as exc:  # noqa: BLE001 - every caller must hear of it
                for req, _ in batch:
                    if not req.future.done():
                        req.future.set_exception(exc)
                continue
            self.batches += 1
            self.items += len(batch)
            for (req, i), out in zip(batch, outputs):
                req.results[i] = out
                req.pending -= 1
                if req.pending == 0 and not req.future.done():
                    req.future.set_result(req.results)
