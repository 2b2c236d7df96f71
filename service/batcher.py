"""Micro-batching of prediction requests.

Requests that arrive while a batch is being scored are scored together in
the next call to :meth:`Predictor.predict`, which spreads its fixed per-call
cost. Nothing waits for a batch to fill: an idle service scores a lone
request at once.

Small batches (the usual case: a few 500-character items) are scored on the
event loop itself. A dedicated scoring thread looked natural but measured at
half the throughput: the two threads fight over the GIL (each hand-over waits
up to the 5 ms switch interval) and every request pays for it. Big batches
(over ``INLINE_CHARS`` characters, e.g. 100 long items) go to that thread so
that they cannot stall the loop, health checks included, for seconds.

Rows of a batch are independent (``tests/service/test_api.py`` checks that
batched and single results are identical), and one bad item fails only its
own request.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from model import InvalidItemError, Prediction, Predictor
from service.active_model import ActiveModel

log = logging.getLogger("xinxi.service")

MAX_BATCH_ITEMS = 32
INLINE_CHARS = 40_000
MAX_BATCH_CHARS = 200_000


@dataclass
class _Job:
    items: list[dict[str, Any]]
    chars: int
    future: asyncio.Future[list[Prediction]]


class PredictionBatcher:
    """Collects concurrent requests of one process and scores them in batches."""

    def __init__(self, model: ActiveModel, max_items: int = MAX_BATCH_ITEMS, max_chars: int = MAX_BATCH_CHARS) -> None:
        self.model = model
        self.max_items = max_items
        self.max_chars = max_chars
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xinxi-predict")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="xinxi-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def predict(self, items: list[dict[str, Any]]) -> list[Prediction]:
        """Score ``items`` (one request's) in the next batch; raises what scoring them alone would."""
        self.model.get()  # 503 at once, before queueing, while no model is loaded
        future: asyncio.Future[list[Prediction]] = asyncio.get_running_loop().create_future()
        chars = sum(len(item.get("text") or "") + len(item.get("title") or "") for item in items)
        self._queue.put_nowait(_Job(items, chars, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        carried: _Job | None = None
        while True:
            first = carried or await self._queue.get()
            carried = None
            batch, items, chars = [first], len(first.items), first.chars
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if items + len(job.items) > self.max_items or chars + job.chars > self.max_chars:
                    carried = job
                    break
                batch.append(job)
                items += len(job.items)
                chars += job.chars
            batch = [job for job in batch if not job.future.done()]  # clients that gave up
            if not batch:
                continue
            chars = sum(job.chars for job in batch)
            try:
                if chars <= INLINE_CHARS:
                    outcomes = self._score(batch)
                else:
                    outcomes = await loop.run_in_executor(self._executor, self._score, batch)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                outcomes = [exc] * len(batch)
            for job, outcome in zip(batch, outcomes, strict=True):
                if job.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

    def _score(self, batch: list[_Job]) -> list[list[Prediction] | BaseException]:
        predictor: Predictor = self.model.get()
        if len(batch) == 1:
            return [_attempt(predictor, batch[0].items)]
        try:
            results = predictor.predict([item for job in batch for item in job.items])
        except InvalidItemError:
            # One request has an item the model refuses: score each request alone so
            # only that one fails, with its own item numbers in the message.
            return [_attempt(predictor, job.items) for job in batch]
        outcomes: list[list[Prediction] | BaseException] = []
        start = 0
        for job in batch:
            outcomes.append(results[start : start + len(job.items)])
            start += len(job.items)
        return outcomes


def _attempt(predictor: Predictor, items: list[dict[str, Any]]) -> list[Prediction] | BaseException:
    try:
        return predictor.predict(items)
    except Exception as exc:  # noqa: BLE001 - returned to the request it belongs to
        return exc
