"""Seconds to summarise a drift window of 1,000,000 recorded predictions on PostgreSQL.

Usage: python benchmarks/bench_drift.py [--server postgresql://postgres@127.0.0.1:5432/postgres]
           [--rows 1000000] [--outside 1000000] [--repeat 3] [--keep] [--sqlite-rows 0] [--bundle DIR]

It creates a throwaway database on the server (dropped at the end unless --keep), migrates it, registers
the shipped breast_cancer bundle (30 number features: the widest reference model; `--bundle` names
another binary or regression bundle, e.g. the shipped diabetes one) and writes `--rows`
recorded predictions inside a one-day window plus `--outside` rows of the same version the day before (so
the index has to bound the window), with COPY. The features are the data set's rows with 1 % noise, the
outputs what the model answered for the original rows. Then it times `SqlAuditReader.window` (the
statements `predictor monitor drift` runs) `--repeat` times and prints their plans, then the drift
gauges' rolling window: its first count (every cell of the day) and a refresh five minutes later. With
--sqlite-rows N it also times the Python path on a SQLite file holding N rows of the window.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parents[1]))

from predictor_core import (
    ClassifierOutputs,
    ModelManifest,
    ModelMonitor,
    RegressorOutputs,
    Task,
    validate_columns,
)
from predictor_core.monitoring import ROLLING_CELLS
from predictor_onnx import BundleDirectory, reference_root
from predictor_onnx.infer_schema import column_values
from predictor_onnx.reference.datasets import load_dataset
from predictor_sql import SqlPredictionStore, sqlite_url_for, upgrade
from predictor_sql.monitoring import SqlAuditReader

START = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def population(bundle: Path, rows: int, seed: int) -> tuple[ModelManifest, list[str], dict[str, list[Any]]]:
    """`rows` feature records (JSON text) and the model's outputs for them, as `model_outputs` columns."""
    runtime = BundleDirectory([bundle.parents[1]]).load(bundle.parent.name, bundle.name)
    manifest = runtime.manifest
    data = load_dataset(manifest.name).frame[list(manifest.schema.names)]
    batch = validate_columns(manifest.schema, {c: column_values(data[c]) for c in data.columns})
    outputs = runtime.infer(batch)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(data), rows)
    values = data.to_numpy(dtype=np.float64)[picks] * rng.normal(1.0, 0.01, (rows, data.shape[1]))
    names = list(manifest.schema.names)
    encoder = msgspec.json.Encoder()
    features = [encoder.encode(dict(zip(names, row, strict=True))).decode() for row in values.tolist()]
    if isinstance(outputs, RegressorOutputs):
        columns: dict[str, list[Any]] = {
            "task": ["regression"] * rows,
            "value": outputs.values.astype(np.float64)[picks].tolist(),
        }
    else:
        assert isinstance(outputs, ClassifierOutputs)
        assert manifest.task is Task.BINARY, "the benchmark writes binary or regression models"
        positive = list(manifest.classes or ()).index(manifest.positive_class)
        labels = [str(v) for v in outputs.labels.tolist()]
        columns = {
            "task": ["binary"] * rows,
            "label": [labels[i] for i in picks.tolist()],
            "label_is_int": [isinstance(manifest.classes[0], int)] * rows,  # type: ignore[index]
            "probability": outputs.probabilities[picks, positive].astype(np.float64).tolist(),
        }
    columns["latency_ms"] = [0.5] * rows
    return manifest, features, columns


def uuid7s(times: np.ndarray) -> list[uuid.UUID]:
    """UUIDv7s carrying the given epoch milliseconds, in that order."""
    out = []
    random = np.frombuffer(np.random.default_rng(1).bytes(10 * len(times)), dtype=np.uint8).reshape(-1, 10)
    for millis, tail in zip(times.tolist(), random, strict=True):
        raw = bytearray(int(millis).to_bytes(6, "big") + tail.tobytes())
        raw[6] = (raw[6] & 0x0F) | 0x70
        raw[8] = (raw[8] & 0x3F) | 0x80
        out.append(uuid.UUID(bytes=bytes(raw)))
    return out


