"""Metrics, request logs, overload shedding and SIGTERM drain on real `predictor serve` processes and a
real PostgreSQL: what the server says it did is checked against what the clients saw and the rows it
committed."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from predictor_core import ModelManifest
from predictor_onnx import reference_root
from tests.functional.server import plain_url, server_process

pytestmark = pytest.mark.postgres

RECORD = ModelManifest.from_json(
    (reference_root() / "breast_cancer" / "1.0.0" / "manifest.json").read_bytes()
).schema.example()
SECRET = "feature-value-never-logged-7f3a"
"""Sent as a feature value: it must appear in no log line."""
serving = functools.partial(server_process, ready="/health/ready")
"""`predictor serve` with its output in `log`, started once it is ready."""
CLOSE = {"connection": "close"}
"""Keep-alive off, so that requests spread over the workers."""


def samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{base}/metrics", headers=CLOSE, timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _duration_bucket(status: str, le: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The key of `POST /predict`'s request-duration bucket `le` for `status` in `samples`."""
    labels = (("le", le), ("method", "POST"), ("route", "/predict"), ("status", status))
    return "predictor_http_request_duration_seconds_bucket", labels


def by_status(scraped: dict, route: str, method: str = "POST") -> dict[str, float]:
    return {
        dict(labels)["status"]: value
        for (name, labels), value in scraped.items()
        if name == "predictor_http_requests_total"
        and dict(labels)["route"] == route
        and dict(labels)["method"] == method
    }


def all_started(base: str, workers: int) -> None:
    """Wait until every worker has started: each adds its bound (64) to `predictor_http_max_in_flight`."""
    deadline = time.monotonic() + 60
    while samples(base)[("predictor_http_max_in_flight", ())] < 64 * workers:
        assert time.monotonic() < deadline, "not every worker started"
        time.sleep(0.2)


def request_lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith('{"ts"')]


def rows(pg_url: str, sql: str) -> int:
    with psycopg.connect(plain_url(pg_url)) as conn:
        return conn.execute(sql).fetchone()[0]  # type: ignore[index]


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_equal_the_requests_sent_per_status(fresh_pg_url: str, tmp_path: Path, workers: int) -> None:
    log = tmp_path / "server.log"
    sent = {"200": 12, "422": 5, "400": 3, "415": 2}
    with (
        serving(fresh_pg_url, "--workers", str(workers), log=log) as (base, _),
        httpx.Client(base_url=base, timeout=30, headers=CLOSE) as http,
    ):
        all_started(base, workers)
        before = samples(base)  # the start-up probes are counted too: compare differences
        for _ in range(sent["200"]):
            assert http.post("/predict", json={"features": RECORD}).status_code == 200
        for _ in range(sent["422"]):
            r = http.post("/predict", json={"features": {**RECORD, "mean_radius": SECRET}})
            assert r.status_code == 422
        for _ in range(sent["400"]):
            r = http.post("/predict", content=b"{", headers={"content-type": "application/json"})
            assert r.status_code == 400
        for _ in range(sent["415"]):
            r = http.post("/predict", content=b"{}", headers={"content-type": "text/plain"})
            assert r.status_code == 415
        for _ in range(4):
            assert http.post("/models/nope/predict", json={"features": RECORD}).status_code == 404
        for _ in range(3):
            assert http.get("/no/such/path").status_code == 404
        scrapes = [samples(base) for _ in range(3)]  # with 2 workers, answered by either
    for after in scrapes:
        predicted = by_status(after, "/predict")
        assert {k: v - by_status(before, "/predict").get(k, 0) for k, v in predicted.items()} == sent
        assert by_status(after, "/models/{name}/predict") == {"404": 4}
        assert by_status(after, "(unmatched)", "GET") == {"404": 3}
        stage = {
            dict(labels)["stage"]: value
            for (name, labels), value in after.items()
            if name == "predictor_stage_duration_seconds_count" and dict(labels)["model"] == "breast_cancer"
        }
        assert stage == {"decode": 17, "validate": 12, "infer": 12, "record": 12}
        failures = {
            dict(labels)["feature"]: value
            for (name, labels), value in after.items()
            if name == "predictor_validation_failures_total"
        }
        assert failures == {"mean_radius": 5}
        info = [dict(labels) for (name, labels), v in after.items() if name == "predictor_model_info" and v]
        assert [(i["model"], i["provider"]) for i in info] == [("breast_cancer", "CPUExecutionProvider")]
        assert after[("predictor_http_requests_in_flight", ())] == 0
        assert after[("predictor_http_max_in_flight", ())] == 64 * workers
    assert rows(fresh_pg_url, "SELECT count(*) FROM model_outputs") == 12

    lines = request_lines(log)
    predicts = [line for line in lines if line["route"] == "/predict"]
    assert sorted(line["status"] for line in predicts) == sorted(
        int(status) for status, n in sent.items() for _ in range(n)
    )
    served = [line for line in predicts if line["status"] == 200]
    assert all(line["model"] == "breast_cancer" and line["version"] == "1.0.0" for line in served)
    assert all(set(line["stages_ms"]) == {"decode", "validate", "infer", "record"} for line in served)
    assert all(set(line) >= {"request_id", "key_id", "duration_ms", "error"} for line in lines)
    assert len({line["request_id"] for line in lines}) == len(lines)
    text = log.read_text()
    assert SECRET not in text
    assert not any(name in line for line in text.splitlines() if line.startswith('{"ts"') for name in RECORD)
    if workers > 1:  # both workers served: each logged some of the requests
        assert "Started parent process" in text


