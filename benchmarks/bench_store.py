"""Recorded predictions per second, 1 and 16 concurrent callers, against the same predictions unrecorded.

Usage: python benchmarks/bench_store.py [--url postgresql+asyncpg://...] [--seconds 5]
Without --url it measures a SQLite file in a temporary directory. Each figure is printed as a ratio of the
unrecorded baseline measured in the same run (the model is the test suite's fake, so the ratio shows the
cost of the audit trail itself). The PostgreSQL URL must point at a migrated database, or use --migrate.

Then this process's CPU time per row of one group commit's writes, in groups of 8 and 32 rows of 30
features: on the connection the writer keeps (`HeldConnection`) against a connection checked out of the
pool for each group, as before, in alternating rounds, with the median ratio over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from tests.fakes import fake_service, toy_manifest

from predictor_core import BinaryPrediction, PredictionRecord, PredictionService, Task, new_prediction_id
from predictor_sql import SqlPredictionStore, sqlite_url_for, upgrade
from predictor_sql.bulk import TableRows, driver_of, insert_rows
from predictor_sql.held import HeldConnection

MANIFEST = toy_manifest(Task.BINARY, name="bench")
ROW = {"x": 1.0, "y": 2.0, "n": 1, "flag": True, "colour": "red"}


async def rate(service: PredictionService, callers: int, seconds: float) -> float:
    """Predictions per second completed by `callers` concurrent loops, one record per call."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await service.predict([ROW])
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return done / (time.perf_counter() - started)


async def main(url: str, seconds: float) -> None:
    baseline, _ = fake_service([MANIFEST])
    store = SqlPredictionStore(url, pool_size=16, pool_timeout=30.0)
    await store.start()
    recorded, _ = fake_service([MANIFEST], store)
    await recorded.predict([ROW])  # register the model, warm the pool
    print(f"backend: {store.backend}  health: {await store.health()}")
    print(f"{'callers':>8} {'unrecorded/s':>14} {'recorded/s':>12} {'ratio':>7}")
    for callers in (1, 16, 64):
        base = await rate(baseline, callers, seconds)
        rec = await rate(recorded, callers, seconds)
        print(f"{callers:>8} {base:>14.0f} {rec:>12.0f} {rec / base:>7.3f}")
    await writer_cpu(store)
    await store.close()


async def writer_cpu(store: SqlPredictionStore, rounds: int = 12, groups: int = 50) -> None:
    """CPU per row of `_record`'s writes on the kept connection and on one checked out per group."""
    features = {f"feature_{i}": 0.1 * i + 1e-7 for i in range(30)}

    def group(size: int) -> list[PredictionRecord]:
        now = dt.datetime.now(dt.UTC)
        return [
            PredictionRecord(
                prediction=BinaryPrediction(
                    model=MANIFEST.identity, label="yes", probability=0.73, prediction_id=new_prediction_id()
                ),
                features=features,
                created_at=now,
                latency_ms=0.12,
                request_id="bench",
            )
            for _ in range(size)
        ]

    class PerGroupCheckout(HeldConnection):
        async def write(self, tables: Sequence[TableRows]) -> None:
            async with store._writer.connect() as conn:
                await insert_rows(await driver_of(conn), conn.dialect, tables)

    held, checkout = store._records_writer, PerGroupCheckout(store._writer)
    print("writer: this process's CPU per row (median over rounds), kept connection vs checkout per group")
    for size in (8, 32):
        times: dict[str, list[float]] = {"kept": [], "checkout": []}
        for round_ in range(rounds):
            ways = [("kept", held), ("checkout", checkout)]
            for name, writer in ways if round_ % 2 else ways[::-1]:
                store._records_writer = writer
                batches = [group(size) for _ in range(groups)]
                started = time.process_time()
                for batch in batches:
                    await store._record(batch)
                times[name].append((time.process_time() - started) / (groups * size))
        store._records_writer = held
        ratio = statistics.median(k / c for k, c in zip(times["kept"], times["checkout"], strict=True))
        kept, per_group = (statistics.median(times[n]) * 1e6 for n in ("kept", "checkout"))
        print(
            f"  groups of {size:>2}: kept {kept:5.1f} µs, checkout per group {per_group:5.1f} µs,"
            f" ratio {ratio:.2f}x"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="async SQLAlchemy URL; default: a temporary SQLite file")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--migrate", action="store_true", help="run the migrations on --url first")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        target = args.url or sqlite_url_for(Path(tmp) / "bench.db")
        if args.migrate or not args.url:
            upgrade(target)
        asyncio.run(main(target, args.seconds))
