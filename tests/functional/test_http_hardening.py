"""Issue 14's hostile requests against a real `predictor serve`, on PostgreSQL and SQLite, with its log read.

A v2 `id` or an `X-Request-ID` the `varchar(128)` column cannot keep is a 400 naming it on both
databases (PostgreSQL used to answer 500, SQLite to keep 200 characters), and nothing of a request's
features reaches the server's log, not even through the text of a statement the database refused.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import traceback
from pathlib import Path

import httpx
import psycopg
import pytest

from predictor_core import StoreRejected
from predictor_sql import SqlPredictionStore
from tests.fakes import records_for, toy_manifest
from tests.functional.server import example, plain_url, server_process

MARK = 14.123456789
"""A feature value no log line may ever show."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return plain_url(request.getfixturevalue("fresh_pg_url"))


def count_inputs(database: str) -> int:
    if database.startswith("sqlite"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(database.split("///", 1)[1])) as conn:
            return int(conn.execute("SELECT count(*) FROM model_inputs").fetchone()[0])
    with psycopg.connect(database) as conn:
        return int(conn.execute("SELECT count(*) FROM model_inputs").fetchone()[0])  # type: ignore[index]


def raw_answer(base: str, request: bytes) -> bytes:
    """What the server answers to raw bytes (for requests no HTTP client would send)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def infer_body(features: dict[str, float], **extra: object) -> dict[str, object]:
    inputs = [{"name": k, "datatype": "FP64", "shape": [1], "data": [v]} for k, v in features.items()]
    return {"inputs": inputs, **extra}


def test_hostile_requests_get_explained_4xx_and_leave_no_trace(database: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with server_process(database, log=log) as (base, _), httpx.Client(base_url=base, timeout=30) as http:
        features = {**example(http), "mean_radius": MARK}
        before = count_inputs(database)
        v2 = "/v2/models/breast_cancer/infer"
        for request_id, code in [("i" * 129, "too_long"), ("a\x00b", "control_character")]:
            r = http.post(v2, json=infer_body(features, id=request_id))
            assert r.status_code == 400, r.text
            assert [(e["loc"], e["code"]) for e in r.json()["errors"]] == [(["id"], code)]
        r = http.post("/predict", json={"features": features}, headers={"x-request-id": "h" * 129})
        assert r.status_code == 400
        assert r.json()["errors"][0]["loc"] == ["headers", "X-Request-ID"]
        text = json.dumps({"features": features}).replace(
            '"mean_radius"', '"mean_radius": 1.0, "mean_radius"'
        )
        r = http.post("/predict", content=text, headers={"content-type": "application/json"})
        assert r.status_code == 400
        assert r.json()["errors"][0] == {
            "loc": ["features", "mean_radius"],
            "code": "duplicate_key",
            "msg": r.json()["detail"],
            "value": None,
        }
        packed = gzip.compress(json.dumps({"features": features}).encode())
        r = http.post("/predict", content=packed, headers={"content-type": "application/json"})
        assert r.status_code == 415
        assert count_inputs(database) == before

        r = http.post(v2, json=infer_body(features, id="i" * 128))
        assert r.status_code == 200, r.text
        r = http.post("/predict", json={"features": features}, headers={"x-request-id": "h" * 128})
        assert r.status_code == 200
        recorded = http.get(f"/predictions/{r.json()['prediction_id']}")
        assert recorded.json()["request_id"] == "h" * 128
        assert recorded.headers["cache-control"] == "no-store"
        for answer in (r, recorded):
            assert "server" not in answer.headers
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        garbled = raw_answer(base, b"GARBAGE\r\n\r\n")  # refused by uvicorn before the app sees it
        assert garbled.startswith(b"HTTP/1.1 400 ")
        assert b"\r\nserver:" not in garbled.lower()
    written = log.read_text()
    assert str(MARK) not in written
    assert "Traceback" not in written
    assert '"status":500' not in written


@pytest.mark.postgres
async def test_a_statement_the_database_refuses_never_carries_the_features(pg_url: str) -> None:
    """What any log of the failure would print: the error, and its whole chain of causes."""
    store = SqlPredictionStore(pg_url)
    await store.start()
    try:
        manifest = toy_manifest(name="hardening")
        await store.register_model(manifest)
        record = {"x": MARK, "y": 50.0, "n": 3, "flag": True, "colour": "red"}
        for request_id in ("r" * 200, "a\x00b"):
            with pytest.raises(StoreRejected) as caught:
                await store.record(records_for(manifest, [record], request_id=request_id))
            chain = "".join(traceback.format_exception(caught.value))
            assert "refused to record predictions" in chain
            assert str(MARK) not in chain
    finally:
        await store.close()
