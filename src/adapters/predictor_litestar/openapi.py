"""OpenAPI pieces Litestar cannot infer: request bodies read by hand, and the error answers of each route.

Handlers read their body with `bodies.read_json` (strict), so Litestar sees no `data` parameter. Each one
names its body in `opt["body"]`, and `document_bodies` declares it in the app's generated document, with
examples built from the served model's schema so that "Try it out" works as it stands.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, OpenAPIMediaType, RequestBody
from litestar.routes import HTTPRoute

from predictor_core import FeatureSchema, ModelManifest
from predictor_litestar.options import ApiOptions
from predictor_litestar.problems import BODY, PROBLEM_JSON, ProblemBody
from predictor_litestar.tensors import infer_example

__all__ = ["document_bodies", "errors"]

_WHY = {
    400: "Malformed JSON, or a body of the wrong shape",
    404: "Unknown model, version or prediction id",
    409: "The model version is recorded with another ONNX file: a changed model needs a new version",
    413: "Body over the size limit, or a batch over the record limit",
    415: "Content-Type is not application/json",
    422: "Invalid values: `errors` lists each with its location in the body",
    503: "Database or model unavailable; retry after `Retry-After` seconds",
}
_ANY_RECORD: dict[str, Any] = {
    "type": "object",
    "description": "feature name -> value, as described by GET /models/{name}",
}
_ACTUAL: dict[str, Any] = {
    "type": "object",
    "properties": {
        "actual": {
            "description": "A class the model knows (classifiers), or a finite number (regression)",
            "type": ["string", "integer", "number"],
        }
    },
    "required": ["actual"],
    "additionalProperties": False,
}


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """The documented error answers (RFC 9457 problem details) for a route."""
    return {
        status: ResponseSpec(
            data_container=ProblemBody,
            generate_examples=False,
            description=_WHY[status],
            media_type=PROBLEM_JSON,
        )
        for status in statuses
    }


def document_bodies(app: Litestar, default: ModelManifest, options: ApiOptions) -> None:
    """Declare the request body of every handler that names one, in the app's OpenAPI document.

    Paths without a model name document the default model's record schema; the others a generic record.
    """
    paths = app.openapi_schema.paths or {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format not in paths:
            continue
        for method, (handler, _) in route.route_handler_map.items():
            body = handler.opt.get(BODY)
            operation = getattr(paths[route.path_format], method.lower(), None)
            if body is not None and operation is not None:
                named = "{name}" in route.path_format
                operation.request_body = _BODIES[body](default, options, named)


def _features(default: ModelManifest, _: ApiOptions, named: bool) -> RequestBody:
    example = default.schema.example()
    if named:
        return _json(_wrap("features", _ANY_RECORD), {default.name: {"features": example}}, "One record.")
    return _json(
        _wrap("features", _record(default.schema)), {"default model": {"features": example}}, "One record."
    )


def _records(default: ModelManifest, options: ApiOptions, named: bool) -> RequestBody:
    example = default.schema.example()
    record = _ANY_RECORD if named else _record(default.schema)
    items = {"type": "array", "items": record, "minItems": 1, "maxItems": options.max_batch}
    name = default.name if named else "two records"
    described = f"Up to {options.max_batch} records, answered in order; all or nothing."
    return _json(_wrap("records", items), {name: {"records": [example, example]}}, described)


def _actual(default: ModelManifest, _: ApiOptions, __: bool) -> RequestBody:
    example = default.classes[0] if default.classes else 1.0
    return _json(_ACTUAL, {default.name: {"actual": example}}, "The ground truth observed later.")


def _inputs(default: ModelManifest, _: ApiOptions, __: bool) -> RequestBody:
    schema = {"type": "object", "required": ["inputs"], "properties": {"inputs": {"type": "array"}}}
    described = "An OIP inference request (JSON form; the binary tensor extension is accepted too)."
    return _json(schema, {default.name: infer_example(default.schema)}, described)


_BODIES = {"features": _features, "records": _records, "actual": _actual, "inputs": _inputs}


def _record(schema: FeatureSchema) -> dict[str, Any]:
    return schema.json_schema()


def _wrap(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {key: schema}, "required": [key], "additionalProperties": False}


def _json(schema: dict[str, Any], examples: dict[str, Any], description: str) -> RequestBody:
    """A required JSON body; `schema` is plain JSON Schema 2020-12, which Litestar serialises as given."""
    return RequestBody(
        required=True,
        description=description,
        content={
            "application/json": OpenAPIMediaType(
                schema=schema,  # type: ignore[arg-type]
                examples={name: Example(summary=name, value=value) for name, value in examples.items()},
            )
        },
    )
