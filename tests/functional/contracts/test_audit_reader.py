"""One contract for every AuditReader: the in-memory fake, SQLite (counted in Python) and PostgreSQL
(counted in SQL) give the same windows, to the row, at the window's edges and per version."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from predictor_core import (
    AuditReader,
    BinaryPrediction,
    Feedback,
    ModelManifest,
    PredictionRecord,
    PredictionStore,
    Task,
)
from predictor_core.drift import WindowCounter, output_values
from predictor_core.quality import live_quality
from predictor_sql import SqlPredictionStore
from predictor_sql.monitoring import SqlAuditReader
from tests.fakes import InMemoryAuditReader, InMemoryPredictionStore, records_for, toy_manifest, with_profile

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
SINCE, UNTIL = T0, T0 + dt.timedelta(hours=1)
TICK = dt.timedelta(microseconds=1)
TRAINING = [
    {
        "x": float(5 + i % 35),
        "y": float(10 + i % 35),
        "n": i % 10,
        "flag": i % 3 == 0,
        "colour": ("red", "green", None)[i % 3],
    }
    for i in range(400)
]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[tuple[PredictionStore, AuditReader]]:
    if request.param == "memory":
        memory = InMemoryPredictionStore()
        yield memory, InMemoryAuditReader(memory)
        return
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    store = SqlPredictionStore(url)
    await store.start()
    reader = SqlAuditReader.connect(url)  # its own pool, as the wiring builds it
    try:
        yield store, reader
    finally:
        await reader.close()
        await store.close()


def versions(task: Task = Task.BINARY) -> tuple[ModelManifest, ModelManifest]:
    """Two profiled versions of a model whose name no other test uses (the PostgreSQL database is shared)."""
    name = f"audit_{uuid.uuid4().hex[:8]}"
    return (
        with_profile(toy_manifest(task, name=name, version="1"), TRAINING),
        with_profile(toy_manifest(task, name=name, version="2"), TRAINING),
    )


def live_rows(manifest: ModelManifest) -> list[dict[str, Any]]:
    """Values on every kind of edge: the training minimum and maximum, beyond them, on inner bin edges."""
    assert manifest.training is not None
    assert manifest.training.profile is not None
    edges = manifest.training.profile.features["x"].edges  # type: ignore[union-attr]
    xs = [0.0, 4.999999999999999, 5.0, 39.0, 39.00000000000001, 100.0, *edges[1:-1], 0.1 + 0.2]
    return [
        {
            "x": x,
            "y": max(x, 10.0 + i),
            "n": i % 10,
            "flag": i % 2 == 0,
            "colour": ("blue", None, "red")[i % 3],
        }
        for i, x in enumerate(xs)
    ]


def at(records: list[PredictionRecord], when: dt.datetime) -> list[PredictionRecord]:
    return [msgspec.structs.replace(r, created_at=when) for r in records]


def counted(manifest: ModelManifest, records: list[PredictionRecord]) -> Any:
    assert manifest.training is not None
    assert manifest.training.profile is not None
    counter = WindowCounter(manifest.training.profile)
    counter.add([r.features for r in records], [output_values(r.prediction) for r in records])
    return counter.summary()


@pytest.mark.parametrize("task", [Task.BINARY, Task.MULTICLASS, Task.REGRESSION])
async def test_a_window_counts_exactly_its_rows_at_the_edges_and_per_version(
    stores: tuple[PredictionStore, AuditReader], task: Task
) -> None:
    store, reader = stores
    one, two = versions(task)
    for manifest in (one, two):
        await store.register_model(manifest)
    kept = await store.get_model(one.name, "1")  # what the monitor reads: the profile survives jsonb
    assert kept.training == one.training
    rows = live_rows(one)
    batches = {
        when: at(records_for(one, rows), when)
        for when in (SINCE - TICK, SINCE, SINCE + dt.timedelta(minutes=30), UNTIL - TICK, UNTIL)
    }
    for batch in batches.values():
        await store.record(batch)
    await store.record(at(records_for(two, rows[:3]), SINCE + dt.timedelta(minutes=1)))
    assert one.training is not None
    assert one.training.profile is not None
    profile = one.training.profile
    window = await reader.window(one.name, "1", profile, since=SINCE, until=UNTIL)
    inside = [r for when, batch in batches.items() if SINCE <= when < UNTIL for r in batch]
    assert window.rows == len(inside) == 3 * len(rows)
    assert window == counted(one, inside)  # the same counts as the core's own, bin for bin
    x = window.features["x"]
    assert (x.below, x.above) == (3 * 3, 3 * 2)  # 0, 4.99... and 0.1 + 0.2 below; 39.00...01 and 100 above
    assert window.features["colour"].missing == 3 * sum(r["colour"] is None for r in rows)
    assert set(window.outputs) == set(profile.outputs)
    # open sides, and the other version
    everything = await reader.window(one.name, "1", profile)
    assert everything.rows == 5 * len(rows)
    assert (await reader.window(one.name, "1", profile, until=SINCE)).rows == len(rows)
    assert (await reader.window(one.name, "1", profile, since=UNTIL)).rows == len(rows)
    assert (await reader.window(one.name, "2", profile, since=SINCE, until=UNTIL)).rows == 3
    empty = await reader.window(one.name, "3", profile, since=SINCE, until=UNTIL)
    assert empty.rows == 0
    assert empty.features["x"].rows == 0
    assert sorted(await reader.versions(one.name)) == ["1", "2"]
    assert await reader.versions("nobody") == []


async def test_windows_count_the_same_when_their_statements_are_built_again(
    stores: tuple[PredictionStore, AuditReader], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL keeps `_BUILT` pairs of window statements; past it they are built again, same counts."""
    from predictor_sql import monitoring

    monkeypatch.setattr(monitoring, "_BUILT", 1)
    store, reader = stores
    one, _ = versions()
    await store.register_model(one)
    rows = live_rows(one)
    await store.record(at(records_for(one, rows), SINCE))
    assert one.training is not None
    assert one.training.profile is not None
    for _ in range(2):  # each bound shape in turn pushes the other's statements out
        both = await reader.window(one.name, "1", one.training.profile, since=SINCE, until=UNTIL)
        since = await reader.window(one.name, "1", one.training.profile, since=SINCE)
        assert both == since
        assert both.rows == len(rows)


