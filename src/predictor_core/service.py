"""The use cases: predict (and record), look up, annotate with feedback, and say whether we are ready.

The notebook facade, the CLI and the HTTP adapter all call `PredictionService`, so no rule is written
twice. One prediction goes through explicit stages:

1. resolve the model reference once, to one loaded version (`ModelRegistry.runtime`): that version
   predicts and is the one recorded, whatever the registry is told meanwhile;
2. validate (synchronous, per request; `ValidationFailed` lists every problem);
3. `await` inference through the `InferenceScheduler` (inline, a worker thread, or a batcher);
4. build typed predictions with fresh UUIDv7 ids;
5. record inputs and outputs, awaiting the commit; then return.

A request served by a bare model name is also scored, after its answer is recorded, by the version the
name's `shadow` alias names, if any: in a worker thread, recorded beside the live input, never returned;
a shadow failure is logged and never touches the live answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from predictor_core.bundle import ModelManifest
from predictor_core.errors import (
    Draining,
    InvalidFeedback,
    PredictorError,
    RecordingDisabled,
    RuntimeUnavailable,
    StoreUnavailable,
    Unavailable,
    ValidationFailed,
)
from predictor_core.ids import new_prediction_ids
from predictor_core.observation import NoObserver, PredictionObserver
from predictor_core.ports import Feedback, PredictionRecord, PredictionStore, ShadowRecord, StoreHealth
from predictor_core.predictions import (
    BinaryPrediction,
    ClassifierOutputs,
    Label,
    ModelIdentity,
    MulticlassPrediction,
    Prediction,
    RegressionPrediction,
    RegressorOutputs,
    Task,
    TaskOutputs,
)
from predictor_core.registry import SHADOW, ModelRegistry
from predictor_core.scheduling import InferenceScheduler, InlineInference
from predictor_core.validation import ValidatedBatch, validate_columns, validate_records

__all__ = [
    "Layout",
    "ModelStatus",
    "PredictionService",
    "ServiceStatus",
    "build_predictions",
    "check_actual",
    "validate",
]

Layout = Literal["records", "columns"]
SHADOWS_IN_FLIGHT = 64
"""Most shadow scorings pending at once; beyond it a request is not shadowed (counted, never queued)."""
log = logging.getLogger(__name__)
MODEL_RETRY_AFTER_S = 30.0
"""What readiness tells a caller to wait while the default model cannot be loaded."""
STORE_RETRY_AFTER_S = 5.0
"""What readiness tells a caller to wait while the store is unreachable."""
DRAINING_RETRY_AFTER_S = 1.0
"""What readiness tells a caller to wait while this process drains (another replica may answer)."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelStatus:
    """The default model as the service sees it: the version it serves and where it runs, or why not."""

    name: str
    identity: ModelIdentity | None = None
    task: Task | None = None
    provider: str | None = None
    """The execution provider running it (first in priority order)."""
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceStatus:
    """One answer to "can this service predict and record now?", for every readiness probe."""

    recording: bool
    model: ModelStatus
    store: StoreHealth | None
    """None when the service records nothing."""
    unavailable: Unavailable | None = None
    """Why the service is not ready (retryable, with its wait), or None when it is."""

    @property
    def ready(self) -> bool:
        return self.unavailable is None


