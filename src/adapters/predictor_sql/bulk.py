"""The cheapest way each backend takes a group of prediction rows, all in one transaction.

Rows arrive as tuples in a fixed column order, with JSON columns already encoded (msgspec, once):
- PostgreSQL: one statement for all the tables, `INSERT ... SELECT * FROM unnest($1::uuid[], ...)`, the
  tables chained by data-modifying CTEs: one round trip that commits by itself (a statement is atomic),
  each column sent as one binary array on the raw asyncpg connection, the statement prepared once per
  connection. asyncpg's COPY took two round trips per table plus BEGIN and COMMIT; the one statement gave
  6 % more recorded requests a second over HTTP at 64 connections (3,780-3,838 -> 3,967-4,118 req/s, one
  worker on one core, 2026-12-06).
- SQLite: one positional executemany per table on the raw sqlite3 connection, BEGIN to COMMIT in one
  call on aiosqlite's thread, each value converted by its column type's own SQLAlchemy bind processor,
  so values are stored exactly as every other query reads them back; SQLAlchemy Core's per-row parameter
  handling cost about 13 µs of CPU per recorded prediction (64-67 -> 51-53 µs in process, 64 callers,
  2026-12-06).
A failure leaves nothing of the group behind: the transaction is rolled back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["ANSWER_COLUMNS", "INPUT_COLUMNS", "SHADOW_COLUMNS", "TableRows", "driver_of", "insert_rows"]

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


async def driver_of(conn: AsyncConnection) -> Any:
    """The driver's own connection (asyncpg's, or aiosqlite's) under a SQLAlchemy connection."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    return driver


async def insert_rows(driver: Any, dialect: Dialect, groups: Sequence[TableRows]) -> None:
    """Insert every group's rows on `driver` (`driver_of`) and commit them together, or raise and commit none.

    `driver` is the driver's own connection, so that a writer that keeps one looks it up once.
    """
    if dialect.name == "postgresql":
        arguments = [
            list(column) for _, columns, rows in groups for column in _columns_of(rows, len(columns))
        ]
        await driver.execute(_unnest_insert(tuple((t, c) for t, c, _ in groups)), *arguments)
        return
    statements = []
    for table, columns, rows in groups:
        sql, processors = _sqlite_insert(dialect, table, columns)
        statements.append((sql, [_bound(row, processors) for row in rows]))
    # aiosqlite runs each call on its connection's own thread, a round trip between threads each
    # (BEGIN, every executemany, COMMIT): one trip for the whole transaction cost 11 µs less CPU per row
    # in groups of 20 (47-49 -> 36-38 µs, 2026-12-07). `_execute` (queue a callable on that thread) and
    # `_conn` (the sqlite3 connection there) are aiosqlite's private names, in every version since 0.16;
    # every SQLite recording in the test suite goes through them.
    await driver._execute(_sqlite_transaction, driver, statements)


def _sqlite_transaction(driver: Any, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
    """On aiosqlite's thread: every statement's rows in one transaction, rolled back on any failure."""
    connection = driver._conn
    connection.execute("BEGIN")
    try:
        for sql, rows in statements:
            connection.executemany(sql, rows)
        connection.commit()
    except BaseException:
        connection.rollback()
        raise


Processors = tuple[tuple[int, Callable[[Any], Any]], ...]
"""(column position, SQLAlchemy's bind processor) for the columns whose values need converting."""


@functools.cache
def _sqlite_insert(dialect: Dialect, table: sa.Table, columns: tuple[str, ...]) -> tuple[str, Processors]:
    """A positional INSERT and the column types' own bind processors (UUID as hex, datetimes as text...).

    The values are stored exactly as SQLAlchemy Core would store them, without its per-row work (a dict
    of parameters per row, compiled parameter lists): a fifth of the recording cost per prediction here.
    JSON columns take the text already encoded, not encoded a second time.
    """
    processors = []
    for i, name in enumerate(columns):
        kind = table.c[name].type
        kind = sa.Text() if isinstance(kind, sa.JSON) else kind
        process = kind.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((i, process))
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})", tuple(processors)


def _bound(row: tuple[Any, ...], processors: Processors) -> tuple[Any, ...]:
    values = list(row)
    for i, process in processors:
        if values[i] is not None:
            values[i] = process(values[i])
    return tuple(values)


def _columns_of(rows: Sequence[tuple[Any, ...]], width: int) -> list[tuple[Any, ...]]:
    return list(zip(*rows, strict=True)) if rows else [()] * width


@functools.cache
def _unnest_insert(tables: tuple[tuple[sa.Table, tuple[str, ...]], ...]) -> str:
    """`WITH t0 AS (INSERT ...) INSERT ...`: every table's rows from one array parameter per column.

    Arrays of bounded text are cast to `text[]`, not `varchar(n)[]`: an explicit cast would cut an
    over-long value silently, where inserting it into the column refuses it.
    """
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    inserts, number = [], 0
    for table, columns in tables:
        casts = []
        for name in columns:
            kind = table.c[name].type
            sql_type = "text" if isinstance(kind, sa.String) else kind.compile(dialect=dialect)
            number += 1
            casts.append(f"${number}::{sql_type}[]")
        inserts.append(
            f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({', '.join(casts)})"
        )
    ctes = ", ".join(f"t{i} AS ({sql})" for i, sql in enumerate(inserts[:-1]))
    return f"WITH {ctes} {inserts[-1]}" if ctes else inserts[-1]
