"""The cheapest way each backend takes a group of prediction rows, all in one transaction.

Rows arrive as tuples in a fixed column order; a JSON column's value is the Python value (a dict, or
None for SQL NULL), encoded here the way each backend takes it:
- PostgreSQL: one statement for all the tables, the tables chained by data-modifying CTEs, one round trip
  that commits by itself (a statement is atomic). Each table's rows travel as one parameter, a JSON
  array of arrays encoded by msgspec in one call, read by `jsonb_array_elements` and cast column by
  column: `INSERT ... SELECT (r->>0)::uuid, ... FROM jsonb_array_elements($1::jsonb) AS r`. A JSON
  column's value is nested in the document, never encoded to text on its own. Sending each column as a
  binary array instead (`unnest`, 14 parameters) cost asyncpg 6-8 µs more of this process's CPU per
  recorded prediction in groups of 17 (20.3-22.8 -> 12.8-16.4 µs; PostgreSQL's own CPU per row the
  same within a clock tick, 2026-12-07); asyncpg's COPY took two round trips per table plus BEGIN and
  COMMIT.
- SQLite: one positional executemany per table on the raw sqlite3 connection, BEGIN to COMMIT in one
  call on aiosqlite's thread, each value converted by its column type's own SQLAlchemy bind processor
  (JSON by the engine's serializer), so values are stored exactly as every other query reads them back;
  SQLAlchemy Core's per-row parameter handling cost about 13 µs of CPU per recorded prediction (64-67 ->
  51-53 µs in process, 64 callers, 2026-12-06).
A failure leaves nothing of the group behind: the transaction is rolled back.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
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
        sql, floats = _json_insert(tuple((t, c) for t, c, _ in groups))
        documents = [
            _document(rows, positions) for (_, _, rows), positions in zip(groups, floats, strict=True)
        ]
        await driver.execute(sql, *documents)
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
    """
    processors = []
    for i, name in enumerate(columns):
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
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


_ENCODER = msgspec.json.Encoder()


def _document(rows: Sequence[tuple[Any, ...]], floats: tuple[int, ...]) -> str:
    """The rows as one JSON array of arrays, for `_json_insert`'s `jsonb_array_elements`.

    A float that a JSON number in jsonb cannot carry (NaN and the infinities, which msgspec writes as
    null, and -0.0, which jsonb's numeric makes 0) is written as the text PostgreSQL reads as that float,
    as the binary protocol kept it.
    """
    if floats and not all(_plain(row[i]) for row in rows for i in floats):
        rows = [tuple(_as_text(v) if i in floats else v for i, v in enumerate(row)) for row in rows]
    return _ENCODER.encode(rows).decode()


def _plain(value: float | None) -> bool:
    return value is None or (math.isfinite(value) and (value != 0.0 or math.copysign(1.0, value) > 0))


def _as_text(value: float | None) -> float | str | None:
    return value if _plain(value) else repr(value).replace("inf", "Infinity").replace("nan", "NaN")


@functools.cache
def _json_insert(
    tables: tuple[tuple[sa.Table, tuple[str, ...]], ...],
) -> tuple[str, tuple[tuple[int, ...], ...]]:
    """`WITH t0 AS (INSERT ...) INSERT ...`: every table's rows read from one JSON parameter each.

    Also gives, per table, the positions of its float columns (for `_document`).
    Text is not cast to `varchar(n)`: an explicit cast would cut an over-long value silently, where
    inserting it into the column refuses it. A JSON column takes its element as it is; JSON null is SQL
    NULL, as the tables' JSON type writes Python None.
    """
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    inserts, floats = [], []
    for number, (table, columns) in enumerate(tables, start=1):
        values, positions = [], []
        for i, name in enumerate(columns):
            kind = table.c[name].type
            if isinstance(kind, sa.JSON):
                values.append(f"nullif(r->{i}, 'null')")
            elif isinstance(kind, sa.String):
                values.append(f"r->>{i}")
            else:
                values.append(f"(r->>{i})::{kind.compile(dialect=dialect)}")
                if isinstance(kind, sa.Float):
                    positions.append(i)
        floats.append(tuple(positions))
        inserts.append(
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"SELECT {', '.join(values)} FROM jsonb_array_elements(${number}::jsonb) AS r"
        )
    ctes = ", ".join(f"t{i} AS ({sql})" for i, sql in enumerate(inserts[:-1]))
    return (f"WITH {ctes} {inserts[-1]}" if ctes else inserts[-1]), tuple(floats)
