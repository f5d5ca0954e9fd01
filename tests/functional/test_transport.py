"""Issue 14's transport attacks against a real `predictor serve` on loopback, with its log read.

Huge heads get 431 at once, slow heads and stalled bodies 408, idle sockets are closed, connections beyond
the per-worker cap get 503 (and the server answers again once they go), every such answer is a problem
document, and the log has a few counting lines, no line per event. Bounds in seconds are generous: the
timeouts here are 2 s and the assertions allow several times that on a busy 2-core machine.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import predictor_sql
from tests.functional.server import example, server_process

TIMEOUT_S = 2.0
CAP = 24
LIMITS = {
    "PREDICTOR_HEADER_TIMEOUT": str(TIMEOUT_S),
    "PREDICTOR_BODY_TIMEOUT": str(TIMEOUT_S),
    "PREDICTOR_MAX_CONNECTIONS": str(CAP),
}
HEAD_LIMIT = 32_768  # the default


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One server with short timeouts and a small cap; yields its base URL and its log file."""
    folder = tmp_path_factory.mktemp("transport")
    url = f"sqlite+aiosqlite:///{folder / 'test.db'}"
    predictor_sql.upgrade(url)
    log = folder / "server.log"
    with server_process(url, env=LIMITS, log=log) as (base, _):
        yield base, log


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def read_until_closed(sock: socket.socket) -> bytes:
    answer = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def problem(answer: bytes, status: int) -> dict[str, object]:
    """The problem document of a raw answer, after checking its status and headers."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {status} "), answer[:200]
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    document = json.loads(body)
    assert document["status"] == status
    assert document["title"]
    assert document["detail"]
    return dict(document)


def send_head(base: str, header_bytes: int) -> bytes:
    """GET /health/live with one header of `header_bytes` value bytes, sent while the answer is read."""
    with connect(base) as sock:
        head = b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "

        def send() -> None:
            with contextlib.suppress(OSError):  # the server may stop reading once it has answered
                sock.sendall(head + b"a" * header_bytes + b"\r\n\r\n")

        sender = threading.Thread(target=send)
        sender.start()
        answer = read_until_closed(sock)
        sender.join(timeout=30)
    return answer


def still_serving(base: str) -> None:
    assert httpx.get(f"{base}/health/live", timeout=10).status_code == 200


def test_a_head_within_the_bound_is_served_and_one_beyond_gets_431(served: tuple[str, Path]) -> None:
    base, _ = served
    assert send_head(base, HEAD_LIMIT - 1000).startswith(b"HTTP/1.1 200 ")
    problem(send_head(base, HEAD_LIMIT + 1000), 431)
    still_serving(base)


def test_a_128_mb_header_gets_431_at_once_and_the_server_is_not_held(served: tuple[str, Path]) -> None:
    base, _ = served
    started = time.monotonic()
    answer = send_head(base, 128 * 1024 * 1024)
    took = time.monotonic() - started
    problem(answer, 431)
    assert took < 15, took  # was 200 after ~20 s with the whole header in memory
    still_serving(base)


def test_a_malformed_request_gets_a_problem_not_text(served: tuple[str, Path]) -> None:
    base, _ = served
    with connect(base) as sock:
        sock.sendall(b"GARBAGE\x00 / HTTP/1.1\r\n\r\n")
        assert problem(read_until_closed(sock), 400)["detail"] == "Invalid HTTP request received."


def test_a_head_sent_a_byte_at_a_time_gets_408(served: tuple[str, Path]) -> None:
    base, _ = served
    request = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 200
    with connect(base) as sock:
        started = time.monotonic()
        with contextlib.suppress(OSError):
            for byte in request:  # 200 bytes over 40 s unless the server stops it
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
                if time.monotonic() - started > 3 * TIMEOUT_S + 10:
                    break
        took = time.monotonic() - started
        problem(read_until_closed(sock), 408)
    assert TIMEOUT_S * 0.9 <= took < 3 * TIMEOUT_S + 10, took


def test_an_idle_connection_is_closed(served: tuple[str, Path]) -> None:
    base, _ = served
    with connect(base) as sock:
        started = time.monotonic()
        assert read_until_closed(sock) == b""  # closed, nothing answered to nothing asked
        assert time.monotonic() - started < 3 * TIMEOUT_S + 10


def test_a_body_that_stops_arriving_gets_408(served: tuple[str, Path]) -> None:
    base, _ = served
    with connect(base) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000000\r\n\r\n{"features": '
        )
        started = time.monotonic()
        problem(read_until_closed(sock), 408)
        assert TIMEOUT_S * 0.9 <= time.monotonic() - started < 3 * TIMEOUT_S + 10


def test_a_body_with_pauses_shorter_than_the_timeout_is_served(served: tuple[str, Path]) -> None:
    base, _ = served
    with httpx.Client(base_url=base, timeout=30) as http:
        body = json.dumps({"features": example(http)}).encode()

    def slowly() -> Iterator[bytes]:
        yield body[:10]
        time.sleep(TIMEOUT_S / 2)
        yield body[10:]

    headers = {"content-type": "application/json", "content-length": str(len(body))}
    answer = httpx.post(f"{base}/predict", content=slowly(), headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text


def test_keep_alive_connections_outlive_the_head_timeout_while_busy(served: tuple[str, Path]) -> None:
    base, _ = served
    with httpx.Client(base_url=base, timeout=30) as http:
        deadline = time.monotonic() + 2 * TIMEOUT_S
        answers = 0
        while time.monotonic() < deadline:
            assert http.get("/health/live").status_code == 200
            answers += 1
            time.sleep(0.05)
    assert answers > 5


def test_connections_beyond_the_cap_get_503_and_the_server_recovers(served: tuple[str, Path]) -> None:
    base, log = served
    started, logged_before = time.monotonic(), len(log.read_text())
    idle = [connect(base) for _ in range(CAP)]
    try:
        refused = None
        deadline = time.monotonic() + 20
        while refused is None and time.monotonic() < deadline:  # until the server has accepted them all
            answer = httpx.get(f"{base}/health/live", timeout=10)
            if answer.status_code == 503:
                refused = answer
            time.sleep(0.1)
        assert refused is not None
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["status"] == 503
        flood = [connect(base) for _ in range(200)]  # refused at once: no descriptor is kept for them
        for sock in flood:
            sock.close()
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 20
    while httpx.get(f"{base}/health/live", timeout=10).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.5)  # the last counts are logged within a second
    text = log.read_text()[logged_before:]
    lines = [
        json.loads(line.split(":  ", 1)[1]) for line in text.splitlines() if '"event":"transport"' in line
    ]
    # refusals are counted (how many of the flood: the idle ones time out meanwhile and free their
    # places, sooner on a loaded machine, where 10 of 200 were refused in one run and 20+ usually)
    assert sum(int(line.get("refused", 0)) for line in lines) >= 1
    assert all(line["max_connections"] == CAP for line in lines)
    assert len(lines) < 10 + time.monotonic() - started  # a line a second at most, not one per event
    assert "Traceback" not in text
    assert "Invalid HTTP request received." not in text  # uvicorn's line per bad request is gone
