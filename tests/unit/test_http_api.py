"""The HTTP adapter in-process (AsyncTestClient) with the fakes: statuses, bodies, problems, recording."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from predictor_core import (
    ConfigurationError,
    ModelConflict,
    ModelRegistry,
    PredictionService,
    PredictionStore,
    StoreRejected,
    StoreUnavailable,
    Task,
    ThreadedInference,
)
from predictor_litestar import ApiOptions, create_app
from tests.fakes import (
    FailingStore,
    InMemoryModelSource,
    InMemoryPredictionStore,
    SlowRuntime,
    fake_service,
    toy_manifest,
)

GOOD = {"x": 1.0, "y": 2.0, "n": 3, "flag": True, "colour": "red"}
MODELS = [
    toy_manifest(),
    toy_manifest(Task.MULTICLASS, name="multi"),
    toy_manifest(Task.REGRESSION, name="reg"),
]


def app_for(store: PredictionStore | None, options: ApiOptions | None = None, **wiring: Any) -> Litestar:
    service, registry = fake_service(MODELS, store, **wiring)
    return create_app(service, registry, options)


@pytest.fixture
def store() -> InMemoryPredictionStore:
    return InMemoryPredictionStore()


@pytest.fixture
async def client(store: InMemoryPredictionStore) -> AsyncIterator[AsyncTestClient[Any]]:
    app = app_for(store, ApiOptions(max_batch=5, max_body_bytes=10_000))
    async with AsyncTestClient(app) as c:
        yield c


async def test_predict_answers_200_with_identity_and_task_fields(client, store) -> None:
    r = await client.post("/predict", json={"features": GOOD})
    assert r.status_code == 200
    body = r.json()
    assert body["task"] == "binary"
    assert (body["model_name"], body["model_version"]) == ("toy", "1")
    assert body["label"] in ("no", "yes")
    assert 0.0 <= body["probability"] <= 1.0
    assert uuid.UUID(body["prediction_id"]) in store.records


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/models/multi/predict", {"label", "probabilities"}),
        ("/models/reg/versions/1/predict", {"value"}),
    ],
)
async def test_chosen_model_answers_its_task(client, path, fields) -> None:
    r = await client.post(path, json={"features": GOOD})
    assert r.status_code == 200
    assert fields <= set(r.json())


async def test_multiclass_probabilities_are_keyed_by_class(client) -> None:
    body = (await client.post("/models/multi/predict", json={"features": GOOD})).json()
    assert set(body["probabilities"]) == {"a", "b", "c"}
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


async def test_invalid_features_are_422_with_every_problem_located_in_the_body(client, store) -> None:
    bad = {**GOOD, "x": "nan", "n": 3.5, "colour": "pink", "extra": 1}
    r = await client.post("/predict", json={"features": bad})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    errors = r.json()["errors"]
    assert {(tuple(e["loc"]), e["code"]) for e in errors} == {
        (("features", "x"), "wrong_type"),
        (("features", "n"), "wrong_type"),
        (("features", "colour"), "unknown_category"),
        (("features", "extra"), "unknown_feature"),
    }
    assert not store.records


@pytest.mark.parametrize("value", ["1.5", "inf", "nan", True, None, [1.0], {"v": 1}])
async def test_feature_values_are_judged_strictly_not_coerced(client, value) -> None:
    r = await client.post("/predict", json={"features": {**GOOD, "x": value}})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["features", "x"]


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"1e39"])
async def test_numbers_beyond_float_range_are_422_not_finite_at_their_place(client, number) -> None:
    body = msgspec.json.encode({"features": {**GOOD, "x": 0.0}}).replace(b'"x":0.0', b'"x":' + number)
    r = await client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert [(e["loc"], e["code"]) for e in r.json()["errors"]] == [(["features", "x"], "not_finite")]


async def test_rule_violation_is_422(client) -> None:
    r = await client.post("/predict", json={"features": {**GOOD, "x": 50.0, "y": 10.0}})
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "rule_violated"


async def test_batch_answers_in_order(client, store) -> None:
    records = [{**GOOD, "x": float(i), "y": 20.0} for i in range(3)]
    r = await client.post("/predict/batch", json={"records": records})
    assert r.status_code == 200
    predictions = r.json()["predictions"]
    assert len(predictions) == 3
    stored = [store.records[uuid.UUID(p["prediction_id"])].features["x"] for p in predictions]
    assert stored == [0.0, 1.0, 2.0]


async def test_batch_is_all_or_nothing_and_lists_problems_by_record(client, store) -> None:
    records = [GOOD, {**GOOD, "y": -1.0}, GOOD, "not a record"]
    r = await client.post("/predict/batch", json={"records": records})
    assert r.status_code == 422
    locs = [e["loc"] for e in r.json()["errors"]]
    assert ["records", 1, "y"] in locs
    assert any(loc[:2] == ["records", 3] for loc in locs)
    assert not store.records


async def test_empty_batch_is_422_and_oversized_batch_is_413(client) -> None:
    r = await client.post("/predict/batch", json={"records": []})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["records"]
    r = await client.post("/predict/batch", json={"records": [GOOD] * 6})
    assert r.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b'{"features": [1, 2]}',
        b'{"records": []}',
        b'{"features": {}, "other": 1}',
        b"[]",
        b'{"features": {"x": NaN}}',
        b'{"features": {"x": ' + b"[" * 3000 + b"]" * 3000 + b"}}",
        b'{"features": {"x": ' + b"[" * 9000,
    ],
)
async def test_malformed_bodies_are_400_problems(client, body) -> None:
    r = await client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == 400
    assert "Traceback" not in r.text


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_wrong_content_type_is_415(client, content_type) -> None:
    headers = {"content-type": content_type} if content_type else {}
    r = await client.post("/predict", content=json.dumps({"features": GOOD}).encode(), headers=headers)
    assert r.status_code == 415


async def test_content_type_with_charset_is_accepted(client) -> None:
    r = await client.post(
        "/predict",
        content=json.dumps({"features": GOOD}).encode(),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 200


async def test_body_over_limit_is_413(client) -> None:
    body = json.dumps({"features": {**GOOD, "colour": "r" * 20_000}}).encode()
    r = await client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["status"] == 413


async def test_unknown_model_version_or_route_is_404(client) -> None:
    assert (await client.post("/models/nope/predict", json={"features": GOOD})).status_code == 404
    assert (await client.post("/models/toy/versions/9/predict", json={"features": GOOD})).status_code == 404
    r = await client.get("/nowhere")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_prediction_lookup_returns_exactly_what_was_sent(client) -> None:
    features = {**GOOD, "colour": None, "x": 1}
    sent = (
        await client.post("/predict", json={"features": features}, headers={"x-request-id": "r-1"})
    ).json()
    r = await client.get(f"/predictions/{sent['prediction_id']}")
    assert r.status_code == 200
    recorded = r.json()
    assert recorded["features"] == features
    assert recorded["prediction"] == sent
    assert recorded["request_id"] == "r-1"


@pytest.mark.parametrize("key", [str(uuid.UUID(int=1)), "not-a-uuid"])
async def test_unknown_prediction_is_404(client, key) -> None:
    assert (await client.get(f"/predictions/{key}")).status_code == 404
    assert (await client.post(f"/predictions/{key}/feedback", json={"actual": "yes"})).status_code == 404


async def test_feedback_is_validated_against_the_task(client, store) -> None:
    sent = (await client.post("/predict", json={"features": GOOD})).json()
    url = f"/predictions/{sent['prediction_id']}/feedback"
    assert (await client.post(url, json={"actual": "maybe"})).status_code == 422
    assert (await client.post(url, json={"actual": 1})).status_code == 422
    r = await client.post(url, json={"actual": "yes"})
    assert r.status_code == 201
    assert r.json()["actual"] == "yes"
    assert [f.actual for f in store.feedback] == ["yes"]
    reg = (await client.post("/models/reg/predict", json={"features": GOOD})).json()
    url = f"/predictions/{reg['prediction_id']}/feedback"
    assert (await client.post(url, json={"actual": "3"})).status_code == 422
    assert (await client.post(url, json={"actual": 3.5})).status_code == 201


async def test_models_describe_schema_metrics_and_provider(client) -> None:
    listed = (await client.get("/models")).json()
    assert [m["name"] for m in listed] == ["multi", "reg", "toy"]
    toy = (await client.get("/models/toy")).json()
    assert toy["versions"] == ["1"]
    assert toy["classes"] == ["no", "yes"]
    assert toy["metrics"] == {"accuracy": 0.9}
    assert toy["features"]["properties"]["x"]["x-unit"] == "mm"
    assert toy["features"]["x-rules"][0]["name"] == "y_ge_x"
    assert toy["example"] == GOOD
    multi = (await client.get("/models/multi")).json()
    assert (multi["loaded"], multi["execution"]) == (False, None)  # describing loads nothing
    assert (await client.get("/v2/models/toy/ready")).status_code == 200
    toy = (await client.get("/models/toy")).json()
    assert toy["execution"]["providers"] == ["FakeExecutionProvider"]
    assert (await client.get("/models/nope")).status_code == 404
    assert (await client.get("/models/toy/versions/2")).status_code == 404


async def test_health_probes(client) -> None:
    assert (await client.get("/health/live")).json() == {"live": True}
    assert (await client.get("/health/ready")).status_code == 200
    health = (await client.get("/health")).json()
    assert health["status"] == "ok"
    assert health["recording"] is True
    assert health["model"]["provider"] == "FakeExecutionProvider"
    assert health["database"] == {
        "backend": "memory",
        "reachable": True,
        "durable": True,
        "writable": True,
        "detail": "",
    }  # never a URL, host, user or file path: /health is open


async def test_store_down_gives_503_with_retry_after_and_not_ready() -> None:
    store = FailingStore()
    async with AsyncTestClient(app_for(store)) as c:
        r = await c.post("/predict", json={"features": GOOD})
        assert r.status_code == 503
        assert r.headers["retry-after"] == "2"
        assert "probability" not in r.text
        ready = await c.get("/health/ready")
        assert ready.status_code == 503
        assert "database unreachable" in ready.json()["detail"]
        assert (await c.get("/health/live")).status_code == 200
        store.down.clear()
        assert (await c.post("/predict", json={"features": GOOD})).status_code == 200


async def test_recording_off_is_said_on_health() -> None:
    async with AsyncTestClient(app_for(None)) as c:
        assert (await c.post("/predict", json={"features": GOOD})).status_code == 200
        health = (await c.get("/health")).json()
        assert health["recording"] is False
        assert health["database"] is None


async def test_unexpected_errors_are_500_problems_without_details() -> None:
    class Broken(InMemoryPredictionStore):
        async def record(self, records: Any, /) -> None:
            raise RuntimeError("secret connection string postgres://u:pw@h")

    async with AsyncTestClient(app_for(Broken())) as c:
        r = await c.post("/predict", json={"features": GOOD})
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "secret" not in r.text
    assert "Traceback" not in r.text


async def test_offloaded_inference_does_not_stall_the_event_loop() -> None:
    app = app_for(None, factory=lambda m: SlowRuntime(m, delay=0.3), inference=ThreadedInference())
    transport = httpx.ASGITransport(app=app)  # same event loop, concurrent requests
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        predict = asyncio.create_task(c.post("/predict", json={"features": GOOD}))
        await asyncio.sleep(0.05)
        live = await c.get("/health/live")
        still_running = not predict.done()
        assert (await predict).status_code == 200
    assert live.status_code == 200
    assert still_running  # liveness answered while inference was running in its thread


async def test_openapi_documents_every_operation_with_summary_errors_and_examples(client) -> None:
    spec = (await client.get("/docs/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op.get("summary"), (method, path)
            if method == "post" and not path.endswith("/rollback"):  # a rollback has no body
                content = op["requestBody"]["content"]["application/json"]
                assert content["examples"], (method, path)
                assert {"400", "415", "422"} <= set(op["responses"]), (method, path)
            if method == "put":
                assert op["requestBody"]["content"]["application/json"]["examples"], (method, path)
                assert {"400", "409", "415"} <= set(op["responses"]), (method, path)
    example = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    body = next(iter(example.values()))["value"]
    assert (await client.post("/predict", json=body)).status_code == 200
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/docs/redoc")).status_code == 200


@pytest.mark.parametrize("name", ["..%2F..%2Ftmp%2Fevil", "%5Ctmp", "%2Ftmp%2Fbundle", ".hidden"])
async def test_model_names_from_urls_are_never_paths(client, name) -> None:
    r = await client.post(f"/models/{name}/predict", json={"features": GOOD})
    assert r.status_code == 404
    assert (await client.get(f"/v2/models/{name}/ready")).status_code == 404


async def test_both_readiness_probes_give_one_answer_when_the_default_model_is_gone() -> None:
    source = InMemoryModelSource([toy_manifest()])
    registry = ModelRegistry(source, default_model="toy")
    app = create_app(PredictionService(registry, InMemoryPredictionStore()), registry)
    async with AsyncTestClient(app) as c:
        for path in ("/health/ready", "/v2/health/ready"):
            assert (await c.get(path)).status_code == 200
        source.manifests.clear()
        registry.refresh()
        for path in ("/health/ready", "/v2/health/ready"):
            r = await c.get(path)
            assert r.status_code == 503, path
            assert "no model 'toy'" in r.json()["detail"]
            assert r.headers["retry-after"] == "30"


@pytest.mark.parametrize(
    ("error", "status", "retry"),
    [
        (ModelConflict("model toy 1 is recorded with another ONNX file"), 409, False),
        (StoreRejected("the database refused to record predictions: value too long"), 500, False),
        (ConfigurationError("device 'cuda' requested but no GPU"), 500, False),
        (StoreUnavailable("database down", retry_after=2.0), 503, True),
    ],
)
async def test_only_outages_are_retryable(error: Exception, status: int, retry: bool) -> None:
    class Refusing(InMemoryPredictionStore):
        async def record(self, records: Any, /) -> None:
            raise error

    async with AsyncTestClient(app_for(Refusing())) as c:
        r = await c.post("/predict", json={"features": GOOD})
    assert r.status_code == status
    assert r.json()["detail"] == str(error)
    assert ("retry-after" in r.headers) is retry


async def test_handlers_are_module_level_and_shared_by_both_surfaces(client) -> None:
    from predictor_litestar.routes import health, predict

    spec = (await client.get("/docs/openapi.json")).json()["paths"]
    assert {"/predict", "/models/{name}/predict", "/models/{name}/versions/{version}/predict"} <= set(spec)
    assert spec["/health/ready"]["get"]["summary"] == spec["/v2/health/ready"]["get"]["summary"]
    assert predict.predict_one.paths == {
        "/predict",
        "/models/{name:str}/predict",
        "/models/{name:str}/versions/{version:str}/predict",
    }
    assert health.ready in health.PROBES
    assert (await client.post("/predict?name=multi", json={"features": GOOD})).json()["model_name"] == "toy"
