"""Model lifecycle with real servers, a real PostgreSQL and real bundles: hot swap, replicas, refusals,
shadow scoring, pins, SIGHUP and removed bundles."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from click.testing import CliRunner

from predictor.cli import main
from predictor_core import ModelManifest
from predictor_onnx import reference_root
from tests.functional.server import server_process

pytestmark = pytest.mark.postgres

MODEL = "bc"
SOURCE = reference_root() / "breast_cancer" / "1.0.0"
RECORD = ModelManifest.from_json((SOURCE / "manifest.json").read_bytes()).schema.example()
SWAP_WITHIN_S = 2.0


def make_version(root: Path, version: str, **changes: object) -> Path:
    """A copy of the breast-cancer bundle as version `version` of model `bc`, under `root`."""
    target = root / version
    shutil.copytree(SOURCE, target)
    manifest = ModelManifest.from_json((target / "manifest.json").read_bytes())
    changed = msgspec.structs.replace(manifest, name=MODEL, version=version, **changes)
    (target / "manifest.json").write_bytes(changed.to_json())
    return target


@pytest.fixture
def deployment(tmp_path: Path, fresh_pg_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A model store holding bc 1.0.0 and 2.0.0 (added through the CLI), on a fresh database."""
    env = {
        "DATABASE_URL": fresh_pg_url,
        "PREDICTOR_MODEL_STORE": str(tmp_path / "store"),
        "PREDICTOR_WATCH_INTERVAL": "0.25",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for version in ("1.0.0", "2.0.0"):
        cli("models", "add", str(make_version(tmp_path / "exports", version)))
    return env


def cli(*args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(main, list(args))
    assert (result.exit_code == 0) is ok, result.output
    return result.output


@pytest.fixture
def server(deployment: dict[str, str]) -> Iterator[str]:
    with server_process(deployment["DATABASE_URL"], env=deployment) as (base, _):
        yield base


def answered(base: str, **headers: str) -> str:
    r = httpx.post(f"{base}/models/{MODEL}/predict", json={"features": RECORD}, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return str(r.json()["model_version"])


def wait_for(condition, within: float = SWAP_WITHIN_S) -> float:
    """Seconds until `condition()` held; fails after `within` seconds."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, f"not within {within} s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_promotion_and_rollback_are_served_and_reported_alike(server: str) -> None:
    assert answered(server) == "2.0.0"  # no alias yet: the newest
    print(cli("models", "promote", MODEL, "1.0.0"))
    wait_for(lambda: answered(server) == "1.0.0")
    described = httpx.get(f"{server}/models/{MODEL}").json()
    assert (described["version"], described["serving"], described["aliases"]) == (
        "1.0.0",
        True,
        ["production"],
    )
    aliases = httpx.get(f"{server}/models/{MODEL}/aliases").json()
    assert (aliases["serving"], aliases["because"]) == ("1.0.0", "alias production")
    assert aliases["history"][0]["changed_by"].startswith("os:")
    cli("models", "promote", MODEL, "2.0.0")
    wait_for(lambda: answered(server) == "2.0.0")
    assert "bc production: 2.0.0 -> 1.0.0" in cli("models", "rollback", MODEL)
    wait_for(lambda: answered(server) == "1.0.0")
    listed = cli("models", "list")
    assert "production" in listed
    history = cli("models", "history", MODEL)
    assert history.count("bc production") == 3


def test_a_swap_under_load_fails_no_request_and_lands_everywhere_within_2_s(
    deployment: dict[str, str],
) -> None:
    """c=16 for 30 s against POST /models/bc/predict while production flips 10 times."""
    cli("models", "promote", MODEL, "1.0.0")
    answers: list[tuple[float, float, int, str]] = []
    flips: list[tuple[float, float, str]] = []  # promote started, returned (alias committed), target
    with server_process(deployment["DATABASE_URL"], "--workers", "2", env=deployment) as (base, _):
        wait_for(lambda: answered(base) == "1.0.0", within=10)
        stop = threading.Event()

        def flip() -> None:
            for i in range(10):
                time.sleep(2.7)
                target = "2.0.0" if i % 2 == 0 else "1.0.0"
                started = time.monotonic()
                cli("models", "promote", MODEL, target)
                flips.append((started, time.monotonic(), target))
            time.sleep(2.5)
            stop.set()

        async def load() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:

                async def user() -> None:
                    while not stop.is_set():
                        sent = time.monotonic()
                        r = await client.post(f"/models/{MODEL}/predict", json={"features": RECORD})
                        version = r.json().get("model_version", "") if r.status_code == 200 else ""
                        answers.append((sent, time.monotonic(), r.status_code, version))

                await asyncio.gather(*(user() for _ in range(16)))

        flipper = threading.Thread(target=flip)
        flipper.start()
        asyncio.run(load())
        flipper.join()
    assert len(flips) == 10
    assert answers, "no request was answered"
    assert {status for _, _, status, _ in answers} == {200}
    assert {version for *_, version in answers} == {"1.0.0", "2.0.0"}
    lags = []
    # Sent at least 2 s after a promotion committed and answered before the next promotion started: only
    # its target may answer. (A request sent just before the next flip and answered after it may
    # rightly come from the next target, so the answer's time bounds the window, not the sending's.)
    for (_, at, target), until in zip(flips, [f[0] for f in flips[1:]] + [float("inf")], strict=True):
        stale = [sent for sent, done, _, v in answers if at <= sent and done < until and v != target]
        lags.append(max(stale, default=at) - at)
        late = [v for sent, done, _, v in answers if at + SWAP_WITHIN_S <= sent and done < until]
        assert late, "no request between two flips"
        assert set(late) == {target}, (target, sorted(set(late)), lags)
    print(f"last answer from the old version after each flip: {', '.join(f'{lag:.2f}' for lag in lags)} s")
    print(f"{len(answers)} answers, {len(answers) / 30:.0f} req/s over the 10 flips")


def test_two_replicas_and_two_workers_agree_within_2_s(deployment: dict[str, str]) -> None:
    url = deployment["DATABASE_URL"]
    with (
        server_process(url, "--workers", "2", env=deployment) as (one, _),
        server_process(url, env=deployment) as (other, _),
    ):

        def everywhere(version: str) -> bool:
            seen = {answered(base, connection="close") for base in (one, other, one, other, one, other)}
            return seen == {version}

        assert everywhere("2.0.0")
        cli("models", "promote", MODEL, "1.0.0")
        print(f"promotion served everywhere after {wait_for(lambda: everywhere('1.0.0')):.2f} s")
        cli("models", "rollback", MODEL)
        print(f"rollback served everywhere after {wait_for(lambda: everywhere('2.0.0')):.2f} s")


def test_a_corrupt_bundle_and_a_golden_mismatch_are_refused_and_the_live_version_serves_on(
    server: str, tmp_path: Path
) -> None:
    cli("models", "promote", MODEL, "1.0.0")
    wait_for(lambda: answered(server) == "1.0.0")
    corrupt = make_version(tmp_path / "bad", "3.0.0")
    (corrupt / "model.onnx").write_bytes((corrupt / "model.onnx").read_bytes()[:-20])
    assert "is corrupt or altered" in cli("models", "add", str(corrupt), ok=False)
    manifest = ModelManifest.from_json((SOURCE / "manifest.json").read_bytes())
    assert manifest.golden is not None
    assert manifest.golden.probabilities is not None
    wrong = msgspec.structs.replace(
        manifest.golden, probabilities=tuple((1.0 - p[0], 1.0 - p[1]) for p in manifest.golden.probabilities)
    )
    cli("models", "add", str(make_version(tmp_path / "bad", "4.0.0", golden=wrong)))
    refused = cli("models", "promote", MODEL, "4.0.0", ok=False)
    assert "PromotionRefused" in refused
    assert "differ from the golden set" in refused or "golden labels differ" in refused
    time.sleep(0.5)
    assert answered(server) == "1.0.0"
    assert "4.0.0" not in cli("models", "history", MODEL)


def test_shadow_answers_are_recorded_beside_live_ones_and_never_returned(
    server: str, fresh_pg_url: str
) -> None:
    cli("models", "promote", MODEL, "1.0.0")
    cli("models", "promote", MODEL, "2.0.0", "--alias", "shadow")
    wait_for(lambda: httpx.get(f"{server}/models/{MODEL}/aliases").json()["aliases"].get("shadow") == "2.0.0")
    bodies = [
        httpx.post(f"{server}/models/{MODEL}/predict", json={"features": RECORD}).json() for _ in range(12)
    ]
    assert {b["model_version"] for b in bodies} == {"1.0.0"}
    looked_up = httpx.get(f"{server}/predictions/{bodies[0]['prediction_id']}").json()
    assert looked_up["prediction"]["model_version"] == "1.0.0"

    def compared() -> list[dict]:
        return json.loads(cli("db", "compare", MODEL, "--database-url", fresh_pg_url, "--format", "json"))

    wait_for(lambda: bool(compared()) and compared()[0]["pairs"] == 12, within=5)
    [row] = compared()
    assert (row["live_version"], row["shadow_version"]) == ("1.0.0", "2.0.0")
    assert row["label_agreement"] == 1.0
    assert row["max_abs_diff"] == 0.0  # the same graph under two versions
    label = bodies[0]["label"]
    assert httpx.post(f"{server}/predictions/{bodies[0]['prediction_id']}/feedback", json={"actual": label})
    [row] = compared()
    assert (row["with_feedback"], row["live_accuracy"], row["shadow_accuracy"]) == (1, 1.0, 1.0)
    explicit = httpx.post(f"{server}/models/{MODEL}/versions/1.0.0/predict", json={"features": RECORD}).json()
    time.sleep(1)
    assert compared()[0]["pairs"] == 12  # a version named explicitly is not shadowed
    assert explicit["model_version"] == "1.0.0"

    # the Open Inference Protocol route alike: a bare name is shadowed, a named version is not
    inputs = [{"name": k, "datatype": "FP64", "shape": [1], "data": [v]} for k, v in RECORD.items()]
    v2 = httpx.post(f"{server}/v2/models/{MODEL}/infer", json={"inputs": inputs})
    assert v2.status_code == 200, v2.text
    assert v2.json()["model_version"] == "1.0.0"
    wait_for(lambda: compared()[0]["pairs"] == 13, within=5)
    v2 = httpx.post(f"{server}/v2/models/{MODEL}/versions/1.0.0/infer", json={"inputs": inputs})
    assert v2.status_code == 200, v2.text
    time.sleep(1)
    assert compared()[0]["pairs"] == 13


def test_feedback_joins_the_version_that_made_the_prediction(server: str) -> None:
    cli("models", "promote", MODEL, "1.0.0")
    wait_for(lambda: answered(server) == "1.0.0")
    before = httpx.post(f"{server}/models/{MODEL}/predict", json={"features": RECORD}).json()
    cli("models", "promote", MODEL, "2.0.0")
    wait_for(lambda: answered(server) == "2.0.0")
    r = httpx.post(
        f"{server}/predictions/{before['prediction_id']}/feedback", json={"actual": before["label"]}
    )
    assert r.status_code == 201
    recorded = httpx.get(f"{server}/predictions/{before['prediction_id']}").json()
    assert recorded["prediction"]["model_version"] == "1.0.0"


def test_pins_hangups_and_removed_bundles(deployment: dict[str, str], tmp_path: Path) -> None:
    url, store = deployment["DATABASE_URL"], Path(deployment["PREDICTOR_MODEL_STORE"])
    cli("models", "promote", MODEL, "2.0.0")
    with server_process(url, "--model", f"{MODEL}@1.0.0", env=deployment) as (base, _):
        assert httpx.post(f"{base}/predict", json={"features": RECORD}).json()["model_version"] == "1.0.0"
        assert httpx.get(f"{base}/models/{MODEL}/aliases").json()["because"] == "pinned"
    with server_process(url, "--model", str(store / MODEL / "1.0.0"), env=deployment) as (base, _):
        assert httpx.post(f"{base}/predict", json={"features": RECORD}).json()["model_version"] == "1.0.0"
    with server_process(url, env=deployment) as (base, process):
        assert answered(base) == "2.0.0"
        cli("models", "unalias", MODEL, "production")
        cli("models", "add", str(make_version(tmp_path / "later", "3.0.0")))
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: answered(base) == "3.0.0")
        assert process.poll() is None  # a hangup re-reads, it does not end the server
        shutil.rmtree(store / MODEL / "3.0.0")
        wait_for(lambda: answered(base) == "2.0.0", within=8)  # the bundles are re-read every 5 s
        versions = httpx.get(f"{base}/models/{MODEL}").json()["versions"]
        assert versions == ["1.0.0", "2.0.0"]
        gone = httpx.post(f"{base}/models/{MODEL}/versions/3.0.0/predict", json={"features": RECORD})
        assert gone.status_code == 404
