"""One contract for every PredictionStore: the in-memory fake, SQLite and PostgreSQL behave alike."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import msgspec
import pytest

from predictor_core import (
    BinaryPrediction,
    DuplicatePrediction,
    Feedback,
    ModelConflict,
    ModelNotFound,
    MulticlassPrediction,
    PredictionNotFound,
    PredictionRecord,
    PredictionService,
    PredictionStore,
    RegressionPrediction,
    ShadowRecord,
    StoreRejected,
    Task,
    new_prediction_id,
)
from predictor_sql import SqlPredictionStore
from tests.fakes import InMemoryPredictionStore, fake_service, records_for, toy_manifest

BINARY = toy_manifest(Task.BINARY, name="contract_binary")
MULTICLASS = toy_manifest(Task.MULTICLASS, name="contract_multi")
REGRESSION = toy_manifest(Task.REGRESSION, name="contract_reg")
ROWS = [
    {"x": 1.0, "y": 2.5, "n": 3, "flag": True, "colour": "red"},
    {"x": 0.1 + 0.2, "y": 99.99999999999999, "n": 0, "flag": False, "colour": None},
]


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[PredictionStore]:
    if request.param == "memory":
        yield InMemoryPredictionStore()
        return
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    sql_store = SqlPredictionStore(url)
    await sql_store.start()
    try:
        yield sql_store
    finally:
        await sql_store.close()


@pytest.fixture(autouse=True)
async def started(store: PredictionStore) -> None:
    await store.start()  # idempotent: the SQL stores are started already, the fake is started here


def service(store: PredictionStore) -> PredictionService:
    return fake_service([BINARY, MULTICLASS, REGRESSION], store)[0]


@pytest.mark.parametrize("manifest", [BINARY, MULTICLASS, REGRESSION], ids=lambda m: m.task.value)
async def test_recorded_predictions_round_trip_exactly(store: PredictionStore, manifest) -> None:
    records = records_for(manifest, ROWS, request_id="req-1")
    await store.register_model(manifest)
    await store.record(records)
    for record in records:
        assert await store.get(record.prediction_id) == record


async def test_predict_through_the_service_records_before_returning(store: PredictionStore) -> None:
    predictions = await service(store).predict(ROWS)
    for prediction in predictions:
        assert prediction.prediction_id is not None
        stored = await store.get(prediction.prediction_id)
        assert stored.prediction == prediction
        assert stored.features in ROWS


async def test_integer_labels_keep_their_type(store: PredictionStore) -> None:
    await store.register_model(BINARY)
    identity = BINARY.identity
    created = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    records = [
        PredictionRecord(
            prediction=BinaryPrediction(
                model=identity, label=1, probability=1.0, prediction_id=new_prediction_id()
            ),
            features={"x": 1.5},
            created_at=created,
            latency_ms=0.25,
        ),
        PredictionRecord(
            prediction=MulticlassPrediction(
                model=identity,
                label=7,
                probabilities={"7": 0.75, "8": 0.25},
                prediction_id=new_prediction_id(),
            ),
            features={"x": None},
            created_at=created,
            latency_ms=0.0,
        ),
    ]
    await store.record(records)
    for record in records:
        got = await store.get(record.prediction_id)
        assert got == record
        assert type(got.prediction.label) is int
        assert got.created_at == created


async def test_record_of_nothing_is_a_no_op(store: PredictionStore) -> None:
    await store.record([])


async def test_unknown_prediction_is_not_found(store: PredictionStore) -> None:
    with pytest.raises(PredictionNotFound):
        await store.get(new_prediction_id())
    feedback = Feedback(prediction_id=new_prediction_id(), actual="yes", received_at=dt.datetime.now(dt.UTC))
    with pytest.raises(PredictionNotFound):
        await store.record_feedback(feedback)


async def test_feedback_with_a_label_or_a_number(store: PredictionStore) -> None:
    svc = service(store)
    [label_pred] = await svc.predict(ROWS[:1])
    [value_pred] = await svc.predict(ROWS[:1], model=REGRESSION.name)
    assert isinstance(value_pred, RegressionPrediction)
    now = dt.datetime.now(dt.UTC)
    assert label_pred.prediction_id is not None
    assert value_pred.prediction_id is not None
    await store.record_feedback(
        Feedback(prediction_id=label_pred.prediction_id, actual="yes", received_at=now)
    )
    await store.record_feedback(Feedback(prediction_id=value_pred.prediction_id, actual=3.5, received_at=now))
    await svc.record_feedback(label_pred.prediction_id, "no")  # a later correction is appended


async def test_a_batch_is_recorded_whole_or_not_at_all(store: PredictionStore) -> None:
    first = records_for(BINARY, ROWS[:1])
    await store.register_model(BINARY)
    await store.record(first)
    batch = [*records_for(BINARY, ROWS), first[0]]  # the last one repeats a recorded id
    with pytest.raises(DuplicatePrediction):
        await store.record(batch)
    for record in batch[:-1]:
        with pytest.raises(PredictionNotFound):
            await store.get(record.prediction_id)


async def test_concurrent_callers_are_recorded_apart_from_one_bad_caller(store: PredictionStore) -> None:
    """Callers that share a group commit: one caller's duplicate id fails that caller alone."""
    await store.register_model(BINARY)
    recorded = records_for(BINARY, ROWS[:1])
    await store.record(recorded)
    good = [records_for(BINARY, ROWS) for _ in range(40)]
    bad = [*records_for(BINARY, ROWS[:1]), recorded[0]]
    outcomes = await asyncio.gather(
        *(store.record(records) for records in good[:20]),
        store.record(bad),
        *(store.record(records) for records in good[20:]),
        return_exceptions=True,
    )
    assert [type(o).__name__ for o in outcomes].count("DuplicatePrediction") == 1
    assert isinstance(outcomes[20], DuplicatePrediction)
    assert all(o is None for i, o in enumerate(outcomes) if i != 20)
    for records in good:
        for record in records:
            assert await store.get(record.prediction_id) == record
    with pytest.raises(PredictionNotFound):
        await store.get(bad[0].prediction_id)


