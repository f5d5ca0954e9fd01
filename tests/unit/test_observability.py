"""Observability in-process: the core's observer and drain, request ids, the JSON log line, /metrics,
overload shedding, quiet client disconnects, the multiprocess sweep and the serve-side settings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from predictor_core import (
    Draining,
    ModelIdentity,
    ModelManifest,
    NoObserver,
    PredictionObserver,
    Task,
    ThreadedInference,
    ValidationFailed,
)
from predictor_litestar import Observability, create_app
from predictor_litestar import metrics as metrics_module
from predictor_litestar.metrics import OTHER, RECORD, UNMATCHED, _feature_label, is_loopback, sweep
from predictor_litestar.observability import REQUEST_LOGGER, _key_id
from tests.fakes import FailingStore, InMemoryPredictionStore, SlowRuntime, fake_service, toy_manifest

GOOD = {"x": 1.23456, "y": 2.0, "n": 3, "flag": True, "colour": "red"}
"""x is distinctive, so a log line that carried a feature value would show it."""


class RecordingObserver:
    """A PredictionObserver that keeps what it was told."""

    def __init__(self) -> None:
        self.stages: list[tuple[ModelIdentity, str, float]] = []
        self.refused: list[tuple[ModelManifest, ValidationFailed]] = []

    def stage(self, model: ModelIdentity, stage: str, seconds: float, /) -> None:
        self.stages.append((model, stage, seconds))

    def invalid(self, manifest: ModelManifest, failure: ValidationFailed, /) -> None:
        self.refused.append((manifest, failure))


_observer: PredictionObserver = RecordingObserver()
_nothing: PredictionObserver = NoObserver()


# -- the core -----------------------------------------------------------------------------------------


async def test_the_service_tells_its_observer_every_stage_and_every_refusal() -> None:
    observer = RecordingObserver()
    service, _ = fake_service(store=InMemoryPredictionStore(), observer=observer)
    await service.predict([GOOD, GOOD])
    assert [s for _, s, _ in observer.stages] == ["validate", "infer", "record"]
    assert {m for m, _, _ in observer.stages} == {toy_manifest().identity}
    assert all(seconds >= 0 for _, _, seconds in observer.stages)
    with pytest.raises(ValidationFailed):
        await service.predict([{**GOOD, "x": "bad"}])
    [(manifest, failure)] = observer.refused
    assert manifest.identity == toy_manifest().identity
    assert failure.problems[0].loc == (0, "x")
    assert len(observer.stages) == 3  # nothing after a refusal


async def test_an_unrecorded_service_has_no_record_stage_and_no_observer_is_fine() -> None:
    observer = RecordingObserver()
    service, _ = fake_service(observer=observer)
    await service.predict([GOOD])
    assert [s for _, s, _ in observer.stages] == ["validate", "infer"]
    plain, _ = fake_service()
    assert len(await plain.predict([GOOD])) == 1


async def test_stop_accepting_turns_readiness_off_with_draining_and_predictions_still_run() -> None:
    service, _ = fake_service(store=InMemoryPredictionStore())
    assert (await service.status()).ready
    assert not service.draining
    service.stop_accepting()
    status = await service.status()
    assert service.draining
    assert not status.ready
    assert isinstance(status.unavailable, Draining)
    assert "draining" in str(status.unavailable)
    assert status.unavailable.retry_after >= 1
    assert len(await service.predict([GOOD])) == 1


# -- the HTTP layer -----------------------------------------------------------------------------------


def observed_app(
    store: Any = None, *, delay: float | None = None, **options: Any
) -> tuple[Any, Observability, Any]:
    observability = Observability(**options)
    extra: dict[str, Any] = {}
    if delay is not None:
        extra = {"factory": lambda m: SlowRuntime(m, delay), "inference": ThreadedInference()}
    manifests = [toy_manifest(), toy_manifest(Task.REGRESSION, name="reg")]
    service, registry = fake_service(
        manifests, store if store is not None else InMemoryPredictionStore(), observer=observability, **extra
    )
    return create_app(service, registry, observability=observability), observability, service


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def requests_by(samples: dict, route: str) -> dict[str, float]:
    return {
        dict(labels)["status"]: value
        for (name, labels), value in samples.items()
        if name == "predictor_http_requests_total" and dict(labels)["route"] == route
    }


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(r.getMessage()) for r in self.records if r.name == REQUEST_LOGGER]


@contextlib.asynccontextmanager
async def captured() -> AsyncIterator[Captured]:
    """The request lines and every warning or error, attached after the app is built (Litestar
    configures logging when an app is made, which would drop pytest's own capture handler)."""
    handler = Captured()
    requests = logging.getLogger(REQUEST_LOGGER)
    loggers = [requests, logging.getLogger("litestar"), logging.getLogger()]
    level, propagate = requests.level, requests.propagate
    requests.setLevel(logging.INFO)
    requests.propagate = False  # seen once, by its own handler
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        requests.setLevel(level)
        requests.propagate = propagate
        for logger in loggers:
            logger.removeHandler(handler)


async def test_request_ids_are_kept_when_sane_and_made_otherwise() -> None:
    app, _, _ = observed_app()
    async with captured() as log, AsyncTestClient(app) as client:
        sane = await client.get("/health/live", headers={"x-request-id": "req-42.a:b/c"})
        insane = await client.get("/health/live", headers={"x-request-id": "bad id\twith spaces"})
        long = await client.get("/health/live", headers={"x-request-id": "x" * 129})
        absent = await client.get("/health/live")
    assert sane.headers["x-request-id"] == "req-42.a:b/c"
    for answer in (insane, long, absent):
        assert uuid.UUID(answer.headers["x-request-id"]).version == 7
    assert [line["request_id"] for line in log.lines()] == [
        r.headers["x-request-id"] for r in (sane, insane, long, absent)
    ]


async def test_one_request_id_rule_what_is_logged_is_what_is_answered_and_recorded() -> None:
    store = InMemoryPredictionStore()
    app, _, _ = observed_app(store)
    async with captured() as log, AsyncTestClient(app) as client:
        spaced = await client.post(
            "/predict", json={"features": GOOD}, headers={"x-request-id": "order #17, 'b' (retry)"}
        )
        longest = await client.post("/predict", json={"features": GOOD}, headers={"x-request-id": "q" * 128})
        long = await client.post("/predict", json={"features": GOOD}, headers={"x-request-id": "r" * 129})
        control = await client.get("/health/live", headers={"x-request-id": "a\x7fb"})
        absent = await client.post("/predict", json={"features": GOOD})
    assert [r.status_code for r in (spaced, longest, long, control, absent)] == [200, 200, 400, 200, 200]
    lines = log.lines()
    assert [line["request_id"] for line in lines] == [
        r.headers["x-request-id"] for r in (spaced, longest, long, control, absent)
    ]
    assert spaced.headers["x-request-id"] == "order #17, 'b' (retry)"
    assert longest.headers["x-request-id"] == "q" * 128
    for made in (long, control, absent):  # refused or absent: the server's own id, answered and logged
        assert uuid.UUID(made.headers["x-request-id"]).version == 7
    recorded = {str(r.prediction.prediction_id): r.request_id for r in store.records.values()}
    assert recorded[spaced.json()["prediction_id"]] == lines[0]["request_id"]
    assert recorded[longest.json()["prediction_id"]] == lines[1]["request_id"]
    assert recorded[absent.json()["prediction_id"]] is None  # a made id is logged, not recorded


def test_made_request_ids_are_uuid7_unique_and_in_creation_order() -> None:
    from predictor_litestar.tracing import new_request_id, request_id_fault

    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # time first, then the per-process counter
    parsed = [uuid.UUID(i) for i in ids[::1000]]
    assert {(u.version, u.variant) for u in parsed} == {(7, uuid.RFC_4122)}
    assert all(str(u) == i for u, i in zip(parsed, ids[::1000], strict=True))
    millis = int(ids[-1].replace("-", "")[:12], 16)
    assert abs(millis - time.time() * 1000) < 5_000
    assert all(request_id_fault(i) is None for i in ids[:10])
    child = subprocess.run(  # another process: another random part (a forked child reseeds too)
        [sys.executable, "-c", "from predictor_litestar.tracing import new_request_id as n; print(n())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip()[-10:] != ids[0][-10:]


def test_the_request_log_writes_whole_lines_in_blocks_of_at_most_4096_bytes() -> None:
    from predictor_litestar.observability import RequestLog

    class Stream:
        def __init__(self) -> None:
            self.writes: list[bytes] = []
            self.flushes = 0

        def write(self, data: bytes) -> int:
            self.writes.append(data)
            return len(data)

        def flush(self) -> None:
            self.flushes += 1

    stream = Stream()
    lines = [f'{{"n":{i},"pad":"{"x" * (i % 700)}"}}'.encode() for i in range(400)]
    request_log = RequestLog(stream, limit=1 << 30)  # type: ignore[arg-type]
    for line in lines:
        request_log.write(line)  # no event loop: written at once
    assert b"".join(stream.writes).splitlines() == lines
    request_log = RequestLog(stream, limit=1 << 30)  # type: ignore[arg-type]
    stream.writes.clear()

    async def burst() -> None:
        for line in lines:
            request_log.write(line)
        assert not stream.writes  # waiting for the timer
        await asyncio.sleep(request_log.delay + 0.1)

    asyncio.run(burst())
    assert b"".join(stream.writes).splitlines() == lines
    assert len(stream.writes) > 1
    assert all(len(w) <= 4096 and w.endswith(b"\n") for w in stream.writes)
    assert stream.flushes >= len(stream.writes)


async def test_the_request_log_is_flushed_at_the_lifespan_end_and_when_full() -> None:
    import io

    from predictor_litestar.observability import RequestLog

    stream = io.BytesIO()
    request_log = RequestLog(stream, delay=60, limit=1000)
    app, _, _ = observed_app(request_log=request_log)
    async with AsyncTestClient(app) as client:
        for _ in range(3):
            assert (await client.get("/health/live")).status_code == 200
        r = await client.post("/predict", json={"features": GOOD}, headers={"x-request-id": "r-9"})
        waiting = stream.getvalue()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert waiting  # 1000 bytes: written before the 60 s timer
    assert len(lines) == 4
    assert lines[-1]["request_id"] == r.headers["x-request-id"] == "r-9"
    assert lines[-1]["model"] == "toy"


def test_the_server_request_log_is_standard_output_once_per_process() -> None:
    from predictor_litestar import configure_request_log

    level = logging.getLogger(REQUEST_LOGGER).level
    try:
        first = configure_request_log(True)
        assert first is not None
        assert configure_request_log(True) is first
        assert configure_request_log(False) is None
        assert not logging.getLogger(REQUEST_LOGGER).isEnabledFor(logging.INFO)
    finally:
        logging.getLogger(REQUEST_LOGGER).setLevel(level)


async def test_one_json_line_per_request_with_stages_and_no_feature_value() -> None:
    app, _, _ = observed_app()
    async with captured() as log, AsyncTestClient(app) as client:
        ok = await client.post("/predict", json={"features": GOOD}, headers={"x-request-id": "r-1"})
        bad = await client.post("/predict", json={"features": {**GOOD, "x": "9.87654"}})
    assert (ok.status_code, bad.status_code) == (200, 422)
    first, second = log.lines()
    assert first["request_id"] == "r-1"
    assert {k: first[k] for k in ("method", "route", "path", "status", "model", "version", "key_id")} == {
        "method": "POST",
        "route": "/predict",
        "path": "/predict",
        "status": 200,
        "model": "toy",
        "version": "1",
        "key_id": None,
    }
    assert set(first["stages_ms"]) == {"decode", "validate", "infer", "record"}
    assert first["duration_ms"] >= sum(first["stages_ms"].values()) * 0.5
    assert (second["status"], second["error"], second["model"]) == (422, "ValidationFailed", "toy")
    text = "\n".join(r.getMessage() for r in log.records)
    for value in ("1.23456", "9.87654", '"red"'):
        assert value not in text


def test_the_key_id_comes_from_the_scope_state() -> None:
    class Key:
        id = "k_123"

    class Admission:
        key = Key()

    assert _key_id({}) is None
    assert _key_id({"key_id": "k_9"}) == "k_9"
    assert _key_id({"predictor_admission": Admission()}) == "k_123"


async def test_metrics_count_every_request_by_route_and_status() -> None:
    app, _, _ = observed_app(metrics_open=True)
    json_type = {"content-type": "application/json"}
    async with AsyncTestClient(app) as client:
        for _ in range(3):
            assert (await client.post("/predict", json={"features": GOOD})).status_code == 200
        for _ in range(2):
            r = await client.post("/predict", json={"features": {**GOOD, "x": "no", "zz": 1}})
            assert r.status_code == 422
        assert (await client.post("/predict", content=b"{", headers=json_type)).status_code == 400
        r = await client.post("/predict", content=b"{}", headers={"content-type": "text/plain"})
        assert r.status_code == 415
        assert (await client.post("/models/reg/predict", json={"features": GOOD})).status_code == 200
        assert (await client.get("/no/such/path")).status_code == 404
        text = (await client.get("/metrics")).text
    samples = scrape(text)
    assert requests_by(samples, "/predict") == {"200": 3, "422": 2, "400": 1, "415": 1}
    assert requests_by(samples, "/models/{name}/predict") == {"200": 1}
    assert requests_by(samples, UNMATCHED) == {"404": 1}
    labels = (("method", "POST"), ("route", "/predict"), ("status", "200"))
    assert samples[("predictor_http_request_duration_seconds_count", labels)] == 3
    stages = {
        dict(labels)["stage"]: value
        for (name, labels), value in samples.items()
        if name == "predictor_stage_duration_seconds_count" and dict(labels)["model"] == "toy"
    }
    assert stages == {"decode": 5, "validate": 3, "infer": 3, "record": 3}  # decode: 3 good + 2 refused
    failures = {
        (dict(labels)["feature"], dict(labels)["code"]): value
        for (name, labels), value in samples.items()
        if name == "predictor_validation_failures_total"
    }
    assert failures == {("x", "wrong_type"): 2, (OTHER, "unknown_feature"): 2}
    info = [
        dict(labels)
        for (name, labels), value in samples.items()
        if name == "predictor_model_info" and value == 1
    ]
    assert {(i["model"], i["version"], i["provider"]) for i in info} == {
        ("toy", "1", "FakeExecutionProvider"),
        ("reg", "1", "FakeExecutionProvider"),
    }
    assert samples[("predictor_http_requests_in_flight", ())] == 0
    assert "1.23456" not in text


async def test_validation_failure_series_are_capped(monkeypatch) -> None:
    monkeypatch.setattr(metrics_module, "MAX_FAILURE_SERIES", 1)
    app, _, _ = observed_app(metrics_open=True)
    async with AsyncTestClient(app) as client:
        await client.post("/predict", json={"features": {**GOOD, "x": "no"}})
        await client.post("/predict", json={"features": {**GOOD, "y": "no"}})
        samples = scrape((await client.get("/metrics")).text)
    failures = {
        dict(labels)["feature"]
        for (name, labels), _ in samples.items()
        if name == "predictor_validation_failures_total"
    }
    assert failures == {"x", OTHER}


def test_feature_labels_come_from_the_schema() -> None:
    known = frozenset({"x", "rule_a"})
    assert _feature_label((0, "x"), known) == "x"
    assert _feature_label((3, "rule_a"), known) == "rule_a"
    assert _feature_label((0, "anything a client sent"), known) == OTHER
    assert _feature_label((2,), known) == RECORD
    assert _feature_label((), known) == RECORD


async def test_store_outages_are_counted_and_named_in_the_log() -> None:
    app, _, _ = observed_app(FailingStore(), metrics_open=True)
    async with captured() as log, AsyncTestClient(app) as client:
        r = await client.post("/predict", json={"features": GOOD})
        assert r.status_code == 503
        samples = scrape((await client.get("/metrics")).text)
    assert samples[("predictor_store_unavailable_total", ())] == 1
    assert log.lines()[0]["error"] == "StoreUnavailable"


async def test_metrics_are_for_loopback_unless_opened_or_let_through_by_the_guard() -> None:
    app, _, _ = observed_app()  # the test client's address is "testclient": not loopback
    async with AsyncTestClient(app) as client:
        r = await client.get("/metrics")
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "PREDICTOR_METRICS=open" in r.json()["detail"]

    asked: list[str] = []

    async def allow(connection: Any, handler: Any) -> None:
        asked.append(connection.url.path)

    app, _, _ = observed_app(metrics_guard=allow)
    async with AsyncTestClient(app) as client:
        r = await client.get("/metrics")
    assert (r.status_code, asked) == (200, ["/metrics"])
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "127.8.9.1"))
    assert not any(is_loopback(h) for h in ("10.0.0.1", "testclient", "", None, "::ffff:10.0.0.1"))


async def test_beyond_the_bound_requests_are_shed_at_once_and_probes_still_answer() -> None:
    app, observability, _ = observed_app(delay=0.3, max_in_flight=2)
    # httpx's ASGI transport runs the app on this loop, so requests overlap (the test client serialises)
    transport = httpx.ASGITransport(app=app)  # client 127.0.0.1: /metrics is open to it
    async with (
        captured() as log,
        observability.lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):

        async def predict(path: str = "/predict") -> tuple[int, float, Any]:
            started = time.perf_counter()
            r = await client.post(path, json={"features": GOOD})
            return r.status_code, time.perf_counter() - started, r

        slow = [asyncio.create_task(predict()) for _ in range(2)]
        while observability.in_flight < 2:
            await asyncio.sleep(0.005)
        shed = await asyncio.gather(*(predict() for _ in range(6)), predict("/v2/models/toy/infer"))
        probes = [await client.get(p) for p in ("/health/live", "/health/ready", "/v2/health/ready")]
        scraped = await client.get("/metrics")
        done = await asyncio.gather(*slow)
        await asyncio.sleep(1.1)  # the sheds after the first are logged as one count, within a second
    assert [s for s, _, _ in done] == [200, 200]
    assert [s for s, _, _ in shed] == [503] * 7
    assert max(seconds for _, seconds, _ in shed) < 0.2  # immediate: not after the 0.3 s requests
    first = shed[0][2]
    assert first.headers["retry-after"] == "1"
    assert first.headers["content-type"] == "application/problem+json"
    assert first.json()["status"] == 503
    assert "limit" in first.json()["detail"]
    assert "error" not in first.json()
    assert "error" in shed[-1][2].json()  # v2 clients read `error`
    assert [p.status_code for p in probes] == [200, 200, 200]
    samples = scrape(scraped.text)
    assert samples[("predictor_http_shed_total", ())] == 7
    assert samples[("predictor_http_requests_in_flight", ())] == 2
    assert samples[("predictor_http_max_in_flight", ())] == 2
    assert requests_by(samples, "/predict")["503"] == 6
    assert requests_by(samples, "/v2/models/{name}/infer")["503"] == 1
    assert observability.in_flight == 0
    sheds = [line for line in log.lines() if line["event"] == "shed"]
    assert [line["requests"] for line in sheds] == [1, 6]  # the first at once, then one line a second
    assert {line["max_in_flight"] for line in sheds} == {2}
    assert [line["status"] for line in log.lines() if line["event"] == "request"] == [
        200,
        200,
        200,
        200,
        200,
        200,
    ]


async def test_readiness_says_draining_once_the_service_stops_accepting() -> None:
    app, _, service = observed_app()
    async with AsyncTestClient(app) as client:
        assert (await client.get("/health/ready")).status_code == 200
        service.stop_accepting()
        for path in ("/health/ready", "/v2/health/ready"):
            r = await client.get(path)
            assert r.status_code == 503
            assert "draining" in r.json()["detail"]
            assert int(r.headers["retry-after"]) >= 1
        assert (await client.get("/health/live")).status_code == 200
        assert (await client.post("/predict", json={"features": GOOD})).status_code == 200


async def test_a_client_gone_mid_body_is_one_short_log_line_and_no_traceback() -> None:
    app, _, _ = observed_app(metrics_open=True)
    sent: list[dict[str, Any]] = []
    messages = iter(
        [
            {"type": "http.request", "body": b'{"features": {"x"', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"4000")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    async with captured() as log:
        await app(scope, receive, send)
    assert not [r for r in log.records if r.levelno >= logging.WARNING]
    [line] = log.lines()
    assert (line["status"], line["error"]) == (499, "client_disconnected")
    assert len(log.records) == 1
    assert len(log.records[0].getMessage()) < 400


# -- the multiprocess directory -----------------------------------------------------------------------


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write(path: Path, values: dict[str, float]) -> None:
    mmap = MmapedDict(str(path))
    for key, value in values.items():
        mmap.write_value(key, value, 0.0)
    mmap.close()


def collect(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in registry.collect() for s in m.samples}


def test_sweep_folds_dead_workers_into_archives_and_keeps_totals(tmp_path: Path) -> None:
    counter = mmap_key("predictor_x_total", "predictor_x_total", ["status"], ["200"], "x")
    bucket = mmap_key("predictor_y_seconds", "predictor_y_seconds_bucket", ["le"], ["0.5"], "y")
    gauge = mmap_key("predictor_z", "predictor_z", [], [], "z")
    me, gone, gone_too = os.getpid(), dead_pid(), dead_pid()
    write(tmp_path / f"counter_{me}.db", {counter: 1})
    write(tmp_path / f"counter_{gone}.db", {counter: 5})
    write(tmp_path / f"histogram_{gone}.db", {bucket: 2})
    write(tmp_path / f"gauge_livesum_{gone}.db", {gauge: 7})
    before = collect(tmp_path)
    assert sweep(tmp_path) == [gone]
    assert {p.name for p in tmp_path.glob("*.db")} == {
        "counter_archive.db",
        f"counter_{me}.db",
        "histogram_archive.db",
    }
    after = collect(tmp_path)
    assert (
        after[("predictor_x_total", (("status", "200"),))]
        == 6
        == before[("predictor_x_total", (("status", "200"),))]
    )
    assert after[("predictor_y_seconds_count", ())] == 2
    assert ("predictor_z", ()) not in after  # the dead worker's live gauge left the sum
    write(tmp_path / f"counter_{gone_too}.db", {counter: 10})
    assert sweep(tmp_path) == [gone_too]
    assert sweep(tmp_path) == []
    assert collect(tmp_path)[("predictor_x_total", (("status", "200"),))] == 16


# -- the settings and the server process --------------------------------------------------------------


def test_the_settings_of_observability_shedding_and_drain() -> None:
    from predictor.settings import Settings
    from predictor_core import ConfigurationError

    default = Settings.load({})
    assert (default.max_in_flight, default.metrics, default.request_log) == (64, "loopback", True)
    assert default.drain_timeout > 0
    assert default.drain_delay == 0
    env = {
        "PREDICTOR_MAX_IN_FLIGHT": "0",
        "PREDICTOR_METRICS": "open",
        "PREDICTOR_REQUEST_LOG": "false",
        "PREDICTOR_DRAIN_TIMEOUT": "3",
        "PREDICTOR_DRAIN_DELAY": "1.5",
    }
    loaded = Settings.load(env)
    assert (loaded.max_in_flight, loaded.metrics, loaded.request_log) == (0, "open", False)
    assert (loaded.drain_timeout, loaded.drain_delay) == (3.0, 1.5)
    for bad in (
        {"PREDICTOR_MAX_IN_FLIGHT": "-1"},
        {"PREDICTOR_DRAIN_TIMEOUT": "0"},
        {"PREDICTOR_METRICS": "x"},
    ):
        with pytest.raises(ConfigurationError):
            Settings.load(bad)


def test_serve_gives_several_workers_a_fresh_metrics_directory_and_one_worker_none(
    tmp_path: Path, monkeypatch
) -> None:
    from predictor.cli import serve

    monkeypatch.setattr(serve.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(serve.tempfile, "tempdir", str(tmp_path))
    orphan = tmp_path / f"predictor-metrics-{dead_pid()}-abc"
    orphan.mkdir()
    (orphan / "counter_1.db").write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/somewhere/else")
    with serve.metrics_directory(1) as directory:
        assert directory is None
        assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert orphan.exists()  # only a multi-worker start cleans up
    with serve.metrics_directory(2) as directory:
        assert directory is not None
        assert directory.parent == tmp_path
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(directory)
        assert (directory.stat().st_mode & 0o777) == 0o700
        assert not list(directory.iterdir())
        assert not orphan.exists()
    assert not directory.exists()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


async def test_sigterm_turns_readiness_off_then_reaches_the_servers_own_handler() -> None:
    from predictor.settings import Settings
    from predictor.wiring import Wiring
    from tests.fakes import InMemoryModelSource

    reached: list[float] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: reached.append(time.monotonic()))
    try:
        settings = Settings.load({}, model="toy", record=False, drain_delay=0.2)
        wiring = Wiring(settings, source=InMemoryModelSource([toy_manifest()]))
        with wiring._draining_on_stop(asyncio.get_running_loop()):
            sent = time.monotonic()
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.05)
            assert wiring.service.draining
            assert not reached
            assert isinstance((await wiring.service.status()).unavailable, Draining)
            await asyncio.sleep(0.4)
            assert len(reached) == 1
            assert reached[0] - sent >= 0.2
        assert signal.getsignal(signal.SIGTERM) is not None
        os.kill(os.getpid(), signal.SIGTERM)  # our handler is gone: the previous one answers at once
        await asyncio.sleep(0.05)
        assert len(reached) == 2
    finally:
        signal.signal(signal.SIGTERM, previous)


async def test_a_place_is_free_once_the_answer_is_complete_not_when_its_handler_returns() -> None:
    """A keep-alive client sends its next request as soon as it has the answer, maybe before the handler
    that sent it has returned: that request must not be shed (seen as 503s at 64 connections, bound 64)."""
    observability = Observability(max_in_flight=1)
    answered = asyncio.Event()
    statuses: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})
        answered.set()
        await asyncio.sleep(0.05)  # still running after its answer went out

    wrapped = observability.wrap(app)

    async def call() -> None:
        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "state": {}}
        await wrapped(scope, receive, send)

    first = asyncio.create_task(call())
    await answered.wait()
    await call()  # the same client's next request, while the first handler still runs
    await first
    assert statuses == [200, 200]
    assert observability.in_flight == 0
