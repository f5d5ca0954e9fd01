"""How a validated batch reaches its runtime: the async seam between the event loop and the model.

`PredictionService.predict` awaits an `InferenceScheduler`, never `InferenceRuntime.infer` itself, so the
scheduler decides where and when the synchronous `infer` runs: inline on the calling thread (the default:
these graphs take microseconds, less than a thread hop), in a worker thread (a slow model must not stall
the event loop), or later, once concurrent requests for the same model version can be run as one batch.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from predictor_core.ports import InferenceRuntime
from predictor_core.predictions import TaskOutputs
from predictor_core.validation import ValidatedBatch

__all__ = ["InferenceScheduler", "InlineInference", "ThreadedInference"]


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
