"""The request log of a real `predictor serve`: written in blocks, yet every line is there once the server
is stopped with SIGTERM, whole, even with two workers writing to the same output."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx

from tests.functional.server import example, server_process

CLOSE = {"connection": "close"}
"""Keep-alive off, so that requests spread over the workers."""


def test_every_request_line_is_written_whole_by_the_time_sigterm_has_stopped_the_server(
    tmp_path: Path,
) -> None:
    log = tmp_path / "server.log"
    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    env = {"PREDICTOR_RECORD": "false"}
    ids: list[str] = []
    with (
        server_process(database, "--workers", "2", env=env, log=log) as (base, process),
        httpx.Client(base_url=base, timeout=30, headers=CLOSE) as http,
    ):
        record = example(http)
        for i in range(300):
            r = http.post("/predict", json={"features": record}, headers={"x-request-id": f"sigterm-{i}"})
            assert r.status_code == 200, r.text
            ids.append(r.headers["x-request-id"])
        process.send_signal(signal.SIGTERM)  # at once: most lines still wait for their block
        assert process.wait(timeout=30) == 0
    lines = [line for line in log.read_text().splitlines() if line.startswith('{"ts"')]
    requests = [json.loads(line) for line in lines]  # each one whole: no two workers' lines mixed
    logged = [line["request_id"] for line in requests if line["route"] == "/predict"]
    assert sorted(logged) == sorted(ids)
    assert {line["status"] for line in requests if line["route"] == "/predict"} == {200}
