"""The cheapest way each backend takes a group of prediction rows, all in one transaction.

Rows arrive as tuples in a fixed column order, with JSON columns already encoded (msgspec, once):
- PostgreSQL: asyncpg's binary COPY (`copy_records_to_table`) per table, inside one asyncpg transaction,
  on the raw connection of a pooled SQLAlchemy connection. No SQL is compiled, bound or parsed per row;
  measured against SQLAlchemy's pipelined executemany in `benchmarks/bench_store.py`.
- SQLite: one executemany per table through SQLAlchemy Core (the statement is compiled once and cached),
  so the column types store values exactly as every other query reads them back.
A failure leaves nothing of the group behind: the transaction is rolled back.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["ANSWER_COLUMNS", "INPUT_COLUMNS", "SHADOW_COLUMNS", "TableRows", "insert_rows"]

INPUT_COLUMNS = ("prediction_id", "model_version_id", "features", "request_id", "key_id", "created_at")
ANSWER_COLUMNS = (
    "prediction_id",
    "task",
    "label",
    "label_is_int",
    "probability",
    "probabilities",
    "value",
    "latency_ms",
)
SHADOW_COLUMNS = (*ANSWER_COLUMNS, "model_version_id", "created_at")

TableRows = tuple[sa.Table, tuple[str, ...], Sequence[tuple[Any, ...]]]
"""A table, the columns named in each row's order, and the rows."""


async def insert_rows(conn: AsyncConnection, groups: Sequence[TableRows]) -> None:
    """Insert every group's rows and commit them together, or raise and commit none."""
    if conn.dialect.name == "postgresql":
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        async with driver.transaction():
            for table, columns, rows in groups:
                await driver.copy_records_to_table(table.name, records=rows, columns=columns)
        return
    async with conn.begin():
        for table, columns, rows in groups:
            named = [dict(zip(columns, row, strict=True)) for row in rows]
            await conn.execute(_text_json_insert(table, columns), named)


@functools.cache
def _text_json_insert(table: sa.Table, columns: tuple[str, ...]) -> sa.Insert:
    """An INSERT that takes JSON columns as the text already encoded (not encoded a second time)."""
    binds = {
        name: sa.bindparam(
            name, type_=sa.Text() if isinstance(table.c[name].type, sa.JSON) else table.c[name].type
        )
        for name in columns
    }
    return table.insert().values(binds)
