"""`POST /predict` served straight from ASGI (`predictor_litestar.direct`) answers as the handler would."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.testing import TestClient

import predictor_litestar.routes.predict as predict_routes
from predictor_litestar import ApiOptions, create_app
from predictor_litestar.bodies import plain_json_length
from tests.fakes import InMemoryPredictionStore, fake_service, toy_manifest

GOOD = {"x": 1.0, "y": 2.0, "n": 3, "flag": True, "colour": "red"}
VOLATILE = {"prediction_id", "date", "x-request-id"}


@pytest.fixture
def handler_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the requests the Litestar handler itself reads (those `DirectPredict` handed on)."""
    calls: list[int] = []
    read_json = predict_routes.read_json

    async def counted(*args: Any) -> Any:
        calls.append(1)
        return await read_json(*args)

    monkeypatch.setattr(predict_routes, "read_json", counted)
    return calls


@pytest.fixture
def client() -> Iterator[TestClient[Any]]:
    """A synchronous client: Litestar's test transport sends a generator body chunked only there."""
    service, registry = fake_service([toy_manifest()], InMemoryPredictionStore())
    with TestClient(create_app(service, registry, ApiOptions(max_body_bytes=10_000))) as c:
        yield c


def chunked(body: bytes) -> Iterator[bytes]:
    """A body sent without Content-Length (chunked): always the handler's."""
    yield body


def stable(response: Any) -> tuple[int, dict[str, str], Any]:
    body = response.json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in VOLATILE}
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE | {"content-length"}}
    return response.status_code, headers, body


@pytest.mark.parametrize(
    "features",
    [
        GOOD,
        {**GOOD, "x": "1.5"},  # 422: strings are not numbers
        {**GOOD, "unknown": 1},  # 422: not in the schema
        {"x": 1.0},  # 422: missing features
    ],
)
def test_direct_and_handler_answers_are_the_same(client, handler_calls, features) -> None:
    body = msgspec.json.encode({"features": features})
    headers = {"content-type": "application/json", "x-request-id": "same-id"}
    direct = client.post("/predict", content=body, headers=headers)
    assert handler_calls == []  # served by DirectPredict
    whole = client.post("/predict", content=chunked(body), headers=headers)
    assert handler_calls == [1]  # served by the handler
    assert stable(direct) == stable(whole)
    assert direct.headers["content-length"] == str(len(direct.content))


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b'{"features": {"x": 1.0, "x": 2.0}}', 400),  # a repeated key
        (b'{"features": ', 400),  # malformed
        (b'{"records": []}', 400),  # the wrong body shape
    ],
)
def test_bad_bodies_get_the_handlers_problems_on_the_direct_path(
    client, handler_calls, content, status
) -> None:
    headers = {"content-type": "application/json"}
    direct = client.post("/predict", content=content, headers=headers)
    whole = client.post("/predict", content=chunked(content), headers=headers)
    assert handler_calls == [1]
    assert direct.status_code == status
    assert stable(direct) == stable(whole)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content-type": "text/plain"}, 415),
        ({"content-type": "application/json", "content-encoding": "gzip"}, 415),
    ],
)
def test_doubtful_headers_go_to_the_handler(client, handler_calls, headers, status) -> None:
    r = client.post("/predict", content=msgspec.json.encode({"features": GOOD}), headers=headers)
    assert r.status_code == status
    assert handler_calls == [1]


def test_a_body_over_the_limit_goes_to_the_handler_and_is_413(client, handler_calls) -> None:
    r = client.post("/predict", json={"features": {**GOOD, "colour": "r" * 20_000}})
    assert r.status_code == 413
    assert handler_calls == [1]  # handed on: Litestar's body reading refuses it


def test_a_named_model_and_version_are_served_directly(client, handler_calls) -> None:
    r = client.post("/models/toy/versions/1/predict", json={"features": GOOD})
    assert r.status_code == 200
    assert (r.json()["model_name"], r.json()["model_version"]) == ("toy", "1")
    assert (client.post("/models/nope/predict", json={"features": GOOD})).status_code == 404
    assert handler_calls == []


_LENGTHS = st.one_of(st.integers(0, 30_000).map(lambda n: str(n).encode()), st.binary(max_size=6))
_TYPES = st.sampled_from(
    [b"application/json", b"Application/JSON; charset=utf-8", b"text/json", b"application/jsonx", b""]
)
_CODINGS = st.sampled_from([None, b"", b"identity", b" IDENTITY ", b"gzip", b"br"])


@given(length=st.lists(_LENGTHS, max_size=2), kind=st.lists(_TYPES, max_size=2), coding=_CODINGS)
def test_plain_json_length_is_never_looser_than_the_handlers_rules(length, kind, coding) -> None:
    headers = [(b"content-length", v) for v in length] + [(b"content-type", v) for v in kind]
    if coding is not None:
        headers.append((b"content-encoding", coding))
    found = plain_json_length(headers, 10_000)
    if found is None:
        return
    assert len(length) == 1
    assert len(kind) == 1
    assert found == int(length[0]) <= 10_000
    assert kind[0].split(b";")[0].strip().lower() == b"application/json"
    assert coding is None or coding.strip().lower() in (b"", b"identity")
