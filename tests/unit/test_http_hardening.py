"""Hostile and odd requests in-process (issue 14, hardening): each one gets a bounded, explained 4xx.

Repeated JSON keys on every route that reads JSON, error answers capped, request ids the database can
keep, content codings, lone surrogates, `Cache-Control` on recorded inputs, security headers on every
answer, CORS off unless configured.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from predictor_core import Task
from predictor_litestar import ApiOptions, create_app
from predictor_litestar.headers import API_POLICY, DOCS_POLICY
from tests.fakes import InMemoryPredictionStore, fake_service, toy_manifest

GOOD = {"x": 1.0, "y": 2.0, "n": 3, "flag": True, "colour": "red"}
JSON = {"content-type": "application/json"}
TYPES = {"x": "FP64", "y": "FP64", "n": "INT64", "flag": "BOOL", "colour": "BYTES"}


def app_for(store: InMemoryPredictionStore | None, options: ApiOptions | None = None) -> Any:
    service, registry = fake_service([toy_manifest(), toy_manifest(Task.REGRESSION, name="reg")], store)
    return create_app(service, registry, options)


@pytest.fixture
def store() -> InMemoryPredictionStore:
    return InMemoryPredictionStore()


@pytest.fixture
async def client(store) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app_for(store)) as c:
        yield c


def v2_body(**extra: Any) -> dict[str, Any]:
    inputs = [{"name": k, "datatype": t, "shape": [1], "data": [GOOD[k]]} for k, t in TYPES.items()]
    return {"inputs": inputs, **extra}


async def predicted_id(client) -> str:
    r = await client.post("/predict", json={"features": GOOD})
    assert r.status_code == 200, r.text
    return str(r.json()["prediction_id"])


def body_with_repeat(text: str) -> bytes:
    return text.encode()


REPEATED = [
    ("/predict", '{"features": {"x": 1.0, "x": "nan", "y": 2.0, "n": 3, "flag": true, "colour": "red"}}'),
    ("/predict", '{"features": {"x": 1.0}, "features": {"y": 2.0}}'),
    (
        "/predict/batch",
        '{"records": [{"x": 1.0, "y": 2.0, "n": 3, "flag": true, "colour": "red"},'
        ' {"x": 1.0, "y": 2.0, "n": 3, "flag": true, "colour": "red", "colour": "blue"}]}',
    ),
    ("/models/toy/predict", '{"features": {"x": 1.0, "y": 2.0, "n": 3, "flag": true, "flag" : false}}'),
]


@pytest.mark.parametrize(("path", "text"), REPEATED)
async def test_repeated_keys_are_refused_naming_the_key_and_the_object(client, store, path, text) -> None:
    r = await client.post(path, content=text.encode(), headers=JSON)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    [error] = r.json()["errors"]
    assert error["code"] == "duplicate_key"
    key = error["loc"][-1]
    assert f'duplicate key "{key}"' in r.json()["detail"]
    assert not store.records


async def test_the_repeated_key_is_located_in_the_batch(client) -> None:
    record = json.dumps(GOOD)
    text = f'{{"records": [{record}, {record}, {record[:-1]}, "y": 3.0}}]}}'
    r = await client.post("/predict/batch", content=text.encode(), headers=JSON)
    assert r.status_code == 400
    assert r.json()["errors"][0]["loc"] == ["records", 2, "y"]
    assert "$.records[2]" in r.json()["detail"]


async def test_repeated_key_in_feedback_is_refused(client) -> None:
    prediction_id = await predicted_id(client)
    r = await client.post(
        f"/predictions/{prediction_id}/feedback", content=b'{"actual": "yes", "actual": "no"}', headers=JSON
    )
    assert r.status_code == 400
    assert r.json()["errors"][0]["loc"] == ["actual"]


async def test_repeated_key_in_an_alias_move_is_refused(client) -> None:
    r = await client.put(
        "/models/toy/aliases/production", content=b'{"version": "1", "version": "2"}', headers=JSON
    )
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["code"] == "duplicate_key"


async def test_repeated_keys_in_v2_json_and_in_the_header_of_binary_tensors(client, store) -> None:
    text = json.dumps(v2_body()).replace('"shape": [1]', '"shape": [1], "shape": [1]', 1)
    r = await client.post("/v2/models/toy/infer", content=text.encode(), headers=JSON)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["loc"] == ["inputs", 0, "shape"]
    assert "shape" in r.json()["error"]  # what v2 clients read

    header = {
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "parameters": {"binary_data_size": 8}}],
        "id": "a",
    }
    head = msgspec.json.encode(header).replace(b'"id":"a"', b'"id":"a","id":"b"')
    r = await client.post(
        "/v2/models/toy/infer",
        content=head + msgspec.json.encode(1.0)[:0] + b"\x00" * 8,
        headers={
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(len(head)),
        },
    )
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["loc"] == ["id"]
    assert not store.records


@pytest.mark.parametrize(
    "text",
    [
        '{"features": {"x": 1.0, "y": 2.0, "n": 3, "flag": true, "colour": "red"}}',
        '{ "features" : { "x" :1.0 ,"y"\t:\n2.0, "n": 3, "flag": true, "colour": "red" } }',
    ],
)
async def test_valid_bodies_in_any_layout_pass(client, text) -> None:
    r = await client.post("/predict", content=text.encode(), headers=JSON)
    assert r.status_code == 200, r.text


async def test_colons_in_strings_and_null_members_are_no_repeated_keys(client) -> None:
    r = await client.post("/v2/models/toy/infer", json=v2_body(id="urn:uuid:1:2", parameters=None))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "urn:uuid:1:2"
    r = await client.post("/predict", json={"features": {**GOOD, 'k":': "a:b"}})
    assert r.status_code == 422  # judged by the validator: an unknown feature, no repeated key
    assert r.json()["errors"][0]["code"] == "unknown_feature"


async def test_a_flood_of_unknown_keys_gets_a_short_answer_with_the_total(client) -> None:
    features = {**GOOD, **{f"{i:x}": 0 for i in range(100_000)}}
    body = msgspec.json.encode({"features": features})
    assert len(body) < 1_048_576
    started = time.process_time()
    r = await client.post("/predict", content=body, headers=JSON)
    spent = time.process_time() - started
    assert r.status_code == 422
    problem = r.json()
    assert len(problem["errors"]) == 100
    assert problem["total_errors"] == 100_000
    assert problem["errors"][0]["loc"] == ["features", "0"]
    assert problem["detail"] == "100000 invalid values; errors lists the first 100"
    assert len(r.content) < 20_000
    print(f"100k unknown keys: {spent * 1000:.1f} ms CPU, {len(r.content)} bytes answered")


async def test_few_problems_are_all_listed_with_their_total(client) -> None:
    r = await client.post("/predict", json={"features": {**GOOD, "x": "a", "y": "b"}})
    assert r.json()["total_errors"] == len(r.json()["errors"]) == 2
    assert r.json()["detail"] == "2 invalid values; see errors"


async def test_v2_requests_over_the_batch_limit_are_413() -> None:
    service, registry = fake_service([toy_manifest()], None)
    app = create_app(service, registry, ApiOptions(max_batch=3))
    records = [GOOD] * 4
    inputs = [
        {"name": k, "datatype": t, "shape": [4], "data": [r[k] for r in records]} for k, t in TYPES.items()
    ]
    async with AsyncTestClient(app) as client:
        r = await client.post("/v2/models/toy/infer", json={"inputs": inputs})
    assert r.status_code == 413
    assert "at most 3" in r.json()["detail"]


@pytest.mark.parametrize(
    ("request_id", "code"),
    [("a" * 129, "too_long"), ("abc\x00def", "control_character"), ("tab\there", "control_character")],
)
async def test_v2_ids_the_database_cannot_keep_are_refused(client, store, request_id, code) -> None:
    r = await client.post("/v2/models/toy/infer", json=v2_body(id=request_id))
    assert r.status_code == 400, r.text
    [error] = r.json()["errors"]
    assert (error["loc"], error["code"]) == (["id"], code)
    assert r.json()["detail"].startswith("id ")
    assert not store.records


async def test_a_v2_id_of_128_characters_is_kept(client, store) -> None:
    r = await client.post("/v2/models/toy/infer", json=v2_body(id="é" * 128))
    assert r.status_code == 200
    [record] = store.records.values()
    assert record.request_id == "é" * 128


@pytest.mark.parametrize(("request_id", "code"), [("r" * 129, "too_long"), ("a\x01b", "control_character")])
async def test_request_ids_the_database_cannot_keep_are_refused(client, store, request_id, code) -> None:
    for path, body in [("/predict", {"features": GOOD}), ("/predict/batch", {"records": [GOOD]})]:
        r = await client.post(path, json=body, headers={"x-request-id": request_id})
        assert r.status_code == 400, r.text
        [error] = r.json()["errors"]
        assert (error["loc"], error["code"]) == (["headers", "X-Request-ID"], code)
    assert not store.records


async def test_a_request_id_of_128_characters_is_kept_whole(client, store) -> None:
    r = await client.post("/predict", json={"features": GOOD}, headers={"x-request-id": "r" * 128})
    assert r.status_code == 200
    [record] = store.records.values()
    assert record.request_id == "r" * 128


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "gzip, identity"])
async def test_content_codings_are_415_saying_so(client, coding) -> None:
    compressed = gzip.compress(msgspec.json.encode({"features": GOOD}))
    headers = {**JSON, "content-encoding": coding}
    for path in ("/predict", "/v2/models/toy/infer"):
        r = await client.post(path, content=compressed, headers=headers)
        assert r.status_code == 415, r.text
        assert "Content-Encoding" in r.json()["detail"]
        assert r.headers["accept-encoding"] == "identity"


async def test_identity_coding_is_accepted(client) -> None:
    r = await client.post("/predict", json={"features": GOOD}, headers={"content-encoding": "identity"})
    assert r.status_code == 200


async def test_gzip_bytes_without_a_coding_are_415_not_byte_0(client) -> None:
    compressed = gzip.compress(msgspec.json.encode({"features": GOOD}))
    r = await client.post("/predict", content=compressed, headers=JSON)
    assert r.status_code == 415
    assert "gzip-compressed" in r.json()["detail"]
    assert "byte 0" not in r.json()["detail"]


@pytest.mark.parametrize("escape", [r"\ud800", r"\udc00", r"\ud800x", r"\ud800\u0041"])
async def test_a_lone_surrogate_is_named_not_reported_as_truncated(client, escape) -> None:
    text = '{"features": {"x": 1.0, "colour": "' + escape + '"}}'
    r = await client.post("/predict", content=text.encode(), headers=JSON)
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert "surrogate" in detail
    assert "truncated" not in detail


async def test_truncated_json_is_still_called_truncated(client) -> None:
    r = await client.post("/predict", content=b'{"features": {"x": 1.0', headers=JSON)
    assert r.status_code == 400
    assert "truncated" in r.json()["detail"]


async def test_recorded_inputs_and_feedback_are_never_cached(client) -> None:
    prediction_id = await predicted_id(client)
    r = await client.get(f"/predictions/{prediction_id}")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    r = await client.post(f"/predictions/{prediction_id}/feedback", json={"actual": "yes"})
    assert r.status_code == 201
    assert r.headers["cache-control"] == "no-store"


async def test_security_headers_on_every_answer(client) -> None:
    prediction_id = await predicted_id(client)
    answers = [
        await client.post("/predict", json={"features": GOOD}),
        await client.post("/predict", json={"features": {}}),
        await client.get(f"/predictions/{prediction_id}"),
        await client.get(f"/predictions/{uuid.uuid4()}"),
        await client.get("/no/such/route"),
        await client.delete("/predict"),
        await client.get("/health/live"),
        await client.get("/v2/models/toy"),
        await client.get("/docs/openapi.json"),
    ]
    for r in answers:
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["content-security-policy"] == API_POLICY or r.url.path.startswith("/docs"), r.url
        assert "server" not in r.headers


async def test_docs_pages_keep_their_same_origin_policy(client) -> None:
    for path in ("/docs", "/docs/redoc", "/docs/assets/swagger-ui/swagger-ui.css"):
        r = await client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-security-policy"] == DOCS_POLICY
        assert r.headers["x-content-type-options"] == "nosniff"
    assert "'unsafe-inline'" in DOCS_POLICY
    assert "frame-ancestors 'none'" in DOCS_POLICY


async def test_cors_is_off_unless_origins_are_configured(client) -> None:
    preflight = {"origin": "http://evil.example", "access-control-request-method": "POST"}
    r = await client.options("/predict", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    r = await client.post("/predict", json={"features": GOOD}, headers={"origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers


async def test_configured_origins_and_only_they_get_cors(store) -> None:
    options = ApiOptions(cors_origins=("https://app.example",))
    async with AsyncTestClient(app_for(store, options)) as client:
        preflight = {
            "origin": "https://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, x-api-key",
        }
        r = await client.options("/predict", headers=preflight)
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-credentials" not in r.headers
        r = await client.post("/predict", json={"features": GOOD}, headers={"origin": "https://app.example"})
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
        r = await client.options("/predict", headers={**preflight, "origin": "http://evil.example"})
        assert r.headers.get("access-control-allow-origin") != "http://evil.example"


async def test_errors_raised_by_litestar_itself_are_problem_details(client) -> None:
    for r, status in [
        (await client.get("/no/such/route"), 404),
        (await client.delete("/predict"), 405),
        (await client.post("/docs"), 405),
        (await client.get("/docs/assets/no-such-file.js"), 404),
        (await client.get("/v2/models/toy/versions"), 404),
    ]:
        assert r.status_code == status, r.url
        assert r.headers["content-type"] == "application/problem+json", r.url
        assert r.json()["status"] == status
    allowed = (await client.delete("/predict")).headers["allow"]
    assert set(allowed.split(", ")) == {"POST", "OPTIONS"}
