"""One-record `POST /predict` served straight from ASGI: the common case of the hottest route.

For one record, Litestar's handler machinery (a Request built from headers, dependency injection,
signature parsing, the Response and its ASGI form) cost about as much as validating and predicting it:
in a profile at 64 connections, about a quarter of the server's CPU per request. `DirectPredict` is
an ASGI middleware declared on that one handler (`predict_one`), so it runs after Litestar's routing
(path parameters set, the handler known) and inside everything around it: `Observability`, CORS, the
`before_send` hooks (security and rate-limit headers) and the app's exception handlers.

A request whose headers certify the ordinary case (`plain_json_length`: `application/json`, no
content coding, a Content-Length within the limit) is served here by the handler's own steps: the
guards, the strict decoder, `answer_one`, and the same JSON bytes Litestar would send. Any other request
goes to the handler untouched, which answers it (415, 413...) by the full rules. Errors raised here are
the handler's own exceptions and reach the same exception handlers: the same problem+json answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar.exceptions import InternalServerException
from litestar.types import ASGIApp, Receive, Send

from predictor_core import PredictionService
from predictor_litestar.bodies import decode, plain_json_length
from predictor_litestar.tracing import timed

__all__ = ["Answer", "DirectPredict"]

Answer = Callable[[Any, PredictionService, Any], Awaitable[msgspec.Struct]]
"""The handler's own step after decoding: `(request, service, body) -> answer`."""
_encoder = msgspec.json.Encoder()
_JSON = (b"content-type", b"application/json")


class DirectPredict:
    """ASGI middleware of `predict_one`: serves the ordinary request itself, hands the rest on."""

    def __init__(self, app: ASGIApp, *, body: type[msgspec.Struct], answer: Answer) -> None:
        """Declared as `DefineMiddleware(DirectPredict, body=..., answer=...)` on the handler."""
        self.app = app
        self.decoder = msgspec.json.Decoder(body)
        self.answer = answer
        self._service: PredictionService | None = None

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        handler: Any = scope["route_handler"]
        length = plain_json_length(scope["headers"], handler.resolve_request_max_body_size())
        if length is None:  # (only POST reaches this handler's stack: Litestar routes by method)
            await self.app(scope, receive, send)
            return
        request = handler.resolve_request_class()(scope=scope, receive=receive, send=send)
        for guard in handler.resolve_guards():  # as Litestar does, without its copy of the handler
            await guard(request, handler)
        body = await _read(receive)
        with timed("decode"):
            decoded = decode(body, self.decoder)
        answer = _encoder.encode(await self.answer(request, await self._resolve(handler), decoded))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_JSON, (b"content-length", str(len(answer)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": answer, "more_body": False})

    async def _resolve(self, handler: Any) -> PredictionService:
        """The app's `service`, from its provider (a constant: asked once per app)."""
        if self._service is None:
            self._service = await handler.resolve_dependencies()["service"]()
        return self._service


async def _read(receive: Receive) -> bytes:
    """The whole body; the server stops at the Content-Length `plain_json_length` checked."""
    chunks = []
    while True:
        message: Any = await receive()
        if message["type"] == "http.disconnect":
            raise InternalServerException("client disconnected prematurely")  # as Litestar's Request
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
