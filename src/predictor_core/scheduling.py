"""How a validated batch reaches its runtime: the async seam between the event loop and the model.

`PredictionService.predict` awaits an `InferenceScheduler`, never `InferenceRuntime.infer` itself, so the
scheduler decides where and when the synchronous `infer` runs: inline on the calling thread (the default:
these graphs take microseconds, less than a thread hop), in a worker thread (a slow model must not stall
the event loop), or batched: concurrent requests for the same loaded version run as one call.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from typing import Protocol

from predictor_core.errors import RuntimeUnavailable
from predictor_core.grouping import next_group, run_group
from predictor_core.ports import InferenceRuntime
from predictor_core.predictions import ClassifierOutputs, RegressorOutputs, TaskOutputs
from predictor_core.validation import ValidatedBatch

__all__ = ["BatchingInference", "InferenceScheduler", "InlineInference", "ThreadedInference"]


class InferenceScheduler(Protocol):
    """Runs one request's batch on its runtime; may wait, queue or merge, but answers row-aligned."""

    async def infer(self, runtime: InferenceRuntime, batch: ValidatedBatch, /) -> TaskOutputs:
        """The runtime's outputs for `batch`. Raises what the runtime raises (RuntimeUnavailable)."""
        ...


class InlineInference:
    """Runs `infer` right away on the calling thread: the fastest for sub-millisecond models."""

    async def infer(self, runtime: InferenceRuntime, batch: ValidatedBatch, /) -> TaskOutputs:
        return runtime.infer(batch)


class ThreadedInference:
    """Runs `infer` in the default thread pool, so the event loop keeps serving while a model works."""

    async def infer(self, runtime: InferenceRuntime, batch: ValidatedBatch, /) -> TaskOutputs:
        return await asyncio.to_thread(runtime.infer, batch)


_INTERRUPTED = "inference was interrupted"


class BatchingInference:
    """Concurrent requests for one loaded version leave as one runtime call.

    No timer, as in the store's group commit. A request never waits for others to come: the requests
    that reach inference in the same turn of the event loop run as one call on the loop, at the start
    of the next turn (`in_thread=False`); in a worker thread (`in_thread=True`), the requests that
    arrive while a call runs leave together when it returns. At most `max_rows` rows go in one call.
    Each request gets back exactly its own rows. A merged call that fails for another reason than the
    runtime being unavailable is run again one request at a time, so one request's input never fails
    the others.

    Measured on the breast_cancer model at 64 connections (docs/api.md): 1.3x the requests per second
    of inline inference and a p99 of 40 instead of 290 ms, for about 5 % fewer at one connection.
    """

    def __init__(self, *, max_rows: int = 256, in_thread: bool = False) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self.max_rows = max_rows
        self.in_thread = in_thread
        self._queues: dict[int, _Queue] = {}
        self.calls = 0
        """Runtime calls made so far (for benchmarks and tests: requests per call)."""

    async def infer(self, runtime: InferenceRuntime, batch: ValidatedBatch, /) -> TaskOutputs:
        queue = self._queues.get(id(runtime))
        if queue is None or queue.runtime is not runtime:
            queue = self._queues[id(runtime)] = _Queue(runtime)
        answer: asyncio.Future[TaskOutputs] = asyncio.get_running_loop().create_future()
        queue.waiting.append((batch, answer))
        if not queue.running:
            queue.running = True
            asyncio.get_running_loop().create_task(self._run(queue))
        return await answer

    async def _run(self, queue: _Queue) -> None:
        try:
            while queue.waiting:
                group, queue.waiting = next_group(queue.waiting, self.max_rows)
                run = functools.partial(self._call, queue.runtime)
                await run_group(group, run, unavailable=RuntimeUnavailable, interrupted=_INTERRUPTED)
        finally:
            queue.running = False
            if self._queues.get(id(queue.runtime)) is queue:
                del self._queues[id(queue.runtime)]

    async def _call(self, runtime: InferenceRuntime, group: list[_Waiting]) -> list[TaskOutputs]:
        self.calls += 1
        batches = [batch for batch, _ in group]
        merged = batches[0] if len(batches) == 1 else ValidatedBatch.concat(batches)
        if self.in_thread:
            outputs = await asyncio.to_thread(runtime.infer, merged)
        else:
            outputs = runtime.infer(merged)
        ends = list(itertools.accumulate(map(len, batches)))
        return [slice_outputs(outputs, end - len(b), end) for b, end in zip(batches, ends, strict=True)]


_Waiting = tuple[ValidatedBatch, "asyncio.Future[TaskOutputs]"]


class _Queue:
    __slots__ = ("running", "runtime", "waiting")

    def __init__(self, runtime: InferenceRuntime) -> None:
        self.runtime = runtime
        self.waiting: list[_Waiting] = []
        self.running = False


def slice_outputs(outputs: TaskOutputs, start: int, stop: int) -> TaskOutputs:
    """The outputs of rows `start` to `stop` (exclusive) of a merged call."""
    if isinstance(outputs, RegressorOutputs):
        return RegressorOutputs(outputs.values[start:stop])
    codes = None if outputs.codes is None else outputs.codes[start:stop]
    return ClassifierOutputs(outputs.labels[start:stop], outputs.probabilities[start:stop], codes)
