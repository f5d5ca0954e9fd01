"""The transport's pieces: the connection cap from the open-file limit, problem answers, settings, and
writes joined per event-loop turn (`CoalescingTransport`), alone and under uvicorn's protocol."""

from __future__ import annotations

import asyncio
import json
import pickle
import resource
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from predictor.cli.serve import transport_limits
from predictor.cli.transport import (
    BAD_REQUEST,
    FD_RESERVE,
    FLUSH_AT,
    REFUSED,
    BoundedHttpToolsProtocol,
    CoalescingTransport,
    TransportLimits,
    connection_cap,
    http_protocol,
    problem_response,
)
from predictor.settings import Settings
from predictor_core import ConfigurationError


@pytest.mark.parametrize(
    ("wanted", "soft", "cap"),
    [
        (1000, 256, 256 - FD_RESERVE),  # the machine of the report: 234 idle sockets exhausted it
        (100, 1024, 100),
        (1000, resource.RLIM_INFINITY, 1000),
        (1000, 10, 1),
    ],
)
def test_the_cap_leaves_file_descriptors_for_the_worker(wanted: int, soft: int, cap: int) -> None:
    assert connection_cap(wanted, soft) == cap


def test_answers_are_problem_documents_that_close_the_connection() -> None:
    answer = problem_response(431, "too large")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert b"content-type: application/problem+json" in head
    assert b"connection: close" in head
    assert f"content-length: {len(body)}".encode() in head
    assert json.loads(body) == {
        "title": "Request Header Fields Too Large",
        "status": 431,
        "detail": "too large",
    }
    assert b"retry-after: 1" in REFUSED
    assert BAD_REQUEST.startswith(b"HTTP/1.1 400 ")


def test_the_protocol_factory_reaches_spawned_workers_whole() -> None:
    limits = TransportLimits(max_header_bytes=1000, header_timeout=1.5, body_timeout=2.5, max_connections=7)
    factory = pickle.loads(pickle.dumps(http_protocol(limits)))
    assert factory.func is BoundedHttpToolsProtocol
    assert factory.keywords == {"limits": limits}


def test_transport_settings_have_defaults_come_from_the_environment_and_are_checked() -> None:
    defaults = Settings.load({})
    assert (defaults.max_header_bytes, defaults.header_timeout, defaults.body_timeout) == (32_768, 10.0, 10.0)
    assert (defaults.keep_alive_timeout, defaults.max_connections) == (5, 1000)
    env = {
        "PREDICTOR_MAX_HEADER_BYTES": "8192",
        "PREDICTOR_HEADER_TIMEOUT": "3",
        "PREDICTOR_BODY_TIMEOUT": "4.5",
        "PREDICTOR_MAX_CONNECTIONS": "12",
    }
    limits = transport_limits(Settings.load(env))
    assert limits == TransportLimits(
        max_header_bytes=8192, header_timeout=3.0, body_timeout=4.5, max_connections=12
    )
    for bad in (
        {"PREDICTOR_HEADER_TIMEOUT": "0"},
        {"PREDICTOR_BODY_TIMEOUT": "-1"},
        {"PREDICTOR_KEEP_ALIVE_TIMEOUT": "0"},
        {"PREDICTOR_MAX_HEADER_BYTES": "0"},
        {"PREDICTOR_MAX_CONNECTIONS": "0"},
    ):
        with pytest.raises(ConfigurationError):
            Settings.load(bad)


