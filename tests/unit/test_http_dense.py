"""`POST /predict/batch` read straight into typed records (`predictor_litestar.dense`) answers as before.

Each body is sent twice: as it comes (the dense decoder takes what it can) and with the dense decoder
turned off (the ordinary `BatchBody` path); the answers must be the same but for prediction ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

import predictor_litestar.routes.predict as predict_routes
from predictor_core import Feature, FeatureSchema, Rule
from predictor_litestar import ApiOptions, create_app
from tests.fakes import InMemoryPredictionStore, fake_service, toy_manifest

DENSE = msgspec.structs.replace(
    toy_manifest(name="dense"),
    schema=FeatureSchema(
        features=(
            Feature(name="x", kind="number", minimum=0, maximum=100),
            Feature(name="y", kind="number", minimum=0, maximum=100),
        ),
        rules=(Rule(name="y_ge_x", expr="y >= x", message="y must be at least x"),),
    ),
)
GOOD = [{"x": float(i), "y": float(i) + 0.5} for i in range(20)]
VOLATILE = {"prediction_id", "date", "x-request-id"}


@pytest.fixture
def ordinary_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the bodies the ordinary decoder read (those the dense decoder handed on)."""
    calls: list[int] = []
    decode = predict_routes.decode

    def counted(*args: Any) -> Any:
        calls.append(1)
        return decode(*args)

    monkeypatch.setattr(predict_routes, "decode", counted)
    return calls


@pytest.fixture
def store() -> InMemoryPredictionStore:
    return InMemoryPredictionStore()


@pytest.fixture
def client(store: InMemoryPredictionStore) -> Iterator[TestClient[Any]]:
    service, registry = fake_service([DENSE, toy_manifest()], store)
    with TestClient(create_app(service, registry, ApiOptions(max_batch=50))) as c:
        yield c


def stable(response: Any) -> tuple[int, Any]:
    body = response.json()
    if isinstance(body, dict) and "predictions" in body:
        body = [{k: v for k, v in p.items() if k not in VOLATILE} for p in body["predictions"]]
    return response.status_code, body


def both_ways(client: TestClient[Any], monkeypatch: pytest.MonkeyPatch, path: str, body: bytes) -> Any:
    """The answer with the dense decoder, after checking it equals the answer without it."""
    headers = {"content-type": "application/json"}
    dense = client.post(path, content=body, headers=headers)
    with monkeypatch.context() as m:
        m.setattr(predict_routes, "dense_records", lambda *args: None)
        ordinary = client.post(path, content=body, headers=headers)
    assert stable(dense) == stable(ordinary)
    return dense


def test_a_batch_of_numbers_is_read_without_the_ordinary_decoder(
    client, monkeypatch, ordinary_decodes, store
):
    response = both_ways(
        client, monkeypatch, "/models/dense/predict/batch", msgspec.json.encode({"records": GOOD})
    )
    assert response.status_code == 200
    assert ordinary_decodes == [1]  # only for the comparison, with the dense decoder turned off
    assert len(response.json()["predictions"]) == len(GOOD)
    ids = {p["prediction_id"] for p in response.json()["predictions"]}
    assert [r.features for r in store.records.values() if str(r.prediction.prediction_id) in ids] == GOOD


def test_an_int_is_recorded_as_the_int_sent(client, monkeypatch, store):
    records = [*GOOD[:5], {"x": 3, "y": 7.5}]
    response = both_ways(
        client, monkeypatch, "/models/dense/predict/batch", msgspec.json.encode({"records": records})
    )
    assert response.status_code == 200
    recorded = store.records[uuid.UUID(response.json()["predictions"][5]["prediction_id"])]
    assert recorded.features == {"x": 3, "y": 7.5}
    assert type(recorded.features["x"]) is int


@pytest.mark.parametrize(
    ("records", "status"),
    [
        ([*GOOD, {"x": 101.0, "y": 200.0}], 422),  # beyond the maximum
        ([*GOOD, {"x": 50.0, "y": 40.0}], 422),  # the rule
        ([*GOOD, {"x": None, "y": 1.0}], 422),  # null for a feature that is never null
        ([*GOOD, {"x": "5", "y": 6.0}], 422),  # a string is not a number
        ([*GOOD, {"x": True, "y": 6.0}], 422),  # nor a bool
        ([*GOOD, {"x": 1.0}], 422),  # a feature missing
        ([*GOOD, {"x": 1.0, "y": 2.0, "z": 3.0}], 422),  # an unknown feature
        ([*GOOD, [1.0, 2.0]], 422),  # not a record
        ([], 422),  # no record
        (GOOD * 3, 413),  # over max_batch
    ],
)
def test_refusals_are_the_ordinary_ones(client, monkeypatch, records, status) -> None:
    response = both_ways(
        client, monkeypatch, "/models/dense/predict/batch", msgspec.json.encode({"records": records})
    )
    assert response.status_code == status


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"records": [{"x": 1.0, "y": 2.0, "x": 1.5}]}', 400),  # a repeated key: the last would win
        (b'{"records": [{"x": 1e400, "y": 2.0}]}', 422),  # beyond float range: not_finite, located
        (b'{"records": [{"x": 1.0, "y": 2.0}], "other": 1}', 400),  # not the body's shape
        (b'{"records": [{"x": 1.0, "y": 2.0}', 400),  # malformed JSON
        (b'{"records": {"x": 1.0, "y": 2.0}}', 400),  # not a list
    ],
)
def test_bodies_the_dense_decoder_does_not_take_are_answered_as_before(client, monkeypatch, body, status):
    assert both_ways(client, monkeypatch, "/models/dense/predict/batch", body).status_code == status


def test_other_schemas_and_unknown_models_take_the_ordinary_path(client, monkeypatch, ordinary_decodes):
    toy = {"x": 1.0, "y": 2.0, "n": 3, "flag": True, "colour": "red"}
    assert (
        both_ways(
            client, monkeypatch, "/models/toy/predict/batch", msgspec.json.encode({"records": [toy]})
        ).status_code
        == 200
    )
    assert ordinary_decodes == [1, 1]  # the toy schema has no record type
    body = msgspec.json.encode({"records": GOOD})
    assert both_ways(client, monkeypatch, "/models/nope/predict/batch", body).status_code == 404
    assert both_ways(client, monkeypatch, "/models/dense/versions/9/predict/batch", body).status_code == 404
    assert both_ways(client, monkeypatch, "/models/nope/predict/batch", b"{").status_code == 400  # body first
