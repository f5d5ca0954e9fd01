"""`predictor db ...` against a real database: upgrade, import, query, statistics."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import msgspec
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from predictor.cli import main
from predictor_core import Task
from predictor_sql import SqlPredictionStore, create_engine
from predictor_sql.datasets import import_rows
from predictor_sql.tables import dataset_rows
from tests.fakes import fake_service, toy_manifest

MANIFEST = toy_manifest(Task.BINARY, name="cli_toy")
ROWS = [{"x": float(i), "y": 100.0, "n": 1, "flag": True, "colour": "green"} for i in range(0, 100, 10)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "fresh_pg_url")


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


async def record_some(url: str) -> list:
    store = SqlPredictionStore(url)
    await store.start()
    try:
        service = fake_service([MANIFEST], store)[0]
        predictions = await service.predict(ROWS, request_id="cli-test")
        await service.record_feedback(predictions[0].prediction_id, predictions[0].label)
        await service.record_feedback(
            predictions[-1].prediction_id, "no" if predictions[-1].label == "yes" else "yes"
        )
        return predictions
    finally:
        await store.close()


def test_upgrade_is_idempotent(url: str) -> None:
    assert "schema at revision head" in invoke("db", "upgrade", "--database-url", url)


def test_predictions_as_csv_and_json_and_stats(url: str) -> None:
    predictions = asyncio.run(record_some(url))
    out = invoke("db", "predictions", "--database-url", url, "--model", MANIFEST.name, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["prediction_id"] for r in rows} == {str(p.prediction_id) for p in predictions}
    assert {r["request_id"] for r in rows} == {"cli-test"}

    yes = sum(p.label == "yes" for p in predictions)
    out = invoke(
        "db", "predictions", "--database-url", url, "--label", "yes", "--format", "json", "--features"
    )
    assert len(json.loads(out)) == yes
    assert all(set(r["features"]) == set(ROWS[0]) for r in json.loads(out))

    out = invoke("db", "predictions", "--database-url", url, "--since", "2999-01-01", "--format", "json")
    assert json.loads(out) == []

    document = json.loads(invoke("db", "stats", "--database-url", url, "--format", "json"))
    counts = {(c["model"], c["label"]): c["predictions"] for c in document["counts"]}
    assert counts[(MANIFEST.name, "yes")] == yes
    [latency] = [entry for entry in document["latency"] if entry["model"] == MANIFEST.name]
    assert latency["predictions"] == len(ROWS)
    assert 0 <= latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]
    [accuracy] = document["accuracy"]
    assert accuracy == {
        "model": MANIFEST.name,
        "version": "1",
        "with_feedback": 2,
        "correct": 1,
        "accuracy": 0.5,
    }
    assert "live accuracy" in invoke("db", "stats", "--database-url", url)


def test_a_bad_date_is_a_clear_error(url: str) -> None:
    result = CliRunner().invoke(main, ["db", "predictions", "--database-url", url, "--since", "yesterday"])
    assert result.exit_code == 2
    assert "not an ISO date" in result.output


async def test_dataset_import_is_bulk_and_idempotent(url: str) -> None:
    rows = [({"a": float(i), "b": None if i % 3 else "x"}, i % 2) for i in range(2500)]
    engine = create_engine(url)
    chunks: list[int] = []
    try:
        first = await import_rows(engine, "toy", "parity", rows, progress=chunks.append)
        again = await import_rows(engine, "toy", "parity", rows)
        changed = await import_rows(engine, "toy", "parity", rows[:10])
        async with engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(dataset_rows))).scalar_one()
    finally:
        await engine.dispose()
    assert (first.changed, again.changed, changed.changed) == (True, False, True)
    assert chunks == [1000, 1000, 500]
    assert count == 10


def test_labels_keep_their_type_and_ids_are_never_cut(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    integers = msgspec.structs.replace(MANIFEST, name="cli_int", classes=(0, 1), positive_class=1)

    async def record() -> list:
        store = SqlPredictionStore(url)
        await store.start()
        try:
            return await fake_service([integers], store)[0].predict(ROWS[:3])
        finally:
            await store.close()

    predictions = asyncio.run(record())
    out = json.loads(
        invoke("db", "predictions", "--database-url", url, "--model", "cli_int", "--format", "json")
    )
    assert sorted(r["label"] for r in out) == sorted(p.label for p in predictions)
    assert all(type(r["label"]) is int for r in out)
    monkeypatch.setenv("COLUMNS", "80")
    table = invoke("db", "predictions", "--database-url", url, "--model", "cli_int")
    for p in predictions:
        assert str(p.prediction_id) in table
