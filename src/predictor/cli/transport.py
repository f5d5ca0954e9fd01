"""Bounds on what one HTTP connection may hold: head size, head and body timeouts, connections per worker.

uvicorn's httptools protocol reads a request head of any size (httptools buffers a header until it ends:
one 128 MB header was accepted and froze the server for 20 s), holds an idle or slow socket for ever
(`timeout_keep_alive` only starts after a first answer), and answers its own protocol errors in
text/plain. `BoundedHttpToolsProtocol` is that protocol with:

- a head (request line + headers) bound: `max_header_bytes`, else 431;
- a head timeout from connection open, or from the end of the previous answer, until the head is
  complete: `header_timeout`, else 408 (or a quiet close when not one byte of it came);
- a body timeout, `body_timeout` seconds without a byte of a body still due, else 408;
- a cap on the connections one worker holds, `max_connections`; one more is answered 503 at once and
  closed, before its file descriptor can be missed elsewhere;
- every answer of its own in `application/problem+json`, the shape of the API's other problems.

Its writes go through `CoalescingTransport`: an answer's head and body, which uvicorn writes apart, leave
in one `send`, and a request that arrives whole arms no body timer (at 64 connections, recording off, ten
interleaved rounds: 1.18x the requests a second, 0.85x the CPU a request; docs/api.md, Performance). A
keep-alive connection keeps one head timer, whose deadline each answer moves.

Refusals and time-outs are logged as counts, the first at once and then at most one WARNING line a
second, never one line (or traceback) each. The h11 fallback (no httptools) gets the head bound through
uvicorn's `h11_max_incomplete_event_size` (400, not 431) and problem answers; not the two timeouts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import http
import logging
import resource
from collections import Counter
from typing import Any

import httptools
import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from predictor_litestar.problems import PROBLEM_JSON, ProblemBody

__all__ = ["BoundedH11Protocol", "BoundedHttpToolsProtocol", "TransportLimits", "http_protocol"]

FD_RESERVE = 64
"""File descriptors a worker keeps for itself beyond its connections: database pool, model files, logs."""
LINGER_S = 2.0
"""After an error answer the connection reads and drops what the client still sends, this long at most,
so that a client still writing its request reads the answer instead of a reset (nginx's lingering close)."""
LOG_EVERY_S = 1.0
CLOCK_SLACK_S = 0.001
"""A head or body timer firing this close to its deadline counts as on time: uvloop's clock and timers
are in milliseconds, so re-arming for the rest could only spin until the clock ticks."""
FLUSH_AT = 64 * 1024
"""Bytes a connection's writes may wait within one event-loop turn before they leave together."""
_log = logging.getLogger("uvicorn.error")
_encoder = msgspec.json.Encoder()


@dataclasses.dataclass(frozen=True)
class TransportLimits:
    """What one worker allows a connection; built from the settings by `serve`, picklable for workers."""

    max_header_bytes: int = 32_768
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_connections: int = 1000


def connection_cap(wanted: int, soft_limit: int | None = None) -> int:
    """`wanted`, or fewer when the open-file limit (RLIMIT_NOFILE) leaves less beside `FD_RESERVE`."""
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY or soft_limit < 0:
        return wanted
    return max(1, min(wanted, soft_limit - FD_RESERVE))


def http_protocol(limits: TransportLimits, *, httptools_available: bool = True) -> Any:
    """The `http=` argument for `uvicorn.run`: a protocol factory bound to `limits` (picklable).

    The h11 fallback takes no limits: its head bound is uvicorn's own setting, and it has no timeouts.
    """
    if not httptools_available:
        return BoundedH11Protocol
    return functools.partial(BoundedHttpToolsProtocol, limits=limits)


def problem_response(status: int, detail: str, *, extra: tuple[bytes, ...] = ()) -> bytes:
    """A complete HTTP/1.1 answer, `Connection: close`, with an RFC 9457 body like the API's others."""
    title = http.HTTPStatus(status).phrase
    body = _encoder.encode(ProblemBody(title=title, status=status, detail=detail))
    head = [
        f"HTTP/1.1 {status} {title}".encode(),
        f"content-type: {PROBLEM_JSON}".encode(),
        f"content-length: {len(body)}".encode(),
        b"connection: close",
        *extra,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


REFUSED = problem_response(
    503, "This server holds as many connections as it may; try again.", extra=(b"retry-after: 1",)
)
HEAD_TOO_LARGE = problem_response(431, "The request line and headers are too large.")
HEAD_TIMEOUT = problem_response(408, "The request line and headers did not arrive in time.")
BODY_TIMEOUT = problem_response(408, "The request body stopped arriving.")
BAD_REQUEST = problem_response(400, "Invalid HTTP request received.")


class _Tally:
    """Counts of refusals and time-outs in this worker, logged at once and then at most once a second."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.cap = 0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, loop: asyncio.AbstractEventLoop, event: str) -> None:
        self.counts[event] += 1
        if self._timer is None:
            self._flush()
            self._timer = loop.call_later(LOG_EVERY_S, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.counts:
            self._flush()
            self._timer = loop.call_later(LOG_EVERY_S, self._tick, loop)
        else:
            self._timer = None

    def _flush(self) -> None:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        counts = dict(sorted(self.counts.items()))
        line = {"ts": now, "event": "transport", **counts, "max_connections": self.cap}
        _log.warning(_encoder.encode(line).decode())
        self.counts.clear()


TALLY = _Tally()


class _HeadTooLarge(Exception):
    pass


class CoalescingTransport:
    """A connection's transport whose writes of one event-loop turn leave as one `send`.

    uvicorn writes an answer's head and its body separately, and uvloop sends each at once: two
    system calls and two TCP segments for every answer. Here the first write of a turn schedules a
    flush at the end of the turn (`call_soon`), and what was written meanwhile goes out joined. A
    streamed answer still leaves chunk by chunk, one turn each, and `FLUSH_AT` bytes leave at once, so
    that a large answer meets the transport's flow control (uvicorn waits while writing is paused)
    within the turn that writes it. Closing or half-closing flushes first; aborting drops what waits,
    as the transport's own abort drops its buffer.
    """

    __slots__ = ("_loop", "_pending", "_size", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)
        self._size += len(data)
        if self._size >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Send what waits now (nothing when it was sent or the connection is closing)."""
        pending, self._pending, self._size = self._pending, [], 0
        if pending and not self.transport.is_closing():
            self.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self._pending, self._size = [], 0
        self.transport.abort()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() + self._size

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of `TransportLimits` (module docstring)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: TransportLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._refused = False
        self._lingering = False
        self._awaiting_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_due: float | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_seen = 0.0
        self._body_due = False

    # connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        TALLY.cap = self.limits.max_connections
        if len(self.connections) >= self.limits.max_connections:
            self._refused = True
            self.transport = transport
            transport.write(REFUSED)
            transport.close()
            TALLY.add(self.loop, "refused")
            return
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self._refused:
            return
        super().connection_lost(exc)

    def eof_received(self) -> None:
        if self._lingering:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused or self._lingering or self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        if self._awaiting_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._reject(HEAD_TOO_LARGE, "head_too_large")
            else:
                self._reject(BAD_REQUEST, "bad_request")
            return
        if self._awaiting_head and self._head_bytes > self.limits.max_header_bytes:
            self._reject(HEAD_TOO_LARGE, "head_too_large")
        elif self._body_due and self._body_timer is None:
            # armed only for a body still due once these bytes are read: a request that came whole
            # (the common case) costs no timer
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_timed_out)

    def send_400_response(self, msg: str) -> None:
        self._reject(BAD_REQUEST, "bad_request")

    # parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_head = True

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            raise _HeadTooLarge
        self._awaiting_head = False
        self._cancel_head_timer()
        super().on_headers_complete()
        self._body_seen = self.loop.time()
        self._body_due = True

    def on_body(self, body: bytes) -> None:
        self._body_seen = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._body_due = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()
        self._awaiting_head = True
        self._head_bytes = 0
        if self.cycle is not None and self.cycle.response_complete:
            self._arm_head_timer()

    def on_response_complete(self) -> None:
        waiting = not self.pipeline
        super().on_response_complete()
        if waiting and self._awaiting_head and not self.transport.is_closing():
            self._arm_head_timer()

    # time-outs and refusals

    def _arm_head_timer(self) -> None:
        """The next head is due within `header_timeout` from now.

        One timer a connection, moved only when it fires before the deadline: at keep-alive rates a
        `call_later` and a `cancel` for every request cost 1.5 µs (uvloop), moving a deadline a float.
        """
        self._head_due = self.loop.time() + self.limits.header_timeout
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        self._head_due = None  # an armed timer finds no head due, and stops

    def _cancel_timers(self) -> None:
        self._head_due = None
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        due = self._head_due
        if due is None:
            return
        wait = due - self.loop.time()
        if wait > CLOCK_SLACK_S:  # the deadline moved since the timer was armed: wait the rest
            self._head_timer = self.loop.call_later(wait, self._head_timed_out)
            return
        self._head_due = None
        if self.transport.is_closing() or self._lingering:
            return
        if self._head_bytes:
            self._reject(HEAD_TIMEOUT, "head_timeout")
        else:  # an idle connection: nothing to answer
            self.transport.close()
            TALLY.add(self.loop, "idle_closed")

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self._lingering:
            return
        idle = self.loop.time() - self._body_seen
        if self.flow.read_paused or idle < self.limits.body_timeout - CLOCK_SLACK_S:
            # the app has not read what came (flow control stopped reading), or bytes came meanwhile
            wait = self.limits.body_timeout if self.flow.read_paused else self.limits.body_timeout - idle
            self._body_timer = self.loop.call_later(wait, self._body_timed_out)
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_complete:
            self.transport.close()  # answered already (say 413 before the body): just stop waiting
        elif cycle is not None and cycle.response_started:
            self._abandon(cycle)
            self.transport.close()
        else:
            if cycle is not None:
                self._abandon(cycle)
            self._reject(BODY_TIMEOUT, "body_timeout")
            return
        TALLY.add(self.loop, "body_timeout")

    @staticmethod
    def _abandon(cycle: Any) -> None:
        """The app waiting for this body gets `http.disconnect`; what it sends after is dropped."""
        cycle.disconnected = True
        cycle.message_event.set()

    def _reject(self, answer: bytes, event: str) -> None:
        """Answer `answer`, stop writing, drop what the client still sends for `LINGER_S`, then close."""
        self._cancel_timers()
        self._lingering = True
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            self._abandon(cycle)  # a pipelined head went wrong while the app answers the one before
            if cycle.response_started:
                self.transport.close()
                TALLY.add(self.loop, event)
                return
        self.transport.write(answer)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()
        TALLY.add(self.loop, event)


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol answering its protocol errors as problems (head bound: uvicorn's config)."""

    def send_400_response(self, msg: str) -> None:
        self.transport.write(BAD_REQUEST)
        self.transport.close()
        TALLY.add(self.loop, "bad_request")
