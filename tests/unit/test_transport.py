"""The transport bounds' pieces: the connection cap from the open-file limit, problem answers, settings."""

from __future__ import annotations

import json
import pickle
import resource

import pytest

from predictor.cli.serve import transport_limits
from predictor.cli.transport import (
    BAD_REQUEST,
    FD_RESERVE,
    REFUSED,
    BoundedHttpToolsProtocol,
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
