"""HTTP benchmark of `POST /predict` (issue #9): our server beside a bare-Litestar ceiling and the seed.

    python benchmarks/bench_http.py [SECONDS] [--warmup 1] [--max-in-flight N] [--before CHECKOUT]
                                    [--inference inline|thread|batch] [--seed-pipeline forest|reference]
                                    [--batch N] [--rounds 5]
    nox -s bench -- benchmarks/bench_http.py      (installs fastapi, joblib... and wrk when missing)

In one run, at 1 and 64 connections (wrk, one thread, a 1-record body, loopback; every server pinned to
one core and wrk to another): the ceiling (`benchmarks/peers/ceiling.py`: bare Litestar, reads the body,
answers a constant), the seed-style service (`benchmarks/peers/seed.py`: FastAPI + pydantic + a joblib
scikit-learn pipeline) and `predictor serve` with recording off, to PostgreSQL and to SQLite (the
default). For each: 2xx answers/s, the ratios to the ceiling and to the seed, p50/p99, non-2xx answers and
socket errors, and the server's CPU time per request (utime + stime of its process tree from /proc over
the wrk run, divided by the requests completed; the database server's own CPU is not in it) with the
share of its core that was (well under 100 % at c=64: something else ran on that core); for the
PostgreSQL row, the CPU time of this machine's `postgres` processes per request too (PG ms/req; unpinned,
they take it from both cores). Then
issue #9's targets beside what was measured, and the ceiling's own p99 beside the absolute p99 bound
(on a slow day a constant endpoint queues near it at c=64). A benchmark prints; it never passes or fails.

The table measures one server after another, minutes apart, and this machine's speed drifts by more than
the targets' margins within minutes: one commit's recorded / off read 0.79x and 0.69x in two runs ten
minutes apart, its recording-off row costing 0.239 and 0.218 ms of CPU a request. So the run ends with
the recorded / off targets measured again with the three modes' servers up at once, in `--rounds`
rotating rounds (`rounds`, as `ab_http.py` compares two checkouts): the median round's ratio, the range,
and recorded CPU per request over off's.

PostgreSQL: `$BENCH_PG` or `$PREDICTOR_TEST_DATABASE_URL` (an admin URL), else
postgresql://postgres@127.0.0.1:5432/postgres when it answers, else a throwaway cluster started here with
initdb/pg_ctl (as the postgres user when run as root). Each run works in a database it creates, migrates
(`predictor db upgrade`) and drops. SQLite: the default database of a fresh data directory
(`XDG_DATA_HOME` in the run's temporary directory), migrated the same way.

Our server runs with its defaults (`--max-in-flight N` sets `PREDICTOR_MAX_IN_FLIGHT`; the default bound, 64,
sheds nothing at 64 connections). The server's request log stays on (to /dev/null).
The seed serves a 100-tree random forest fitted on the same data (the seeds' own model, the one issue #9's
"50x the seed" was set against); `--seed-pipeline reference` gives it our breast_cancer reference pipeline
(logistic regression) instead, to compare serving stacks on one model.

`--before CHECKOUT` (or `$BENCH_BEFORE`): also measures another checkout of this project (e.g.
`git worktree add /tmp/before HEAD~1`), with its own migrations, as `before:` rows of the same run.

`--batch N`: our server gets `POST /predict/batch` with N records of the default model's reference
dataset instead (the ceiling gets the same body; the seed, which takes one record, does not run), so
req/s × N is records/s. The issue's targets are for one record and are not printed then.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

PYTHON = sys.executable
PEERS = Path(__file__).resolve().parent / "peers"
CLI = "from predictor.cli import main; main()"
CONCURRENCY = (1, 64)
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
TICKS = os.sysconf("SC_CLK_TCK")

CEILING, SEED = "ceiling", "seed"
OFF, POSTGRES, SQLITE = "off", "postgresql", "sqlite"
TITLES = {
    CEILING: "bare Litestar constant endpoint (ceiling)",
    SEED: "seed-style FastAPI + pydantic + joblib",
    OFF: "predictor, recording off",
    POSTGRES: "predictor, recording to PostgreSQL",
    SQLITE: "predictor, recording to SQLite (default)",
}

LUA = r"""
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"; wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(t) table.insert(threads, t) end
function init(args) bad = 0; statuses = "" end
function response(status, headers, body)
  if status < 200 or status > 299 then
    bad = bad + 1
    if not string.find(statuses, tostring(status), 1, true) then statuses = statuses .. " " .. status end
  end