async def test_a_caller_that_gives_up_does_not_undo_its_group(store: PredictionStore) -> None:
    """A cancelled caller's rows are committed or not with their group; the others' are committed."""
    await store.register_model(BINARY)
    batches = [records_for(BINARY, ROWS) for _ in range(20)]
    calls = [asyncio.ensure_future(store.record(records)) for records in batches]
    await asyncio.sleep(0)
    calls[3].cancel()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(o is None for i, o in enumerate(outcomes) if i != 3)
    await store.close()  # waits for every queued group
    await store.start()
    for records in batches[:3] + batches[4:]:
        for record in records:
            assert await store.get(record.prediction_id) == record


async def test_unregistered_model_is_refused(store: PredictionStore) -> None:
    unknown = toy_manifest(Task.BINARY, name="never_registered")
    with pytest.raises(ModelConflict, match="not registered"):
        await store.record(records_for(unknown, ROWS))


async def test_a_known_version_with_another_file_is_a_conflict(store: PredictionStore) -> None:
    await store.register_model(BINARY)
    changed = msgspec.structs.replace(BINARY, sha256="f" * 64)
    with pytest.raises(ModelConflict):
        await store.register_model(changed)
    with pytest.raises(ModelConflict):
        await store.record(records_for(changed, ROWS))


async def test_the_registered_manifest_is_kept(store: PredictionStore) -> None:
    await store.register_model(MULTICLASS)
    assert await store.get_model(MULTICLASS.name, MULTICLASS.version) == MULTICLASS
    with pytest.raises(ModelNotFound):
        await store.get_model(MULTICLASS.name, "never")


async def test_register_model_is_idempotent(store: PredictionStore) -> None:
    await store.register_model(BINARY)
    await store.register_model(BINARY)


async def test_health_is_reachable_and_durable(store: PredictionStore) -> None:
    health = await store.health()
    assert health.reachable
    assert health.durable, health.detail


async def test_shadow_answers_are_kept_beside_their_live_inputs(store: PredictionStore) -> None:
    live = records_for(BINARY, ROWS)
    await store.register_model(BINARY)
    await store.record(live)
    challenger = toy_manifest(Task.BINARY, name=BINARY.name, version="2")
    shadows = [
        ShadowRecord(
            prediction_id=r.prediction_id,
            prediction=msgspec.structs.replace(s.prediction, prediction_id=None),
            created_at=r.created_at,
            latency_ms=0.1,
        )
        for r, s in zip(live, records_for(challenger, ROWS), strict=True)
    ]
    with pytest.raises(ModelConflict, match="not registered"):
        await store.record_shadow(shadows)
    await store.register_model(challenger)
    await store.record_shadow(shadows)
    unknown = msgspec.structs.replace(shadows[0], prediction_id=new_prediction_id())
    with pytest.raises(StoreRejected):
        await store.record_shadow([unknown])
    assert await store.get(live[0].prediction_id) == live[0]  # the live answer is untouched
