"""API keys, scopes and per-key limits with real servers (`--workers 2`), a real PostgreSQL and Redis.

Measured and printed (pytest -s): how long a revoked key still got through on either worker, and how many
requests a key limited to N per second got through across both workers, with Redis and without.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from predictor_core import ModelManifest
from predictor_onnx import reference_root
from tests.functional.conftest import temporary_database
from tests.functional.server import plain_url, server_process

pytestmark = pytest.mark.postgres

CLI = [sys.executable, "-c", "from predictor.cli import main; main()"]
RECORD = ModelManifest.from_json(
    (reference_root() / "breast_cancer" / "1.0.0" / "manifest.json").read_bytes()
).schema.example()
REVOKED_WITHIN_S = 2.0


def cli(database_url: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """`predictor ...` as a separate process on `database_url` (stdout and stderr apart)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTOR_") and k != "DATABASE_URL"}
    result = subprocess.run(
        [*CLI, *args], env={**env, "DATABASE_URL": database_url}, capture_output=True, text=True, timeout=120
    )
    assert (result.returncode == 0) is ok, result.stdout + result.stderr
    return result


def create_key(database_url: str, name: str, scopes: str, *limit: str) -> str:
    """A new key: the last line of `predictor keys create`'s standard output, which is all of it."""
    out = cli(database_url, "keys", "create", "--name", name, "--scopes", scopes, *limit).stdout
    assert out.count("\n") == 1, out
    return out.strip()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def fresh(base: str) -> httpx.Client:
    """A client that opens a new connection per request, so that the kernel spreads them over workers."""
    return httpx.Client(base_url=base, timeout=10, limits=httpx.Limits(max_keepalive_connections=0))


@pytest.fixture(scope="module")
def database(pg_server_url: str) -> Iterator[str]:
    with temporary_database(pg_server_url) as url:
        yield url


@pytest.fixture(scope="module")
def keys(database: str) -> dict[str, str]:
    made = {scope: create_key(database, scope, scope) for scope in ("predict", "read", "feedback", "admin")}
    made["everything"] = create_key(database, "everything", "predict,read,feedback,admin")
    return made


@pytest.fixture(scope="module")
def server(database: str, keys: dict[str, str], redis_url: str) -> Iterator[str]:
    """Two workers listening beyond loopback (auth on), with rate limits shared in Redis."""
    env = {"PREDICTOR_REDIS_URL": redis_url, "PREDICTOR_WATCH_INTERVAL": "0.25"}
    with server_process(database, "--host", "0.0.0.0", "--workers", "2", env=env) as (base, _):
        yield base


def test_keys_are_printed_once_listed_without_secrets_and_refused_bad_specs(database: str, keys) -> None:
    created = cli(database, "keys", "create", "--name", "listing", "--scopes", "read", "--rate", "5/s")
    key = created.stdout.strip()
    assert key.startswith("pk_")
    assert created.stdout == key + "\n"  # alone on standard output, so scripts can capture it
    assert "shown only this once" in created.stderr
    assert "rate 5/s (burst 5)" in created.stderr
    listed = cli(database, "keys", "list").stdout
    key_id, secret = key.split("_", 2)[1:]
    assert f"listing (id {key_id}): scopes read, rate 5/s (burst 5), active" in listed
    for made in keys.values():
        assert made.split("_", 2)[2] not in listed
    assert secret not in listed
    with psycopg.connect(plain_url(database)) as conn:
        stored = str(conn.execute("SELECT * FROM api_keys").fetchall())
    assert secret not in stored
    again = cli(database, "keys", "create", "--name", "listing", "--scopes", "read", ok=False)
    assert "KeyConflict" in again.stderr
    assert cli(database, "keys", "create", "--name", "x", "--scopes", "write", ok=False).stdout == ""
    assert (
        "unknown scope 'write'"
        in cli(database, "keys", "create", "--name", "x", "--scopes", "write", ok=False).stderr
    )
    assert (
        "expected COUNT/UNIT"
        in cli(
            database, "keys", "create", "--name", "x", "--scopes", "read", "--rate", "fast", ok=False
        ).stderr
    )
    assert "KeyNotFound" in cli(database, "keys", "revoke", "nobody", ok=False).stderr


