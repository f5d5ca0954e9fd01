"""What the HTTP server shows of its work, and the bound that keeps it out of overload.

`Observability` is one object per app, given to `create_app` and to the `PredictionService` (it is the
core's `PredictionObserver`). It wraps the whole Litestar app in one ASGI layer, outside routing, so
every request is seen, a 404 as much as a prediction:

- a request id: the client's `X-Request-ID` when it is sane (1 to 128 characters of `A-Z a-z 0-9` and
  `._~:/+=@-`), else a new UUIDv7; always sent back in `X-Request-ID`;
- overload shedding: at most `max_in_flight` requests in this worker at once; one more is answered
  at once with 503 problem+json and `Retry-After: 1` instead of queueing behind the others (health
  probes and `/metrics` are never bounded, so an orchestrator still sees the process);
- metrics (`predictor_litestar.metrics`): requests by route template and status, their durations, the
  stages of each prediction, validation failures, store outages, requests in flight, sheds, 429s;
- one JSON log line per request on the `predictor.requests` logger (at INFO): request id, key id, method,
  route, path, status, duration, model, version, the time in each stage, and the kind of error. Never
  a feature value, a header or a query string: nothing a client sends beyond the path and the id.
  Shed requests are the exception: they are counted in one WARNING line at once, then at most one a
  second (`"event": "shed"`), so that an overload does not also flood the logs.

A client that goes away before its body has arrived gets no traceback in the logs: its request is
answered 499 (as nginx names it; nobody reads it) and its log line says `client_disconnected`.

The key id comes from the ASGI scope's state: `scope["state"]["key_id"]` (`KEY_ID`), set by whatever
authenticated the call, else the `Admission` the API-key guard (`predictor_litestar.access`) left there.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp, Message, Receive, Send
from litestar.utils import normalize_path

from predictor_core import ModelIdentity, ModelManifest, ModelRegistry, ValidationFailed, new_prediction_id
from predictor_litestar.metrics import CONTENT_TYPE, UNMATCHED, ServerMetrics, is_loopback
from predictor_litestar.problems import PROBLEM_JSON, ProblemBody
from predictor_litestar.tracing import KEY_ID, REQUEST_ID, RequestTrace, begin, current_trace, end

__all__ = ["BYPASS", "REQUEST_LOGGER", "MetricsGuard", "Observability", "configure_request_log"]
REQUEST_LOGGER = "predictor.requests"
BYPASS = frozenset(
    {"/health", "/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready", "/metrics"}
)
"""Paths never shed nor counted in flight: an overloaded worker must still answer its probes."""
SHED_RETRY_AFTER_S = 1
SHED_LOG_EVERY_S = 1.0
SHED = "shed"
_SANE_ID = re.compile(r"[A-Za-z0-9._~:/+=@-]{1,128}")
_MAX_PATH = 200
_ADMISSION = "predictor_admission"
_encoder = msgspec.json.Encoder()
_log = logging.getLogger(REQUEST_LOGGER)

MetricsGuard = Callable[[Any, Any], Awaitable[None]]
"""A Litestar guard `(connection, handler)`, awaited for `/metrics` requests from beyond loopback when
metrics are not open; it raises to refuse (e.g. the API-key guard, which answers 401/403)."""


class Observability:
    """Request ids, overload shedding, metrics and request logs of one HTTP app; the core's observer."""

    def __init__(
        self,
        *,
        max_in_flight: int | None = None,
        metrics_open: bool = False,
        metrics_guard: MetricsGuard | None = None,
        metrics: ServerMetrics | None = None,
    ) -> None:
        """Set the bound and who may read `/metrics`.

        Args:
            max_in_flight: most requests this worker handles at once (probes and scrapes aside); None
                means no bound.
            metrics_open: serve `/metrics` to every client, not only to loopback ones.
            metrics_guard: asked about `/metrics` requests from beyond loopback when metrics are not
                open (the API-key check); None refuses them with 403.
            metrics: the metrics to count in (a new set when None).
        """
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.max_in_flight = max_in_flight
        self.metrics_open = metrics_open
        self.metrics_guard = metrics_guard
        self.metrics = metrics or ServerMetrics()
        self.in_flight = 0
        """Requests this app handles now (bounded ones only)."""
        self._sheds_unlogged = 0
        self._shed_timer: asyncio.TimerHandle | None = None
        self._shed_body = _encoder.encode(self._shed_problem(v2=False))
        self._shed_body_v2 = _encoder.encode(self._shed_problem(v2=True))

    def _shed_problem(self, *, v2: bool) -> ProblemBody:
        detail = (
            f"this server is handling {self.max_in_flight} requests, its limit: retry after "
            f"{SHED_RETRY_AFTER_S} s"
        )
        error = detail if v2 else None
        return ProblemBody(title="Service unavailable", status=503, detail=detail, error=error)

    # -- the core's PredictionObserver ----------------------------------------------------------------

    def stage(self, model: ModelIdentity, stage: str, seconds: float, /) -> None:
        """Count one stage of a prediction call, in the metrics and in the request's trace."""
        trace = current_trace()
        if trace is not None:
            self._attribute(trace, model)
            trace.stages[stage] = trace.stages.get(stage, 0.0) + seconds
        self.metrics.stage(model, stage, seconds)

    def invalid(self, manifest: ModelManifest, failure: ValidationFailed, /) -> None:
        """Count the problems of a refused call."""
        trace = current_trace()
        if trace is not None:
            self._attribute(trace, manifest.identity)
        self.metrics.invalid(manifest, failure)

    def _attribute(self, trace: RequestTrace, model: ModelIdentity) -> None:
        """The first model a request reaches is its model; the decode time is that version's."""
        if trace.identity is not None:
            return
        trace.identity, trace.model, trace.version = model, model.name, model.version
        decode = trace.stages.get("decode")
        if decode is not None:
            self.metrics.stage(model, "decode", decode)

    # -- wiring into the app --------------------------------------------------------------------------

    def track(self, models: ModelRegistry) -> None:
        """Show the versions `models` loads in `predictor_model_info`."""
        self.metrics.track(models)

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """The ASGI layer around the whole app (outside routing and its exception handling)."""

        async def observed(scope: Any, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            await self._handle(app, scope, receive, send)

        return observed

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Any) -> AsyncIterator[None]:
        """For `Litestar(lifespan=[...])`: sweep exited workers' metric files; at exit, leave the sums."""
        self.metrics.start(self.max_in_flight)
        try:
            yield
        finally:
            if self._shed_timer is not None:
                self._shed_timer.cancel()
                self._shed_timer = None
            self.metrics.stop()

    def route(self) -> HTTPRouteHandler:
        """`GET /metrics`: open on loopback, else with `metrics_open` or what `metrics_guard` allows."""
        observability = self

        @get("/metrics", include_in_schema=False)
        async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
            await observability._authorize(request)
            observability.metrics.sync_models()
            render = observability.metrics.render
            body = render() if observability.metrics.directory is None else await asyncio.to_thread(render)
            return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})

        return metrics

    async def _authorize(self, request: Request[Any, Any, Any]) -> None:
        if self.metrics_open or is_loopback(request.client.host if request.client else None):
            return
        if self.metrics_guard is not None:
            await self.metrics_guard(request, request.route_handler)
            return
        raise HTTPException(
            status_code=403,
            detail="/metrics is served to loopback clients only (PREDICTOR_METRICS=open serves it to all)",
        )

    # -- one request ----------------------------------------------------------------------------------

    async def _handle(self, app: ASGIApp, scope: Any, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        trace = RequestTrace(request_id=_request_id(scope), method=scope["method"], path=scope["path"])
        state = scope.setdefault("state", {})
        state[REQUEST_ID] = trace.request_id
        header = (b"x-request-id", trace.request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                trace.status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        async def receive_watching() -> Any:
            message = await receive()
            if message["type"] == "http.disconnect" and trace.status is None:
                trace.client_gone = True
            return message

        token = begin(trace)
        bounded = self.max_in_flight is not None and scope["path"] not in BYPASS
        route: str | None = None
        try:
            if bounded and self.in_flight >= (self.max_in_flight or 0):
                route = _route_of(scope)
                await self._shed(scope, send_with_id)
            elif bounded:
                self.in_flight += 1
                self.metrics.in_flight.inc()
                try:
                    await app(scope, receive_watching, send_with_id)
                finally:
                    self.in_flight -= 1
                    self.metrics.in_flight.dec()
            else:
                await app(scope, receive_watching, send_with_id)
        finally:
            end(token)
            self._finish(trace, scope, route, time.perf_counter() - started)

    async def _shed(self, scope: Any, send: Send) -> None:
        body = self._shed_body_v2 if scope["path"].startswith("/v2") else self._shed_body
        trace = current_trace()
        if trace is not None:
            trace.error = SHED
        self.metrics.shed.inc()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(SHED_RETRY_AFTER_S).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _finish(self, trace: RequestTrace, scope: Any, route: str | None, seconds: float) -> None:
        status = trace.status
        if status is None or (trace.client_gone and status >= 500):
            status = 499 if trace.client_gone else 500
        if trace.client_gone:
            trace.error = "client_disconnected"
        route = route or scope.get("path_template") or UNMATCHED
        self.metrics.request(trace.method, route, status, seconds)
        if status == 503 and trace.error == "StoreUnavailable":
            self.metrics.store_unavailable.inc()
        if trace.error == SHED:
            self._count_shed()
        elif _log.isEnabledFor(logging.INFO):
            _log.info(_line(trace, scope, route, status, seconds))

    def _count_shed(self) -> None:
        """Sheds are logged as a count, at once for the first and then at most once a second.

        Measured: clients that retry at once (no back-off) got 5,700 sheds a second from one worker; a
        line each would be 1.7 MB of log a second, written when the server can least afford it.
        """
        self._sheds_unlogged += 1
        if self._shed_timer is None:
            self._log_sheds()
            self._shed_timer = asyncio.get_running_loop().call_later(SHED_LOG_EVERY_S, self._shed_tick)

    def _shed_tick(self) -> None:
        if self._sheds_unlogged:
            self._log_sheds()
            self._shed_timer = asyncio.get_running_loop().call_later(SHED_LOG_EVERY_S, self._shed_tick)
        else:
            self._shed_timer = None

    def _log_sheds(self) -> None:
        if _log.isEnabledFor(logging.WARNING):
            now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            line = {
                "ts": now,
                "event": "shed",
                "requests": self._sheds_unlogged,
                "max_in_flight": self.max_in_flight,
            }
            _log.warning(_encoder.encode(line).decode())
        self._sheds_unlogged = 0


def _request_id(scope: Any) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if _SANE_ID.fullmatch(text):
                return text
            break
    return str(new_prediction_id())


def _route_of(scope: Any) -> str:
    """The route template of a request that is not routed (shed): the router's own (cached) answer."""
    try:
        router = scope["litestar_app"].asgi_router
        return str(router.handle_routing(path=normalize_path(scope["path"]), method=scope["method"])[4])
    except Exception:  # no route, or a Litestar without this method: still counted, by a bounded label
        return UNMATCHED


def _key_id(state: dict[str, Any]) -> str | None:
    key_id = state.get(KEY_ID)
    if key_id is None:  # the API-key guard keeps its whole admission there
        key = getattr(state.get(_ADMISSION), "key", None)
        key_id = getattr(key, "id", None)
    return None if key_id is None else str(key_id)


def _line(trace: RequestTrace, scope: Any, route: str, status: int, seconds: float) -> str:
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    line = {
        "ts": now,
        "event": "request",
        "request_id": trace.request_id,
        "key_id": _key_id(scope.get("state") or {}),
        "method": trace.method,
        "route": route,
        "path": trace.path[:_MAX_PATH],
        "status": status,
        "duration_ms": round(seconds * 1000.0, 3),
        "model": trace.model,
        "version": trace.version,
        "stages_ms": {k: round(v * 1000.0, 3) for k, v in trace.stages.items()},
        "error": trace.error,
    }
    return _encoder.encode(line).decode()


def configure_request_log(enabled: bool = True) -> None:
    """Send the request log lines to standard output, one JSON object a line (or silence them).

    For the composition root, once per process; the uvicorn access log (`--access-log`) is separate.
    """
    _log.propagate = False
    _log.setLevel(logging.INFO if enabled else logging.WARNING)
    if enabled and not any(getattr(h, "_predictor", False) for h in _log.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._predictor = True  # type: ignore[attr-defined]
        _log.addHandler(handler)