def worker_pids(directory: Path) -> set[int]:
    return {int(p.stem.rsplit("_", 1)[1]) for p in directory.glob("gauge_livesum_*.db")}


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_worker_restarts_leave_no_files_behind_and_lose_no_count(fresh_pg_url: str, tmp_path: Path) -> None:
    """kill -9 one of 2 workers three times: the directory stays small and the counts stay exact."""
    sent = 0
    killed: set[int] = set()
    with (
        serving(
            fresh_pg_url, "--workers", "2", log=tmp_path / "server.log", env={"TMPDIR": str(tmp_path)}
        ) as (
            base,
            serve,
        ),
        httpx.Client(base_url=base, timeout=30, headers=CLOSE) as http,
    ):
        [directory] = tmp_path.glob("predictor-metrics-*")
        for _ in range(3):
            for _ in range(10):
                assert http.post("/predict", json={"features": RECORD}).status_code == 200
            sent += 10
            deadline = time.monotonic() + 30
            # a worker counts a request just after its answer: kill -9 in between would lose that one
            while len(worker_pids(directory)) != 2 or by_status(samples(base), "/predict") != {"200": sent}:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            victim = min(worker_pids(directory))
            assert parent_of(victim) == serve.pid  # one of this server's workers, nobody else's
            os.kill(victim, signal.SIGKILL)
            killed.add(victim)
            deadline = time.monotonic() + 60  # uvicorn starts another one; it sweeps at start
            while not (len(worker_pids(directory)) == 2 and not worker_pids(directory) & killed):
                assert time.monotonic() < deadline, sorted(p.name for p in directory.iterdir())
                time.sleep(0.2)
            while httpx.get(f"{base}/health/ready", headers=CLOSE).status_code != 200:
                assert time.monotonic() < deadline
            # the new worker has files as soon as it imports its metrics, and publishes its bound a
            # moment later, at its start: the two live workers' bounds count, never a dead one's
            while (bound := samples(base).get(("predictor_http_max_in_flight", ()))) != 128:
                assert time.monotonic() < deadline, bound
                time.sleep(0.2)
        scraped = samples(base)  # each scrape sweeps first
        files = sorted(p.name for p in directory.glob("*.db"))
        owners = {name.removesuffix(".db").rsplit("_", 1)[1] for name in files} - {"archive"}
        assert len(owners) == 2
        assert all(parent_of(int(pid)) == serve.pid for pid in owners)  # the two live workers only
    assert by_status(scraped, "/predict") == {"200": sent}
    assert scraped[("predictor_http_requests_in_flight", ())] == 0
    assert scraped[("predictor_http_max_in_flight", ())] == 128  # the two live workers only
    assert not [name for name in files if any(str(pid) in name for pid in killed)], files
    kinds = {name.removesuffix(".db").rsplit("_", 1)[0] for name in files}
    assert len(files) <= 2 * len(kinds) + 2, files  # one file per kind and live worker, 2 archives
    assert not directory.exists()  # removed when the server stopped


