"""The one table from errors to RFC 9457 `application/problem+json` answers; nothing else picks a status.

Domain errors (predictor_core.errors) and HTTP errors (Litestar's, and ours for bodies) all end here, so
every error has the same shape and no stack trace or exception text of an unexpected error leaks out.
Only `Unavailable` is retryable (503 with Retry-After); a conflict is 409, a server-side fault 500. Access
refusals are 401 / 403 with `WWW-Authenticate`, and 429 with `Retry-After` and the rate-limit fields.
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
    AccessDenied,
    BundleError,
    ConfigurationError,
    Conflict,
    InvalidFeedback,
    InvalidKeySpec,
    NotFound,
    PredictorError,
    Problem,
    PromotionRefused,
    RateLimited,
    RecordingDisabled,
    SchemaError,
    ScopeMissing,
    StoreRejected,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
)
from predictor_litestar.access import denial_headers
from predictor_litestar.tracing import client_gone, note_error

__all__ = ["BODY", "PROBLEM_JSON", "ProblemBody", "ProblemDetail", "exception_handlers"]

BODY = "body"
"""Handler `opt` key naming the request body's top-level member ("features", "records", "inputs")."""

PROBLEM_JSON = "application/problem+json"
CLIENT_CLOSED = 499
"""The status of a request whose client disconnected before its answer (nginx's name; nobody reads it)."""
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
    total_errors: int | None = None
    """How many invalid values there are (422): `errors` lists the first ones only, at most 100."""
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
    (Unauthenticated, 401, "Unauthorized"),
    (ScopeMissing, 403, "Forbidden"),
    (RateLimited, 429, "Too many requests"),
    (ValidationFailed, 422, "Invalid features"),
    (InvalidFeedback, 422, "Invalid feedback"),
    (InvalidKeySpec, 422, "Invalid key"),
    (RecordingDisabled, 404, "Not found"),
    (NotFound, 404, "Not found"),
    (Conflict, 409, "Conflict"),
    (PromotionRefused, 409, "Promotion refused"),
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
    note_error(type(exc).__name__)
    errors: list[ProblemDetail] | None = None
    detail = str(exc)
    total = None
    if isinstance(exc, ValidationFailed):
        errors, total = _details(request, exc), exc.total
        detail = f"{total} invalid value{'s' if total != 1 else ''}; see errors"
        if total > len(errors):
            detail = f"{total} invalid values; errors lists the first {len(errors)}"
    headers = None
    if isinstance(exc, Unavailable):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    elif isinstance(exc, AccessDenied):
        headers = denial_headers(request.headers, exc)
    elif status >= 500:  # the operator must hear of it; the message is the domain's, no traceback
        _log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, detail)
    body = ProblemBody(title=title, status=status, detail=detail, errors=errors, total_errors=total)
    return _answer(request, body, headers)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500 and client_gone():  # it went away mid-body: its log line says so, no traceback
        return Response(b"", status_code=CLIENT_CLOSED)
    if status >= 500:
        return _unexpected(request, exc)
    title = _TITLES.get(status, "Bad request")
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else title
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() in _PASSED_HEADERS}
    located = [e for e in exc.extra if isinstance(e, ProblemDetail)] if isinstance(exc.extra, list) else []
    body = ProblemBody(title=title, status=status, detail=detail, errors=located or None)
    return _answer(request, body, headers or None)


_PASSED_HEADERS = ("allow", "retry-after", "accept-encoding")
"""Headers of an HTTPException that reach the client (415 for a content coding says Accept-Encoding)."""


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    note_error(type(exc).__name__)
    _log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    body = ProblemBody(
        title="Internal server error",
        status=HTTP_500_INTERNAL_SERVER_ERROR,
        detail="an unexpected error occurred; it was logged on the server",
    )
    return _answer(request, body)


_TITLES = {
    400: "Bad request",
    403: "Forbidden",
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
