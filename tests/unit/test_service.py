import asyncio
import concurrent.futures
import datetime as dt
import os
import uuid

import msgspec
import numpy as np
import pytest

from predictor_core import (
    BinaryPrediction,
    ClassifierOutputs,
    ConfigurationError,
    InvalidFeedback,
    ModelNotFound,
    ModelRegistry,
    MulticlassPrediction,
    PredictionNotFound,
    PredictionService,
    RecordingDisabled,
    RegressionPrediction,
    RuntimeUnavailable,
    StoreUnavailable,
    Task,
    ThreadedInference,
    ValidationFailed,
    build_predictions,
    new_prediction_id,
    new_prediction_ids,
)
from tests.fakes import (
    CREATED,
    FailingStore,
    FakeRuntime,
    InMemoryModelSource,
    InMemoryPredictionStore,
    SlowRuntime,
    fake_service,
    toy_manifest,
)

GOOD = {"x": 30.0, "y": 40.0, "n": 1, "flag": False, "colour": "green"}


def make_service(store=None, *manifests, **options) -> PredictionService:
    service, _ = fake_service(manifests, store, clock=lambda: CREATED, **options)
    return service


async def test_predict_records_inputs_and_outputs_before_returning():
    store = InMemoryPredictionStore()
    service = make_service(store)
    predictions = await service.predict([GOOD, dict(GOOD, x=1.0)], request_id="req-1")
    assert [type(p) for p in predictions] == [BinaryPrediction, BinaryPrediction]
    assert len(store.records) == 2
    for prediction, features in zip(predictions, [GOOD, dict(GOOD, x=1.0)], strict=True):
        recorded = await service.get_prediction(prediction.prediction_id)
        assert recorded.prediction == prediction
        assert recorded.features == features
        assert recorded.request_id == "req-1"
        assert recorded.created_at == CREATED
        assert recorded.latency_ms >= 0
    assert ("toy", "1") in store.models
    # the probability is the positive class's, whatever the label
    score = 1 / (1 + np.exp(-(30 - 20) / 10))
    assert predictions[0].probability == pytest.approx(score, rel=1e-6)
    assert predictions[0].label == "yes"
    assert predictions[1].label == "no"


async def test_invalid_input_records_nothing():
    store = InMemoryPredictionStore()
    service = make_service(store)
    with pytest.raises(ValidationFailed) as caught:
        await service.predict([GOOD, dict(GOOD, x="1")])
    assert caught.value.problems[0].loc == (1, "x")
    assert store.records == {}


async def test_store_down_means_no_prediction_is_returned_and_it_recovers():
    store = FailingStore()
    service = make_service(store)
    with pytest.raises(StoreUnavailable) as caught:
        await service.predict([GOOD])
    assert caught.value.retry_after == 2.0
    assert store.records == {}
    store.down.clear()
    (prediction,) = await service.predict([GOOD])
    assert list(store.records) == [prediction.prediction_id]


async def test_concurrent_first_requests_register_their_model_once_and_a_failure_is_retried():
    class SlowRegistering(InMemoryPredictionStore):
        def __init__(self):
            super().__init__()
            self.registrations, self.fail = 0, True

        async def register_model(self, manifest, /):
            self.registrations += 1
            await asyncio.sleep(0.01)
            if self.fail:
                raise StoreUnavailable("database unreachable (fake)", retry_after=2.0)
            await super().register_model(manifest)

    store = SlowRegistering()
    service = make_service(store)
    failed = await asyncio.gather(*(service.predict([GOOD]) for _ in range(8)), return_exceptions=True)
    assert all(isinstance(f, StoreUnavailable) for f in failed)
    assert (store.registrations, store.records) == (1, {})
    store.fail = False
    first = asyncio.ensure_future(service.predict([GOOD]))
    await asyncio.sleep(0)
    first.cancel()  # the caller that started the registration gives up: the others still get it
    answers = await asyncio.gather(*(service.predict([GOOD]) for _ in range(64)))
    assert store.registrations == 2
    assert len(store.records) == 64 == len({a.prediction_id for (a,) in answers})
    await service.predict([GOOD])
    assert store.registrations == 2


