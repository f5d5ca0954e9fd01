"""HTTP benchmark of `POST /predict`: requests/s and p50/p99 latency at concurrency 1, 16 and 64.

Compares, in one run (same noise): our server with recording on (PostgreSQL) and off, with inference
inline on the event loop and in a worker thread, beside the seed-style FastAPI + pydantic + joblib service
(the peer in /work/shared/bench/servers/app_fastapi.py). Servers are pinned to CPU 1 and wrk to CPU 0.
Prints ratios against the seed; never a pass/fail.

Needs: wrk; PostgreSQL at $BENCH_PG (default postgresql://postgres@127.0.0.1:5432/postgres); for the
seed, a venv with fastapi, pydantic, uvicorn and scikit-learn at $SEED_VENV (default /tmp/venv) and the
peer harness at $PEER_BENCH (default /work/shared/bench). With $BENCH_BEFORE set to another checkout of
this project (e.g. a `git worktree` of the previous commit), its server is measured in the same run under
the names `before_*`, for a before/after ratio. Usage: python benchmarks/bench_http.py [seconds]
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg

PYTHON = sys.executable
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SEED_VENV = Path(os.environ.get("SEED_VENV", "/tmp/venv"))
BEFORE = os.environ.get("BENCH_BEFORE")
PEER_BENCH = Path(os.environ.get("PEER_BENCH", "/work/shared/bench"))
SERVER_CPU, WRK_CPU = "1", "0"
CONCURRENCY = (1, 16, 64)

LUA = r"""
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"; wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(t) table.insert(threads, t) end
function init(args) bad = 0 end
function response(status, headers, body) if status ~= 200 then bad = bad + 1 end end
function done(s, lat, req)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  io.write(string.format('RESULT {"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"non200":%d,"errors":%d}\n',
    s.requests / (s.duration / 1e6), lat:percentile(50) / 1000, lat:percentile(99) / 1000, b,
    s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout))
end
"""

# ours: uvicorn with the same options as `predictor serve`, the settings passed in directly
OURS = """
import functools, sys, uvicorn
from predictor.app import create_app
from predictor.settings import Settings
settings = Settings.load(database_url=sys.argv[2] or None, record=sys.argv[3] == "on",
                         offload=sys.argv[4] == "thread")
app = functools.partial(create_app, settings)
uvicorn.run(app, factory=True, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            access_log=False, log_level="warning", lifespan="on", server_header=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(command: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, *command], env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(base + "/", timeout=1)
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server {command} did not start")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


def wrk(url: str, body: Path, connections: int, seconds: int, lua: Path) -> dict[str, float]:
    command = ["taskset", "-c", WRK_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    done = subprocess.run(
        [*command, "-s", str(lua), url],
        env={**os.environ, "BODY_FILE": str(body)},
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def checkout_env(checkout: str | None) -> dict[str, str] | None:
    """The environment that imports the project from another checkout (None: this one)."""
    if checkout is None:
        return None
    src = Path(checkout, "src")
    return {"PYTHONPATH": f"{src}{os.pathsep}{src / 'adapters'}"}


@contextlib.contextmanager
def bench_database(checkout: str | None) -> Iterator[str]:
    """A fresh PostgreSQL database migrated by `checkout`'s own migrations, dropped afterwards."""
    name = f"predictor_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    upgrade = "import sys; from predictor_sql import upgrade; upgrade(sys.argv[1])"
    env = {**os.environ, **(checkout_env(checkout) or {})}
    subprocess.run([PYTHON, "-c", upgrade, url], env=env, check=True, capture_output=True)
    try:
        yield url
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed_model(work: Path) -> None:
    """Train and save the seed's joblib model with the peer harness (same data and seeds as the peers)."""
    env = {**os.environ, "BENCH_WORK": str(work)}
    subprocess.run(
        [str(SEED_VENV / "bin/python"), str(PEER_BENCH / "train_export.py")],
        env=env,
        check=True,
        capture_output=True,
    )


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    work = Path(tempfile.mkdtemp(prefix="bench_http_"))
    lua = work / "post.lua"
    lua.write_text(LUA)
    results: dict[str, dict[int, dict[str, float]]] = {}

    def measure(name: str, base: str, body: dict) -> None:
        body_file = work / f"{name}.json"
        body_file.write_bytes(json.dumps(body).encode())
        check = httpx.post(
            base + "/predict", content=body_file.read_bytes(), headers={"content-type": "application/json"}
        )
        assert check.status_code == 200, check.text
        wrk(base + "/predict", body_file, 16, 1, lua)  # warm-up
        results[name] = {c: wrk(base + "/predict", body_file, c, seconds, lua) for c in CONCURRENCY}
        print(name, results[name], flush=True)

    checkouts = [("ours", None)] + ([("before", BEFORE)] if BEFORE else [])
    record = None
    for label, checkout in checkouts:
        with bench_database(checkout) as database:
            configs = [
                ("record_inline", database, "on", "inline"),
                ("record_thread", database, "on", "thread"),
                ("norecord_inline", "", "off", "inline"),
                ("norecord_thread", "", "off", "thread"),
            ]
            for name, url, recording, offload in configs:
                port = free_port()
                command = [PYTHON, "-c", OURS, str(port), url, recording, offload]
                with server(command, port, checkout_env(checkout)) as base:
                    if record is None:
                        spec = httpx.get(base + "/docs/openapi.json").json()
                        body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
                        record = next(iter(body["examples"].values()))["value"]["features"]
                    measure(f"{label}_{name}", base, {"features": record})
    if (SEED_VENV / "bin/python").exists():
        seed_model(work)
        port = free_port()
        command = [
            str(SEED_VENV / "bin/python"),
            "-m",
            "uvicorn",
            "app_fastapi:app",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        env = {
            "BENCH_WORK": str(work),
            "BENCH_RUNTIME": "sklearn",
            "BENCH_HANDLER": "sync",
            "PYTHONPATH": str(PEER_BENCH / "servers"),
        }
        with server(command, port, env) as base:
            measure("seed_fastapi_sklearn", base, record)

    seed = results.get("seed_fastapi_sklearn")
    print(f"\n{'config':24} " + " ".join(f"{'c=' + str(c):>34}" for c in CONCURRENCY))
    for name, runs in results.items():
        cells = []
        for c in CONCURRENCY:
            r = runs[c]
            ratio = f"{r['rps'] / seed[c]['rps']:.1f}x" if seed else "-"
            cells.append(f"{r['rps']:>8.0f} rps {ratio:>6} {r['p50_ms']:>6.2f}/{r['p99_ms']:>6.2f} ms")
        print(f"{name:24} " + " ".join(f"{cell:>34}" for cell in cells))
    bad = {n: sum(r[c]["non200"] + r[c]["errors"] for c in CONCURRENCY) for n, r in results.items()}
    print("\nnon-200 or socket errors per config:", bad)
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print("raw results:", work / "results.json")


if __name__ == "__main__":
    main()
