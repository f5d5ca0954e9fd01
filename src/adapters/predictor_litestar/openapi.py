"""OpenAPI pieces Litestar cannot infer: request bodies read by hand, and the error answers of each route.

Handlers read their body with `bodies.read_json` (strict), so Litestar sees no `data` parameter; the
request body is declared here instead, with an example built from the loaded model's schema so that
"Try it out" works as it stands.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, OpenAPIMediaType, Operation, RequestBody

from predictor_litestar.problems import PROBLEM_JSON, ProblemBody

__all__ = ["errors", "json_body"]

_WHY = {
    400: "Malformed JSON, or a body of the wrong shape",
    404: "Unknown model, version or prediction id",
    413: "Body over the size limit, or a batch over the record limit",
    415: "Content-Type is not application/json",
    422: "Invalid values: `errors` lists each with its location in the body",
    503: "Database or model unavailable; retry after `Retry-After` seconds",
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


def json_body(
    schema: dict[str, Any],
    examples: dict[str, Any],
    *,
    description: str,
    media_type: str = "application/json",
) -> type[Operation]:
    """An Operation class that declares a required JSON request body with named examples.

    `schema` is plain JSON Schema (draft 2020-12, as OpenAPI 3.1 uses): Litestar serialises dicts as given.
    """
    body = RequestBody(
        required=True,
        description=description,
        content={
            media_type: OpenAPIMediaType(
                schema=schema,  # type: ignore[arg-type]
                examples={name: Example(summary=name, value=value) for name, value in examples.items()},
            )
        },
    )

    def __post_init__(self: Operation) -> None:
        self.request_body = body

    return dataclasses.dataclass(type("OperationWithBody", (Operation,), {"__post_init__": __post_init__}))