async def test_columns_layout_and_the_inference_seam():
    calls = []

    class Counting(ThreadedInference):
        async def infer(self, runtime, batch, /):
            calls.append(len(batch))
            return await super().infer(runtime, batch)

    service = make_service(InMemoryPredictionStore(), inference=Counting())
    columns = {k: [v, v] for k, v in GOOD.items()}
    predictions = await service.predict(columns, layout="columns")
    assert len(predictions) == 2
    assert len(calls) == 1


async def test_predict_without_store_says_so():
    service = make_service(None)
    assert not service.recording
    (prediction,) = await service.predict([GOOD])
    assert isinstance(prediction.prediction_id, uuid.UUID)
    with pytest.raises(ConfigurationError, match="records nothing"):
        await service.get_prediction(prediction.prediction_id)
    with pytest.raises(RecordingDisabled):
        await service.record_feedback(prediction.prediction_id, "yes")


async def test_models_are_loaded_once_and_versions_side_by_side():
    v1, v2 = toy_manifest(version="1"), toy_manifest(version="2", task=Task.REGRESSION)
    loads = []

    def factory(manifest):
        loads.append(manifest.version)
        return FakeRuntime(manifest)

    service, registry = fake_service([v1, v2], factory=factory)
    assert registry.runtime().manifest.version == "2"  # newest when not named
    assert registry.runtime("toy", "1").manifest.version == "1"
    assert registry.runtime("toy", "1") is registry.runtime("toy", "1")
    assert loads == ["2", "1"]
    (p1,) = await service.predict([GOOD], version="1")
    (p2,) = await service.predict([GOOD], version="2")
    assert isinstance(p1, BinaryPrediction)
    assert isinstance(p2, RegressionPrediction)
    assert p2.value == pytest.approx(70.0)
    with pytest.raises(ModelNotFound):
        await service.predict([GOOD], model="nope")


async def test_multiclass_predictions_name_every_class():
    service = make_service(None, toy_manifest(Task.MULTICLASS))
    (prediction,) = await service.predict([GOOD])
    assert isinstance(prediction, MulticlassPrediction)
    assert set(prediction.probabilities) == {"a", "b", "c"}
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, rel=1e-6)
    assert prediction.label == max(prediction.probabilities, key=prediction.probabilities.get)


@pytest.mark.parametrize(
    ("task", "actual", "stored"),
    [
        (Task.BINARY, "yes", "yes"),
        (Task.MULTICLASS, "c", "c"),
        (Task.REGRESSION, 12, 12.0),
        (Task.REGRESSION, 1.5, 1.5),
    ],
)
async def test_feedback_is_checked_against_the_task(task, actual, stored):
    store = InMemoryPredictionStore()
    service = make_service(store, toy_manifest(task))
    (prediction,) = await service.predict([GOOD])
    feedback = await service.record_feedback(prediction.prediction_id, actual)
    assert feedback.actual == stored
    assert store.feedback == [feedback]


@pytest.mark.parametrize(
    ("task", "actual", "fragment"),
    [
        (Task.BINARY, "maybe", "one of the classes"),
        (Task.BINARY, 1, "one of the classes"),
        (Task.REGRESSION, "12", "must be a number"),
        (Task.REGRESSION, True, "must be a number"),
        (Task.REGRESSION, float("nan"), "finite"),
    ],
)
async def test_bad_feedback_is_refused(task, actual, fragment):
    service = make_service(InMemoryPredictionStore(), toy_manifest(task))
    (prediction,) = await service.predict([GOOD])
    with pytest.raises(InvalidFeedback, match=fragment):
        await service.record_feedback(prediction.prediction_id, actual)


async def test_feedback_for_an_unknown_prediction():
    service = make_service(InMemoryPredictionStore())
    with pytest.raises(PredictionNotFound):
        await service.record_feedback(new_prediction_id(), "yes")


