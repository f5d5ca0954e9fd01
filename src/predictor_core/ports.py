"""The ports: what the core needs from the outside world, declared as Protocols and nothing else.

Adapters implement them (predictor_onnx, predictor_sql); tests use the in-memory fakes, and one contract
suite per port (tests/functional/contracts/) runs against the fake and every real adapter. Each method
names what it raises; no adapter's own exception (SQLAlchemy, asyncpg, onnxruntime) crosses a port.

Where later work plugs in, so that callers do not change:
- micro-batching of concurrent requests is an `InferenceScheduler` (predictor_core.scheduling): the service
  awaits it, so a batcher can hold a request until its peers arrive without blocking the event loop;
  `InferenceRuntime.infer` stays synchronous and already takes batches;
- several model versions side by side, aliases and hot swap live in the `ModelRegistry`, which resolves
  a reference to one concrete version before `ModelSource.load(name, version)` is called;
- group commits are a store wrapper that merges concurrent `record` calls into one transaction, still
  returning only after the commit (`record` takes a sequence, promises atomicity and has typed errors,
  so one caller's bad rows can be retried apart from the others').
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from predictor_core.bundle import ModelManifest
from predictor_core.drift import TrainingProfile, WindowSummary
from predictor_core.predictions import Label, Prediction, TaskOutputs
from predictor_core.quality import Labelled
from predictor_core.validation import ValidatedBatch

if TYPE_CHECKING:
    from predictor_core.access import ApiKey

__all__ = [
    "AliasChange",
    "AliasStore",
    "AuditReader",
    "ExecutionReport",
    "Feedback",
    "InferenceRuntime",
    "KeyStore",
    "ModelSource",
    "PredictionRecord",
    "PredictionStore",
    "ShadowRecord",
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
    key_id: str | None = None
    """The API key that asked (its public id, never the secret); None when the call needed no key."""

    @property
    def prediction_id(self) -> uuid.UUID:
        assert self.prediction.prediction_id is not None
        return self.prediction.prediction_id


class ShadowRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the shadow version answered for a recorded live input; kept beside it, never returned."""

    prediction_id: uuid.UUID
    """The live prediction whose input the shadow version scored."""
    prediction: Prediction
    """The shadow version's answer, with its own model identity (and no id of its own)."""
    created_at: dt.datetime
    latency_ms: float


class AliasChange(msgspec.Struct, frozen=True, kw_only=True):
    """One move of a model alias, as the append-only history keeps it."""

    name: str
    alias: str
    from_version: str | None
    """None: the alias was new."""
    to_version: str | None
    """None: the alias was removed."""
    changed_at: dt.datetime
    changed_by: str
    """Who moved it: an API key id, or the OS user of the CLI."""


class Feedback(msgspec.Struct, frozen=True, kw_only=True):
    """The ground truth later reported for a prediction (a class label or a number)."""

    prediction_id: uuid.UUID
    actual: Label | float
    received_at: dt.datetime
    key_id: str | None = None
    """The API key that reported it; None when the call needed no key."""


class StoreHealth(msgspec.Struct, frozen=True, kw_only=True):
    reachable: bool
    durable: bool
    """True when the store's settings keep committed rows through a crash."""
    detail: str = ""
    writable: bool = True
    """False when a prediction could not be recorded now (a lock held on its tables, a read-only
    database): reachable is not enough, every prediction would wait for the store and then fail."""
    backend: str = ""


class InferenceRuntime(Protocol):
    """One loaded model version, ready to run validated batches; safe to call from many threads."""

    @property
    def manifest(self) -> ModelManifest: ...

    @property
    def execution(self) -> ExecutionReport: ...

    def infer(self, batch: ValidatedBatch, /) -> TaskOutputs:
        """Run the model on a validated batch; outputs are row-aligned with the batch.

        Raises:
            RuntimeUnavailable: the runtime failed to run (e.g. the device went away).
        """
        ...


class ModelSource(Protocol):
    """Where model bundles come from (directories, package data...). Orders nothing: the registry does."""

    def list_models(self) -> Sequence[ModelManifest]:
        """Every available model version's manifest, cheaply (no model is loaded); broken ones left out."""
        ...

    def load(self, name: str, version: str, /) -> InferenceRuntime:
        """Load one concrete version.

        Raises:
            ModelNotFound: no such name or version.
            BundleError: the bundle is missing files, corrupt, tampered with or unsupported.
            ConfigurationError: the configured device cannot be had.
        """
        ...


