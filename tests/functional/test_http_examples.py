"""Every served model publishes a valid example: in `GET /models/{name}`, and as its own named example on
every route that names a model, so "Try it out" works for each (the shipped reference bundles, in-process)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from predictor_core import ModelRegistry, PredictionService, validate
from predictor_litestar import create_app
from predictor_onnx import BundleDirectory, reference_root
from tests.fakes import InMemoryPredictionStore

MODELS = ["breast_cancer", "diabetes", "penguins"]
DEFAULT = "breast_cancer"
NAMED = {  # route -> how the example's key fills the path
    "/models/{name}/predict": "/models/{key}/predict",
    "/models/{name}/predict/batch": "/models/{key}/predict/batch",
    "/models/{name}/versions/{version}/predict": "/models/{name}/versions/{version}/predict",
    "/models/{name}/versions/{version}/predict/batch": "/models/{name}/versions/{version}/predict/batch",
    "/v2/models/{name}/infer": "/v2/models/{key}/infer",
    "/v2/models/{name}/versions/{version}/infer": "/v2/models/{name}/versions/{version}/infer",
}


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    return ModelRegistry(BundleDirectory([reference_root()]), default_model=DEFAULT)


@pytest.fixture
async def client(registry: ModelRegistry) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(PredictionService(registry, InMemoryPredictionStore()), registry)
    async with AsyncTestClient(app) as c:
        yield c


@pytest.fixture
async def spec(client: AsyncTestClient[Any]) -> dict[str, Any]:
    return (await client.get("/docs/openapi.json")).json()


def examples(spec: dict[str, Any], route: str) -> dict[str, Any]:
    return spec["paths"][route]["post"]["requestBody"]["content"]["application/json"]["examples"]


def answers(spec: dict[str, Any], route: str) -> dict[str, Any]:
    return spec["paths"][route]["post"]["responses"]["200"]["content"]["application/json"]["examples"]


def answered_by(body: dict[str, Any]) -> set[str]:
    """The model names in a predict, batch or OIP answer."""
    return {p["model_name"] for p in body["predictions"]} if "predictions" in body else {body["model_name"]}


def url(route: str, key: str) -> str:
    name, _, version = key.partition(" ")
    return NAMED[route].format(key=key, name=name, version=version)


@pytest.mark.parametrize("name", MODELS)
async def test_the_model_description_holds_an_example_that_validates_and_predicts(
    client, registry, name
) -> None:
    info = (await client.get(f"/models/{name}")).json()
    example = info["example"]
    manifest = registry.resolve(name)
    assert set(example) == set(manifest.schema.names)
    assert len(validate(manifest, [example], "records")) == 1
    r = await client.post(f"/models/{name}/predict", json={"features": example})
    assert r.status_code == 200, r.text
    assert r.json()["model_name"] == name
    versioned = (await client.get(f"/models/{name}/versions/{info['version']}")).json()
    assert versioned["example"] == example


@pytest.mark.parametrize("route", NAMED)
async def test_named_routes_offer_each_models_own_example_and_each_one_is_answered(
    client, spec, route
) -> None:
    offered = examples(spec, route)
    assert {key.partition(" ")[0] for key in offered} == set(MODELS)
    assert next(iter(offered)).startswith(DEFAULT)  # Swagger UI selects the first one
    for key, example in offered.items():
        name = key.partition(" ")[0]
        assert name in example["summary"]
        r = await client.post(url(route, key), json=example["value"])
        assert r.status_code == 200, (route, key, r.text)
        assert answered_by(r.json()) == {name}


async def test_examples_are_each_models_own_not_the_default_models(spec, registry) -> None:
    offered = examples(spec, "/models/{name}/predict")
    for name in MODELS:
        assert offered[name]["value"] == {"features": registry.resolve(name).schema.example()}
    default = examples(spec, "/predict")
    assert [v["value"] for v in default.values()] == [
        {"features": registry.resolve(DEFAULT).schema.example()}
    ]


@pytest.mark.parametrize(
    "route", ["/predict", "/models/{name}/predict", "/models/{name}/versions/{version}/predict"]
)
async def test_documented_answers_are_what_the_model_answers(client, spec, route) -> None:
    documented = answers(spec, route)
    for key, example in examples(spec, route).items():
        served = (
            await client.post(url(route, key) if route in NAMED else route, json=example["value"])
        ).json()
        answer = documented[key]["value"]
        assert (answer["task"], answer["model_name"], answer["model_sha256"]) == (
            served["task"],
            served["model_name"],
            served["model_sha256"],
        )
        if documented[key]["description"] == "Answered for the request example.":
            assert answer.get("label") == served.get("label")
            for field in ("probability", "value"):
                assert answer.get(field) == pytest.approx(served.get(field), abs=1e-4)


async def test_batch_answers_are_documented_per_model(spec) -> None:
    documented = answers(spec, "/models/{name}/predict/batch")
    assert set(documented) == set(MODELS)
    for name, example in documented.items():
        assert [p["model_name"] for p in example["value"]["predictions"]] == [name, name]
        assert example["description"] == "Answered for the request example." or name == "penguins"


async def test_feedback_examples_are_accepted_for_a_prediction_of_each_model(client, spec) -> None:
    offered = examples(spec, "/predictions/{prediction_id}/feedback")
    assert set(offered) == set(MODELS)
    for name, example in offered.items():
        record = examples(spec, "/models/{name}/predict")[name]["value"]
        predicted = (await client.post(f"/models/{name}/predict", json=record)).json()
        r = await client.post(f"/predictions/{predicted['prediction_id']}/feedback", json=example["value"])
        assert r.status_code == 201, (name, r.text)