async def load(base: str, users: int, until: threading.Event, answers: list, *, honour_retry: bool) -> None:
    """`users` clients posting predictions back to back (keep-alive) until `until` is set.

    Appends (sent, done, status, prediction id, retry-after) per answer; status 0 is a connection that
    failed (refused, or closed by the server before an answer).
    """
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def user() -> None:
            while not until.is_set():
                sent = time.monotonic()
                try:
                    r = await client.post("/predict", json={"features": RECORD})
                except httpx.TransportError:
                    answers.append((sent, time.monotonic(), 0, None, None))
                    await asyncio.sleep(0.05)
                    continue
                body = r.json()
                retry = r.headers.get("retry-after")
                answers.append((sent, time.monotonic(), r.status_code, body.get("prediction_id"), retry))
                if honour_retry and r.status_code == 503 and retry:
                    await asyncio.sleep(float(retry))

        await asyncio.gather(*(user() for _ in range(users)))


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_during_load_commits_every_acknowledged_prediction(
    fresh_pg_url: str, tmp_path: Path, workers: int
) -> None:
    """c=16, SIGTERM: readiness 503 "draining" first, then no new connections, then a clean exit 0."""
    answers: list[tuple[float, float, int, str | None, str | None]] = []
    probes: list[tuple[float, int, str]] = []
    env = {"PREDICTOR_DRAIN_DELAY": "1.5", "PREDICTOR_DRAIN_TIMEOUT": "5"}
    with serving(fresh_pg_url, "--workers", str(workers), log=tmp_path / "server.log", env=env) as (
        base,
        serve,
    ):
        stop = threading.Event()

        def probe() -> None:
            while serve.poll() is None:
                with contextlib.suppress(httpx.TransportError):
                    r = httpx.get(f"{base}/health/ready", headers=CLOSE, timeout=5)
                    probes.append((time.monotonic(), r.status_code, r.text))
                time.sleep(0.05)
            stop.set()

        def terminate() -> None:
            time.sleep(2.0)
            terminated.append(time.monotonic())
            serve.send_signal(signal.SIGTERM)

        terminated: list[float] = []
        threads = [threading.Thread(target=probe), threading.Thread(target=terminate)]
        for thread in threads:
            thread.start()
        asyncio.run(load(base, 16, stop, answers, honour_retry=False))
        for thread in threads:
            thread.join()
        code = serve.wait(timeout=30)
        stopped = time.monotonic()
    [sigterm] = terminated
    assert code == 0
    assert stopped - sigterm < 1.5 + 5 + 5  # drain delay + drain timeout + slack
    statuses = {status for _, _, status, _, _ in answers if status}
    assert statuses <= {200, 503}, statuses
    acknowledged = [pid for _, _, status, pid, _ in answers if status == 200]
    assert acknowledged
    assert any(sent > sigterm + 0.2 for sent, _, status, _, _ in answers if status == 200)  # the delay serves
    # uvicorn's parent passes SIGTERM on to its workers within 0.5 s (it polls for signals that often)
    late = [(status, text) for at, status, text in probes if at > sigterm + 0.8]
    assert late, "readiness was never asked while draining"
    assert all(status == 503 and "draining" in text for status, text in late), late[:3]
    assert any(status == 200 for at, status, _ in probes if at < sigterm)
    with psycopg.connect(plain_url(fresh_pg_url)) as conn:
        inputs = {str(r[0]) for r in conn.execute("SELECT prediction_id FROM model_inputs")}
        outputs = {str(r[0]) for r in conn.execute("SELECT prediction_id FROM model_outputs")}
    assert set(acknowledged) <= inputs & outputs  # no acknowledged prediction lost
    assert inputs == outputs  # none half recorded
    failed = sum(1 for _, _, status, _, _ in answers if status == 0)
    print(f"{len(acknowledged)} acknowledged, {failed} connections refused or closed after SIGTERM")


