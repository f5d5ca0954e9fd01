"""API keys over HTTP: one guard on the `/` and `/v2` routers, the scope each handler declares, the headers.

Each handler names the scope it needs in its `opt` (`opt={SCOPE: Scope.PREDICT}`); probes say
`opt={SCOPE: PUBLIC}`. A handler that names none needs `admin`: a route added without thought is closed,
not open. The guard reads the key from `Authorization: Bearer <key>` or `X-API-Key: <key>` and asks the
core's `AccessControl` (authenticate, authorise, take a rate-limit token); its refusals are domain errors,
which `problems.py` answers with 401, 403 or 429 and the headers below. When the app has no
`AccessControl` (auth off: a server on loopback), every route is open and no key is recorded.

A request let through carries its `Admission` in the ASGI scope's state: `caller_id(request)` is the key
id recorded with predictions and feedback, `changed_by(request)` what the alias history says, and the
`rate_limit_headers` hook adds `RateLimit-Policy` / `RateLimit` to the answers of rate-limited keys.

When the app has no `AccessControl`, `create_app` leaves the guard off its routers (it would let every
call through, and Litestar copies the handler for each guarded call: about 7 µs a request); the OpenAPI
document says which scope each operation needs either way. `/metrics` is not behind this guard:
`Observability` serves it to loopback clients and asks `metrics_guard` about the others.
"""

from __future__ import annotations

import math
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import HTTPException
from litestar.handlers import BaseRouteHandler
from litestar.types import Message
from litestar.types import Scope as AsgiScope

from predictor_core import (
    AccessControl,
    AccessDenied,
    Admission,
    LimitDecision,
    RateLimit,
    RateLimited,
    Scope,
    ScopeMissing,
    Unauthenticated,
)

__all__ = [
    "ACCESS",
    "PUBLIC",
    "REALM",
    "SCOPE",
    "caller_id",
    "changed_by",
    "credentials",
    "denial_headers",
    "guard",
    "metrics_guard",
    "needed_scope",
    "rate_limit_fields",
    "rate_limit_headers",
]

SCOPE = "scope"
"""Handler `opt` key: the `Scope` a call needs, or PUBLIC."""
PUBLIC = "public"
"""The `opt[SCOPE]` of routes that never need a key (health probes)."""
ACCESS = "access"
"""App state key of the `AccessControl` (absent or None: auth is off)."""
REALM = "predictor-core"
_ADMISSION = "predictor_admission"
POLICY = "default"
"""The name of the one rate-limit policy in `RateLimit-Policy` and `RateLimit`."""


def needed_scope(handler: BaseRouteHandler) -> Scope | None:
    """The scope a handler needs (`admin` when it names none), or None for a public one.

    Litestar's own OPTIONS answers are public: they say which methods a path allows, nothing more, and a
    browser's CORS preflight never carries a key.
    """
    if getattr(handler, "http_methods", None) == {"OPTIONS"}:
        return None
    declared = handler.opt.get(SCOPE, Scope.ADMIN)
    return None if declared == PUBLIC else Scope(declared)


def credentials(headers: Any) -> str | None:
    """The API key sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`; None when neither is.

    Raises:
        Unauthenticated: two different keys were sent, one in each header.
    """
    bearer = None
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            bearer = value.strip() or None
    header = (headers.get("x-api-key") or "").strip() or None
    if bearer and header and bearer != header:
        raise Unauthenticated("two different API keys were sent (Authorization and X-API-Key): send one")
    return bearer or header


