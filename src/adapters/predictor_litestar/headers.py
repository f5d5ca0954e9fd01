"""Response headers every answer carries, and CORS, off unless origins are configured.

`security_headers` is a `before_send` hook: Litestar calls it for every response it sends, a 404 for an
unknown path, a 405, a shed 503 and the static docs assets included, so no route can forget them:

- `X-Content-Type-Options: nosniff`: a browser never guesses a type other than the one declared;
- `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`: an answer of this API loads,
  runs and frames nothing; the docs pages (under `/docs`) get their own same-origin policy instead
  (`predictor_litestar.docs.POLICY`, also in their `<meta>`), which Swagger UI and ReDoc need;
- `Referrer-Policy: no-referrer`: the docs pages' links do not tell other sites where they came from.

The server sends no version banner: uvicorn's `Server` header is off (`predictor serve` runs it with
`server_header=False`) and Litestar adds none.

CORS: a browser page on another origin gets no answer it can read unless `cors_origins` lists that
origin (Litestar's `CORSConfig`, whose own default would allow every origin). Keys travel in headers,
never cookies, so credentials are not allowed.
"""

from __future__ import annotations

from collections.abc import Sequence

from litestar.config.cors import CORSConfig
from litestar.types import Message, Scope

from predictor_litestar.docs import DOCS, POLICY

__all__ = ["API_POLICY", "DOCS_POLICY", "cors_config", "security_headers"]

API_POLICY = "default-src 'none'; frame-ancestors 'none'"
"""The Content-Security-Policy of every answer but the docs pages: nothing to load, run or frame."""
DOCS_POLICY = f"{POLICY}; frame-ancestors 'none'"
"""The docs pages' policy as a header: their `<meta>` policy, plus what only a header can say."""

_ALWAYS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
_API = (*_ALWAYS, (b"content-security-policy", API_POLICY.encode()))
_DOCS = (*_ALWAYS, (b"content-security-policy", DOCS_POLICY.encode()))
_DOCS_PREFIX = f"{DOCS}/"


async def security_headers(message: Message, scope: Scope) -> None:
    """`before_send` hook: add the security headers to the start of every response."""
    if message["type"] != "http.response.start":
        return
    path = scope["path"]
    added = _DOCS if path == DOCS or path.startswith(_DOCS_PREFIX) else _API
    headers = message.get("headers", ())
    if type(headers) is list:  # Litestar makes a new list for each answer: no copy needed
        headers.extend(added)
    else:
        message["headers"] = [*headers, *added]


def cors_config(origins: Sequence[str]) -> CORSConfig | None:
    """CORS for exactly these origins (`https://app.example`, or `*` for any); None (off) when empty."""
    if not origins:
        return None
    return CORSConfig(
        allow_origins=list(origins),
        allow_methods=["GET", "POST", "PUT", "DELETE"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "Inference-Header-Content-Length",
            "X-API-Key",
            "X-Request-ID",
        ],
        expose_headers=[
            "Inference-Header-Content-Length",
            "RateLimit",
            "RateLimit-Policy",
            "Retry-After",
            "WWW-Authenticate",
            "X-Request-ID",
        ],
        allow_credentials=False,
        max_age=600,
    )