class PredictionStore(Protocol):
    """The audit trail. `record` returns only once its rows are durably committed."""

    async def start(self) -> None:
        """Connect and check the store can be used (e.g. its schema revision).

        Raises:
            StoreUnavailable: it cannot be reached now.
            ConfigurationError: it can be reached but not used as configured (e.g. no schema).
        """
        ...

    async def close(self) -> None:
        """Release connections; nothing is pending afterwards."""
        ...

    async def register_model(self, manifest: ModelManifest, /) -> None:
        """Make the model version known to the store, keeping its manifest; idempotent.

        Raises:
            ModelConflict: the name and version are known with another ONNX file.
            StoreUnavailable: retryable.
        """
        ...

    async def record(self, records: Sequence[PredictionRecord], /) -> None:
        """Commit every record (input and output) in one atomic step, or none.

        Raises:
            DuplicatePrediction: a prediction id is recorded already.
            ModelConflict: a record's model version is not registered, or registered with another file.
            StoreRejected: the store cannot hold a value it was given.
            StoreUnavailable: retryable; nothing of the call was recorded.
        """
        ...

    async def record_shadow(self, records: Sequence[ShadowRecord], /) -> None:
        """Commit shadow answers beside their live inputs, registering the shadow version if new.

        Raises:
            ModelConflict: the shadow version is registered with another file.
            StoreRejected, StoreUnavailable: as `record`.
        """
        ...

    async def get(self, prediction_id: uuid.UUID, /) -> PredictionRecord:
        """The recorded prediction. Raises PredictionNotFound, StoreUnavailable."""
        ...

    async def get_model(self, name: str, version: str, /) -> ModelManifest:
        """The manifest kept when the version was registered, even if its bundle is gone.

        Raises ModelNotFound, StoreUnavailable.
        """
        ...

    async def record_feedback(self, feedback: Feedback, /) -> None:
        """Append a ground truth for a recorded prediction. Raises PredictionNotFound, StoreUnavailable."""
        ...

    async def health(self) -> StoreHealth:
        """Reachability and durability, for readiness probes; never raises."""
        ...


class AliasStore(Protocol):
    """Where model aliases live, shared by every worker and replica; every move is kept in a history."""

    async def aliases(self) -> dict[str, dict[str, str]]:
        """Every alias now: model name -> alias -> version. Raises StoreUnavailable."""
        ...

    async def move(self, name: str, alias: str, version: str | None, /, *, by: str) -> AliasChange:
        """Point `alias` of `name` at `version` (None removes it) and append the change to the history.

        Raises StoreUnavailable.
        """
        ...

    async def history(self, name: str, alias: str | None = None, /, *, limit: int = 50) -> list[AliasChange]:
        """The latest changes of a model's aliases (one alias when named), newest first."""
        ...


class KeyStore(Protocol):
    """Where API keys live, shared by every worker and replica; only the secrets' hashes are stored."""

    async def create(self, key: ApiKey, /) -> None:
        """Store a new key.

        Raises:
            KeyConflict: a key of that name (or id) exists already, revoked or not.
            StoreUnavailable: retryable.
        """
        ...

    async def get(self, key_id: str, /) -> ApiKey | None:
        """The key with this id, revoked or not; None when there is none. Raises StoreUnavailable."""
        ...

    async def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first. Raises StoreUnavailable."""
        ...

    async def revoke(self, name: str, at: dt.datetime, /) -> ApiKey:
        """Revoke the key of that name as of `at`; a key revoked already keeps its first revocation time.

        Raises:
            KeyNotFound: no key of that name.
            StoreUnavailable: retryable.
        """
        ...

    async def active_count(self) -> int:
        """How many keys are not revoked. Raises StoreUnavailable."""
        ...


class AuditReader(Protocol):
    """The audit trail read back for monitoring: windows of recorded predictions, and their feedback.

    A window is [since, until) on the time a prediction was recorded; None leaves that side open.
    """

    async def versions(self, name: str, /) -> list[str]:
        """The versions of `name` the store has recorded (in no particular order). Raises StoreUnavailable."""
        ...

    async def window(
        self,
        name: str,
        version: str,
        profile: TrainingProfile,
        /,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> WindowSummary:
        """The version's recorded inputs and outputs in the window, counted in `profile`'s bins.

        A version that never predicted here gives an empty window. Raises StoreUnavailable.
        """
        ...

    async def labelled(
        self,
        name: str,
        version: str,
        /,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[Labelled]:
        """The version's predictions in the window that have feedback, oldest first.

        Each comes with its latest ground truth. Raises StoreUnavailable.
        """
        ...

    async def close(self) -> None:
        """Release what it holds (connections of its own); nothing is pending afterwards."""
        ...
