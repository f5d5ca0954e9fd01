"""Open Inference Protocol routes in-process with the fakes: metadata, JSON and binary tensors, errors."""

from __future__ import annotations

import json
import struct
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import numpy as np
import pytest
from litestar.testing import AsyncTestClient

from predictor_core import Feature, FeatureSchema, Task
from predictor_litestar import create_app
from tests.fakes import InMemoryPredictionStore, fake_service, toy_manifest

GOOD = {"x": 1.0, "y": 2.0, "n": 3, "flag": True, "colour": "red"}


def numeric_manifest():
    schema = FeatureSchema(features=(Feature(name="x", kind="number"), Feature(name="y", kind="number")))
    return msgspec.structs.replace(toy_manifest(name="num"), schema=schema)


@pytest.fixture
def store() -> InMemoryPredictionStore:
    return InMemoryPredictionStore()


@pytest.fixture
async def client(store) -> AsyncIterator[AsyncTestClient[Any]]:
    models = [toy_manifest(), toy_manifest(Task.MULTICLASS, name="multi"), numeric_manifest()]
    service, registry = fake_service(models, store, default_model="toy")
    async with AsyncTestClient(create_app(service, registry)) as c:
        yield c


def json_inputs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    types = {"x": "FP64", "y": "FP64", "n": "INT64", "flag": "BOOL", "colour": "BYTES"}
    return [
        {"name": k, "datatype": t, "shape": [len(records)], "data": [r[k] for r in records]}
        for k, t in types.items()
    ]


async def test_server_and_model_metadata(client) -> None:
    assert (await client.get("/v2")).json()["extensions"] == ["binary_tensor_data"]
    assert (await client.get("/v2/health/live")).status_code == 200
    assert (await client.get("/v2/health/ready")).status_code == 200
    meta = (await client.get("/v2/models/toy")).json()
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("x", "FP64"),
        ("y", "FP64"),
        ("n", "INT64"),
        ("flag", "BOOL"),
        ("colour", "BYTES"),
    ]
    assert [o["name"] for o in meta["outputs"]] == ["label", "probability", "prediction_id"]
    assert (await client.get("/v2/models/toy/versions/1/ready")).json() == {"name": "toy", "ready": True}
    missing = await client.get("/v2/models/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]


async def test_json_infer_matches_predict_and_is_recorded(client, store) -> None:
    single = (await client.post("/predict", json={"features": GOOD})).json()
    r = await client.post("/v2/models/toy/infer", json={"id": "7", "inputs": json_inputs([GOOD, GOOD])})
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "7"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["probability"]["data"] == [single["probability"]] * 2
    assert outputs["label"]["data"] == [single["label"]] * 2
    ids = [uuid.UUID(i) for i in outputs["prediction_id"]["data"]]
    assert all(i in store.records for i in ids)
    assert store.records[ids[0]].request_id == "7"


async def test_matrix_input_for_all_numeric_models(client) -> None:
    request = {
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}]
    }
    r = await client.post("/v2/models/num/infer", json=request)
    assert r.status_code == 200
    assert r.json()["outputs"][0]["shape"] == [2]


async def test_invalid_values_are_422_with_locations(client, store) -> None:
    records = [GOOD, {**GOOD, "x": "nan"}]
    r = await client.post("/v2/models/toy/infer", json={"inputs": json_inputs(records)})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["inputs", 1, "x"]
    assert r.json()["error"]
    assert not store.records


@pytest.mark.parametrize(
    "inputs",
    [
        [{"name": "x", "datatype": "BYTES", "shape": [1], "data": ["1"]}],
        [{"name": "x", "datatype": "FP64", "shape": [2], "data": [1.0]}],
        [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1.0, 2.0]}],
        [{"name": "x", "datatype": "FP64", "shape": [1], "data": [[[1.0]]]}],
        [{"name": "x", "datatype": "FP64", "shape": [-1], "data": [1.0]}],
    ],
)
async def test_malformed_tensors_are_400(client, inputs) -> None:
    r = await client.post("/v2/models/toy/infer", json={"inputs": inputs})
    assert r.status_code == 400
    assert r.json()["error"]


async def test_wrong_content_type_is_415(client) -> None:
    body = json.dumps({"inputs": json_inputs([GOOD])}).encode()
    r = await client.post("/v2/models/toy/infer", content=body, headers={"content-type": "text/plain"})
    assert r.status_code == 415


def _binary_request(records: list[dict[str, Any]]) -> tuple[bytes, int]:
    blobs, inputs = [], []
    for name, datatype, dtype in [
        ("x", "FP32", "<f4"),
        ("y", "FP64", "<f8"),
        ("n", "INT64", "<i8"),
        ("flag", "BOOL", "?"),
    ]:
        blob = np.asarray([r[name] for r in records], dtype=dtype).tobytes()
        blobs.append(blob)
        inputs.append(
            {
                "name": name,
                "datatype": datatype,
                "shape": [len(records), 1],
                "parameters": {"binary_data_size": len(blob)},
            }
        )
    colour = b"".join(struct.pack("<I", len(r["colour"])) + r["colour"].encode() for r in records)
    blobs.append(colour)
    inputs.append(
        {
            "name": "colour",
            "datatype": "BYTES",
            "shape": [len(records)],
            "parameters": {"binary_data_size": len(colour)},
        }
    )
    header = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
    return header + b"".join(blobs), len(header)


async def test_binary_tensors_in_and_out(client) -> None:
    single = (await client.post("/predict", json={"features": GOOD})).json()
    body, length = _binary_request([GOOD, GOOD])
    r = await client.post(
        "/v2/models/toy/infer", content=body, headers={"Inference-Header-Content-Length": str(length)}
    )
    assert r.status_code == 200
    head_length = int(r.headers["inference-header-content-length"])
    header = json.loads(r.content[:head_length])
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    names = [o["name"] for o in header["outputs"]]
    offset = head_length + sum(sizes[: names.index("probability")])
    probability = np.frombuffer(r.content[offset : offset + sizes[names.index("probability")]], dtype="<f8")
    assert probability.tolist() == pytest.approx([single["probability"]] * 2)


async def test_truncated_binary_body_is_400(client) -> None:
    body, length = _binary_request([GOOD])
    r = await client.post(
        "/v2/models/toy/infer", content=body[:-3], headers={"Inference-Header-Content-Length": str(length)}
    )
    assert r.status_code == 400
