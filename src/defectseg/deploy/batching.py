"""Requests served in batches: concurrent callers' images run through the model together.

One worker thread owns the model. It takes the first waiting image, then whatever else arrives
within ``wait_seconds`` up to ``batch_size`` images, and answers each caller's future; a batch
of 8 costs far less than 8 single passes on a CPU. Errors of a batch go to each of its callers.
"""

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class Batcher:
    """Runs ``run(items) -> results`` (one result per item, in order) on batches of submitted items."""

    def __init__(self, run: Callable[[list[Any]], list[Any]], batch_size: int, wait_seconds: float):
        self._run, self._batch_size, self._wait = run, batch_size, wait_seconds
        self._queue: queue.Queue[tuple[Any, Future]] = queue.Queue()
        self._worker = threading.Thread(target=self._loop, name="defectseg-batcher", daemon=True)
        self._worker.start()

    def submit(self, item: Any) -> Future:
        """A future of ``item``'s result."""
        future: Future = Future()
        self._queue.put((item, future))
        return future

    def _next_batch(self) -> list[tuple[Any, Future]]:
        batch = [self._queue.get()]
        while len(batch) < self._batch_size:
            try:
                batch.append(self._queue.get(timeout=self._wait))
            except queue.Empty:
                break
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                results = self._run([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 (handed to every caller of the batch; the worker goes on)
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results):
                future.set_result(result)