class PredictionService:
    """Predictions for any model the registry knows, recorded in the store before they are returned."""

    def __init__(
        self,
        models: ModelRegistry,
        store: PredictionStore | None = None,
        *,
        inference: InferenceScheduler | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
        observer: PredictionObserver | None = None,
    ) -> None:
        """Wire the use case to its registry and ports.

        Args:
            models: resolves model references and holds the loaded runtimes.
            store: the audit trail; None means predictions are not recorded (said, never silent).
            inference: where and when inference runs; inline on the calling thread when None.
            clock: the time source for records and feedback.
            observer: told each stage's duration and each validation refusal (metrics, request logs).
        """
        self._models = models
        self._store = store
        self._inference = inference or InlineInference()
        self._clock = clock
        self._registered: set[ModelIdentity] = set()
        self._registering: dict[ModelIdentity, asyncio.Future[None]] = {}
        self._observer: PredictionObserver = observer or NoObserver()
        self._draining = False
        self._shadows: set[asyncio.Task[None]] = set()
        self.shadows_skipped = 0
        """Requests not shadowed because SHADOWS_IN_FLIGHT scorings were pending."""

    @property
    def recording(self) -> bool:
        return self._store is not None

    async def predict(
        self,
        data: Sequence[Any] | Mapping[str, Any],
        *,
        model: str | None = None,
        version: str | None = None,
        layout: Layout = "records",
        request_id: str | None = None,
        shadow: bool | None = None,
        key_id: str | None = None,
    ) -> list[Prediction]:
        """Predict and record; returns only after the store committed every input and output.

        `shadow` says whether the name's shadow version also scores the records (by default: when no
        version was named; a caller that resolved the version itself passes what the request said).
        `key_id` is the API key that asked, recorded with every record (None: the call needed no key).

        Raises:
            ValidationFailed: nothing was predicted or recorded.
            ModelNotFound, BundleError: the model cannot be had.
            RuntimeUnavailable, StoreUnavailable: retryable; no prediction of this call was returned.
        """
        runtime = self._models.runtime(model, version)
        manifest = runtime.manifest
        observer, identity = self._observer, manifest.identity
        started = time.perf_counter()
        try:
            batch = validate(manifest, data, layout)
        except ValidationFailed as failure:
            observer.invalid(manifest, failure)
            raise
        validated = time.perf_counter()
        observer.stage(identity, "validate", validated - started)
        outputs = await self._inference.infer(runtime, batch)
        inferred = time.perf_counter()
        observer.stage(identity, "infer", inferred - validated)
        latency_ms = (inferred - started) * 1000.0
        predictions = build_predictions(manifest, outputs, new_prediction_ids(len(batch)))
        if self._store is not None:
            await self._ensure_registered(manifest)
            now = self._clock()
            await self._store.record(
                [
                    PredictionRecord(
                        prediction=p,
                        features=f,
                        created_at=now,
                        latency_ms=latency_ms,
                        request_id=request_id,
                        key_id=key_id,
                    )
                    for p, f in zip(predictions, batch.records(), strict=True)
                ]
            )
            observer.stage(identity, "record", time.perf_counter() - inferred)
            if version is None if shadow is None else shadow:
                self._shadow(manifest, data, layout, predictions)
        return predictions

    def _shadow(self, live: ModelManifest, data: Any, layout: Layout, predictions: list[Prediction]) -> None:
        challenger = self._models.aliased(live.name, SHADOW)
        if challenger is None or challenger.identity == live.identity:
            return
        if len(self._shadows) >= SHADOWS_IN_FLIGHT:
            self.shadows_skipped += 1
            return
        ids = [p.prediction_id for p in predictions]
        task = asyncio.get_running_loop().create_task(self._score(challenger, data, layout, ids))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _score(
        self, challenger: ModelManifest, data: Any, layout: Layout, ids: list[uuid.UUID | None]
    ) -> None:
        def work() -> tuple[ModelManifest, TaskOutputs, float]:
            started = time.perf_counter()
            manifest, outputs = self.infer_unrecorded(
                data, model=challenger.name, version=challenger.version, layout=layout
            )
            return manifest, outputs, (time.perf_counter() - started) * 1000.0

        try:
            manifest, outputs, latency_ms = await asyncio.to_thread(work)
            answers = build_predictions(manifest, outputs)
            assert self._store is not None
            await self._ensure_registered(manifest)
            now = self._clock()
            await self._store.record_shadow(
                [
                    ShadowRecord(prediction_id=i, prediction=a, created_at=now, latency_ms=latency_ms)
                    for i, a in zip(ids, answers, strict=True)
                    if i is not None
                ]
            )
        except Exception as exc:  # a shadow failure never reaches the live answer
            log.warning(
                "shadow %s %s did not score %d records: %s: %s",
                challenger.name,
                challenger.version,
                len(ids),
                type(exc).__name__,
                str(exc).splitlines()[0][:200] if str(exc) else "",
            )

    def stop_accepting(self) -> None:
        """Turn readiness off for good (`Draining`), so that load balancers send nothing new here.

        What the server calls first on SIGTERM; predictions still run, for the requests already sent.
        """
        self._draining = True

    @property
    def draining(self) -> bool:
        """Whether `stop_accepting` was called: the process is on its way out."""
        return self._draining

    async def drain(self) -> None:
        """Wait for the shadow scorings in flight, so that closing the store loses none of them."""
        while self._shadows:
            await asyncio.gather(*list(self._shadows))

    def manifest(self, model: str | None = None, version: str | None = None) -> ModelManifest:
        """The manifest of the version a call naming `model` and `version` would use now; loads nothing.

        For an adapter that prepares its input for that version's schema (the HTTP batch decoder).

        Raises:
            ModelNotFound: no such model or version.
        """
        return self._models.resolve(model, version)

    def predict_unrecorded(
        self,
        data: Sequence[Any] | Mapping[str, Any],
        *,
        model: str | None = None,
        version: str | None = None,
        layout: Layout = "records",
    ) -> list[Prediction]:
        """Predictions recorded nowhere, so they carry no id: for notebooks and scripts that opt out.

        Synchronous (inference inline), so it works where no event loop may be started.
        """
        manifest, outputs = self.infer_unrecorded(data, model=model, version=version, layout=layout)
        return build_predictions(manifest, outputs)

    def infer_unrecorded(
        self,
        data: Sequence[Any] | Mapping[str, Any],
        *,
        model: str | None = None,
        version: str | None = None,
        layout: Layout = "records",
    ) -> tuple[ModelManifest, TaskOutputs]:
        """Validate and infer, recorded nowhere: the version that answered and its raw outputs.

        For callers that want arrays rather than one Prediction object per record (a DataFrame's
        answer, a shadow scoring).
        """
        runtime = self._models.runtime(model, version)
        return runtime.manifest, runtime.infer(validate(runtime.manifest, data, layout))

    async def _ensure_registered(self, manifest: ModelManifest) -> None:
        """Register the version with the store once, however many requests need it at the same time.

        The first caller starts the registration and every concurrent one awaits that same write: the
        first 64 requests of a fresh server made 64 upserts before. A caller that gives up does not
        cancel it for the others; a failed one is forgotten, so the next request tries again.
        """
        identity = manifest.identity
        if identity in self._registered or self._store is None:
            return
        pending = self._registering.get(identity)
        if pending is None:
            pending = asyncio.ensure_future(self._store.register_model(manifest))
            self._registering[identity] = pending
            pending.add_done_callback(functools.partial(self._registration_done, identity))
        await asyncio.shield(pending)

    def _registration_done(self, identity: ModelIdentity, done: asyncio.Future[None]) -> None:
        del self._registering[identity]
        if not done.cancelled() and done.exception() is None:  # retrieved: every waiter may be gone
            self._registered.add(identity)

    async def get_prediction(self, prediction_id: uuid.UUID) -> PredictionRecord:
        """A recorded prediction with its input. Raises PredictionNotFound, RecordingDisabled."""
        return await self._require_store().get(prediction_id)

    async def record_feedback(
        self, prediction_id: uuid.UUID, actual: Any, *, key_id: str | None = None
    ) -> Feedback:
        """Record the ground truth of a prediction, checked against the task of the version that made it.

        The version's manifest comes from the store, so feedback works after its bundle is removed.
        `key_id` is the API key that reports it, recorded with it (None: the call needed no key).

        Raises:
            PredictionNotFound: no such prediction.
            InvalidFeedback: a class the model does not know, or not a finite number for regression.
            RecordingDisabled: the service records nothing.
        """
        store = self._require_store()
        identity = (await store.get(prediction_id)).prediction.model
        manifest = await store.get_model(identity.name, identity.version)
        feedback = Feedback(
            prediction_id=prediction_id,
            actual=check_actual(manifest, actual),
            received_at=self._clock(),
            key_id=key_id,
        )
        await store.record_feedback(feedback)
        return feedback

    async def status(self) -> ServiceStatus:
        """Readiness: not draining, the default model loads and, when recording, the store is ready.

        A ready store is reachable, durable and writable (a prediction could be recorded now).
        """
        model = self._model_status()
        health = None if self._store is None else await self._store.health()
        unavailable: Unavailable | None = None
        if self._draining:
            unavailable = Draining(
                "draining: this server is shutting down and finishing the requests it has",
                retry_after=DRAINING_RETRY_AFTER_S,
            )
        elif model.error is not None:
            unavailable = RuntimeUnavailable(
                f"model {model.name!r} is not loaded: {model.error}", retry_after=MODEL_RETRY_AFTER_S
            )
        elif health is not None and not health.reachable:
            unavailable = StoreUnavailable(
                f"database unreachable: {health.detail}", retry_after=STORE_RETRY_AFTER_S
            )
        elif health is not None and not health.durable:
            unavailable = StoreUnavailable(
                f"database not durable: {health.detail}", retry_after=STORE_RETRY_AFTER_S
            )
        elif health is not None and not health.writable:
            unavailable = StoreUnavailable(
                f"database cannot record predictions now: {health.detail}",
                retry_after=STORE_RETRY_AFTER_S,
            )
        return ServiceStatus(recording=self.recording, model=model, store=health, unavailable=unavailable)

    def _model_status(self) -> ModelStatus:
        try:
            description = self._models.describe()
        except PredictorError as exc:  # the default model is gone or its source unreadable
            return ModelStatus(name=self._models.default_model, error=str(exc))
        manifest, execution = description.manifest, description.execution
        return ModelStatus(
            name=manifest.name,
            identity=manifest.identity,
            task=manifest.task,
            provider=execution.providers[0] if execution and execution.providers else None,
            error=description.load_error,
        )

    def _require_store(self) -> PredictionStore:
        if self._store is None:
            raise RecordingDisabled(
                "this service records nothing (recording is off); lookups and feedback need a store"
            )
        return self._store


