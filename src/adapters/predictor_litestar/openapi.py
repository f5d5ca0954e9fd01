"""OpenAPI pieces Litestar cannot infer: request bodies read by hand, the error answers of each route, keys.

Handlers read their body with `bodies.read_json` (strict), so Litestar sees no `data` parameter. Each one
names its body in `opt["body"]`, and `document_bodies` declares it in the app's generated document, with
examples built from the served models' bundles so that "Try it out" works as it stands, for every model.
`document_access` marks the routes that need an API key (and which scope) with the security schemes that
`docs.openapi_config` declares, so Swagger UI's "Authorize" button sends the key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec
import numpy as np
from litestar import Litestar
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, OpenAPIMediaType, Operation, RequestBody
from litestar.routes import HTTPRoute

from predictor_core import (
    ClassifierOutputs,
    FeatureSchema,
    ModelManifest,
    ModelVersions,
    RegressorOutputs,
    TaskOutputs,
    build_predictions,
)
from predictor_litestar.access import needed_scope
from predictor_litestar.bodies import prediction_body
from predictor_litestar.options import ApiOptions
from predictor_litestar.problems import BODY, PROBLEM_JSON, ProblemBody
from predictor_litestar.tensors import infer_example

__all__ = [
    "DENIALS",
    "MAX_EXAMPLES",
    "SECURITY",
    "LiteralExample",
    "document_access",
    "document_bodies",
    "errors",
]

MAX_EXAMPLES = 50
"""Most named examples on one route (one per model, or per model version): the page embeds them all."""

DENIALS = (401, 403, 429)
"""The answers of every route that needs an API key (when auth is on)."""
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
"""Either scheme of `docs.openapi_config`: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
_WHY = {
    400: "Malformed JSON, or a body of the wrong shape",
    401: "No API key, or one that is malformed, unknown, wrong or revoked (`WWW-Authenticate` says so)",
    403: "The API key lacks the scope this route needs",
    429: "The API key is over its rate limit: retry after `Retry-After` seconds (`RateLimit-Policy` and "
    "`RateLimit` give the quota, what remains and when the bucket is full again)",
    404: "Unknown model, version or prediction id",
    409: "The model version is recorded with another ONNX file: a changed model needs a new version",
    413: "Body over the size limit, or a batch over the record limit",
    415: "Content-Type is not application/json",
    422: "Invalid values: `errors` lists each with its location in the body",
    503: "Database or model unavailable; retry after `Retry-After` seconds",
}
_EXAMPLES: dict[int, dict[str, Any]] = {
    400: {"title": "Bad request", "status": 400, "detail": "malformed JSON: Input data was truncated"},
    401: {"title": "Unauthorized", "status": 401, "detail": "the API key is not valid"},
    403: {
        "title": "Forbidden",
        "status": 403,
        "detail": "key 3f9a1c2b7d04 may not do this: it needs the 'admin' scope, the key has predict, read",
    },
    429: {
        "title": "Too many requests",
        "status": 429,
        "detail": "key 3f9a1c2b7d04 is limited to 50/s (burst 100); retry after 0.02 s",
    },
    404: {
        "title": "Not found",
        "status": 404,
        "detail": "no model 'penguin'; available: breast_cancer, diabetes, penguins",
    },
    409: {
        "title": "Conflict",
        "status": 409,
        "detail": "model penguins 1.0.0 is recorded with ONNX hash 3f2a9c81d0b4…, not 9be1c07e55a2…: "
        "give a changed model a new version",
    },
    413: {
        "title": "Request too large",
        "status": 413,
        "detail": "1001 records in the batch; at most 1000 are accepted",
    },
    415: {
        "title": "Unsupported media type",
        "status": 415,
        "detail": "expected Content-Type application/json, got 'text/plain'",
    },
    422: {
        "title": "Invalid features",
        "status": 422,
        "detail": "2 invalid values; see errors",
        "errors": [
            {
                "loc": ["features", "bill_length_mm"],
                "code": "out_of_range",
                "msg": "bill_length_mm is -3 mm, expected 25 ≤ x ≤ 70",
                "value": -3,
            },
            {
                "loc": ["features", "island"],
                "code": "unknown_category",
                "msg": "island is 'Atlantis', expected one of 'Biscoe', 'Dream', 'Torgersen'",
                "value": "Atlantis",
            },
        ],
    },
    503: {
        "title": "Service unavailable",
        "status": 503,
        "detail": "the prediction database is unavailable, cannot record predictions (connection refused); "
        "retry later",
    },
}
"""A problem as the server words it, per status (the 413 and 422 ones from the predict routes)."""
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


def errors(
    *statuses: int, said: dict[int, tuple[str, dict[str, Any]]] | None = None
) -> dict[int, ResponseSpec]:
    """The documented error answers (RFC 9457 problem details) for a route.

    `said` replaces the description and example of some statuses, for a route whose 409 (say) means
    something of its own.
    """
    own = said or {}
    specs = {}
    for status in statuses:
        why, example = own.get(status, (_WHY[status], _EXAMPLES[status]))
        specs[status] = ResponseSpec(
            data_container=ProblemBody,
            generate_examples=False,
            description=why,
            media_type=PROBLEM_JSON,
            examples=[Example(summary=example["title"], value=example)],
        )
    return specs