class _Recording(asyncio.Transport):
    """A transport that keeps what it is asked to do, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Any] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.calls.append(bytes(data))

    def write_eof(self) -> None:
        self.calls.append("eof")

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self.calls.append("close")
        self.closing = True

    def abort(self) -> None:
        self.calls.append("abort")
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 5

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        self.calls.append("pause_reading")

    def resume_reading(self) -> None:
        self.calls.append("resume_reading")


async def _turn() -> None:
    await asyncio.sleep(0)


async def test_writes_of_one_turn_leave_as_one_at_its_end_and_later_ones_apart() -> None:
    inner = _Recording()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"head ")
    transport.write(b"body")
    assert inner.calls == []  # nothing sent within the turn
    assert transport.get_write_buffer_size() == 5 + 9  # the transport's buffer and what waits here
    await _turn()
    assert inner.calls == [b"head body"]
    transport.write(b"next")
    await _turn()
    transport.write(b"chunk")
    await _turn()
    assert inner.calls == [b"head body", b"next", b"chunk"]  # a stream still leaves turn by turn


async def test_a_large_answer_leaves_at_once_so_that_flow_control_sees_it() -> None:
    inner = _Recording()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"head")
    transport.write(b"x" * (FLUSH_AT - 4))
    assert inner.calls == [b"head" + b"x" * (FLUSH_AT - 4)]  # within the turn
    transport.write(b"tail")
    assert transport.get_write_buffer_size() == 5 + 4
    await _turn()
    assert inner.calls[1:] == [b"tail"]


async def test_closing_sends_what_waits_first_and_aborting_drops_it() -> None:
    loop = asyncio.get_running_loop()
    inner = _Recording()
    transport = CoalescingTransport(inner, loop)
    transport.write(b"answer")
    transport.close()
    await _turn()  # the scheduled flush finds nothing more to send
    assert inner.calls == [b"answer", "close"]

    inner = _Recording()
    transport = CoalescingTransport(inner, loop)
    transport.write(b"problem")
    transport.write_eof()
    assert inner.calls == [b"problem", "eof"]

    inner = _Recording()
    transport = CoalescingTransport(inner, loop)
    transport.write(b"half an answer")
    transport.abort()
    await _turn()
    assert inner.calls == ["abort"]

    inner = _Recording()
    transport = CoalescingTransport(inner, loop)
    transport.write(b"too late")
    inner.closing = True  # the peer went away within the turn
    await _turn()
    assert inner.calls == []
    transport.pause_reading()  # anything else is the transport's own
    assert transport.is_closing()
    assert inner.calls == ["pause_reading"]


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_uvicorn_sends_an_answer_head_and_body_in_one_write() -> None:
    config = Config(app=_app, lifespan="off", access_log=False, server_header=False, date_header=False)
    config.load()
    protocol = BoundedHttpToolsProtocol(
        config, ServerState(), {}, asyncio.get_running_loop(), limits=TransportLimits()
    )
    inner = _Recording()
    protocol.connection_made(inner)
    request = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
    protocol.data_received(request + request)  # two pipelined requests
    for _ in range(20):
        await _turn()
    protocol.connection_lost(None)
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    # uvicorn writes each head and body apart: one write each left
    assert [c for c in inner.calls if isinstance(c, bytes)] == [answer, answer]


class _CountingLoop:
    """The running loop, counting the timers a protocol arms by their callback's name."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.timers: list[str] = []

    def call_later(self, delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        self.timers.append(callback.__name__)
        return self._loop.call_later(delay, callback, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)


async def test_a_keep_alive_connection_keeps_one_head_timer_whose_deadline_moves() -> None:
    config = Config(app=_app, lifespan="off", access_log=False, server_header=False, date_header=False)
    config.load()
    loop = _CountingLoop(asyncio.get_running_loop())
    timeout = 0.5
    protocol = BoundedHttpToolsProtocol(
        config,
        ServerState(),
        {},
        loop,  # type: ignore[arg-type]
        limits=TransportLimits(header_timeout=timeout),
    )
    inner = _Recording()
    protocol.connection_made(inner)
    request = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
    started = answered = loop.time()
    answers = 0
    while loop.time() - started < 3 * timeout:  # busy for longer than the head timeout
        protocol.data_received(request)
        for _ in range(5):
            await _turn()
        answers = sum(1 for c in inner.calls if isinstance(c, bytes))
        answered = loop.time()
        assert not inner.closing, f"closed after {answers} answers"
        await asyncio.sleep(timeout / 6)
    assert answers >= 8
    # one timer for the connection, moved by each answer, where each answer armed a new one before
    assert loop.timers.count("_head_timed_out") < answers / 2
    while not inner.closing and loop.time() - answered < 10 * timeout:
        await asyncio.sleep(timeout / 20)
    assert inner.closing  # idle: closed once the deadline the last answer set passed, and not before it
    assert timeout * 0.9 <= loop.time() - answered <= 3 * timeout
    protocol.connection_lost(None)
