"""Adaptive micro-batching: concurrent requests for one model share one ``predict`` call.

A model's per-call overhead (input validation, pipeline dispatch) dwarfs the per-row cost, so
answering 32 concurrent one-row requests with one 32-row call is most of the serving speed. The
batcher takes whatever requests queued up while the model was busy, up to ``max_rows``; a
request that arrives to an idle model is sent at once, so batching never adds waiting of its
own: it only uses the time requests would have queued anyway.

Small batches of a fast engine (the verified ONNX graph: tens of microseconds) are scored
inline on the event loop: handing them to a worker thread costs more than the call itself
(two thread switches and a GIL hand-back per batch, issue 17). Larger batches, and engines
whose calls take milliseconds (the native scikit-learn pipeline), still go to a thread so the
loop keeps accepting requests meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from shipyard.registry.input_contract import ModelInput

Predict = Callable[[ModelInput], Any]


class _Pending(NamedTuple):
    frame: ModelInput
    future: asyncio.Future[Any]


class MicroBatcher:
    """Gathers decoded requests for one model into batches and runs ``predict`` on each.

    ``predict`` takes the concatenated rows and returns something ``split`` can cut back into
    one result per request (by row counts). Batches of at most ``inline_rows`` rows run on the
    event loop itself, larger ones in a worker thread (``inline_rows=0``: always a thread).
    Requests wait in a plain deque; the worker, when it finds it empty, parks on one future
    that the next ``submit`` completes (cheaper per request than an ``asyncio.Queue``).
    """

    def __init__(
        self,
        predict: Predict,
        split: Callable[[Any, list[int]], list[Any]],
        *,
        max_rows: int = 256,
        inline_rows: int = 0,
    ) -> None:
        self._predict = predict
        self._split = split
        self.max_rows = max_rows
        self.inline_rows = inline_rows
        self._waiting: deque[_Pending] = deque()
        self._wake: asyncio.Future[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0
        self.rows = 0

    async def submit(self, frame: ModelInput) -> Any:
        """Score ``frame`` (possibly together with other requests) and return its result."""
        loop = asyncio.get_running_loop()
        if self._worker is None:
            self._worker = loop.create_task(self._run())
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append(_Pending(frame, future))
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)
        return await future

    async def close(self) -> None:
        """Stop the worker after the batch in progress (queued requests are failed)."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while self._waiting:
            pending = self._waiting.popleft()
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the model is shutting down"))

    async def _run(self) -> None:
        waiting = self._waiting
        while True:
            if not waiting:
                self._wake = asyncio.get_running_loop().create_future()
                try:
                    await self._wake
                finally:
                    self._wake = None
                continue
            batch = [waiting.popleft()]
            rows = batch[0].frame.height
            # Whatever queued up while the model was busy joins this batch; nothing waits.
            while rows < self.max_rows and waiting:
                item = waiting.popleft()
                batch.append(item)
                rows += item.frame.height
            await self._score(batch)

    async def _score(self, batch: list[_Pending]) -> None:
        live = [p for p in batch if not p.future.cancelled()]
        if not live:
            return
        frame = ModelInput.concat([p.frame for p in live])
        try:
            if frame.height <= self.inline_rows:
                result = self._predict(frame)
            else:
                result = await asyncio.to_thread(self._predict, frame)
            parts = self._split(result, [p.frame.height for p in live])
        except Exception as e:  # the error belongs to each request in the batch
            for p in live:
                if not p.future.done():
                    p.future.set_exception(e)
            return
        self.batches += 1
        self.rows += frame.height
        for p, part in zip(live, parts, strict=True):
            if not p.future.done():
                p.future.set_result(part)