end
function done(s, lat, req)
  local b, st = 0, ""
  for _, t in ipairs(threads) do b = b + t:get("bad"); st = st .. t:get("statuses") end
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.3f,"p50_ms":%.3f,"p99_ms":%.3f,"non2xx":%d,"statuses":"%s",'
    .. '"socket_errors":%d}\n',
    s.requests, s.duration / 1e6, lat:percentile(50) / 1000, lat:percentile(99) / 1000,
    b, st, s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout))
end
"""


@dataclass
class Run:
    """One configuration's results: a figure dict per concurrency, or why it did not run."""

    title: str
    points: dict[int, dict[str, Any]] = field(default_factory=dict)
    failed: str | None = None


@dataclass(frozen=True)
class Machine:
    """Where the servers and wrk run: one core each when there are two (else unpinned), wrk's path."""

    server_cpu: int | None
    wrk_cpu: int | None
    wrk: str

    @classmethod
    def detect(cls) -> Machine:
        wrk = shutil.which("wrk")
        if wrk is None:
            sys.exit("bench_http: wrk is not installed (apt-get install wrk; `nox -s bench` does it as root)")
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(None, None, wrk)
        return cls(cpus[1], cpus[0], wrk)

    def pin(self, cpu: int | None) -> Callable[[], None] | None:
        """A preexec_fn that pins the child to `cpu` before it starts, so all its threads inherit it."""
        return None if cpu is None else lambda: os.sched_setaffinity(0, {cpu})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _proc_stats() -> Iterator[tuple[int, str, list[str]]]:
    """(pid, command name, the fields after it) of every live process, from /proc."""
    for stat in glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            head, rest = Path(stat).read_text().rsplit(")", 1)
            yield int(stat.split("/")[2]), head.split("(", 1)[1], rest.split()


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (utime + stime, with reaped children's) of `pid` and every live descendant."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for child, _, fields in _proc_stats():
        parents[child] = int(fields[1])
        times[child] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(times.get(p, 0) for p in tree) / TICKS


def postgres_cpu_seconds() -> float:
    """CPU seconds of this machine's PostgreSQL processes (0 when the database runs elsewhere)."""
    return sum(sum(int(x) for x in f[11:13]) for _, name, f in _proc_stats() if name == "postgres") / TICKS


@contextlib.contextmanager
def server(
    machine: Machine, command: list[str], env: dict[str, str], ready: str, log: Path
) -> Iterator[tuple[str, int]]:
    """Start a server pinned to the server core; yields its base URL and pid once `ready` answers."""
    port = free_port()
    with log.open("w") as errors:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,  # our request log: written, as in production, but not kept
            stderr=errors,
            preexec_fn=machine.pin(machine.server_cpu),  # pinned before exec: its threads inherit it
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(base + ready, timeout=1).status_code < 500:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text()[-2000:]
                    raise RuntimeError(f"did not start (exit {process.poll()}): {tail.strip()}")
                time.sleep(0.2)
            yield base, process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wrk(machine: Machine, url: str, body: Path, lua: Path, connections: int, seconds: int) -> dict[str, Any]:
    command = [
        machine.wrk,
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(lua),
        url,
    ]
    done = subprocess.run(
        command,
        env={**os.environ, "BODY_FILE": str(body)},
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=machine.pin(machine.wrk_cpu),
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    point = dict(json.loads(line.removeprefix("RESULT ")))
    # req/s counts the 2xx answers: a shed request (503) is answered fast and would flatter the figure
    point["rps"] = (point["requests"] - point["non2xx"]) / point["seconds"]
    point["all_rps"] = point["requests"] / point["seconds"]
    return point


def measure(
    machine: Machine, url: str, pid: int, body: Path, lua: Path, seconds: int, warmup: int
) -> dict[int, dict[str, Any]]:
    """Check one answer, warm up, then one wrk run per concurrency with the server's CPU time around it."""
    check = httpx.post(url, content=body.read_bytes(), headers={"content-type": "application/json"})
    if check.status_code != 200:
        raise RuntimeError(f"POST {url} answered {check.status_code}: {check.text[:300]}")
    if warmup > 0:
        wrk(machine, url, body, lua, 16, warmup)
    return {c: timed_wrk(machine, url, pid, body, lua, c, seconds) for c in CONCURRENCY}


def timed_wrk(
    machine: Machine, url: str, pid: int, body: Path, lua: Path, connections: int, seconds: int
) -> dict[str, Any]:
    """One wrk run, with the CPU time that the server `pid` (and this machine's PostgreSQL) spent on it."""
    cpu, database = tree_cpu_seconds(pid), postgres_cpu_seconds()
    point = wrk(machine, url, body, lua, connections, seconds)
    cpu, database = tree_cpu_seconds(pid) - cpu, postgres_cpu_seconds() - database
    point["cpu_ms_per_request"] = 1000 * cpu / point["requests"] if point["requests"] else None
    point["db_cpu_ms_per_request"] = 1000 * database / point["requests"] if point["requests"] else None
    point["cpu_percent"] = 100 * cpu / point["seconds"]  # well under 100 at c=64: the core was shared
    return point


def rounds(
    machine: Machine,
    servers: dict[str, tuple[str, int]],
    body: Path,
    lua: Path,
    count: int,
    seconds: int,
    connections: int = 64,
    log: Callable[[str], None] | None = None,
) -> dict[str, list[tuple[float, float]]]:
    """`count` rounds of one wrk run per server, in an order that rotates: (req/s, CPU ms/request) each.

    The servers run at once, all pinned to the server core, so that a ratio between two of them is taken
    between runs seconds apart, not minutes: this machine's speed drifts more than that within a run.
    """
    figures: dict[str, list[tuple[float, float]]] = {key: [] for key in servers}
    keys = list(servers)
    for number in range(count):
        shift = number % len(keys)
        for key in keys[shift:] + keys[:shift]:
            base, pid = servers[key]
            point = timed_wrk(machine, base + "/predict", pid, body, lua, connections, seconds)
            cpu_ms = point["cpu_ms_per_request"] or 0.0  # no request answered: no ratio (`round_ratios`)
            figures[key].append((point["rps"], cpu_ms))
            if log is not None:
                log(
                    f"  round {number} {key}: {point['rps']:,.0f} req/s, {cpu_ms:.3f} ms CPU/req, "
                    f"p99 {point['p99_ms']:.1f} ms, {point['non2xx']} non-2xx{point['statuses']}, "
                    f"{point['socket_errors']} socket errors"
                )
    return figures


def round_ratios(
    figures: dict[str, list[tuple[float, float]]], key: str, base: str, column: int = 0
) -> list[float]:
    """`key`'s figure over `base`'s, round by round: req/s (column 0) or CPU per request (1)."""
    pairs = zip(figures[key], figures[base], strict=True)
    return [mine[column] / theirs[column] for mine, theirs in pairs if theirs[column]]


def side_by_side(
    stack: contextlib.ExitStack,
    machine: Machine,
    work: Path,
    admin: str | None,
    sides: dict[str, tuple[str | None, str, dict[str, str]]],
    body: Path,
    lua: Path,
    warmup: int,
) -> dict[str, tuple[str, int]]:
    """Our servers up at once, warmed up, kept until `stack` closes: key -> (base URL, pid).

    `sides`: key -> (checkout, None for this one; recording mode; extra environment), each with its
    own data directory, and its own database for PostgreSQL.
    """
    servers = {}
    for key, (checkout, mode, extra) in sides.items():
        env = checkout_env(checkout, work / f"data-{key}", 0) | extra
        command, env = stack.enter_context(predictor_serve(mode, env, admin))
        servers[key] = stack.enter_context(server(machine, command, env, "/health/live", work / f"{key}.log"))
    for base, _ in servers.values():
        wrk(machine, base + "/predict", body, lua, 16, warmup)
    return servers


@dataclass
class Cluster:
    """A throwaway PostgreSQL cluster in a temporary directory, on a free port of 127.0.0.1."""

    directory: Path
    bin: Path
    port: int = field(default_factory=free_port)

    def pg(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> str:
        if os.geteuid() == 0:
            shutil.chown(self.directory, user="postgres", group="postgres")
        data = str(self.directory / "data")
        self.pg("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        self.pg("pg_ctl", "-D", data, "-l", str(self.directory / "log"), "-o", options, "-w", "start")
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.pg("pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)


def answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def pg_bin() -> Path | None:
    """The PostgreSQL server binaries: $PREDICTOR_TEST_PG_BIN, the newest /usr/lib/postgresql/*/bin, PATH."""
    given = os.environ.get("PREDICTOR_TEST_PG_BIN")
    found = [Path(given)] if given else []
    found += sorted((Path(p) for p in glob("/usr/lib/postgresql/*/bin")), key=lambda p: int(p.parent.name))[
        ::-1
    ]
    on_path = shutil.which("initdb")
    found += [Path(on_path).parent] if on_path else []
    return next((p for p in found if (p / "initdb").exists() and (p / "pg_ctl").exists()), None)


@contextlib.contextmanager
def postgres() -> Iterator[tuple[str | None, str]]:
    """An admin URL of a server to create databases on (None when there is none), and where it came from."""
    for variable in ("BENCH_PG", "PREDICTOR_TEST_DATABASE_URL"):
        url = os.environ.get(variable)
        if url:
            yield (url, f"${variable}") if answers(url) else (None, f"${variable} does not answer")
            return
    if answers(DEFAULT_PG):
        yield DEFAULT_PG, "the local server on 127.0.0.1:5432"
        return
    binaries = pg_bin()
    if binaries is None:
        yield None, "none answers on 127.0.0.1:5432 and no initdb/pg_ctl found (apt-get install postgresql)"
        return
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="bench-pg-")), binaries)
    try:
        url = cluster.start()
    except (subprocess.SubprocessError, OSError, LookupError) as exc:
        cluster.stop()
        yield None, f"a throwaway cluster would not start: {getattr(exc, 'stderr', '') or exc}"
        return
    try:
        yield url, f"a throwaway cluster ({binaries.parent.name}) on port {cluster.port}"
    finally:
        cluster.stop()


def checkout_env(checkout: str | None, data_home: Path, max_in_flight: int) -> dict[str, str]:
    """A clean environment for `predictor` from `checkout` (None: this one) with its own data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREDICTOR_") and k != "DATABASE_URL"}
    env["XDG_DATA_HOME"] = str(data_home)  # the default SQLite database and model store live here
    if max_in_flight:
        env["PREDICTOR_MAX_IN_FLIGHT"] = str(max_in_flight)
    if checkout is not None:
        src = Path(checkout, "src")
        env["PYTHONPATH"] = os.pathsep.join([str(src), str(src / "adapters"), env.get("PYTHONPATH", "")])
    return env


@contextlib.contextmanager
def bench_database(admin: str, env: dict[str, str]) -> Iterator[str]:
    """A fresh PostgreSQL database migrated by the checkout of `env`, dropped afterwards."""
    name = f"predictor_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(admin).set(database=name).render_as_string(hide_password=False)
        subprocess.run([PYTHON, "-c", CLI, "db", "upgrade", "--database-url", url], env=env, check=True)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def predictor_serve(
    mode: str, env: dict[str, str], admin: str | None
) -> Iterator[tuple[list[str], dict[str, str]]]:
    """The `predictor serve` command and environment for a recording mode, its database made ready.

    OFF: recording off. POSTGRES: a fresh database on `admin`, migrated, dropped afterwards. SQLITE: the
    default database of `env`'s data directory, migrated.
    """
    serve = [PYTHON, "-c", CLI, "serve"]
    if mode == OFF:
        yield serve, env | {"PREDICTOR_RECORD": "false"}
    elif mode == POSTGRES:
        if admin is None:
            raise RuntimeError("no PostgreSQL to record to")
        with bench_database(admin, env) as url:
            yield [*serve, "--database-url", url], env
    else:
        subprocess.run([PYTHON, "-c", CLI, "db", "upgrade"], env=env, check=True)
        yield serve, env


def example_body(machine: Machine, work: Path) -> dict[str, Any]:
    """The first example of POST /predict in our server's OpenAPI (the default model's)."""
    env = checkout_env(None, work / "data-example", 0) | {"PREDICTOR_RECORD": "false"}
    with server(machine, [PYTHON, "-c", CLI, "serve"], env, "/health/live", work / "example.log") as (
        base,
        _,
    ):
        spec = httpx.get(base + "/docs/openapi.json", timeout=10).json()
    content = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    return dict(next(iter(content["examples"].values()))["value"])


def batch_records(count: int) -> list[dict[str, Any]]:
    """`count` records of the default model's reference dataset (breast_cancer), as a client sends them."""
    from predictor_onnx.infer_schema import column_values
    from predictor_onnx.reference.datasets import load_dataset

    frame = load_dataset("breast_cancer").frame.sample(count, replace=True, random_state=0)
    columns = [column_values(frame[name]) for name in frame.columns]
    return [dict(zip(frame.columns, values, strict=True)) for values in zip(*columns, strict=True)]


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def ratio(runs: dict[str, Run], key: str, base: str, connections: int) -> float | None:
    mine, theirs = runs.get(key), runs.get(base)
    if mine is None or theirs is None or connections not in mine.points or connections not in theirs.points:
        return None
    denominator = theirs.points[connections]["rps"]
    return mine.points[connections]["rps"] / denominator if denominator else None


def report(runs: dict[str, Run], machine: Machine, seconds: int, batch: int) -> None:
    pinned = (
        f"server on CPU {machine.server_cpu}, wrk on CPU {machine.wrk_cpu}"
        if machine.server_cpu is not None
        else "one CPU: nothing pinned"
    )
    width = max(len(run.title) for run in runs.values())
    head = (
        f"{'config':{width}} {'req/s':>9} {'x ceiling':>9} {'x seed':>8} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'non-2xx':>7} {'sock err':>8} {'CPU ms/req':>10} {'CPU %':>6} {'PG ms/req':>9}"
    )
    for connections in CONCURRENCY:
        what = f"POST /predict/batch of {batch} records" if batch else "POST /predict"
        print(f"\n{what}, c={connections} (wrk -t1, {seconds} s, loopback, {pinned}; req/s: 2xx answers)")
        print(head)
        for key, run in runs.items():
            if run.failed is not None:
                print(f"{run.title:{width}} did not run: {run.failed}")
                continue
            point = run.points[connections]
            non2xx = f"{point['non2xx']}{' (' + point['statuses'].strip() + ')' if point['non2xx'] else ''}"
            print(
                f"{run.title:{width}} {point['rps']:>9,.0f} {fmt(ratio(runs, key, CEILING, connections)):>9}"
                f" {fmt(ratio(runs, key, SEED, connections), 1):>8} {point['p50_ms']:>8.2f}"
                f" {point['p99_ms']:>8.2f} {non2xx:>7} {point['socket_errors']:>8}"
                f" {fmt(point['cpu_ms_per_request'], 3):>10} {point['cpu_percent']:>6.0f}"
                f" {fmt(point.get('db_cpu_ms_per_request') if key.endswith(POSTGRES) else None, 3):>9}"
            )


def targets(runs: dict[str, Run], prefix: str = "") -> None:
    """Issue #9's targets at c=64 beside what this run measured (`prefix`: the `before:` rows)."""
    c = 64
    off, pg, lite = prefix + OFF, prefix + POSTGRES, prefix + SQLITE

    def p99(key: str) -> float | None:
        run = runs.get(key)
        return run.points[c]["p99_ms"] if run is not None and c in run.points else None

    ours = [runs[k] for k in (off, pg, lite) if k in runs and runs[k].points]
    errors = sum(r.points[c]["non2xx"] + r.points[c]["socket_errors"] for r in ours) if ours else None
    # (what, at least or at most, bound, unit, measured)
    rows: list[tuple[str, str, float, str, float | None]] = [
        ("recorded to PostgreSQL / recording off", ">=", 0.8, "x", ratio(runs, pg, off, c)),
        ("recorded to SQLite / recording off", ">=", 0.7, "x", ratio(runs, lite, off, c)),
        ("recording off / ceiling", ">=", 0.5, "x", ratio(runs, off, CEILING, c)),
        ("recording off / seed-style", ">=", 50, "x", ratio(runs, off, SEED, c)),
        ("p99, recording to PostgreSQL", "<=", 30, " ms", p99(pg)),
        ("p99, recording to SQLite", "<=", 30, " ms", p99(lite)),
        ("errors, the three predictor modes", "<=", 0, "", errors),
    ]
    print(f"\nissue #9 targets, c=64{' (' + prefix.rstrip(':') + ')' if prefix else ''}")
    for name, op, bound, unit, value in rows:
        target = f"{op} {bound:g}{unit}" if bound else "0"
        if value is None:
            print(f"  {name:42} {target:>9}  {'-':>11}  n/a")
            continue
        met = value >= bound if op == ">=" else value <= bound
        shown = f"{value:,.2f}{unit}" if unit else f"{value:,.0f}"
        print(f"  {name:42} {target:>9}  {shown:>11}  {'met' if met else 'MISSED'}")
    ceiling, recorded = p99(CEILING), [(k, p99(k)) for k in (pg, lite)]
    if ceiling:  # the bound is absolute; a slow day's machine queues even a constant endpoint near it
        shown = ", ".join(f"{k.removeprefix(prefix)} {v / ceiling:.2f}x" for k, v in recorded if v)
        print(f"  the ceiling's own p99 at c=64: {ceiling:.2f} ms; recorded p99 / ceiling p99: {shown}")
    reach = ratio(runs, CEILING, SEED, c)
    if reach:  # "50x the seed" needs recording off at 50 / reach of a constant endpoint
        print(
            f"  the ceiling / seed-style at c=64: {reach:.1f}x, so 50x the seed needs recording off"
            f" at {50 / reach:.2f}x the ceiling"
        )


def interleave(
    machine: Machine, work: Path, admin: str | None, args: argparse.Namespace, body: Path, lua: Path
) -> dict[str, list[tuple[float, float]]]:
    """Our server in its three modes up at once, measured in rotating rounds (`rounds`), at c=64."""
    modes = [OFF, SQLITE] if admin is None else [OFF, POSTGRES, SQLITE]
    print(f"interleaved: {', '.join(modes)}, {args.rounds} rounds of {args.seconds} s", flush=True)
    extra = {"PREDICTOR_MAX_IN_FLIGHT": str(args.max_in_flight)} if args.max_in_flight else {}
    if args.inference:
        extra["PREDICTOR_INFERENCE"] = args.inference
    sides: dict[str, tuple[str | None, str, dict[str, str]]] = {mode: (None, mode, extra) for mode in modes}
    place = work / "rounds"  # its own data directories and logs, apart from the table's
    place.mkdir()
    try:
        with contextlib.ExitStack() as stack:
            servers = side_by_side(stack, machine, place, admin, sides, body, lua, max(args.warmup, 1))
            return rounds(machine, servers, body, lua, args.rounds, args.seconds)
    except (RuntimeError, subprocess.CalledProcessError, httpx.HTTPError) as exc:
        print(f"  interleaved: did not run: {' '.join(str(exc).split())[:300]}")
        return {}


def interleaved_targets(figures: dict[str, list[tuple[float, float]]], count: int, seconds: int) -> None:
    """Issue #9's recorded / off targets from the interleaved rounds: the median round, and the range."""
    print(
        f"\nissue #9's recorded / off, interleaved (the three modes up at once, {count} rotating rounds of"
        f" {seconds} s at c=64; median of the rounds' ratios, then their range)"
    )
    for mode, name, bound in ((POSTGRES, "PostgreSQL", 0.8), (SQLITE, "SQLite", 0.7)):
        if mode not in figures:
            continue
        ratios = round_ratios(figures, mode, OFF)
        cpu = round_ratios(figures, mode, OFF, column=1)
        middle = statistics.median(ratios)
        verdict = "met" if middle >= bound else "MISSED"
        print(
            f"  {'recorded to ' + name + ' / recording off':42} {'>= ' + format(bound, 'g') + 'x':>9}"
            f"  {middle:>10.2f}x  {verdict}  (rounds {min(ratios):.2f}-{max(ratios):.2f}x;"
            f" CPU per request {statistics.median(cpu):.2f}x off's)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seconds", nargs="?", type=int, default=5, help="whole seconds per point (5)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per server (1)")
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=0,
        help="PREDICTOR_MAX_IN_FLIGHT for our server; 0: its default",
    )
    parser.add_argument("--before", default=os.environ.get("BENCH_BEFORE"), help="another checkout too")
    parser.add_argument(
        "--inference", choices=("inline", "batch", "thread", "thread-batch"), help="PREDICTOR_INFERENCE"
    )
    parser.add_argument(
        "--batch", type=int, default=0, help="N records a request to /predict/batch (0: one to /predict)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of the interleaved recorded / off measurement (0: none)",
    )
    parser.add_argument(
        "--seed-pipeline",
        choices=("forest", "reference"),
        default="forest",
        help="the seed's model: our reference pipeline, or the peer harness's random forest",
    )
    args = parser.parse_args()
    machine = Machine.detect()
    work = Path(tempfile.mkdtemp(prefix="bench_http_"))
    lua = work / "post.lua"
    lua.write_text(LUA)
    runs: dict[str, Run] = {}
    bound = f"PREDICTOR_MAX_IN_FLIGHT={args.max_in_flight}" if args.max_in_flight else "its default bound"
    print(f"bench_http: {args.seconds} s a point after {args.warmup} s of warm-up; logs and results: {work}")
    print(f"bench_http: our server with {bound}")
    inference = args.inference or "the server's default"
    print(f"bench_http: our inference: {inference}; the seed's pipeline: {args.seed_pipeline}", flush=True)

    features = example_body(machine, work)["features"]
    ours_body, seed_body = work / "ours.json", work / "seed.json"
    ours_body.write_text(
        json.dumps({"records": batch_records(args.batch)} if args.batch else {"features": features})
    )
    seed_body.write_text(json.dumps(features))  # the seed takes the flat record
    ours_path = "/predict/batch" if args.batch else "/predict"

    def bench(
        key: str, title: str, command: list[str], env: dict[str, str], ready: str, body: Path, path: str
    ) -> None:
        run = runs[key] = Run(title)
        try:
            with server(machine, command, env, ready, work / f"{key.replace(':', '_')}.log") as (base, pid):
                run.points = measure(machine, base + path, pid, body, lua, args.seconds, args.warmup)
        except (RuntimeError, subprocess.CalledProcessError, httpx.HTTPError) as exc:
            run.failed = " ".join(str(exc).split())[:300]
        print(
            f"  {title}: {run.failed or {c: round(p['rps']) for c, p in run.points.items()}} req/s",
            flush=True,
        )

    uvicorn = [PYTHON, "-m", "uvicorn", "--app-dir", str(PEERS), "--host", "127.0.0.1", "--loop", "uvloop"]
    uvicorn += ["--http", "httptools", "--no-access-log", "--log-level", "warning", "--no-server-header"]
    bench(CEILING, TITLES[CEILING], [*uvicorn, "ceiling:app"], dict(os.environ), "/", ours_body, "/predict")
    if args.batch:
        runs[SEED] = Run(TITLES[SEED], failed="it takes one record a request")
    else:
        model = work / "seed.joblib"
        subprocess.run([PYTHON, str(PEERS / "seed.py"), "train", str(model), args.seed_pipeline], check=True)
        seed_env = {**os.environ, "SEED_MODEL": str(model)}
        seed = [*uvicorn, "--factory", "seed:create_app"]
        title = f"{TITLES[SEED]} ({args.seed_pipeline})"
        bench(SEED, title, seed, seed_env, "/docs", seed_body, "/predict")

    pg_origin = ""
    interleaved: dict[str, list[tuple[float, float]]] = {}
    with postgres() as (admin, origin):
        pg_origin = origin
        print(f"PostgreSQL: {origin}", flush=True)
        checkouts = [("", None)] + ([("before: ", args.before)] if args.before else [])
        for label, checkout in checkouts:
            prefix = label.replace(" ", "")
            home = work / f"data-{prefix.rstrip(':') or 'ours'}"
            env = checkout_env(checkout, home, args.max_in_flight)
            if args.inference:
                env["PREDICTOR_INFERENCE"] = args.inference
            for mode in (OFF, POSTGRES, SQLITE):
                if mode == POSTGRES and admin is None:
                    runs[prefix + mode] = Run(label + TITLES[mode], failed=f"no PostgreSQL: {origin}")
                    continue
                with predictor_serve(mode, env, admin) as (command, mode_env):
                    bench(
                        prefix + mode,
                        label + TITLES[mode],
                        command,
                        mode_env,
                        "/health/live",
                        ours_body,
                        ours_path,
                    )
        if args.rounds and not args.batch:
            interleaved = interleave(machine, work, admin, args, ours_body, lua)

    for home in [*work.glob("data-*"), *work.glob("rounds/data-*")]:  # the SQLite databases: not results
        shutil.rmtree(home, ignore_errors=True)
    report(runs, machine, args.seconds, args.batch)
    if args.batch:
        print(f"\n{args.batch} records a request: records/s = req/s x {args.batch}; #9's targets are for one")
    else:
        targets(runs)
        if interleaved:
            interleaved_targets(interleaved, args.rounds, args.seconds)
    if args.seed_pipeline == "reference" and not args.batch:
        print("  (the seed serves our logistic regression here, not the 100-tree forest of the seeds that")
        print("   issue #9's 50x was set against: that is the default, --seed-pipeline forest)")
    if args.before:
        if not args.batch:
            targets(runs, "before:")
        print("\nours / before, req/s:")
        for key in (OFF, POSTGRES, SQLITE):
            cells = [f"c={c} {fmt(ratio(runs, key, 'before:' + key, c))}x" for c in CONCURRENCY]
            print(f"  {TITLES[key]:46} {'  '.join(cells)}")
    print("\nin-process ratios: benchmarks/bench_predict.py (`nox -s bench` runs it too)")
    raw = {
        "seconds": args.seconds,
        "warmup": args.warmup,
        "max_in_flight": args.max_in_flight,
        "server_cpu": machine.server_cpu,
        "wrk_cpu": machine.wrk_cpu,
        "before": args.before,
        "postgresql": pg_origin,
        "inference": args.inference,
        "seed_pipeline": args.seed_pipeline,
        "batch": args.batch,
        "runs": {k: {"title": r.title, "failed": r.failed, "points": r.points} for k, r in runs.items()},
        "interleaved": interleaved,
    }
    (work / "results.json").write_text(json.dumps(raw, indent=2))
    print(f"raw results: {work / 'results.json'} (servers' logs beside it)")


if __name__ == "__main__":
    main()