def test_build_predictions_keeps_integer_labels():
    manifest = msgspec.structs.replace(toy_manifest(), classes=(0, 1), positive_class=0)
    outputs = ClassifierOutputs(
        labels=np.array([1, 0], dtype=np.int64),
        probabilities=np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32),
    )
    ids = [new_prediction_id(), new_prediction_id()]
    first, second = build_predictions(manifest, outputs, ids)
    assert (first.label, second.label) == (1, 0)
    assert type(first.label) is int
    assert first.probability == pytest.approx(0.2)  # positive class 0
    assert first.prediction_id == ids[0]


def test_prediction_ids_are_uuid7_and_time_ordered():
    ids = [new_prediction_id() for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    millis = [i.int >> 80 for i in ids]
    assert millis == sorted(millis)
    now = dt.datetime.now(dt.UTC).timestamp() * 1000
    assert abs(millis[-1] - now) < 60_000


def test_a_forked_process_never_repeats_its_parents_random_bits():
    """Random bits come from a pool of `os.urandom` bytes: a forked worker must draw its own."""
    new_prediction_id()  # the parent's pool now holds bytes not yet handed out
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, as raw bytes
        os.write(write, b"".join(new_prediction_id().bytes for _ in range(50)))
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        child = {pipe.read(16)[6:] for _ in range(50)}
    parent = {new_prediction_id().bytes[6:] for _ in range(50)}
    assert len(child) == 50
    assert not child & parent


def test_prediction_ids_from_many_threads_are_all_distinct():
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        batches = list(pool.map(lambda _: [new_prediction_id() for _ in range(2000)], range(8)))
    assert len({i for batch in batches for i in batch}) == 16_000


async def test_predictions_serialise_with_their_task_tag():
    (prediction,) = await make_service(None).predict([GOOD])
    encoded = msgspec.json.decode(msgspec.json.encode(prediction))
    assert encoded["task"] == "binary"
    assert encoded["model"] == {"name": "toy", "version": "1", "sha256": prediction.model.sha256}


def test_unrecorded_predictions_carry_no_id():
    store = InMemoryPredictionStore()
    service = make_service(store)
    (prediction,) = service.predict_unrecorded([GOOD])
    assert prediction.prediction_id is None
    assert prediction.label == "yes"
    assert store.records == {}


def test_bulk_ids_are_uuid7_unique_and_share_the_millisecond():
    ids = new_prediction_ids(1000)
    assert len(set(ids)) == 1000
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert len({i.int >> 80 for i in ids}) == 1
    assert abs((ids[0].int >> 80) - dt.datetime.now(dt.UTC).timestamp() * 1000) < 60_000
    assert len(new_prediction_ids(3)) == 3


async def test_feedback_works_from_the_stored_manifest_after_the_model_is_gone():
    store = InMemoryPredictionStore()
    source = InMemoryModelSource([toy_manifest(Task.MULTICLASS)])
    registry = ModelRegistry(source, default_model="toy")
    service = PredictionService(registry, store)
    (prediction,) = await service.predict([GOOD])
    source.manifests.clear()  # the bundle is removed from disk
    registry.refresh()
    with pytest.raises(ModelNotFound):
        registry.resolve()
    assert (await service.record_feedback(prediction.prediction_id, "c")).actual == "c"
    with pytest.raises(InvalidFeedback, match="one of the classes"):
        await service.record_feedback(prediction.prediction_id, "z")


async def test_a_request_resolves_once_and_records_the_version_that_predicted():
    store = InMemoryPredictionStore()
    source = InMemoryModelSource([toy_manifest(version="1"), toy_manifest(version="2")])
    registry = ModelRegistry(source, default_model="toy")

    class SwapDuringInference(ThreadedInference):
        async def infer(self, runtime, batch, /):
            registry.apply_aliases(
                {"toy": {"production": "1"}}
            )  # an alias flips while this request is in flight
            return await super().infer(runtime, batch)

    service = PredictionService(registry, store, inference=SwapDuringInference())
    (prediction,) = await service.predict([GOOD])
    assert prediction.model.version == "2"
    assert store.records[prediction.prediction_id].prediction.model.version == "2"
    (after,) = await service.predict([GOOD])
    assert after.model.version == "1"


async def test_status_is_ready_or_says_why_not():
    store = FailingStore()
    source = InMemoryModelSource([toy_manifest()])
    registry = ModelRegistry(source, default_model="toy")
    service = PredictionService(registry, store)
    status = await service.status()
    assert not status.ready
    assert isinstance(status.unavailable, StoreUnavailable)
    assert status.model.provider == "FakeExecutionProvider"
    store.down.clear()
    assert (await service.status()).ready
    source.manifests.clear()
    registry.refresh()
    status = await service.status()
    assert not status.ready
    assert "no model 'toy'" in str(status.unavailable)
    assert status.unavailable.retry_after == 30.0


async def test_the_shadow_version_scores_live_requests_off_the_answer_and_is_never_returned():
    store = InMemoryPredictionStore()
    live, challenger = toy_manifest(version="1"), toy_manifest(Task.REGRESSION, version="2")
    registry = ModelRegistry(InMemoryModelSource([live, challenger]), default_model="toy")
    registry.apply_aliases({"toy": {"production": "1", "shadow": "2"}})
    service = PredictionService(registry, store)
    predictions = await service.predict([GOOD, dict(GOOD, x=5.0)])
    assert [p.model.version for p in predictions] == ["1", "1"]
    await service.drain()
    assert [s.prediction_id for s in store.shadows] == [p.prediction_id for p in predictions]
    assert all(
        s.prediction.model.version == "2" and s.prediction.prediction_id is None for s in store.shadows
    )
    assert store.shadows[0].prediction.value == pytest.approx(70.0)  # the challenger's own answer
    await service.predict([GOOD], version="1")  # a version named explicitly is not shadowed
    await service.drain()
    assert len(store.shadows) == 2


async def test_a_failing_shadow_never_touches_the_live_answer(caplog):
    def factory(manifest):
        return SlowRuntime(manifest, delay=0) if manifest.version == "1" else Exploding(manifest)

    class Exploding(FakeRuntime):
        def infer(self, batch, /):
            raise RuntimeUnavailable("the challenger's GPU went away")

    store = InMemoryPredictionStore()
    registry = ModelRegistry(
        InMemoryModelSource([toy_manifest(version="1"), toy_manifest(version="2")], factory),
        default_model="toy",
    )
    registry.apply_aliases({"toy": {"production": "1", "shadow": "2"}})
    service = PredictionService(registry, store)
    (prediction,) = await service.predict([GOOD])
    await service.drain()
    assert prediction.model.version == "1"
    assert prediction.prediction_id in store.records
    assert store.shadows == []
    assert "shadow toy 2 did not score 1 records: RuntimeUnavailable" in caplog.text


@pytest.mark.parametrize("task", list(Task))
def test_predictions_without_ids_are_the_predictions_with_none_for_ids(task):
    """predict_unrecorded builds predictions without passing an id (issue #9): the same objects."""
    from predictor_core.predictions import RegressorOutputs

    manifest = toy_manifest(task)
    rng = np.random.default_rng(9)
    if task is Task.REGRESSION:
        outputs = RegressorOutputs(values=rng.normal(size=50).astype(np.float32))
    else:
        classes = manifest.classes
        probabilities = rng.dirichlet(np.ones(len(classes)), size=50).astype(np.float32)
        labels = np.array([classes[j] for j in probabilities.argmax(axis=1)], dtype=object)
        outputs = ClassifierOutputs(labels=labels, probabilities=probabilities)
    with_none = build_predictions(manifest, outputs, [None] * 50)
    assert build_predictions(manifest, outputs) == with_none
    assert [type(p) for p in with_none] == [type(with_none[0])] * 50
    ids = new_prediction_ids(50)
    with_ids = build_predictions(manifest, outputs, ids)
    assert [p.prediction_id for p in with_ids] == ids
    assert [msgspec.structs.replace(p, prediction_id=None) for p in with_ids] == with_none
    if task is Task.BINARY:
        assert [p.probability for p in with_none] == outputs.probabilities[:, 1].astype(float).tolist()
    with pytest.raises(ValueError, match="zip"):
        build_predictions(manifest, outputs, ids[:-1])
