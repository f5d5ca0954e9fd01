"""The database fixtures themselves: each gives a migrated database of its own."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

EXPECTED = {"model_versions", "model_inputs", "model_outputs", "prediction_feedback", "reference_datasets"}


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_pg_urls_are_migrated_and_distinct(pg_url: str, fresh_pg_url: str) -> None:
    assert pg_url.startswith("postgresql+asyncpg://")
    assert pg_url != fresh_pg_url
    assert await _tables(pg_url) >= EXPECTED
    assert await _tables(fresh_pg_url) >= EXPECTED


async def test_sqlite_url_is_migrated(sqlite_url: str) -> None:
    assert await _tables(sqlite_url) >= EXPECTED
