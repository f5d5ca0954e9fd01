"""tritonclient.http (a stock OIP client) against `predictor serve`: the same answers as POST /predict."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.functional.server import example

httpclient = pytest.importorskip("tritonclient.http")
pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def triton(server: str) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(url=server.removeprefix("http://"))
    yield client
    client.close()


def inputs_for(metadata: dict, records: list[dict], *, binary: bool) -> list:
    dtypes = {"FP64": np.float64, "INT64": np.int64, "BOOL": np.bool_, "BYTES": np.object_}
    inputs = []
    for spec in metadata["inputs"]:
        values = np.array([r[spec["name"]] for r in records], dtype=dtypes[spec["datatype"]])
        tensor = httpclient.InferInput(spec["name"], list(values.shape), spec["datatype"])
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_gets_the_same_answers_as_predict(server: str, triton, binary: bool) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("breast_cancer")
    metadata = triton.get_model_metadata("breast_cancer")
    assert len(metadata["inputs"]) == 30
    with httpx.Client(base_url=server) as http:
        record = example(http)
        expected = http.post("/predict", json={"features": record}).json()
        outputs = [
            httpclient.InferRequestedOutput(o["name"], binary_data=binary) for o in metadata["outputs"]
        ]
        result = triton.infer(
            "breast_cancer", inputs_for(metadata, [record, record], binary=binary), outputs=outputs
        )
        probability = result.as_numpy("probability")
        assert probability.tolist() == pytest.approx([expected["probability"]] * 2)
        labels = result.as_numpy("label").tolist()
        assert [x.decode() if isinstance(x, bytes) else x for x in labels] == [expected["label"]] * 2
        ids = [x.decode() if isinstance(x, bytes) else x for x in result.as_numpy("prediction_id").tolist()]
        recorded = http.get(f"/predictions/{ids[0]}").json()  # recorded like any other prediction
        assert recorded["features"] == record


def test_tritonclient_default_binary_outputs_and_invalid_input(triton) -> None:
    metadata = triton.get_model_metadata("breast_cancer")
    record = {spec["name"]: 1.0 for spec in metadata["inputs"]}
    record[metadata["inputs"][0]["name"]] = float("nan")
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as caught:
        triton.infer("breast_cancer", inputs_for(metadata, [record], binary=True))
    assert "invalid" in str(caught.value)