def document_access(app: Litestar) -> None:
    """Mark every operation that needs an API key with the key's schemes and say which scope it needs."""
    paths = app.openapi_schema.paths or {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format not in paths:
            continue
        for method, (handler, _) in route.route_handler_map.items():
            operation = getattr(paths[route.path_format], method.lower(), None)
            scope = needed_scope(handler)
            if operation is None or scope is None:
                continue
            operation.security = list(SECURITY)
            said = f"Needs an API key with the `{scope.value}` scope (when auth is on)."
            operation.description = f"{operation.description}\n\n{said}" if operation.description else said


def document_bodies(
    app: Litestar, default: ModelManifest, served: Sequence[ModelVersions], options: ApiOptions
) -> None:
    """Declare the request body of every handler that names one, with examples, in the app's OpenAPI document.

    A path without a model name documents the default model: its record schema, its example. A path with
    `{name}` is shared by every model, so it offers one named example per served model, keyed by the name
    to put in the path (and by name and version where the path has `{version}`): "Try it out" has a valid
    body for each. Prediction answers get the matching examples, taken from each bundle's golden set.
    """
    paths = app.openapi_schema.paths or {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format not in paths:
            continue
        for method, (handler, _) in route.route_handler_map.items():
            body = handler.opt.get(BODY)
            operation = getattr(paths[route.path_format], method.lower(), None)
            if body is None or operation is None:
                continue
            targets = _targets(route.path_format, body, default, served)
            operation.request_body = _BODIES[body](targets, default, options, "{name}" in route.path_format)
            answers = {key: _ANSWERS[body](target.manifest) for key, target in targets.items()}
            _document_answers(operation, answers)


@dataclass
class LiteralExample(Example):
    """An example whose value is written as given, nulls included.

    Litestar leaves out every None in a dict, but a null feature value means something: a missing value,
    which a nullable feature accepts. Without it the record would lack the feature and be refused.
    """

    def to_schema(self) -> dict[str, Any]:
        schema = super().to_schema()
        if self.value is not None:
            schema["value"] = self.value
        return schema


class _Target(NamedTuple):
    """One example of a route: the model version it is valid for, and how the examples menu shows it."""

    manifest: ModelManifest
    summary: str
    description: str

    def example(self, value: Any) -> Example:
        return LiteralExample(summary=self.summary, description=self.description, value=value)


def _targets(
    path: str, body: str, default: ModelManifest, served: Sequence[ModelVersions]
) -> dict[str, _Target]:
    """The model versions a route's examples are for, keyed as Swagger UI lists them, the default first."""
    if "{name}" not in path and body != "actual":
        said = f"For the default model, {default.name} {default.version}."
        return {"default model": _Target(default, f"{default.name} (the default model)", said)}
    ordered = sorted(served, key=lambda entry: (entry.name != default.name, entry.name))
    if "{version}" in path:
        versions = [m for entry in ordered for m in reversed(entry.versions)][:MAX_EXAMPLES]
        said = "For {0} {1}: put `{0}` and `{1}` in the path."
        return {
            f"{m.name} {m.version}": _Target(m, f"{m.name} {m.version}", said.format(m.name, m.version))
            for m in versions
        }
    said = "For a prediction of {0} {1}." if body == "actual" else "For {0} {1}: put `{0}` in the path."
    return {
        e.name: _Target(e.current, e.name, said.format(e.name, e.current.version))
        for e in ordered[:MAX_EXAMPLES]
    }


def _features(targets: dict[str, _Target], default: ModelManifest, _: ApiOptions, named: bool) -> RequestBody:
    record = _ANY_RECORD if named else _record(default.schema)
    examples = {key: t.example({"features": t.manifest.schema.example()}) for key, t in targets.items()}
    return _json(_wrap("features", record), examples, "One record.")


def _records(
    targets: dict[str, _Target], default: ModelManifest, options: ApiOptions, named: bool
) -> RequestBody:
    record = _ANY_RECORD if named else _record(default.schema)
    items = {"type": "array", "items": record, "minItems": 1, "maxItems": options.max_batch}
    examples = {key: t.example({"records": _two_records(t.manifest)}) for key, t in targets.items()}
    described = f"Up to {options.max_batch} records, answered in order; all or nothing."
    return _json(_wrap("records", items), examples, described)


def _actual(targets: dict[str, _Target], _: ModelManifest, __: ApiOptions, ___: bool) -> RequestBody:
    examples = {key: t.example({"actual": _truth(t.manifest)}) for key, t in targets.items()}
    return _json(_ACTUAL, examples, "The ground truth observed later.")


def _version(targets: dict[str, _Target], _: ModelManifest, __: ApiOptions, ___: bool) -> RequestBody:
    examples = {key: t.example({"version": t.manifest.version}) for key, t in targets.items()}
    return _json(
        _TARGET, examples, "The version the alias is to name (checked against its golden set first)."
    )


def _inputs(targets: dict[str, _Target], _: ModelManifest, __: ApiOptions, ___: bool) -> RequestBody:
    schema = {"type": "object", "required": ["inputs"], "properties": {"inputs": {"type": "array"}}}
    described = "An OIP inference request (JSON form; the binary tensor extension is accepted too)."
    examples = {key: t.example(infer_example(t.manifest.schema)) for key, t in targets.items()}
    return _json(schema, examples, described)


_BODIES = {
    "features": _features,
    "records": _records,
    "actual": _actual,
    "inputs": _inputs,
    "version": _version,
}


_TARGET: dict[str, Any] = {
    "type": "object",
    "properties": {"version": {"type": "string", "minLength": 1, "maxLength": 100}},
    "required": ["version"],
    "additionalProperties": False,
}


def _two_records(manifest: ModelManifest) -> list[dict[str, Any]]:
    """Two real records when the bundle declares them, else its one example twice."""
    examples = manifest.schema.examples
    if len(examples) >= 2:
        return [dict(examples[0]), dict(examples[1])]
    example = manifest.schema.example()
    return [example, dict(example)]


def _truth(manifest: ModelManifest) -> Any:
    """A ground truth the model accepts: one of its classes, or a number for regression."""
    return manifest.classes[0] if manifest.classes else 1.0


def _answer(manifest: ModelManifest) -> Example | None:
    """`POST .../predict`: what the version answered for its example (from its golden set)."""
    return _golden_answer(manifest, [manifest.schema.example()], lambda answers: answers[0])


def _batch_answer(manifest: ModelManifest) -> Example | None:
    """`POST .../predict/batch`: what the version answered for the batch example (from its golden set)."""
    return _golden_answer(manifest, _two_records(manifest), lambda answers: {"predictions": answers})


def _golden_answer(
    manifest: ModelManifest, records: list[dict[str, Any]], shape: Callable[[list[Any]], Any]
) -> Example | None:
    """The answer bodies the bundle's golden set holds for `records`; None without a golden set.

    Records the golden set does not hold get the answers of other golden records, as the description says.
    """
    golden = manifest.golden
    if golden is None or not golden.records:
        return None
    found = [golden.records.index(r) if r in golden.records else None for r in records]
    rows = [i if i is not None else n % len(golden.records) for n, i in enumerate(found)]
    outputs: TaskOutputs
    if golden.values is not None:
        outputs = RegressorOutputs(values=np.array([golden.values[i] for i in rows], dtype=float))
    elif golden.labels is not None and golden.probabilities is not None:
        outputs = ClassifierOutputs(
            labels=np.array([golden.labels[i] for i in rows], dtype=object),
            probabilities=np.array([golden.probabilities[i] for i in rows], dtype=float),
        )
    else:
        return None
    predictions = build_predictions(manifest, outputs, _EXAMPLE_IDS[: len(rows)])
    value = shape([msgspec.to_builtins(prediction_body(p)) for p in predictions])
    summary = f"{manifest.name} {manifest.version}"
    if None in found:
        return LiteralExample(
            summary=summary, description="Answered for records of its golden set.", value=value
        )
    return LiteralExample(summary=summary, description="Answered for the request example.", value=value)


_ANSWERS: dict[str, Callable[[ModelManifest], Example | None]] = {
    "features": _answer,
    "records": _batch_answer,
    "actual": lambda _: None,
    "inputs": lambda _: None,
    "version": lambda _: None,
}
_EXAMPLE_IDS = [
    uuid.UUID("019ab2c4-5e6f-7a81-9b2c-3d4e5f607182"),
    uuid.UUID("019ab2c4-5e6f-7a81-9b2c-3d4e5f607183"),
]


def _document_answers(operation: Operation, answers: dict[str, Example | None]) -> None:
    """Add the answer examples to the operation's 200 JSON response, leaving out those that are None."""
    shown = {key: answer for key, answer in answers.items() if answer is not None}
    response = (operation.responses or {}).get("200")
    content = getattr(response, "content", None) or {}
    media = content.get("application/json")
    if shown and media is not None:
        media.examples = shown


def _record(schema: FeatureSchema) -> dict[str, Any]:
    return schema.json_schema()


def _wrap(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {key: schema}, "required": [key], "additionalProperties": False}


def _json(schema: dict[str, Any], examples: dict[str, Example], description: str) -> RequestBody:
    """A required JSON body; `schema` is plain JSON Schema 2020-12, which Litestar serialises as given."""
    return RequestBody(
        required=True,
        description=description,
        content={
            "application/json": OpenAPIMediaType(
                schema=schema,  # type: ignore[arg-type]
                examples={**examples},
            )
        },
    )