@pytest.mark.parametrize(
    ("environment", "args", "said"),
    [
        ({}, ["--host", "0.0.0.0"], "the server listens on 0.0.0.0, beyond loopback"),
        ({"PREDICTOR_AUTH": "required"}, [], "PREDICTOR_AUTH=required"),
        ({"PREDICTOR_RECORD": "false"}, ["--host", "0.0.0.0"], "PREDICTOR_RECORD=false"),
    ],
)
def test_the_server_refuses_to_start_without_a_key_where_keys_are_required(
    fresh_pg_url: str, environment: dict[str, str], args: list[str], said: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTOR_") and k != "DATABASE_URL"}
    result = subprocess.run(
        [*CLI, "serve", "--port", "1", "--database-url", fresh_pg_url, *args],
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert said in line
    if "RECORD" not in said:
        assert "no API key is defined" in line
        assert "predictor keys create --name NAME --scopes predict,read" in line


def test_an_unreachable_redis_stops_start_up_with_one_line_and_no_password(database: str, keys) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTOR_") and k != "DATABASE_URL"}
    result = subprocess.run(
        [*CLI, "serve", "--host", "0.0.0.0", "--port", "1", "--database-url", database],
        env={**env, "PREDICTOR_REDIS_URL": "redis://:hunter2@127.0.0.1:9/0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "LimiterUnavailable: redis (redis://127.0.0.1:9/0) is unreachable" in line
    assert "hunter2" not in result.stdout + result.stderr


def test_each_route_family_is_refused_without_a_key_or_its_scope(server: str, keys: dict[str, str]) -> None:
    with httpx.Client(base_url=server, timeout=10) as http:
        sent = http.post("/predict", json={"features": RECORD}, headers=bearer(keys["predict"]))
        assert sent.status_code == 200, sent.text
        prediction_id = sent.json()["prediction_id"]
        inputs = [{"name": k, "datatype": "FP64", "shape": [1], "data": [v]} for k, v in RECORD.items()]
        routes = [
            ("predict", "POST", "/predict", {"features": RECORD}),
            ("predict", "POST", "/models/breast_cancer/predict/batch", {"records": [RECORD]}),
            ("predict", "POST", "/v2/models/breast_cancer/infer", {"inputs": inputs}),
            ("read", "GET", f"/predictions/{prediction_id}", None),
            ("read", "GET", "/models", None),
            ("read", "GET", "/models/breast_cancer/aliases", None),
            ("read", "GET", "/v2/models/breast_cancer", None),
            ("feedback", "POST", f"/predictions/{prediction_id}/feedback", {"actual": "benign"}),
            ("admin", "POST", "/models/breast_cancer/aliases/staging/rollback", None),
        ]
        for scope, method, path, body in routes:
            missing = http.request(method, path, json=body)
            assert missing.status_code == 401, (path, missing.text)
            assert missing.headers["www-authenticate"].startswith("Bearer")
            assert missing.headers["content-type"].startswith("application/problem+json")
            other = "read" if scope != "read" else "predict"
            forbidden = http.request(method, path, json=body, headers={"X-API-Key": keys[other]})
            assert forbidden.status_code == 403, (path, forbidden.text)
            assert f'scope="{scope}"' in forbidden.headers["www-authenticate"]
            allowed = http.request(method, path, json=body, headers=bearer(keys[scope]))
            expected = 409 if scope == "admin" else None  # nothing to roll back: past the guard
            assert allowed.status_code == expected or allowed.is_success, (path, allowed.text)
        for probe in ("/health/live", "/health/ready", "/health", "/v2/health/ready"):
            assert http.get(probe).status_code == 200, probe
        looked_up = http.get(f"/predictions/{prediction_id}", headers=bearer(keys["read"])).json()
        assert looked_up["key_id"] == keys["predict"].split("_")[1]
        health = http.get("/health").json()["access"]
        assert (health["auth"], health["shared"]) == (True, True)
        assert health["rate_limits"].startswith("redis (redis://")


def test_the_key_id_is_on_every_input_and_feedback_row(
    server: str, keys: dict[str, str], database: str
) -> None:
    key_id = keys["everything"].split("_")[1]
    with httpx.Client(base_url=server, timeout=10, headers=bearer(keys["everything"])) as http:
        ids = [
            r["prediction_id"]
            for r in http.post("/predict/batch", json={"records": [RECORD] * 3}).json()["predictions"]
        ]
        assert http.post(f"/predictions/{ids[0]}/feedback", json={"actual": "benign"}).status_code == 201
    with psycopg.connect(plain_url(database)) as conn:
        inputs = conn.execute(
            "SELECT key_id FROM model_inputs WHERE prediction_id = ANY(%s::uuid[])", (ids,)
        ).fetchall()
        feedback = conn.execute(
            "SELECT key_id FROM prediction_feedback WHERE prediction_id = %s::uuid", (ids[0],)
        ).fetchall()
    assert inputs == [(key_id,)] * 3
    assert feedback == [(key_id,)]


def test_admin_moves_and_rolls_back_aliases_over_http_recorded_with_its_key(
    server: str, keys: dict[str, str]
) -> None:
    admin_id = keys["admin"].split("_")[1]
    path = "/models/breast_cancer/aliases/production"
    with httpx.Client(base_url=server, timeout=30) as http:
        refused = http.put(path, json={"version": "1.0.0"}, headers=bearer(keys["read"]))
        assert refused.status_code == 403
        moved = http.put(path, json={"version": "1.0.0"}, headers=bearer(keys["admin"]))
        assert moved.status_code == 200, moved.text
        assert (moved.json()["to_version"], moved.json()["changed_by"]) == ("1.0.0", f"key:{admin_id}")
        unknown = http.put(path, json={"version": "9.9.9"}, headers=bearer(keys["admin"]))
        assert unknown.status_code == 404
        back = http.post(f"{path}/rollback", headers=bearer(keys["admin"]))
        assert back.status_code == 200, back.text
        assert (back.json()["from_version"], back.json()["to_version"]) == ("1.0.0", None)
        nothing = http.post(f"{path}/rollback", headers=bearer(keys["admin"]))
        assert nothing.status_code == 409
        assert "no change to roll back" in nothing.json()["detail"]
        history = http.get("/models/breast_cancer/aliases", headers=bearer(keys["read"])).json()["history"]
        assert [(c["to_version"], c["changed_by"]) for c in history[:2]] == [
            (None, f"key:{admin_id}"),
            ("1.0.0", f"key:{admin_id}"),
        ]


def test_a_revoked_key_is_refused_by_every_worker_within_2_s(server: str, database: str) -> None:
    """Requests keep coming on fresh connections (both workers) while `predictor keys revoke` runs."""
    key = create_key(database, "soon-revoked", "read")
    answers: list[tuple[float, int]] = []
    stop = threading.Event()

    def ask() -> None:
        with fresh(server) as http:
            while not stop.is_set():
                answers.append((time.time(), http.get("/models", headers=bearer(key)).status_code))

    askers = [threading.Thread(target=ask) for _ in range(2)]
    for asker in askers:
        asker.start()
    try:
        time.sleep(1.0)  # both workers have read and cached the key
        cli(database, "keys", "revoke", "soon-revoked")
        with psycopg.connect(plain_url(database)) as conn:
            row = conn.execute("SELECT revoked_at FROM api_keys WHERE name = 'soon-revoked'").fetchone()
        assert row is not None
        revoked = row[0].timestamp()
        while time.time() < revoked + REVOKED_WITHIN_S + 1.0:
            time.sleep(0.1)
    finally:
        stop.set()
        for asker in askers:
            asker.join()
    before = [status for t, status in answers if t < revoked]
    last_allowed = max(t for t, status in answers if status == 200)
    after = [status for t, status in answers if t > revoked + REVOKED_WITHIN_S]
    print(
        f"revoked key last let through {last_allowed - revoked:.2f} s after its revocation was committed "
        f"({len(answers)} requests, {len(before)} before it)"
    )
    assert set(before) == {200}
    assert last_allowed - revoked < REVOKED_WITHIN_S
    assert after
    assert set(after) == {401}


RATE, BURST, FLOOD_S = 40, 40, 6.0


def flood(base: str, key: str, seconds: float, threads: int = 8) -> tuple[int, int, float]:
    """Send requests with `key` from `threads` threads for `seconds`: how many got 2xx and 429, and the
    seconds from the first request sent to the last.

    The key is used first and its bucket left to fill again, so that both workers have read it and the
    flood starts on a full bucket.
    """
    with fresh(base) as http:
        for _ in range(4):
            assert http.post("/predict", json={"features": RECORD}, headers=bearer(key)).status_code == 200
    time.sleep(BURST / RATE + 0.2)
    answers: list[tuple[float, int]] = []
    started = time.monotonic()

    def work() -> None:
        with fresh(base) as http:
            while (sent := time.monotonic()) - started < seconds:
                status = http.post("/predict", json={"features": RECORD}, headers=bearer(key)).status_code
                answers.append((sent, status))

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    statuses = [status for _, status in answers]
    assert set(statuses) <= {200, 429}, sorted(set(statuses))
    sent = [t for t, _ in answers]
    return statuses.count(200), statuses.count(429), max(sent) - min(sent)


def test_with_redis_a_limited_key_gets_its_rate_across_both_workers(server: str, database: str) -> None:
    key = create_key(database, "limited-shared", "predict", "--rate", f"{RATE}/s", "--burst", str(BURST))
    ok, limited, window = flood(server, key, FLOOD_S)
    rate = (ok - BURST) / window
    print(
        f"redis, 2 workers: {ok} of {ok + limited} let through in {window:.2f} s: {rate:.1f}/s for {RATE}/s"
    )
    assert limited > ok  # the flood asked far more than the limit
    assert abs(rate - RATE) <= 0.1 * RATE
    with fresh(server) as http:
        for _ in range(BURST + 10):  # the bucket refilled a little since the flood: empty it again
            refused = http.post("/predict", json={"features": RECORD}, headers=bearer(key))
            if refused.status_code == 429:
                break
    assert refused.status_code == 429
    assert refused.headers["ratelimit-policy"] == f'"default";q={RATE};w=1'
    assert refused.headers["ratelimit"].startswith('"default";r=0;t=')
    assert int(refused.headers["retry-after"]) >= 1


def test_without_redis_each_worker_counts_on_its_own_as_documented(
    database: str, keys: dict[str, str]
) -> None:
    key = create_key(database, "limited-local", "predict", "--rate", f"{RATE}/s", "--burst", str(BURST))
    with server_process(database, "--host", "0.0.0.0", "--workers", "2") as (base, _):
        with fresh(base) as http:
            health = http.get("/health").json()["access"]
        assert health["shared"] is False
        assert "per process" in health["rate_limits"]
        ok, limited, window = flood(base, key, FLOOD_S)
    one_process = BURST + RATE * window
    print(
        f"per process, 2 workers: {ok} of {ok + limited} let through in {window:.2f} s: "
        f"{ok / one_process:.2f} × what one process allows"
    )
    assert limited > 0
    assert 0.9 * one_process <= ok <= 2 * 1.1 * one_process
