"""API keys over HTTP, in-process with the fakes: 401 / 403 / 429 per route family, headers, what is recorded,
and the admin routes that move aliases."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from predictor_core import (
    AccessControl,
    GoldenSet,
    LocalRateLimiter,
    ModelLifecycle,
    ModelRegistry,
    PredictionService,
    new_key,
    parse_rate,
    validate,
)
from predictor_litestar import Observability, create_app
from predictor_litestar.access import SCOPE, guard, metrics_guard
from tests.fakes import (
    FakeRuntime,
    InMemoryAliasStore,
    InMemoryKeyStore,
    InMemoryModelSource,
    InMemoryPredictionStore,
    toy_manifest,
)

GOOD = {"x": 1.0, "y": 2.0, "n": 3, "flag": True, "colour": "red"}
NOW = dt.datetime(2026, 12, 10, tzinfo=dt.UTC)
INPUTS = [
    {"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]},
    {"name": "y", "datatype": "FP64", "shape": [1], "data": [2.0]},
    {"name": "n", "datatype": "INT64", "shape": [1], "data": [3]},
    {"name": "flag", "datatype": "BOOL", "shape": [1], "data": [True]},
    {"name": "colour", "datatype": "BYTES", "shape": [1], "data": ["red"]},
]


def golden(version: str):
    """A toy version whose golden set is what the fake model answers: it may take traffic."""
    manifest = toy_manifest(version=version)
    outputs = FakeRuntime(manifest).infer(validate(manifest, [GOOD], "records"))
    return msgspec.structs.replace(
        manifest,
        golden=GoldenSet(
            records=(GOOD,),
            labels=tuple(outputs.labels.tolist()),
            probabilities=tuple(tuple(float(p) for p in row) for row in outputs.probabilities),
        ),
    )


class Deployment:
    """An app with auth on over the fakes, and one key per scope (plus a rate-limited one)."""

    def __init__(self) -> None:
        self.store = InMemoryPredictionStore()
        self.aliases = InMemoryAliasStore()
        self.registry = ModelRegistry(
            InMemoryModelSource([golden("1"), golden("2"), toy_manifest(version="3")]), default_model="toy"
        )
        self.keys = InMemoryKeyStore()
        self.tokens: dict[str, str] = {}
        self.ids: dict[str, str] = {}
        for scope in ("predict", "read", "feedback", "admin"):
            key, token = new_key(scope, scope, now=NOW)
            self.keys.keys[key.id] = key
            self.tokens[scope], self.ids[scope] = token, key.id
        key, token = new_key("limited", "predict", rate=parse_rate("3/min", 2), now=NOW)
        self.keys.keys[key.id] = key
        self.tokens["limited"], self.ids["limited"] = token, key.id
        self.access = AccessControl(self.keys, LocalRateLimiter())
        self.service = PredictionService(self.registry, self.store)
        self.lifecycle = ModelLifecycle(self.registry, self.aliases)

    def app(self, *, auth: bool = True):
        return create_app(
            self.service, self.registry, lifecycle=self.lifecycle, access=self.access if auth else None
        )

    def bearer(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"}


@pytest.fixture
def deployment() -> Deployment:
    return Deployment()


@pytest.fixture
async def client(deployment: Deployment) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(deployment.app()) as c:
        yield c


async def recorded_id(client, deployment: Deployment) -> str:
    r = await client.post("/predict", json={"features": GOOD}, headers=deployment.bearer("predict"))
    assert r.status_code == 200, r.text
    return str(r.json()["prediction_id"])


ROUTES = [  # (family scope, method, path, body)
    ("predict", "POST", "/predict", {"features": GOOD}),
    ("predict", "POST", "/predict/batch", {"records": [GOOD]}),
    ("predict", "POST", "/models/toy/predict", {"features": GOOD}),
    ("predict", "POST", "/models/toy/versions/1/predict/batch", {"records": [GOOD]}),
    ("predict", "POST", "/v2/models/toy/infer", {"inputs": INPUTS}),
    ("read", "GET", "/predictions/{id}", None),
    ("read", "GET", "/models", None),
    ("read", "GET", "/models/toy", None),
    ("read", "GET", "/models/toy/aliases", None),
    ("read", "GET", "/v2/models/toy", None),
    ("read", "GET", "/v2", None),
    ("feedback", "POST", "/predictions/{id}/feedback", {"actual": "yes"}),
    ("admin", "PUT", "/models/toy/aliases/production", {"version": "1"}),
]


@pytest.mark.parametrize(("scope", "method", "path", "body"), ROUTES, ids=lambda v: str(v))
async def test_each_route_family_needs_its_scope(client, deployment, scope, method, path, body) -> None:
    path = path.replace("{id}", await recorded_id(client, deployment))

    async def call(headers: dict[str, str]):
        return await client.request(method, path, json=body, headers=headers)

    missing = await call({})
    assert missing.status_code == 401, missing.text
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.headers["www-authenticate"] == 'Bearer realm="predictor-core"'
    wrong = await call({"Authorization": "Bearer pk_0123456789ab_" + "x" * 43})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == 'Bearer realm="predictor-core", error="invalid_token"'
    assert wrong.json()["detail"] == "the API key is not valid"
    other = next(s for s in ("predict", "read", "feedback", "admin") if s != scope)
    forbidden = await call(deployment.bearer(other))
    assert forbidden.status_code == 403, forbidden.text
    assert f'scope="{scope}"' in forbidden.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in forbidden.headers["www-authenticate"]
    if path.startswith("/v2"):
        assert forbidden.json()["error"] == forbidden.json()["detail"]  # what v2 clients read
    allowed = await call(deployment.bearer(scope))
    assert allowed.status_code in (200, 201), allowed.text
    by_header = await call({"X-API-Key": deployment.tokens[scope]})
    assert by_header.status_code in (200, 201), by_header.text


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/health", "/v2/health/live", "/docs"])
async def test_probes_and_docs_stay_open(client, path: str) -> None:
    assert (await client.get(path)).status_code == 200


async def test_options_answers_stay_open(client) -> None:
    r = await client.options("/predict")
    assert r.status_code == 204
    assert "POST" in r.headers["allow"]


async def test_every_handler_declares_its_scope_and_guarded_ones_document_401_403_429(client) -> None:
    app, checked = client.app, 0
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if guard not in handler.resolve_guards() or handler.http_methods == {"OPTIONS"}:
                continue  # not behind the access guard (docs, /metrics), or Litestar's own OPTIONS
            assert SCOPE in handler.opt, (route.path, handler.handler_name)
            checked += 1
    assert checked >= 20
    spec = (await client.get("/docs/openapi.json")).json()
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            guarded = "security" in op
            assert guarded is not path.startswith(("/health", "/v2/health")), (method, path)
            if guarded:
                assert {"401", "403", "429"} <= set(op["responses"]), (method, path)
                assert "scope" in op["description"], (method, path)


async def test_a_handler_without_a_scope_needs_admin() -> None:
    from litestar import get

    from predictor_litestar.access import needed_scope

    @get("/unmarked")
    async def unmarked() -> None: ...

    assert needed_scope(unmarked) == "admin"


async def test_two_different_keys_are_refused(client, deployment) -> None:
    headers = {**deployment.bearer("predict"), "X-API-Key": deployment.tokens["read"]}
    r = await client.post("/predict", json={"features": GOOD}, headers=headers)
    assert r.status_code == 401
    assert "two different API keys" in r.json()["detail"]
    same = {**deployment.bearer("predict"), "X-API-Key": deployment.tokens["predict"]}
    assert (await client.post("/predict", json={"features": GOOD}, headers=same)).status_code == 200


async def test_a_revoked_key_is_refused_once_the_cache_period_passed(deployment) -> None:
    clock = [0.0]
    deployment.access = AccessControl(deployment.keys, clock=lambda: clock[0])
    async with AsyncTestClient(deployment.app()) as client:
        headers = deployment.bearer("read")
        assert (await client.get("/models", headers=headers)).status_code == 200
        await deployment.keys.revoke("read", NOW)
        clock[0] = 1.0
        assert (await client.get("/models", headers=headers)).status_code == 401


async def test_over_its_limit_a_key_gets_429_with_retry_after_and_the_ratelimit_fields(
    client, deployment
) -> None:
    headers = deployment.bearer("limited")
    first = await client.post("/predict", json={"features": GOOD}, headers=headers)
    assert first.status_code == 200
    assert first.headers["ratelimit-policy"] == '"default";q=3;w=60'
    assert first.headers["ratelimit"] == '"default";r=1;t=20'
    second = await client.post("/predict", json={"features": GOOD}, headers=headers)
    assert second.headers["ratelimit"] == '"default";r=0;t=40'
    refused = await client.post("/predict", json={"features": GOOD}, headers=headers)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.headers["retry-after"] == "20"
    assert refused.headers["ratelimit-policy"] == '"default";q=3;w=60'
    assert refused.headers["ratelimit"].startswith('"default";r=0;t=')
    assert refused.json()["title"] == "Too many requests"
    assert "limited to 3/min (burst 2)" in refused.json()["detail"]
    other = await client.post("/predict", json={"features": GOOD}, headers=deployment.bearer("predict"))
    assert other.status_code == 200  # another key, another bucket
    assert "ratelimit" not in other.headers  # not limited: no fields


async def test_the_key_id_is_recorded_with_predictions_and_feedback_never_the_secret(
    client, deployment
) -> None:
    prediction_id = await recorded_id(client, deployment)
    record = deployment.store.records[uuid.UUID(prediction_id)]
    assert record.key_id == deployment.ids["predict"]
    looked_up = await client.get(f"/predictions/{prediction_id}", headers=deployment.bearer("read"))
    assert looked_up.json()["key_id"] == deployment.ids["predict"]
    infer = await client.post(
        "/v2/models/toy/infer", json={"inputs": INPUTS}, headers=deployment.bearer("predict")
    )
    v2_id = infer.json()["outputs"][-1]["data"][0]
    assert deployment.store.records[uuid.UUID(v2_id)].key_id == deployment.ids["predict"]
    r = await client.post(
        f"/predictions/{prediction_id}/feedback",
        json={"actual": "yes"},
        headers=deployment.bearer("feedback"),
    )
    assert r.status_code == 201
    assert deployment.store.feedback[-1].key_id == deployment.ids["feedback"]
    secret = deployment.tokens["predict"].split("_", 2)[2]
    assert secret not in repr(deployment.store.records) + repr(deployment.store.feedback)


async def test_without_auth_every_route_is_open_and_no_key_is_recorded(deployment) -> None:
    async with AsyncTestClient(deployment.app(auth=False)) as client:
        r = await client.post("/predict", json={"features": GOOD})
        assert r.status_code == 200
        assert deployment.store.records[uuid.UUID(r.json()["prediction_id"])].key_id is None
        moved = await client.put("/models/toy/aliases/production", json={"version": "1"})
        assert moved.status_code == 200
        assert moved.json()["changed_by"] == "http:anonymous"
        health = (await client.get("/health")).json()
        assert health["access"] == {"auth": False, "rate_limits": None, "shared": False}


async def test_health_says_where_the_rate_limits_are_counted(client) -> None:
    access = (await client.get("/health")).json()["access"]
    assert access["auth"] is True
    assert access["shared"] is False
    assert "per process" in access["rate_limits"]


async def test_admin_moves_rolls_back_and_removes_aliases_recorded_with_its_key(client, deployment) -> None:
    admin = deployment.bearer("admin")
    moved = await client.put("/models/toy/aliases/production", json={"version": "1"}, headers=admin)
    assert moved.status_code == 200, moved.text
    assert moved.json()["to_version"] == "1"
    assert moved.json()["changed_by"] == f"key:{deployment.ids['admin']}"
    assert deployment.registry.resolve("toy").version == "1"
    assert (
        await client.put("/models/toy/aliases/production", json={"version": "2"}, headers=admin)
    ).is_success
    back = await client.post("/models/toy/aliases/production/rollback", headers=admin)
    assert back.status_code == 200, back.text
    assert (back.json()["from_version"], back.json()["to_version"]) == ("2", "1")
    shadow = await client.put("/models/toy/aliases/shadow", json={"version": "2"}, headers=admin)
    assert shadow.status_code == 200
    removed = await client.delete("/models/toy/aliases/shadow", headers=admin)
    assert removed.status_code == 200
    assert removed.json()["to_version"] is None
    aliases = (await client.get("/models/toy/aliases", headers=deployment.bearer("read"))).json()
    assert aliases["aliases"] == {"production": "1"}
    assert {c["changed_by"] for c in aliases["history"]} == {f"key:{deployment.ids['admin']}"}
    assert len(aliases["history"]) == 5


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "said"),
    [
        ("PUT", "/models/toy/aliases/production", {"version": "3"}, 409, "no golden set"),
        ("PUT", "/models/toy/aliases/production", {"version": "9"}, 404, "9"),
        ("PUT", "/models/nope/aliases/production", {"version": "1"}, 404, "nope"),
        ("PUT", "/models/toy/aliases/production", {"version": 1}, 400, ""),
        ("PUT", "/models/toy/aliases/production", {"version": "1", "by": "me"}, 400, ""),
        ("PUT", "/models/toy/aliases/-bad", {"version": "1"}, 400, "alias"),
        ("POST", "/models/toy/aliases/production/rollback", None, 409, "no change to roll back"),
        ("DELETE", "/models/toy/aliases/staging", None, 404, "has no alias 'staging'"),
    ],
)
async def test_admin_refusals_say_why_and_move_nothing(
    client, deployment, method, path, body, status, said
) -> None:
    r = await client.request(method, path, json=body, headers=deployment.bearer("admin"))
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert said in r.json()["detail"]
    assert await deployment.aliases.aliases() == {}
    assert deployment.aliases.changes == []


async def test_admin_routes_are_refused_to_every_other_scope(client, deployment) -> None:
    for scope in ("predict", "read", "feedback"):
        for method, path in [
            ("PUT", "/models/toy/aliases/production"),
            ("POST", "/models/toy/aliases/production/rollback"),
            ("DELETE", "/models/toy/aliases/production"),
        ]:
            r = await client.request(method, path, json={"version": "1"}, headers=deployment.bearer(scope))
            assert r.status_code == 403, (scope, method, path)
    assert deployment.aliases.changes == []


async def test_metrics_beyond_loopback_need_a_key_with_the_read_scope(deployment) -> None:
    def app(access: AccessControl | None):
        observability = Observability(metrics_guard=metrics_guard)
        return create_app(deployment.service, deployment.registry, access=access, observability=observability)

    async with AsyncTestClient(app(deployment.access)) as client:  # "testclient": not loopback
        missing = await client.get("/metrics")
        predict = await client.get("/metrics", headers=deployment.bearer("predict"))
        admin = await client.get("/metrics", headers=deployment.bearer("admin"))
        read = await client.get("/metrics", headers=deployment.bearer("read"))
        by_header = await client.get("/metrics", headers={"X-API-Key": deployment.tokens["read"]})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="predictor-core"'
    for refused in (predict, admin):
        assert refused.status_code == 403, refused.text
        assert 'scope="read"' in refused.headers["www-authenticate"]
    for allowed in (read, by_header):
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["content-type"].startswith("text/plain; version=0.0.4")
    async with AsyncTestClient(app(None)) as client:  # auth off: no key to check, loopback only
        off = await client.get("/metrics", headers=deployment.bearer("read"))
    assert off.status_code == 403
    assert "PREDICTOR_METRICS=open" in off.json()["detail"]


async def test_with_auth_off_no_handler_is_guarded_and_the_spec_still_names_the_scopes(deployment) -> None:
    def handlers(app) -> list[Any]:
        return [h for route in app.routes for h in getattr(route, "route_handlers", [])]

    off, on = deployment.app(auth=False), deployment.app()
    assert not any(guard in h.resolve_guards() for h in handlers(off))
    assert sum(guard in h.resolve_guards() for h in handlers(on)) >= 20  # the routers themselves keep it
    async with AsyncTestClient(off) as client:
        spec = (await client.get("/docs/openapi.json")).json()
        assert (await client.post("/predict", json={"features": GOOD})).status_code == 200
        assert (await client.get("/models")).status_code == 200
    operation = spec["paths"]["/predict"]["post"]
    assert "security" in operation
    assert "`predict` scope (when auth is on)" in operation["description"]