async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Let the call through when its key has the handler's scope and is within its rate limit.

    Raises:
        Unauthenticated, ScopeMissing, RateLimited: the answer is 401, 403 or 429.
        StoreUnavailable: the keys cannot be read now (503).
    """
    scope = needed_scope(handler)
    access: AccessControl | None = connection.app.state.get(ACCESS)
    if scope is None or access is None:
        return
    admission = await access.admit(credentials(connection.headers), scope)
    connection.scope.setdefault("state", {})[_ADMISSION] = admission


METRICS_SCOPE = Scope.READ
"""The scope a key needs to read `/metrics` from beyond loopback (an `admin` key without it may not)."""


async def metrics_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """`/metrics` from beyond loopback (`Observability(metrics_guard=...)`): a key with the `read` scope.

    A scrape takes no rate-limit token: a Prometheus must not lose its series to a key's limit. With auth
    off (no `AccessControl`) there is no key to check: 403, as without a guard.

    Raises:
        Unauthenticated, ScopeMissing: the answer is 401 or 403.
        HTTPException: 403 when auth is off.
        StoreUnavailable: the keys cannot be read now (503).
    """
    access: AccessControl | None = connection.app.state.get(ACCESS)
    if access is None:
        raise HTTPException(
            status_code=403,
            detail="/metrics is served to loopback clients only (PREDICTOR_METRICS=open serves it to all)",
        )
    key = await access.identify(credentials(connection.headers))
    if METRICS_SCOPE not in key.scopes:
        held = ", ".join(sorted(key.scopes))
        raise ScopeMissing(
            f"key {key.id} may not read /metrics: it needs the {METRICS_SCOPE.value!r} scope, "
            f"the key has {held}",
            scope=METRICS_SCOPE.value,
        )
    connection.scope.setdefault("state", {})[_ADMISSION] = Admission(key)


def _admission(connection: ASGIConnection[Any, Any, Any, Any]) -> Admission | None:
    state = connection.scope.get("state") or {}
    found: Admission | None = state.get(_ADMISSION)
    return found


def caller_id(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The id of the key the guard let through; None when the call needed no key."""
    admission = _admission(connection)
    return None if admission is None else admission.key.id


def changed_by(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """Who made a change over HTTP, for the alias history: `key:<id>`, or `http:anonymous` (auth off)."""
    key_id = caller_id(connection)
    return "http:anonymous" if key_id is None else f"key:{key_id}"


def rate_limit_fields(limit: RateLimit, decision: LimitDecision) -> dict[str, str]:
    """The IETF `RateLimit-Policy` and `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers-10).

    `q` and `w` are the key's quota and window; `r` the requests it may still send at once; `t` the
    seconds until its bucket is full again.
    """
    return {
        "RateLimit-Policy": f'"{POLICY}";q={limit.quota};w={limit.window_s}',
        "RateLimit": f'"{POLICY}";r={decision.remaining};t={math.ceil(decision.reset)}',
    }


def denial_headers(headers: Any, exc: AccessDenied) -> dict[str, str]:
    """The headers of a 401 (`WWW-Authenticate`), 403 (the scope missing) or 429 (when to come back)."""
    if isinstance(exc, RateLimited):
        return {
            "Retry-After": str(max(1, math.ceil(exc.retry_after))),
            **rate_limit_fields(exc.limit, exc.decision),
        }
    if isinstance(exc, ScopeMissing):
        return {
            "WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", scope="{exc.scope}"'
        }
    sent = bool(headers.get("authorization") or headers.get("x-api-key"))
    invalid = ', error="invalid_token"' if sent else ""  # RFC 6750 §3: no error code when none was sent
    return {"WWW-Authenticate": f'Bearer realm="{REALM}"{invalid}'}


async def rate_limit_headers(message: Message, scope: AsgiScope) -> None:
    """`before_send` hook: the rate-limit fields on every answer to a rate-limited key."""
    if message["type"] != "http.response.start":
        return
    admission: Admission | None = (scope.get("state") or {}).get(_ADMISSION)
    if admission is None or admission.limit is None or admission.key.rate is None:
        return
    headers = MutableScopeHeaders.from_message(message)
    for name, value in rate_limit_fields(admission.key.rate, admission.limit).items():
        headers[name] = value
