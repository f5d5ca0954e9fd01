"""Recorded predictions per second, 1 and 16 concurrent callers, against the same predictions unrecorded.

Usage: python benchmarks/bench_store.py [--url postgresql+asyncpg://...] [--seconds 5]
Without --url it measures a SQLite file in a temporary directory. Each figure is printed as a ratio of the
unrecorded baseline measured in the same run (the model is the test suite's fake, so the ratio shows the
cost of the audit trail itself). The PostgreSQL URL must point at a migrated database, or use --migrate.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from tests.fakes import fake_service, toy_manifest

from predictor_core import PredictionService, Task
from predictor_sql import SqlPredictionStore, sqlite_url_for, upgrade

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
    await store.close()


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
