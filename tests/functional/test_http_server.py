"""`predictor serve` as a real process on a free loopback port, against real PostgreSQL, called over HTTP."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.functional.server import SERVE, example, plain_url, running_server, server_process

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def http(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as client:
        yield client


PENGUIN = {
    "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 181.0,
    "body_mass_g": 3750.0,
    "island": "Torgersen",
    "sex": None,
}


def count_outputs(pg_url: str) -> int:
    with psycopg.connect(plain_url(pg_url)) as conn:
        return conn.execute("SELECT count(*) FROM model_outputs").fetchone()[0]  # type: ignore[index]


def test_predict_default_model_and_look_it_up(http: httpx.Client) -> None:
    features = example(http)
    r = http.post("/predict", json={"features": features})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "breast_cancer"
    assert 0 <= body["probability"] <= 1
    recorded = http.get(f"/predictions/{body['prediction_id']}")
    assert recorded.status_code == 200
    assert recorded.json()["features"] == features
    assert recorded.json()["prediction"] == body


def test_multiclass_with_missing_value_and_regression(http: httpx.Client) -> None:
    r = http.post("/models/penguins/predict", json={"features": PENGUIN})
    assert r.status_code == 200, r.text
    assert set(r.json()["probabilities"]) == set(map(str, http.get("/models/penguins").json()["classes"]))
    assert http.get(f"/predictions/{r.json()['prediction_id']}").json()["features"] == PENGUIN
    diabetes = http.get("/models/diabetes").json()
    assert diabetes["task"] == "regression"
    record = {name: prop.get("minimum", 0) for name, prop in diabetes["features"]["properties"].items()}
    r = http.post("/models/diabetes/predict", json={"features": record})
    assert r.status_code in (200, 422), r.text  # a rule may refuse the all-minimum record; never a 5xx


def test_batch_is_all_or_nothing(http: httpx.Client, pg_url: str) -> None:
    good = example(http)
    before = count_outputs(pg_url)
    bad = {**good, "mean_radius": "nan"}
    r = http.post("/predict/batch", json={"records": [good, bad, good, {**good, "mean_area": -1}]})
    assert r.status_code == 422
    assert [e["loc"][:2] for e in r.json()["errors"]] == [["records", 1], ["records", 3]]
    assert count_outputs(pg_url) == before
    r = http.post("/predict/batch", json={"records": [good] * 3})
    assert r.status_code == 200
    assert count_outputs(pg_url) == before + 3


def test_a_batch_of_numbers_is_recorded_exactly_as_sent(http: httpx.Client, pg_url: str) -> None:
    """40 records take the batch decode path (`predictor_litestar.dense`); one holds an int."""
    good = example(http)
    records = [{name: value * (1 + i / 1e6) for name, value in good.items()} for i in range(40)]
    records[7] = {**records[7], "mean_area": int(records[7]["mean_area"])}  # an int stays an int
    records[9] = dict(reversed(records[9].items()))  # key order is the client's own
    before = count_outputs(pg_url)
    r = http.post("/predict/batch", json={"records": records})
    assert r.status_code == 200, r.text
    for i in (0, 7, 9, 39):
        alone = http.post("/predict", json={"features": records[i]}).json()  # the model read the same row
        assert r.json()["predictions"][i]["probability"] == pytest.approx(alone["probability"], rel=1e-6)
        recorded = http.get(f"/predictions/{r.json()['predictions'][i]['prediction_id']}").json()
        assert recorded["features"] == records[i]
        assert [type(v) for v in recorded["features"].values()] == [
            type(records[i][k]) for k in recorded["features"]
        ]
    assert count_outputs(pg_url) == before + 40 + 4  # the batch, and the four records sent alone
    refused = http.post("/predict/batch", json={"records": [*records, {**good, "mean_area": -1.0}]})
    assert refused.status_code == 422
    assert [e["loc"][:3] for e in refused.json()["errors"]] == [["records", 40, "mean_area"]]
    assert count_outputs(pg_url) == before + 40 + 4


def test_feedback(http: httpx.Client) -> None:
    classes = http.get("/models/breast_cancer").json()["classes"]
    sent = http.post("/predict", json={"features": example(http)}).json()
    url = f"/predictions/{sent['prediction_id']}/feedback"
    assert http.post(url, json={"actual": classes[0]}).status_code == 201
    assert http.post(url, json={"actual": "no such class"}).status_code == 422


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b"{", {"content-type": "application/json"}, 400),
        (b'{"features": [1]}', {"content-type": "application/json"}, 400),
        (
            b'{"features": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
            {"content-type": "application/json"},
            400,
        ),
        (b'{"features": {}}', {"content-type": "text/plain"}, 415),
        (b'{"features": {}}', {}, 415),
        (
            b'{"features": {"a": "' + b"x" * (2 * 1024 * 1024) + b'"}}',
            {"content-type": "application/json"},
            413,
        ),
        (b'{"features": {"mean_radius": NaN}}', {"content-type": "application/json"}, 400),
        (b'{"features": {"mean_radius": 1e39}}', {"content-type": "application/json"}, 422),
    ],
)
def test_error_statuses_are_problem_details(http: httpx.Client, content, headers, status) -> None:
    r = http.post("/predict", content=content, headers=headers)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == status


def test_not_found(http: httpx.Client) -> None:
    assert http.post("/models/nope/predict", json={"features": {}}).status_code == 404
    assert http.get("/models/breast_cancer/versions/99.0").status_code == 404
    assert http.get(f"/predictions/{uuid.uuid4()}").status_code == 404


def test_models_and_health(http: httpx.Client) -> None:
    names = [m["name"] for m in http.get("/models").json()]
    assert {"breast_cancer", "penguins", "diabetes"} <= set(names)
    bc = http.get("/models/breast_cancer").json()  # the default model: loaded at start-up
    assert bc["execution"]["providers"][0] == "CPUExecutionProvider"
    assert len(bc["features"]["properties"]) == 30
    assert http.get("/v2/models/diabetes/ready").status_code == 200  # loads it
    diabetes = http.get("/models/diabetes").json()
    assert (diabetes["loaded"], diabetes["execution"]["providers"]) == (True, ["CPUExecutionProvider"])
    assert http.get("/health/ready").status_code == 200
    health = http.get("/health").json()
    assert health["status"] == "ok"
    assert health["database"]["backend"] == "postgresql"
    assert health["database"]["durable"] is True
    assert health["database"]["writable"] is True
    assert "url" not in health["database"]  # the open page never shows where the database is


@pytest.mark.parametrize("form", ["query", "empty-user"])
def test_database_password_is_never_shown(pg_url: str, form: str, tmp_path: Path) -> None:
    secret = f"hunter2-{form}"
    if form == "query":
        url, env = f"{pg_url}?password={secret}", {}
    else:  # an empty user name: the driver takes PGUSER
        url, env = pg_url.replace("://postgres@", f"://:{secret}@"), {"PGUSER": "postgres"}
    assert secret in url
    log = tmp_path / "server.log"
    with server_process(url, env=env, log=log) as (base, _):
        health = httpx.get(f"{base}/health", timeout=10)
    assert health.status_code == 200
    assert health.json()["database"]["reachable"] is True
    assert secret not in health.text
    assert "127.0.0.1:5432" not in health.text
    startup = log.read_text()
    assert "predictor: model" in startup
    assert secret not in startup
    assert "***" in startup


def test_database_outage_is_503_with_retry_after(throwaway_pg, tmp_path: Path) -> None:
    from tests.functional.conftest import create_database

    url = create_database(throwaway_pg.url)
    with running_server(url) as base, httpx.Client(base_url=base, timeout=30) as client:
        features = example(client)
        assert client.post("/predict", json={"features": features}).status_code == 200
        throwaway_pg.stop("fast")
        r = client.post("/predict", json={"features": features})
        assert r.status_code == 503
        assert int(r.headers["retry-after"]) >= 1
        assert "probability" not in r.text
        assert client.get("/health/ready").status_code == 503
        assert client.get("/health/live").status_code == 200
        throwaway_pg.start()
        deadline = time.monotonic() + 20
        while client.post("/predict", json={"features": features}).status_code != 200:
            assert time.monotonic() < deadline, "no recovery after the database came back"
            time.sleep(0.5)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--model", "/nonexistent/bundle"], "BundleError"),
        (["--model", "no_such_model"], "ModelNotFound"),
    ],
)
def test_startup_fails_fast_with_one_line(pg_url: str, args: list[str], reason: str) -> None:
    done = subprocess.run(
        [*SERVE, "--port", "1", "--database-url", pg_url, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert reason in lines[0]


def test_startup_fails_fast_on_unreachable_or_unmigrated_database(pg_server_url: str) -> None:
    from tests.functional.conftest import temporary_database

    unreachable = "postgresql://postgres@127.0.0.1:1/nothing"
    done = subprocess.run([*SERVE, "--database-url", unreachable], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1
    with temporary_database(pg_server_url, migrate=False) as url:
        done = subprocess.run([*SERVE, "--database-url", url], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "predictor db upgrade" in done.stderr


def test_every_worker_serves_exactly_the_settings_serve_resolved(pg_url: str, tmp_path: Path) -> None:
    config = tmp_path / "predictor.toml"
    config.write_text("max_batch = 2\n")  # from the file, not an option: it must reach the workers too
    with (
        running_server(pg_url, "--workers", "2", "--model", "penguins", "--config", str(config)) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        for _ in range(6):  # keep-alive off: connections spread over both workers
            health = client.get("/health", headers={"connection": "close"}).json()
            assert health["model"]["name"] == "penguins"
            r = client.post(
                "/predict/batch", json={"records": [PENGUIN] * 3}, headers={"connection": "close"}
            )
            assert r.status_code == 413
            assert "at most 2" in r.json()["detail"]
