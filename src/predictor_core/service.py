"""The use case: validate, infer, build predictions, record, return. Every caller goes through here.

The notebook facade and the HTTP adapter both call `PredictionService`, so no rule is written twice.
Validation and inference are synchronous CPU work (`run`); recording is the only asynchronous step.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from predictor_core.bundle import ModelManifest
from predictor_core.errors import ConfigurationError, InvalidFeedback
from predictor_core.ids import new_prediction_ids
from predictor_core.ports import Feedback, InferenceRuntime, ModelSource, PredictionRecord, PredictionStore
from predictor_core.predictions import (
    BinaryPrediction,
    ClassifierOutputs,
    Label,
    MulticlassPrediction,
    Prediction,
    RegressionPrediction,
    RegressorOutputs,
    Task,
    TaskOutputs,
)
from predictor_core.validation import ValidatedBatch, validate_columns, validate_records

__all__ = ["Layout", "PredictionService", "build_predictions", "check_actual"]

T = TypeVar("T")
Layout = Literal["records", "columns"]
Offload = Callable[[Callable[[], T]], Awaitable[T]]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PredictionService:
    """Predictions for any loaded model, recorded in the store before they are returned."""

    def __init__(
        self,
        models: ModelSource,
        store: PredictionStore | None = None,
        *,
        default_model: str,
        offload: Offload[Any] | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        """Wire the ports.

        Args:
            models: where bundles are loaded from.
            store: the audit trail; None means predictions are not recorded (said, never silent).
            default_model: the model used when a caller names none.
            offload: runs the synchronous validate+infer step off the event loop (e.g. in a worker
                thread); None runs it inline.
            clock: the time source for records.
        """
        self.models = models
        self.store = store
        self.default_model = default_model
        self._offload = offload
        self._clock = clock
        self._runtimes: dict[tuple[str, str | None], InferenceRuntime] = {}
        self._registered: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @property
    def recording(self) -> bool:
        return self.store is not None

    def runtime(self, model: str | None = None, version: str | None = None) -> InferenceRuntime:
        """The loaded runtime for a model version (the default model, newest version, when not named)."""
        key = (model or self.default_model, version)
        runtime = self._runtimes.get(key)
        if runtime is None:
            with self._lock:
                runtime = self._runtimes.get(key)
                if runtime is None:
                    runtime = self.models.load(*key)
                    self._runtimes[key] = runtime
        return runtime

    def run(
        self,
        data: Sequence[Any] | Mapping[str, Any],
        *,
        model: str | None = None,
        version: str | None = None,
        layout: Layout = "records",
        request_id: str | None = None,
    ) -> list[PredictionRecord]:
        """Validate, infer and build the records to store, with fresh ids: the synchronous half of `predict`.

        Raises:
            ValidationFailed: with every problem of every record; nothing was run.
            ModelNotFound, BundleError: the model cannot be loaded.
        """
        manifest, batch, outputs, latency_ms = self._infer(data, model, version, layout)
        predictions = build_predictions(manifest, outputs, new_prediction_ids(len(batch)))
        now = self._clock()
        return [
            PredictionRecord(
                prediction=p, features=f, created_at=now, latency_ms=latency_ms, request_id=request_id
            )
            for p, f in zip(predictions, batch.records(), strict=True)
        ]

    def predict_unrecorded(
        self,
        data: Sequence[Any] | Mapping[str, Any],
        *,
        model: str | None = None,
        version: str | None = None,
        layout: Layout = "records",
    ) -> list[Prediction]:
        """Predictions recorded nowhere, so they carry no id: for notebooks and scripts that opt out."""
        manifest, batch, outputs, _ = self._infer(data, model, version, layout)
        return build_predictions(manifest, outputs, [None] * len(batch))

    def _infer(
        self, data: Any, model: str | None, version: str | None, layout: Layout
    ) -> tuple[ModelManifest, ValidatedBatch, TaskOutputs, float]:
        runtime = self.runtime(model, version)
        manifest = runtime.manifest
        started = time.perf_counter()
        batch = _validate(manifest, data, layout)
        outputs = runtime.infer(batch)
        return manifest, batch, outputs, (time.perf_counter() - started) * 1000.0

    async def predict(
        self,
        data: Sequence[Any] | Mapping[str, Any],
        *,
        model: str | None = None,
        version: str | None = None,
        layout: Layout = "records",
        request_id: str | None = None,
    ) -> list[Prediction]:
        """Predict and record; returns only after the store committed every input and output.

        Raises:
            ValidationFailed: nothing was predicted or recorded.
            StoreUnavailable: retryable; no prediction of this call was returned.
        """

        def work() -> list[PredictionRecord]:
            return self.run(data, model=model, version=version, layout=layout, request_id=request_id)

        records = work() if self._offload is None else await self._offload(work)
        if self.store is not None:
            manifest = self.runtime(model, version).manifest
            await self._ensure_registered(manifest)
            await self.store.record(records)
        return [r.prediction for r in records]

    async def _ensure_registered(self, manifest: ModelManifest) -> None:
        key = (manifest.name, manifest.version)
        if key not in self._registered and self.store is not None:
            await self.store.register_model(manifest)
            self._registered.add(key)

    async def get_prediction(self, prediction_id: uuid.UUID) -> PredictionRecord:
        """A recorded prediction with its input. Raises PredictionNotFound."""
        return await self._require_store().get(prediction_id)

    async def record_feedback(self, prediction_id: uuid.UUID, actual: Any) -> Feedback:
        """Record the ground truth of a prediction, checked against its model's task.

        Raises:
            PredictionNotFound: no such prediction.
            InvalidFeedback: a class the model does not know, or not a finite number for regression.
        """
        store = self._require_store()
        record = await store.get(prediction_id)
        manifest = self.runtime(record.prediction.model.name, record.prediction.model.version).manifest
        feedback = Feedback(
            prediction_id=prediction_id, actual=check_actual(manifest, actual), received_at=self._clock()
        )
        await store.record_feedback(feedback)
        return feedback

    def _require_store(self) -> PredictionStore:
        if self.store is None:
            raise ConfigurationError("this service records nothing (no store); lookups and feedback need one")
        return self.store


def _validate(manifest: ModelManifest, data: Any, layout: Layout) -> ValidatedBatch:
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
    manifest: ModelManifest, outputs: TaskOutputs, ids: Sequence[uuid.UUID | None]
) -> list[Prediction]:
    """Turn raw runtime outputs into typed predictions, one per record, each carrying the model identity."""
    identity = manifest.identity
    if isinstance(outputs, RegressorOutputs):
        return [
            RegressionPrediction(model=identity, value=v, prediction_id=i)
            for v, i in zip(outputs.values.astype(float).tolist(), ids, strict=True)
        ]
    assert isinstance(outputs, ClassifierOutputs)
    labels = outputs.labels.tolist()
    probabilities = outputs.probabilities.astype(float).tolist()
    classes = manifest.classes or ()
    if manifest.task is Task.BINARY:
        positive = classes.index(manifest.positive_class)
        return [
            BinaryPrediction(model=identity, label=label, probability=row[positive], prediction_id=i)
            for label, row, i in zip(labels, probabilities, ids, strict=True)
        ]
    keys = [str(c) for c in classes]
    return [
        MulticlassPrediction(
            model=identity, label=label, probabilities=dict(zip(keys, row, strict=True)), prediction_id=i
        )
        for label, row, i in zip(labels, probabilities, ids, strict=True)
    ]
