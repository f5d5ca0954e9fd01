"""What the HTTP server shows of its work, and the bound that keeps it out of overload.

`Observability` is one object per app, given to `create_app` and to the `PredictionService` (it is the
core's `PredictionObserver`). It wraps the whole Litestar app in one ASGI layer, outside routing, so
every request is seen, a 404 as much as a prediction:

- a request id: the client's `X-Request-ID` when it follows the one rule of request ids (1 to 128
  characters, no control character: `tracing.request_id_fault`, which the routes that record the id
  apply too), else a new UUIDv7 (`tracing.new_request_id`); always sent back in `X-Request-ID`;
- overload shedding: at most `max_in_flight` requests in this worker at once; one more is answered
  at once with 503 problem+json and `Retry-After: 1` instead of queueing behind the others (health
  probes and `/metrics` are never bounded, so an orchestrator still sees the process);
- metrics (`predictor_litestar.metrics`): requests by route template and status, their durations, the
  stages of each prediction, validation failures, store outages, requests in flight, sheds, 429s;
- one JSON log line per request: request id, key id, method, route, path, status, duration, model,
  version, the time in each stage, and the kind of error. Never a feature value, a header or a query
  string: nothing a client sends beyond the path and the id. The lines go to a `RequestLog` when one is
  given (the server's: standard output written in blocks, see `configure_request_log`), else to the
  `predictor.requests` logger at INFO.
  Shed requests are the exception: they are counted in one WARNING line at once, then at most one a
  second (`"event": "shed"`), so that an overload does not also flood the logs.

A client that goes away before its body has arrived gets no traceback in the logs: its request is
answered 499 (as nginx names it; nobody reads it) and its log line says `client_disconnected`.

The key id comes from the ASGI scope's state: `scope["state"]["key_id"]` (`KEY_ID`), set by whatever
authenticated the call, else the `Admission` the API-key guard (`predictor_litestar.access`) left there.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, BinaryIO

import msgspec
from litestar import Request, Response, get
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp, Message, Receive, Send
from litestar.utils import normalize_path

from predictor_core import ModelIdentity, ModelManifest, ModelRegistry, ValidationFailed
from predictor_litestar.metrics import CONTENT_TYPE, UNMATCHED, ServerMetrics, is_loopback
from predictor_litestar.problems import PROBLEM_JSON, ProblemBody
from predictor_litestar.tracing import (
    KEY_ID,
    MAX_REQUEST_ID,
    REQUEST_ID,
    RequestTrace,
    begin,
    current_trace,
    end,
    new_request_id,
    request_id_fault,
)

__all__ = ["BYPASS", "REQUEST_LOGGER", "MetricsGuard", "Observability", "RequestLog", "configure_request_log"]
REQUEST_LOGGER = "predictor.requests"
BYPASS = frozenset(
    {"/health", "/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready", "/metrics"}
)
"""Paths never shed nor counted in flight: an overloaded worker must still answer its probes."""
SHED_RETRY_AFTER_S = 1
SHED_LOG_EVERY_S = 1.0
SHED = "shed"
_MAX_PATH = 200
_ADMISSION = "predictor_admission"
_encoder = msgspec.json.Encoder()
_log = logging.getLogger(REQUEST_LOGGER)

MetricsGuard = Callable[[Any, Any], Awaitable[None]]
"""A Litestar guard `(connection, handler)`, awaited for `/metrics` requests from beyond loopback when
metrics are not open; it raises to refuse (the server's: `predictor_litestar.access.metrics_guard`, a
key with the `read` scope, else 401/403)."""


class RequestLog:
    """Request log lines written to a binary stream in blocks, not one write (and flush) per line.

    Lines wait at most `delay` seconds (a timer on the running event loop), or until `limit` bytes wait;
    then they are written in blocks of whole lines of at most `block` bytes, one `write` + `flush` each:
    4096 bytes is `PIPE_BUF`, so that several workers sharing one pipe never interleave within a line.
    `flush` writes what waits (the app's lifespan calls it at exit, and `atexit` once more), so a server
    stopped by SIGTERM or SIGINT loses no line; a process killed (SIGKILL) loses at most `delay` of them.

    Measured in-process, standard output a pipe, `POST /predict` unrecorded: a line a request through a
    `logging.StreamHandler` (a record, a write and a flush each) cost about 80 µs of the request's 240;
    in blocks about 12 µs, the line's encoding included.
    """

    def __init__(
        self, stream: BinaryIO, *, delay: float = 0.2, limit: int = 64 * 1024, block: int = 4096
    ) -> None:
        self.stream = stream
        self.delay = delay
        self.limit = limit
        self.block = block
        self._lines: list[bytes] = []
        self._waiting = 0
        self._timer: asyncio.TimerHandle | None = None
        self._lock = threading.Lock()  # the event loop writes; `atexit` or a test's thread may flush

    def write(self, line: bytes) -> None:
        """Add one line (without its newline); written within `delay` seconds."""
        with self._lock:
            self._lines.append(line)
            self._waiting += len(line) + 1
            full = self._waiting >= self.limit
            timed = self._timer is not None
        if full:
            self.flush()
        elif not timed:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop: nothing would flush it later
                self.flush()
                return
            self._timer = loop.call_later(self.delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Write every waiting line now."""
        with self._lock:
            lines, self._lines, self._waiting = self._lines, [], 0
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        if not lines:
            return
        with contextlib.suppress(ValueError, OSError):  # a closed or broken standard output at exit
            start, size = 0, 0
            for i, line in enumerate(lines):
                if size and size + len(line) + 1 > self.block:
                    self._write(lines[start:i])
                    start, size = i, 0
                size += len(line) + 1
            self._write(lines[start:])

    def _write(self, lines: list[bytes]) -> None:
        lines.append(b"")
        self.stream.write(b"\n".join(lines))
        self.stream.flush()


class Observability:
    """Request ids, overload shedding, metrics and request logs of one HTTP app; the core's observer."""

    def __init__(
        self,
        *,
        max_in_flight: int | None = None,
        metrics_open: bool = False,
        metrics_guard: MetricsGuard | None = None,
        metrics: ServerMetrics | None = None,
        request_log: RequestLog | None = None,
    ) -> None:
        """Set the bound and who may read `/metrics`.

        Args:
            max_in_flight: most requests this worker handles at once (probes and scrapes aside); None
                means no bound.
            metrics_open: serve `/metrics` to every client, not only to loopback ones.
            metrics_guard: asked about `/metrics` requests from beyond loopback when metrics are not
                open (the API-key check); None refuses them with 403.
            metrics: the metrics to count in (a new set when None).
            request_log: where the request log lines go; None: the `predictor.requests` logger, at
                INFO (whatever handlers it has).
        """
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.max_in_flight = max_in_flight
        self.metrics_open = metrics_open
        self.metrics_guard = metrics_guard
        self.metrics = metrics or ServerMetrics()
        self.request_log = request_log
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
            if self._sheds_unlogged:
                self._log_sheds()
            if self.request_log is not None:
                self.request_log.flush()
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
        request_id, header = _request_id(scope)
        trace = RequestTrace(request_id=request_id, method=scope["method"], path=scope["path"])
        state = scope.setdefault("state", {})
        state[REQUEST_ID] = request_id

        holding = False
        """Whether this request holds one of the `max_in_flight` places."""

        def release() -> None:
            nonlocal holding
            if holding:
                holding = False
                self.in_flight -= 1
                self.metrics.in_flight.dec()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                trace.status = message["status"]
                headers = message.get("headers", ())
                if type(headers) is list:  # Litestar's and ours: a new list for each answer
                    headers.append(header)
                else:
                    message = {**message, "headers": [*headers, header]}
            elif not message.get("more_body", False):
                # the place is free once the answer is complete: its client may send the next request
                # on the same connection before this handler has returned
                release()
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
                holding = True
                try:
                    await app(scope, receive_watching, send_with_id)
                finally:
                    release()
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
        elif self.request_log is not None:
            self.request_log.write(_line(trace, scope, route, status, seconds))
        elif _log.isEnabledFor(logging.INFO):
            _log.info(_line(trace, scope, route, status, seconds).decode())

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
        line = {
            "ts": _now(),
            "event": "shed",
            "requests": self._sheds_unlogged,
            "max_in_flight": self.max_in_flight,
        }
        if self.request_log is not None:
            self.request_log.write(_encoder.encode(line))
        elif _log.isEnabledFor(logging.WARNING):
            _log.warning(_encoder.encode(line).decode())
        self._sheds_unlogged = 0


def _request_id(scope: Any) -> tuple[str, tuple[bytes, bytes]]:
    """The request's id and its `X-Request-ID` answer header: the client's when it follows the rule."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if 0 < len(value) <= MAX_REQUEST_ID:
                text: str = value.decode("latin-1")  # as Litestar reads headers: the same text
                if request_id_fault(text) is None:
                    return text, (b"x-request-id", value)
            break
    made = new_request_id()
    return made, (b"x-request-id", made.encode())


_second: list[Any] = [None, ""]
"""The last whole second a log line was stamped with, and its text (one strftime a second)."""


def _now() -> str:
    """The time now, as `2026-12-06T15:34:18.669Z` (UTC, milliseconds, truncated)."""
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    if seconds != _second[0]:
        _second[0], _second[1] = seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{_second[1]}.{nanos // 1_000_000:03d}Z"


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


def _line(trace: RequestTrace, scope: Any, route: str, status: int, seconds: float) -> bytes:
    line = {
        "ts": _now(),
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
    return _encoder.encode(line)


def configure_request_log(enabled: bool = True) -> RequestLog | None:
    """The server's request log: standard output, one JSON object a line, written in blocks; or None.

    For the composition root, once per process: give the answer to `Observability(request_log=...)`.
    The same `RequestLog` is answered on every call, and flushed at exit (`atexit`) besides each app's
    lifespan end. Disabled, the `predictor.requests` logger is set to WARNING and None is answered. The
    uvicorn access log (`--access-log`) is separate.
    """
    global _stdout_log
    _log.propagate = False
    _log.setLevel(logging.INFO if enabled else logging.WARNING)
    if not enabled:
        return None
    if _stdout_log is None:
        _stdout_log = RequestLog(sys.stdout.buffer)
        atexit.register(_stdout_log.flush)
    return _stdout_log


_stdout_log: RequestLog | None = None