async def fill(url: str, manifest: ModelManifest, start: dt.datetime, rows: int, seed: int) -> None:
    """Register the version and COPY `rows` predictions spread over the day from `start`."""
    import asyncpg

    store = SqlPredictionStore(url)
    await store.register_model(manifest)
    await store.close()
    _, features, outputs = population(BUNDLE, rows, seed)
    rng = np.random.default_rng(seed + 1)
    offsets = np.sort(rng.uniform(0, DAY.total_seconds(), rows))
    created = [start + dt.timedelta(seconds=float(s)) for s in offsets]
    millis = np.array([int(c.timestamp() * 1000) for c in created])
    ids = uuid7s(millis)
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(plain)
    try:
        version_id = await conn.fetchval(
            "SELECT id FROM model_versions WHERE name = $1 AND version = $2", manifest.name, manifest.version
        )
        await conn.copy_records_to_table(
            "model_inputs",
            records=zip(ids, [version_id] * rows, features, created, strict=True),
            columns=["prediction_id", "model_version_id", "features", "created_at"],
        )
        await conn.copy_records_to_table(
            "model_outputs",
            records=zip(ids, *outputs.values(), strict=True),
            columns=["prediction_id", *outputs],
        )
    finally:
        await conn.close()


async def time_window(url: str, manifest: ModelManifest, repeat: int) -> list[float]:
    reader = SqlAuditReader.connect(url)  # as the wiring builds it: its own pool, 300 s statements
    assert manifest.training is not None
    assert manifest.training.profile is not None
    profile = manifest.training.profile
    seconds = []
    try:
        for _ in range(repeat):
            began = time.perf_counter()
            window = await reader.window(
                manifest.name, manifest.version, profile, since=START, until=START + DAY
            )
            seconds.append(time.perf_counter() - began)
            print(f"  window of {window.rows:,} rows summarised in {seconds[-1]:.2f} s")
    finally:
        await reader.close()
    return seconds


async def time_sqlite(manifest: ModelManifest, rows: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        url = sqlite_url_for(Path(tmp) / "bench.db")
        upgrade(url)
        store = SqlPredictionStore(url)
        await store.register_model(manifest)
        _, features, outputs = population(BUNDLE, rows, 7)
        ids = uuid7s(np.arange(rows) + int(START.timestamp() * 1000))
        async with store.engine.begin() as conn:
            from predictor_sql.tables import model_inputs, model_outputs

            created = [START + dt.timedelta(milliseconds=i) for i in range(rows)]
            await conn.execute(
                model_inputs.insert(),
                [
                    {
                        "prediction_id": i,
                        "model_version_id": 1,
                        "features": msgspec.json.decode(f),
                        "created_at": c,
                    }
                    for i, f, c in zip(ids, features, created, strict=True)
                ],
            )
            names = list(outputs)
            await conn.execute(
                model_outputs.insert(),
                [
                    {"prediction_id": i, **dict(zip(names, row, strict=True))}
                    for i, row in zip(ids, zip(*outputs.values(), strict=True), strict=True)
                ],
            )
        reader = SqlAuditReader(store.engine)
        assert manifest.training is not None
        assert manifest.training.profile is not None
        began = time.perf_counter()
        window = await reader.window(
            manifest.name, manifest.version, manifest.training.profile, since=START, until=START + DAY
        )
        elapsed = time.perf_counter() - began
        await store.close()
        print(f"  SQLite: window of {window.rows:,} rows summarised in Python in {elapsed:.2f} s")
        return elapsed


async def time_rolling(url: str, manifest: ModelManifest) -> tuple[float, float]:
    """Seconds of the drift gauges' first count of the day (every cell), and of a refresh 5 minutes on."""
    store = SqlPredictionStore(url)
    reader = SqlAuditReader.connect(url)
    try:
        rolling = ModelMonitor(store, reader).rolling(DAY)
        took = []
        for now in (START + DAY, START + DAY + dt.timedelta(minutes=5)):
            began = time.perf_counter()
            report = await rolling.drift(manifest.name, manifest.version, now=now)
            took.append(time.perf_counter() - began)
            print(f"  rolling window to {now:%H:%M}: {report.rows:,} rows in {took[-1]:.2f} s")
    finally:
        await reader.close()
        await store.close()
    return took[0], took[1]


def explain(url: str, manifest: ModelManifest) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the window's two statements, compiled as the reader sends them."""
    from sqlalchemy.dialects import postgresql

    from predictor_sql.monitoring import window_queries
    from predictor_sql.tables import model_inputs

    assert manifest.training is not None
    assert manifest.training.profile is not None
    with psycopg.connect(plain_url(url)) as conn:
        version_id = conn.execute("SELECT id FROM model_versions").fetchone()[0]  # type: ignore[index]
        where = [
            model_inputs.c.model_version_id == version_id,
            model_inputs.c.created_at >= START,
            model_inputs.c.created_at < START + DAY,
        ]
        plans = []
        for query in window_queries(manifest.training.profile, where):
            sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
            conn.execute("SET jit = off")
            rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql).fetchall()  # type: ignore[call-overload]
            plans.append("\n".join(r[0] for r in rows if "Hash Key:" not in r[0]))
    return "\n\n".join(plans)


