"""The trace of the request being handled: what the request log line and the metrics read at its end.

A context variable holds it for the task that serves the request, so code anywhere in the HTTP adapter
(and the core's observer) can add to it without being handed the request: the decode time, the model
version that answered, the kind of error. Set only by `Observability` (one per app); everything here is
a no-op outside a request.

Request ids follow one rule, here, for every layer that reads one: 1 to `MAX_REQUEST_ID` characters
and no control character (`request_id_fault`). `Observability` answers and logs a client's
`X-Request-ID` that follows it and makes one (`new_request_id`) otherwise; a route that records the id
(`POST /predict`, the v2 `id`) refuses one that does not with 400, so what is recorded is what was logged.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import time
from collections.abc import Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

from predictor_core import ModelIdentity

__all__ = [
    "KEY_ID",
    "MAX_REQUEST_ID",
    "REQUEST_ID",
    "RequestTrace",
    "begin",
    "client_gone",
    "current_trace",
    "end",
    "new_request_id",
    "note_error",
    "note_stage",
    "request_id_fault",
    "timed",
]

KEY_ID = "key_id"
"""`scope["state"]` key where authentication puts the id of the caller's API key (never the secret)."""
REQUEST_ID = "request_id"
"""`scope["state"]` key where `Observability` puts the request id it answers with."""
MAX_REQUEST_ID = 128
"""Longest request id kept, answered and logged (`X-Request-ID`, the v2 `id`): the column's width."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def request_id_fault(value: str) -> tuple[str, str] | None:
    """Why `value` cannot be a request id, as (code, reason), or None when it can (the one rule).

    A request id is 1 to `MAX_REQUEST_ID` characters with no control character: NUL cannot be stored,
    and the others have no place in a log line, a header or a trace.
    """
    if 0 < len(value) <= MAX_REQUEST_ID:
        control = _CONTROL.search(value)
        if control is None:
            return None
        at = f"U+{ord(control.group()):04X} at position {control.start()}"
        return "control_character", f"holds the control character {at}; a request id is printable text"
    if not value:
        return "empty", "is empty"
    return "too_long", f"is {len(value)} characters long; at most {MAX_REQUEST_ID} are accepted"


_COUNTER_BITS = 34
"""Of the 74 bits after the time and the version: a per-process counter, then a per-process random."""
_SEED_BITS = 74 - _COUNTER_BITS
_TIME_MASK = (1 << 48) - 1
_COUNTER_MASK = (1 << _COUNTER_BITS) - 1
_LOW_COUNTER_BITS = _COUNTER_BITS - 12
_seed = 0
_counter = itertools.count()


def _reseed() -> None:
    """A new random half and counter start for this process (at import and in a forked child)."""
    global _seed, _counter
    random = int.from_bytes(os.urandom(16), "big")
    _seed = random & ((1 << _SEED_BITS) - 1)
    _counter = itertools.count((random >> _SEED_BITS) & _COUNTER_MASK)


_reseed()
os.register_at_fork(after_in_child=_reseed)


def new_request_id() -> str:
    """A fresh RFC 9562 UUIDv7 as text, made without a system call: ordered by time, unique.

    48 bits of Unix milliseconds, the version, 34 bits of a per-process counter (RFC 9562's "fixed
    bit-length dedicated counter", so ids of one process sort in creation order within a millisecond),
    the variant, then 40 random bits drawn once per process. A request id names a request in logs and
    traces, it grants nothing, so it need not be unguessable (prediction ids are: `new_prediction_id`).
    """
    count = next(_counter) & _COUNTER_MASK
    value = (
        (time.time_ns() // 1_000_000 & _TIME_MASK) << 80
        | 0x7 << 76
        | (count >> _LOW_COUNTER_BITS) << 64
        | 0b10 << 62
        | (count & ((1 << _LOW_COUNTER_BITS) - 1)) << _SEED_BITS
        | _seed
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(slots=True, kw_only=True)
class RequestTrace:
    """What one request did, filled in as it goes; read once at its end for the metrics and the log."""

    request_id: str
    method: str
    path: str
    model: str | None = None
    version: str | None = None
    identity: ModelIdentity | None = None
    stages: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: decode (HTTP), validate, infer, record (the core)."""
    error: str | None = None
    """The kind of error answered (its class name), or a short tag (`client_disconnected`, `shed`)."""
    status: int | None = None
    client_gone: bool = False
    """The client disconnected before the answer started."""


_TRACE: ContextVar[RequestTrace | None] = ContextVar("predictor_request_trace", default=None)


def begin(trace: RequestTrace) -> Token[RequestTrace | None]:
    """Make `trace` the current request's (for `Observability`, around one request)."""
    return _TRACE.set(trace)


def end(token: Token[RequestTrace | None]) -> None:
    """Forget the trace `begin` set."""
    _TRACE.reset(token)


def current_trace() -> RequestTrace | None:
    """The trace of the request being handled in this task, if any."""
    return _TRACE.get()


def note_stage(stage: str, seconds: float) -> None:
    """Add time to a stage of the current request (the HTTP side: decode)."""
    trace = _TRACE.get()
    if trace is not None:
        trace.stages[stage] = trace.stages.get(stage, 0.0) + seconds


@contextlib.contextmanager
def timed(stage: str) -> Iterator[None]:
    """Time a block as a stage of the current request."""
    started = time.perf_counter()
    try:
        yield
    finally:
        note_stage(stage, time.perf_counter() - started)


def note_error(kind: str) -> None:
    """Say what kind of error the current request is answered with (shown in its log line)."""
    trace = _TRACE.get()
    if trace is not None:
        trace.error = kind


def client_gone() -> bool:
    """Whether the client of the current request disconnected before its answer started."""
    trace = _TRACE.get()
    return trace is not None and trace.client_gone