def test_shedding_at_four_times_the_bound_answers_503_at_once_and_bounds_the_accepted(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    """Bound 4, 16 clients that honour Retry-After, for 4 s: sheds are immediate, accepted ones stay fast."""
    answers: list[tuple[float, float, int, str | None, str | None]] = []
    probe_seconds: list[float] = []
    env = {"PREDICTOR_MAX_IN_FLIGHT": "4"}
    with serving(fresh_pg_url, log=tmp_path / "server.log", env=env) as (base, _):
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                started = time.monotonic()
                assert httpx.get(f"{base}/health/ready", headers=CLOSE, timeout=5).status_code == 200
                probe_seconds.append(time.monotonic() - started)
                time.sleep(0.1)

        def stop_later() -> None:
            time.sleep(4.0)
            stop.set()

        threads = [threading.Thread(target=probe), threading.Thread(target=stop_later)]
        for thread in threads:
            thread.start()
        asyncio.run(load(base, 16, stop, answers, honour_retry=True))
        for thread in threads:
            thread.join()
        scraped = samples(base)
    shed = sorted(done - sent for sent, done, status, _, _ in answers if status == 503)
    accepted = sorted(done - sent for sent, done, status, _, _ in answers if status == 200)
    assert {status for _, _, status, _, _ in answers} == {200, 503}
    assert {retry for _, _, status, _, retry in answers if status == 503} == {"1"}
    # Generous bounds (2 shared cores, the clients on them too): the behaviour, not a benchmark. By the
    # server's own clock every shed is answered within 0.25 s and 99 % of the accepted within 1 s (no
    # queue). The clients' clock adds their own delays (16 of them in this process, under coverage):
    # its tails reached 1.0-1.5 s on a slow machine while the server's answers were on time.
    assert scraped[_duration_bucket("503", "0.25")] == len(shed)
    within = scraped[_duration_bucket("200", "1.0")]
    assert within >= 0.99 * len(accepted), f"{len(accepted) - within:.0f} accepted answers took over 1 s"
    assert shed[len(shed) // 2] < 0.25
    assert shed[-1] < 2.5
    p99 = accepted[int(len(accepted) * 0.99)]
    assert p99 < 2.5, f"p99 of accepted {p99:.3f} s"  # not the multi-second tails of a queue
    assert max(probe_seconds) < 0.5  # probes bypass the bound
    assert scraped[("predictor_http_shed_total", ())] == len(shed)
    assert by_status(scraped, "/predict") == {"200": len(accepted), "503": len(shed)}
    ms = {"accepted p50": accepted[len(accepted) // 2], "p99": p99, "shed p50": shed[len(shed) // 2]}
    print(
        f"{len(accepted)} accepted, {len(shed)} shed;",
        ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in ms.items()),
    )


def test_sheds_do_not_wait_for_the_requests_in_flight(fresh_pg_url: str, tmp_path: Path) -> None:
    """Bound 4, the database holding every commit: 4 requests wait, the next 12 are refused at once."""
    with (
        serving(fresh_pg_url, log=tmp_path / "server.log", env={"PREDICTOR_MAX_IN_FLIGHT": "4"}) as (base, _),
        psycopg.connect(plain_url(fresh_pg_url)) as lock,
    ):
        assert httpx.post(f"{base}/predict", json={"features": RECORD}).status_code == 200  # registers it
        lock.execute("LOCK TABLE model_outputs IN EXCLUSIVE MODE")  # until this transaction ends
        held: list[tuple[int, float]] = []

        def predict() -> None:
            started = time.monotonic()
            r = httpx.post(f"{base}/predict", json={"features": RECORD}, timeout=30)
            held.append((r.status_code, time.monotonic() - started))

        waiting = [threading.Thread(target=predict) for _ in range(4)]
        for thread in waiting:
            thread.start()
        deadline = time.monotonic() + 10
        while samples(base)[("predictor_http_requests_in_flight", ())] < 4:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        refused = []
        for _ in range(12):
            started = time.monotonic()
            r = httpx.post(f"{base}/predict", json={"features": RECORD}, headers=CLOSE, timeout=30)
            refused.append((r.status_code, time.monotonic() - started, r.headers.get("retry-after")))
        live = httpx.get(f"{base}/health/live", timeout=5).status_code
        time.sleep(1.0)
        lock.rollback()  # the commits go through
        for thread in waiting:
            thread.join()
        scraped = samples(base)
    assert [(status, retry) for status, _, retry in refused] == [(503, "1")] * 12
    assert max(seconds for _, seconds, _ in refused) < 0.5  # at once, while the 4 wait for the database
    assert live == 200
    assert sorted(status for status, _ in held) == [200] * 4
    assert min(seconds for _, seconds in held) > 1.0
    assert scraped[("predictor_http_shed_total", ())] == 12
    assert rows(fresh_pg_url, "SELECT count(*) FROM model_outputs") == 5


def test_clients_gone_mid_body_leave_one_short_line_each(fresh_pg_url: str, tmp_path: Path) -> None:
    """The log flood of the issue: 50 aborted uploads logged 2.5 kB of traceback each."""
    log = tmp_path / "server.log"
    with serving(fresh_pg_url, log=log) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        before = log.stat().st_size
        for _ in range(50):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(
                    b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 4000\r\n\r\n{"features": {"mean_radius": 1'
                )
        deadline = time.monotonic() + 10
        while sum(1 for line in request_lines(log) if line["status"] == 499) < 50:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        written = log.read_text()[before:]
    assert "Traceback" not in written
    assert "ERROR" not in written
    gone = [line for line in request_lines(log) if line["status"] == 499]
    assert {line["error"] for line in gone} == {"client_disconnected"}
    assert len(written) < 50 * 400  # one short line each