def read_window(url: str) -> float:
    """Seconds to read every row of the window once in the database (the rows' features, not decoded)."""
    query = (
        "SELECT count(*) FROM model_inputs WHERE created_at >= %s AND created_at < %s "
        "AND features IS NOT NULL"
    )
    with psycopg.connect(plain_url(url)) as conn:
        conn.execute("SET max_parallel_workers_per_gather = 0")
        began = time.perf_counter()
        conn.execute(query, (START, START + DAY)).fetchone()
        return time.perf_counter() - began


def plain_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


BUNDLE = reference_root() / "breast_cancer" / "1.0.0"


def main() -> None:
    global BUNDLE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--outside", type=int, default=1_000_000, help="rows the day before the window")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    parser.add_argument("--sqlite-rows", type=int, default=0)
    parser.add_argument("--bundle", type=Path, default=BUNDLE, help="a bundle exported with a profile")
    args = parser.parse_args()
    BUNDLE = args.bundle
    manifest = ModelManifest.from_json((BUNDLE / "manifest.json").read_bytes())
    name = f"predictor_bench_drift_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(args.server, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:  # `nox -s bench` on a machine without PostgreSQL
        print(f"bench_drift skipped: no PostgreSQL at {args.server} ({str(exc).strip()[:120]})")
        return
    url = make_url(args.server).set(drivername="postgresql+asyncpg", database=name)
    url_text = url.render_as_string(hide_password=False)
    try:
        upgrade(url_text)
        began = time.perf_counter()
        asyncio.run(fill(url_text, manifest, START, args.rows, seed=0))
        if args.outside:
            asyncio.run(fill(url_text, manifest, START - DAY, args.outside, seed=100))
        with psycopg.connect(plain_url(url_text), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE model_inputs")
            conn.execute("VACUUM ANALYZE model_outputs")
            size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('model_inputs'))").fetchone()[0]  # type: ignore[index]
        print(
            f"{args.rows:,} rows in the window + {args.outside:,} the day before written in "
            f"{time.perf_counter() - began:.0f} s (model_inputs: {size})"
        )
        baseline = read_window(url_text)
        seconds = asyncio.run(time_window(url_text, manifest, args.repeat))
        print(
            f"PostgreSQL window, {args.rows:,} rows, {len(manifest.schema.features)} features + outputs: "
            f"best {min(seconds):.2f} s, median {statistics.median(seconds):.2f} s; baseline (reading the "
            f"window's rows once, in the same run): {baseline:.2f} s, ratio {min(seconds) / baseline:.1f}"
        )
        first, refresh = asyncio.run(time_rolling(url_text, manifest))
        print(
            f"drift gauges (a rolling window of {ROLLING_CELLS} cells): first count {first:.2f} s "
            f"({first / min(seconds):.2f}x the whole window), a refresh 5 minutes on {refresh:.3f} s "
            f"({refresh / min(seconds):.4f}x the whole window, which every refresh read before)"
        )
        print(explain(url_text, manifest))
        if args.sqlite_rows:
            asyncio.run(time_sqlite(manifest, args.sqlite_rows))
    finally:
        if args.keep:
            print(f"kept: {url_text}")
        else:
            with psycopg.connect(args.server, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
