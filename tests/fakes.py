"""In-memory fakes of the core's ports: working implementations for tests, no mocks.

`tests/functional/test_store_contract.py` runs the same contract against `InMemoryPredictionStore` and the
real SQL stores, so the fake cannot drift from them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import numpy as np

from predictor_core import (
    AliasChange,
    AliasStore,
    ApiKey,
    AuditReader,
    ClassifierOutputs,
    DuplicatePrediction,
    ExecutionReport,
    Feature,
    FeatureSchema,
    Feedback,
    InferenceRuntime,
    InferenceScheduler,
    KeyConflict,
    KeyNotFound,
    KeyStore,
    Labelled,
    ModelConflict,
    ModelManifest,
    ModelNotFound,
    ModelRegistry,
    ModelSource,
    OnnxSignature,
    PredictionNotFound,
    PredictionObserver,
    PredictionRecord,
    PredictionService,
    PredictionStore,
    RegressorOutputs,
    Rule,
    ShadowRecord,
    StoreHealth,
    StoreRejected,
    StoreUnavailable,
    Task,
    TaskOutputs,
    TensorSpec,
    TrainingProfile,
    ValidatedBatch,
    WindowSummary,
    build_predictions,
    new_prediction_ids,
    validate,
)

CREATED = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def toy_schema() -> FeatureSchema:
    """Two bounded numbers, a nullable category and a rule: enough to exercise every validation path."""
    return FeatureSchema(
        features=(
            Feature(name="x", kind="number", minimum=0, maximum=100, unit="mm", description="length"),
            Feature(name="y", kind="number", minimum=0, maximum=100, unit="mm", description="width"),
            Feature(name="n", kind="integer", minimum=0, maximum=10),
            Feature(name="flag", kind="boolean"),
            Feature(name="colour", kind="category", categories=("red", "green", "blue"), nullable=True),
        ),
        rules=(Rule(name="y_ge_x", expr="y >= x", message="y must be at least x"),),
        examples=({"x": 1.0, "y": 2.0, "n": 3, "flag": True, "colour": "red"},),
    )


def toy_manifest(task: Task = Task.BINARY, *, name: str = "toy", version: str = "1") -> ModelManifest:
    classes = {Task.BINARY: ("no", "yes"), Task.MULTICLASS: ("a", "b", "c"), Task.REGRESSION: None}[task]
    outputs = (
        {"value": "variable"}
        if task is Task.REGRESSION
        else {"label": "label", "probabilities": "probabilities"}
    )
    return ModelManifest(
        name=name,
        version=version,
        task=task,
        schema=toy_schema(),
        onnx=OnnxSignature(
            inputs=(TensorSpec(name="X", dtype="float32", features=("x", "y")),),
            outputs=outputs,
            opsets={"": 17},
        ),
        sha256=f"{name}-{version}-sha".ljust(64, "0")[:64],
        created_at=CREATED,
        classes=classes,
        positive_class="yes" if task is Task.BINARY else None,
        metrics={"accuracy": 0.9} if classes else {"rmse": 1.0},
    )


class FakeRuntime:
    """A deterministic model: the score is a logistic function of x - y/2 (regression: x + y)."""

    def __init__(self, manifest: ModelManifest) -> None:
        self.manifest = manifest
        self.execution = ExecutionReport(requested="cpu", providers=("FakeExecutionProvider",))
        self.calls = 0

    def infer(self, batch: ValidatedBatch, /) -> TaskOutputs:
        self.calls += 1
        x, y = batch.columns["x"], batch.columns["y"]
        if self.manifest.task is Task.REGRESSION:
            return RegressorOutputs(values=(x + y).astype(np.float32))
        classes = self.manifest.classes or ()
        score = 1.0 / (1.0 + np.exp(-(x - y / 2) / 10))
        if len(classes) == 2:
            proba = np.column_stack([1 - score, score])
        else:
            raw = np.column_stack([score, 1 - score, np.full_like(score, 0.5)])
            proba = raw / raw.sum(axis=1, keepdims=True)
        codes = proba.argmax(axis=1)  # the label picked by its position, as many graphs do
        labels = np.array([classes[i] for i in codes], dtype=object)
        return ClassifierOutputs(labels=labels, probabilities=proba.astype(np.float32), codes=codes)


class SlowRuntime(FakeRuntime):
    """FakeRuntime that blocks its thread for `delay` seconds per call (to test event-loop stalls)."""

    def __init__(self, manifest: ModelManifest, delay: float) -> None:
        super().__init__(manifest)
        self.delay = delay

    def infer(self, batch: ValidatedBatch, /) -> TaskOutputs:
        time.sleep(self.delay)
        return super().infer(batch)


class InMemoryModelSource:
    """Serves runtimes built by `factory` for a set of manifests (`manifests` may change between calls)."""

    def __init__(
        self,
        manifests: Sequence[ModelManifest],
        factory: Callable[[ModelManifest], InferenceRuntime] = FakeRuntime,
    ) -> None:
        self.manifests = list(manifests)
        self.factory = factory

    def list_models(self) -> Sequence[ModelManifest]:
        return list(self.manifests)

    def load(self, name: str, version: str, /) -> InferenceRuntime:
        for manifest in self.manifests:
            if (manifest.name, manifest.version) == (name, version):
                return self.factory(manifest)
        raise ModelNotFound(f"no model {name!r} version {version!r}")


def fake_service(
    manifests: Sequence[ModelManifest] = (),
    store: PredictionStore | None = None,
    *,
    factory: Callable[[ModelManifest], InferenceRuntime] = FakeRuntime,
    default_model: str | None = None,
    inference: InferenceScheduler | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    observer: PredictionObserver | None = None,
) -> tuple[PredictionService, ModelRegistry]:
    """A service over the fake model source (the toy model by default) and its registry."""
    manifests = list(manifests) or [toy_manifest()]
    registry = ModelRegistry(
        InMemoryModelSource(manifests, factory), default_model=default_model or manifests[0].name
    )
    options = {} if clock is None else {"clock": clock}
    service = PredictionService(registry, store, inference=inference, observer=observer, **options)
    return service, registry


def records_for(
    manifest: ModelManifest, rows: Sequence[dict[str, Any]], *, request_id: str | None = None
) -> list[PredictionRecord]:
    """Prediction records as the service builds them, from the fake model: input for store tests."""
    batch = validate(manifest, rows, "records")
    predictions = build_predictions(
        manifest, FakeRuntime(manifest).infer(batch), new_prediction_ids(len(batch))
    )
    return [
        PredictionRecord(prediction=p, features=f, created_at=CREATED, latency_ms=0.5, request_id=request_id)
        for p, f in zip(predictions, batch.records(), strict=True)
    ]


class InMemoryPredictionStore:
    """The prediction store in a dict; `record` is atomic because it validates everything before writing."""

    def __init__(self) -> None:
        self.models: dict[tuple[str, str], ModelManifest] = {}
        self.records: dict[uuid.UUID, PredictionRecord] = {}
        self.feedback: list[Feedback] = []
        self.shadows: list[ShadowRecord] = []
        self.started = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.started = False

    async def register_model(self, manifest: ModelManifest, /) -> None:
        known = self.models.setdefault((manifest.name, manifest.version), manifest)
        if known.sha256 != manifest.sha256:
            raise ModelConflict(f"model {manifest.name} {manifest.version} is recorded with another file")

    async def record(self, records: Sequence[PredictionRecord], /) -> None:
        async with self._lock:
            ids = [r.prediction_id for r in records]
            if len(set(ids)) != len(ids) or any(i in self.records for i in ids):
                raise DuplicatePrediction("a prediction id is recorded already")
            for r in records:
                identity = r.prediction.model
                known = self.models.get((identity.name, identity.version))
                if known is None or known.sha256 != identity.sha256:
                    raise ModelConflict(f"model {identity.name} {identity.version} is not registered")
            self.records.update((r.prediction_id, r) for r in records)

    async def record_shadow(self, records: Sequence[ShadowRecord], /) -> None:
        async with self._lock:
            for r in records:
                if r.prediction_id not in self.records:
                    raise StoreRejected(f"no live prediction {r.prediction_id} to shadow")
                identity = r.prediction.model
                if (identity.name, identity.version) not in self.models:
                    raise ModelConflict(f"model {identity.name} {identity.version} is not registered")
            self.shadows.extend(records)

    async def get_model(self, name: str, version: str, /) -> ModelManifest:
        try:
            return self.models[(name, version)]
        except KeyError:
            raise ModelNotFound(f"model {name} {version} was never registered") from None

    async def get(self, prediction_id: uuid.UUID, /) -> PredictionRecord:
        try:
            return self.records[prediction_id]
        except KeyError:
            raise PredictionNotFound(f"no prediction {prediction_id}") from None

    async def record_feedback(self, feedback: Feedback, /) -> None:
        if feedback.prediction_id not in self.records:
            raise PredictionNotFound(f"no prediction {feedback.prediction_id}")
        self.feedback.append(feedback)

    async def health(self) -> StoreHealth:
        return StoreHealth(reachable=True, durable=True, backend="memory")


class InMemoryAliasStore:
    """Aliases and their history in memory, as the SQL alias store keeps them."""

    def __init__(self) -> None:
        self.current: dict[str, dict[str, str]] = {}
        self.changes: list[AliasChange] = []

    async def aliases(self) -> dict[str, dict[str, str]]:
        return {name: dict(names) for name, names in self.current.items() if names}

    async def move(self, name: str, alias: str, version: str | None, /, *, by: str) -> AliasChange:
        names = self.current.setdefault(name, {})
        before = names.get(alias)
        if version is None:
            names.pop(alias, None)
        else:
            names[alias] = version
        change = AliasChange(
            name=name,
            alias=alias,
            from_version=before,
            to_version=version,
            changed_at=dt.datetime.now(dt.UTC),
            changed_by=by,
        )
        self.changes.append(change)
        return change

    async def history(self, name: str, alias: str | None = None, /, *, limit: int = 50) -> list[AliasChange]:
        mine = [c for c in reversed(self.changes) if c.name == name and alias in (None, c.alias)]
        return mine[:limit]


class InMemoryKeyStore:
    """API keys in a dict, as the SQL key store keeps them (names unique, revoked once, never deleted)."""

    def __init__(self, *keys: ApiKey) -> None:
        self.keys: dict[str, ApiKey] = {k.id: k for k in keys}
        self.reads = 0
        """How many times `get` was called (to see the access check's cache at work)."""

    async def create(self, key: ApiKey, /) -> None:
        if key.id in self.keys or any(k.name == key.name for k in self.keys.values()):
            raise KeyConflict(f"a key named {key.name!r} exists already")
        self.keys[key.id] = key

    async def get(self, key_id: str, /) -> ApiKey | None:
        self.reads += 1
        return self.keys.get(key_id)

    async def list_keys(self) -> list[ApiKey]:
        return sorted(self.keys.values(), key=lambda k: (k.created_at, k.name))

    async def revoke(self, name: str, at: dt.datetime, /) -> ApiKey:
        for key in self.keys.values():
            if key.name == name:
                if key.revoked_at is None:
                    key = msgspec.structs.replace(key, revoked_at=at)
                    self.keys[key.id] = key
                return key
        raise KeyNotFound(f"no API key named {name!r}")

    async def active_count(self) -> int:
        return sum(k.revoked_at is None for k in self.keys.values())


class FailingStore(InMemoryPredictionStore):
    """A store whose database is down: every write raises StoreUnavailable while `down` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = threading.Event()
        self.down.set()

    async def record(self, records: Sequence[PredictionRecord], /) -> None:
        if self.down.is_set():
            raise StoreUnavailable("database unreachable (fake)", retry_after=2.0)
        await super().record(records)

    async def health(self) -> StoreHealth:
        if self.down.is_set():
            return StoreHealth(
                reachable=False, durable=False, detail="database unreachable (fake)", backend="memory"
            )
        return await super().health()


def with_profile(manifest: ModelManifest, rows: Sequence[dict[str, Any]]) -> ModelManifest:
    """The manifest with a training profile of `rows` and the fake model's answers, as export builds it."""
    from predictor_core import FeatureKind, TrainingSummary
    from predictor_core.drift import OUTPUT_LABEL, output_values, profile_categories, profile_numbers

    batch = validate(manifest, rows, "records")
    records = batch.records()
    features: dict[str, Any] = {}
    for feature in manifest.schema.features:
        values = [r.get(feature.name) for r in records]
        if feature.kind in (FeatureKind.CATEGORY, FeatureKind.BOOLEAN):
            declared = feature.categories or ("false", "true")
            features[feature.name] = profile_categories(values, declared)
        else:
            numbers = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            features[feature.name] = profile_numbers(numbers)
    answers = [
        output_values(p)
        for p in build_predictions(manifest, FakeRuntime(manifest).infer(batch), [None] * len(batch))
    ]
    outputs: dict[str, Any] = {}
    for key in answers[0]:
        values = [a[key] for a in answers]
        outputs[key] = (
            profile_categories(values, [str(c) for c in manifest.classes or ()])
            if key == OUTPUT_LABEL
            else profile_numbers(values)
        )
    training = TrainingSummary(
        rows=len(records),
        fingerprint="0" * 64,
        features={},
        profile=TrainingProfile(features=features, outputs=outputs),
    )
    return msgspec.structs.replace(manifest, training=training)


class InMemoryAuditReader:
    """The monitoring read side over an `InMemoryPredictionStore`, counted in Python as on SQLite."""

    def __init__(self, store: InMemoryPredictionStore) -> None:
        self.store = store

    async def versions(self, name: str, /) -> list[str]:
        return [version for (n, version) in self.store.models if n == name]

    def _selected(
        self, name: str, version: str, since: dt.datetime | None, until: dt.datetime | None
    ) -> list[PredictionRecord]:
        return sorted(
            (
                r
                for r in self.store.records.values()
                if (r.prediction.model.name, r.prediction.model.version) == (name, version)
                and (since is None or r.created_at >= since)
                and (until is None or r.created_at < until)
            ),
            key=lambda r: r.created_at,
        )

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
        from predictor_core.drift import WindowCounter, output_values

        rows = self._selected(name, version, since, until)
        counter = WindowCounter(profile)
        counter.add([r.features for r in rows], [output_values(r.prediction) for r in rows])
        return counter.summary()

    async def labelled(
        self,
        name: str,
        version: str,
        /,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[Labelled]:
        latest = {f.prediction_id: f for f in self.store.feedback}  # a later report replaces an earlier one
        return [
            Labelled(created_at=r.created_at, prediction=r.prediction, actual=latest[r.prediction_id].actual)
            for r in self._selected(name, version, since, until)
            if r.prediction_id in latest
        ]

    async def close(self) -> None:
        pass


# Conformance, checked by mypy: the fakes implement the ports.
_source: ModelSource = InMemoryModelSource([])
_store: PredictionStore = InMemoryPredictionStore()
_runtime: InferenceRuntime = FakeRuntime(toy_manifest())
_aliases: AliasStore = InMemoryAliasStore()
_keys: KeyStore = InMemoryKeyStore()
_audit: AuditReader = InMemoryAuditReader(InMemoryPredictionStore())
