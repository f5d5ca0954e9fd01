"""The ports: what the core needs from the outside world, declared as Protocols and nothing else.

Adapters implement them (predictor_onnx, predictor_sql); tests use the in-memory fakes. The shapes are
chosen so that later work wraps an adapter instead of changing a caller:
- micro-batching of concurrent requests: a runtime wrapper that queues `infer` calls and runs them
  as one batch (`infer` already takes batches);
- several model versions side by side: `ModelSource.load(name, version)` and the manifest identity;
- group commits: a store wrapper that merges concurrent `record` calls into one transaction, still
  returning only after the commit (`record` already takes a sequence and promises atomicity).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from predictor_core.bundle import ModelManifest
from predictor_core.predictions import Label, Prediction, TaskOutputs
from predictor_core.validation import ValidatedBatch

__all__ = [
    "ExecutionReport",
    "Feedback",
    "InferenceRuntime",
    "ModelSource",
    "PredictionRecord",
    "PredictionStore",
    "StoreHealth",
]


class ExecutionReport(msgspec.Struct, frozen=True, kw_only=True):
    """Where inference really runs, read back from the runtime after it started, never assumed."""

    requested: str
    """The device asked for: "cpu", "cuda" or "auto"."""
    providers: tuple[str, ...]
    """Execution providers in use, in priority order, as the runtime reports them."""
    nodes_per_provider: dict[str, int] = {}
    """How many graph nodes each provider runs, where the runtime can tell."""
    note: str = ""
    """A plain-words caveat, e.g. that tree ensembles run on the CPU even with CUDA active."""


class PredictionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One predicted record for the audit trail: the validated input and the prediction made from it."""

    prediction: Prediction
    features: dict[str, Any]
    """Validated features exactly as sent (None where missing)."""
    created_at: dt.datetime
    latency_ms: float
    """Validation plus inference time of the batch this record was part of."""
    request_id: str | None = None

    @property
    def prediction_id(self) -> uuid.UUID:
        assert self.prediction.prediction_id is not None
        return self.prediction.prediction_id


class Feedback(msgspec.Struct, frozen=True, kw_only=True):
    """The ground truth later reported for a prediction (a class label or a number)."""

    prediction_id: uuid.UUID
    actual: Label | float
    received_at: dt.datetime


class StoreHealth(msgspec.Struct, frozen=True, kw_only=True):
    reachable: bool
    durable: bool
    """True when the store's settings keep committed rows through a crash."""
    detail: str = ""
    backend: str = ""


class InferenceRuntime(Protocol):
    """One loaded model version, ready to run validated batches; safe to call from many threads."""

    @property
    def manifest(self) -> ModelManifest: ...

    @property
    def execution(self) -> ExecutionReport: ...

    def infer(self, batch: ValidatedBatch, /) -> TaskOutputs:
        """Run the model on a validated batch; outputs are row-aligned with the batch."""
        ...


class ModelSource(Protocol):
    """Where model bundles come from (a directory, package data...)."""

    def list_models(self) -> Sequence[ModelManifest]:
        """Every available model version, newest version last within a name."""
        ...

    def load(self, name: str, version: str | None = None, /) -> InferenceRuntime:
        """Load a version (the newest when None). Raises ModelNotFound or BundleError."""
        ...


class PredictionStore(Protocol):
    """The audit trail. `record` returns only once its rows are durably committed."""

    async def register_model(self, manifest: ModelManifest, /) -> None:
        """Make the model version known to the store; idempotent."""
        ...

    async def record(self, records: Sequence[PredictionRecord], /) -> None:
        """Commit every record (input and output) in one atomic step, or none; StoreUnavailable if down."""
        ...

    async def get(self, prediction_id: uuid.UUID, /) -> PredictionRecord:
        """The recorded prediction; PredictionNotFound when absent."""
        ...

    async def record_feedback(self, feedback: Feedback, /) -> None:
        """Append a ground truth for a recorded prediction; PredictionNotFound when absent."""
        ...

    async def health(self) -> StoreHealth:
        """Reachability and durability, for readiness probes; never raises."""
        ...
