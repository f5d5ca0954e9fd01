"""`GET /models/{name}/drift` and `/quality` in-process, over the fakes: answers, errors, OpenAPI, scope."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from predictor_core import ModelMonitor, PredictionService, Scope
from predictor_litestar import create_app
from predictor_litestar.access import SCOPE
from predictor_litestar.routes import monitoring
from tests.fakes import (
    CREATED,
    InMemoryAuditReader,
    InMemoryPredictionStore,
    fake_service,
    toy_manifest,
    with_profile,
)

ROWS = [
    {
        "x": float(i % 40),
        "y": float(i % 40 + 5),
        "n": i % 10,
        "flag": i % 2 == 0,
        "colour": ("red", "blue")[i % 2],
    }
    for i in range(500)
]
PROFILED = with_profile(toy_manifest(), ROWS)
OLD = toy_manifest(name="old")
SINCE = (CREATED - dt.timedelta(minutes=1)).isoformat()


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Any]]:
    store = InMemoryPredictionStore()
    service, registry = fake_service([PROFILED, OLD], store, clock=lambda: CREATED)
    await service.predict(ROWS)
    await service.predict(ROWS[:3], model="old")
    monitor = ModelMonitor(
        store, InMemoryAuditReader(store), models=registry, clock=lambda: CREATED + dt.timedelta(hours=1)
    )
    async with AsyncTestClient(create_app(service, registry, monitor=monitor)) as c:
        yield c


async def test_drift_answers_one_entry_per_feature_and_output(client: AsyncTestClient[Any]) -> None:
    r = await client.get("/models/toy/drift", params={"since": SINCE})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model"], body["version"], body["rows"], body["status"]) == ("toy", "1", 500, "stable")
    assert [e["feature"] for e in body["features"]] == [
        "x", "y", "n", "flag", "colour", "output.label", "output.probability",
    ]  # fmt: skip
    assert all(
        {"feature", "psi", "status", "noise", "bins", "training", "live"} <= set(e) for e in body["features"]
    )
    assert all(e["psi"] == pytest.approx(0.0, abs=1e-12) for e in body["features"])
    versioned = await client.get("/models/toy/versions/1/drift", params={"since": SINCE, "min_rows": 600})
    assert versioned.json()["status"] == "insufficient"
    assert versioned.json()["thresholds"] == {"watch": 0.1, "drift": 0.2, "min_rows": 600}
    # the default window is the day before now (the monitor's clock): the rows are in it
    assert (await client.get("/models/toy/drift")).json()["rows"] == 500


async def test_drift_refusals_are_problems(client: AsyncTestClient[Any]) -> None:
    old = await client.get("/models/old/drift")
    assert old.status_code == 404
    assert "no training profile" in old.json()["detail"]
    assert (await client.get("/models/nope/drift")).status_code == 404
    backwards = await client.get(
        "/models/toy/drift", params={"since": "2026-12-02T00:00:00", "until": "2026-12-01T00:00:00"}
    )
    assert backwards.status_code == 400
    assert "must start before it ends" in backwards.text
    thresholds = await client.get("/models/toy/drift", params={"watch": 0.5, "drift": 0.3})
    assert thresholds.status_code == 400
    assert (await client.get("/models/toy/drift", params={"since": "yesterday"})).status_code == 400


async def test_quality_answers_with_counts(client: AsyncTestClient[Any]) -> None:
    r = await client.get("/models/toy/quality", params={"since": SINCE, "periods": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["task"], body["overall"]["count"], len(body["periods"])) == ("binary", 0, 3)
    assert body["exported"] == {"accuracy": 0.9}
    old = await client.get("/models/old/versions/1/quality")  # no profile needed
    assert old.status_code == 200


async def test_without_a_store_there_is_nothing_to_monitor() -> None:
    service, registry = fake_service([PROFILED])
    async with AsyncTestClient(create_app(service, registry)) as c:
        r = await c.get("/models/toy/drift")
    assert r.status_code == 404
    assert "records no predictions" in r.json()["detail"]


async def test_the_routes_are_documented_and_need_the_read_scope(client: AsyncTestClient[Any]) -> None:
    paths = (await client.get("/docs/openapi.json")).json()["paths"]
    for path in ("/models/{name}/drift", "/models/{name}/versions/{version}/drift", "/models/{name}/quality"):
        assert "get" in paths[path], path
    drift = paths["/models/{name}/drift"]["get"]
    assert {p["name"] for p in drift["parameters"]} >= {
        "name",
        "since",
        "until",
        "watch",
        "drift",
        "min_rows",
    }
    assert {"200", "400", "404"} <= set(drift["responses"])
    for handler in monitoring.HANDLERS:
        assert handler.opt[SCOPE] == Scope.READ
    assert isinstance(PredictionService, type)