def validate(manifest: ModelManifest, data: Any, layout: Layout) -> ValidatedBatch:
    """The validation stage: records or columns against the manifest's schema."""
    if layout == "columns":
        return validate_columns(manifest.schema, data)
    return validate_records(manifest.schema, data)


def check_actual(manifest: ModelManifest, actual: Any) -> Label | float:
    """The ground truth as the model's task understands it, or InvalidFeedback saying why not."""
    if manifest.task is Task.REGRESSION:
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            raise InvalidFeedback(
                f"actual must be a number for regression model {manifest.name!r}, got {actual!r:.80}"
            )
        if not math.isfinite(float(actual)):
            raise InvalidFeedback(f"actual must be a finite number, got {actual!r}")
        return float(actual)
    classes = manifest.classes or ()
    for known in classes:
        if type(known) is type(actual) and known == actual:
            return known
    shown = ", ".join(repr(c) for c in classes)
    raise InvalidFeedback(
        f"actual must be one of the classes of {manifest.name!r} ({shown}), got {actual!r:.80}"
    )


def build_predictions(
    manifest: ModelManifest, outputs: TaskOutputs, ids: Sequence[uuid.UUID | None] | None = None
) -> list[Prediction]:
    """Turn raw runtime outputs into typed predictions, one per record, each carrying the model identity.

    `ids` None: every prediction without an id, built without passing one (one keyword fewer per object,
    and only the probability column read for a binary model: 1,000 predictions cost about half).
    """
    identity = manifest.identity
    if isinstance(outputs, RegressorOutputs):
        values = outputs.values.astype(float).tolist()
        if ids is None:
            return [RegressionPrediction(model=identity, value=v) for v in values]
        return [
            RegressionPrediction(model=identity, value=v, prediction_id=i)
            for v, i in zip(values, ids, strict=True)
        ]
    assert isinstance(outputs, ClassifierOutputs)
    labels = outputs.labels.tolist()
    classes = manifest.classes or ()
    if manifest.task is Task.BINARY:
        positive = outputs.probabilities[:, classes.index(manifest.positive_class)].astype(float).tolist()
        if ids is None:
            return [
                BinaryPrediction(model=identity, label=label, probability=p)
                for label, p in zip(labels, positive, strict=True)
            ]
        return [
            BinaryPrediction(model=identity, label=label, probability=p, prediction_id=i)
            for label, p, i in zip(labels, positive, ids, strict=True)
        ]
    probabilities = outputs.probabilities.astype(float).tolist()
    keys = [str(c) for c in classes]
    return [
        MulticlassPrediction(
            model=identity, label=label, probabilities=dict(zip(keys, row, strict=True)), prediction_id=i
        )
        for label, row, i in zip(
            labels, probabilities, [None] * len(labels) if ids is None else ids, strict=True
        )
    ]