async def test_labelled_predictions_carry_their_latest_feedback_per_version_and_window(
    stores: tuple[PredictionStore, AuditReader],
) -> None:
    store, reader = stores
    one, two = versions()
    for manifest in (one, two):
        await store.register_model(manifest)
    early, inside, late = (
        at(records_for(one, TRAINING[:4]), SINCE - TICK),
        at(records_for(one, TRAINING[4:10]), SINCE),
        at(records_for(one, TRAINING[10:12]), UNTIL),
    )
    theirs = at(records_for(two, TRAINING[:3]), SINCE)
    for batch in (early, inside, late, theirs):
        await store.record(batch)
    truth: dict[uuid.UUID, Any] = {}
    for i, record in enumerate([*early, *inside, *late, *theirs]):
        truth[record.prediction_id] = ("no", "yes")[i % 2]
        await store.record_feedback(
            Feedback(prediction_id=record.prediction_id, actual=truth[record.prediction_id], received_at=T0)
        )
    inside_ids = [r.prediction_id for r in inside]
    corrected = inside_ids[0]
    truth[corrected] = "yes" if truth[corrected] == "no" else "no"  # the later report counts
    await store.record_feedback(Feedback(prediction_id=corrected, actual=truth[corrected], received_at=UNTIL))
    unlabelled = at(records_for(one, TRAINING[20:22]), SINCE + dt.timedelta(minutes=5))
    await store.record(unlabelled)
    labelled = await reader.labelled(one.name, "1", since=SINCE, until=UNTIL)
    assert sorted(x.prediction.prediction_id for x in labelled) == sorted(inside_ids)  # type: ignore[type-var]
    assert {x.prediction.prediction_id: x.actual for x in labelled} == {i: truth[i] for i in inside_ids}
    assert all(x.created_at == SINCE for x in labelled)
    assert all(isinstance(x.prediction, BinaryPrediction) for x in labelled)
    # the quality of those rows, by hand
    rows = [(r.prediction, truth[r.prediction_id]) for r in inside]
    hits = sum(str(p.label) == a for p, a in rows)  # type: ignore[union-attr]
    losses = [-math.log(p.probability if a == "yes" else 1 - p.probability) for p, a in rows]  # type: ignore[union-attr]
    quality = live_quality(Task.BINARY, labelled, positive_class="yes")
    assert quality.count == 6
    assert quality.accuracy == pytest.approx(hits / 6)
    assert quality.log_loss == pytest.approx(sum(losses) / 6)
    assert len(await reader.labelled(one.name, "1")) == 12
    assert len(await reader.labelled(one.name, "2", since=SINCE, until=UNTIL)) == 3
    assert await reader.labelled(one.name, "1", since=UNTIL + TICK) == []


async def test_labelled_regression_and_integer_labels_come_back_typed(
    stores: tuple[PredictionStore, AuditReader],
) -> None:
    store, reader = stores
    name = f"audit_{uuid.uuid4().hex[:8]}"
    regression = toy_manifest(Task.REGRESSION, name=name, version="1")
    await store.register_model(regression)
    records = at(records_for(regression, TRAINING[:2]), SINCE)
    await store.record(records)
    await store.record_feedback(Feedback(prediction_id=records[0].prediction_id, actual=12.5, received_at=T0))
    labelled = await reader.labelled(name, "1", since=SINCE, until=UNTIL)
    assert [(x.actual, type(x.actual)) for x in labelled] == [(12.5, float)]
