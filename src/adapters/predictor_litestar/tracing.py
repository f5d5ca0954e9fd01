"""The trace of the request being handled: what the request log line and the metrics read at its end.

A context variable holds it for the task that serves the request, so code anywhere in the HTTP adapter
(and the core's observer) can add to it without being handed the request: the decode time, the model
version that answered, the kind of error. Set only by `Observability` (one per app); everything here is
a no-op outside a request.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

from predictor_core import ModelIdentity

__all__ = [
    "KEY_ID",
    "REQUEST_ID",
    "RequestTrace",
    "begin",
    "client_gone",
    "current_trace",
    "end",
    "note_error",
    "note_stage",
    "timed",
]

KEY_ID = "key_id"
"""`scope["state"]` key where authentication puts the id of the caller's API key (never the secret)."""
REQUEST_ID = "request_id"
"""`scope["state"]` key where `Observability` puts the request id it answers with."""


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
