"""The one table from errors to RFC 9457 `application/problem+json` answers; nothing else picks a status.

Domain errors (predictor_core.errors) and HTTP errors (Litestar's, and ours for bodies) all end here, so
every error has the same shape and no stack trace or exception text of an unexpected error leaks out.
Only `Unavailable` is retryable (503 with Retry-After); a conflict is 409, a server-side fault 500.
Open Inference Protocol routes (`/v2/...`) get an extra `error` member, which is what v2 clients read.

Validation problems are located in the request body by the handler's declared body (`opt["body"]`):
a single record's at ["features", feature], a batch's at ["records", i, feature].
"""

from __future__ import annotations

import logging
import math
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from predictor_core import (
    BundleError,
    ConfigurationError,
    Conflict,
    InvalidFeedback,
    NotFound,
    PredictorError,
    Problem,
    RecordingDisabled,
    SchemaError,
    StoreRejected,
    Unavailable,
    ValidationFailed,
)

__all__ = ["BODY", "PROBLEM_JSON", "ProblemBody", "ProblemDetail", "exception_handlers"]

BODY = "body"
"""Handler `opt` key naming the request body's top-level member ("features", "records", "inputs")."""

PROBLEM_JSON = "application/problem+json"
_log = logging.getLogger("predictor_litestar")


class ProblemDetail(msgspec.Struct, frozen=True, kw_only=True):
    """One invalid value: where (`loc`, a path into the request body), a stable `code`, why, what."""

    loc: list[int | str]
    code: str
    msg: str
    value: Any = None


class ProblemBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details; `errors` lists every invalid value (422), `error` repeats `detail` on v2."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[ProblemDetail] | None = None
    error: str | None = None


def _details(request: Request[Any, Any, Any], failure: ValidationFailed) -> list[ProblemDetail]:
    """Core problem locations (record index, feature) as paths into this route's request body."""
    handler = request.scope.get("route_handler")
    body = handler.opt.get(BODY) if handler is not None else None
    prefix = () if body is None else (body,)
    return [_detail(p, prefix, single=body == "features") for p in failure.problems]


def _detail(problem: Problem, prefix: tuple[str, ...], single: bool) -> ProblemDetail:
    loc = list(problem.loc)
    if single and loc and isinstance(loc[0], int):
        loc = loc[1:]
    return ProblemDetail(loc=[*prefix, *loc], code=str(problem.code), msg=problem.msg, value=problem.value)


# error kind -> status and title, first match wins; domain messages are written for users: `detail`
_TABLE: list[tuple[type[BaseException], int, str]] = [
    (ValidationFailed, 422, "Invalid features"),
    (InvalidFeedback, 422, "Invalid feedback"),
    (RecordingDisabled, 404, "Not found"),
    (NotFound, 404, "Not found"),
    (Conflict, 409, "Conflict"),
    (Unavailable, 503, "Service unavailable"),
    (BundleError, 500, "Model unavailable"),
    (SchemaError, 500, "Model unavailable"),
    (StoreRejected, 500, "Not recorded"),
    (ConfigurationError, 500, "Server misconfigured"),
]


def _answer(
    request: Request[Any, Any, Any], body: ProblemBody, headers: dict[str, str] | None = None
) -> Response[Any]:
    if request.url.path.startswith("/v2"):
        body = msgspec.structs.replace(body, error=body.detail)
    return Response(body, status_code=body.status, media_type=PROBLEM_JSON, headers=headers)


def _domain(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    found = next(((status, title) for kind, status, title in _TABLE if isinstance(exc, kind)), None)
    if found is None:  # a PredictorError nobody mapped: a bug, not the client's fault
        return _unexpected(request, exc)
    status, title = found
    errors: list[ProblemDetail] | None = None
    detail = str(exc)
    if isinstance(exc, ValidationFailed):
        errors = _details(request, exc)
        detail = f"{len(errors)} invalid value{'s' if len(errors) != 1 else ''}; see errors"
    headers = None
    if isinstance(exc, Unavailable):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    elif status >= 500:  # the operator must hear of it; the message is the domain's, no traceback
        _log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, detail)
    return _answer(request, ProblemBody(title=title, status=status, detail=detail, errors=errors), headers)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        return _unexpected(request, exc)
    title = _TITLES.get(status, "Bad request")
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else title
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() in ("allow", "retry-after")}
    return _answer(request, ProblemBody(title=title, status=status, detail=detail), headers or None)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    _log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    body = ProblemBody(
        title="Internal server error",
        status=HTTP_500_INTERNAL_SERVER_ERROR,
        detail="an unexpected error occurred; it was logged on the server",
    )
    return _answer(request, body)


_TITLES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    413: "Request too large",
    415: "Unsupported media type",
}

exception_handlers: dict[int | type[Exception], Any] = {
    PredictorError: _domain,
    HTTPException: _http,
    Exception: _unexpected,
}
"""For `Litestar(exception_handlers=...)`."""
