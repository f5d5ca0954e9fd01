"""Does the database keep committed rows through a crash? Read from the store's own connection.

Durability is a setting, not code: with `synchronous_commit=off` acknowledged rows were lost in a crash
(reliability.md §0.5, §2.5), and it can be set per role, per database or per session, so only the
application's own connection can tell. The store reports the answer in `health()`; a service that
cannot keep "returned means recorded" must not call itself ready.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["PREDICTION_TABLES", "durability_problems", "write_problem"]

_RECORDED_TABLES = ("model_inputs", "model_outputs")
"""The tables `record()` inserts into: a prediction cannot be returned while either is locked."""
_WAIT_GAVE_UP = {"55P03", "57014"}  # lock_not_available, query_canceled (statement_timeout)

PREDICTION_TABLES = ("model_inputs", "model_outputs", "prediction_feedback")

_PG_SETTINGS = {
    "synchronous_commit": {"on", "remote_write", "remote_apply", "local"},
    "fsync": {"on"},
    "full_page_writes": {"on"},
}


async def durability_problems(conn: AsyncConnection) -> list[str]:
    """Every setting that breaks the durability promise, in words; empty when committed rows survive."""
    if conn.dialect.name == "postgresql":
        return await _postgresql(conn)
    if conn.dialect.name == "sqlite":
        return await _sqlite(conn)
    return [f"durability of {conn.dialect.name} is not known"]


async def _postgresql(conn: AsyncConnection) -> list[str]:
    problems = []
    for name, good in _PG_SETTINGS.items():
        value = (await conn.execute(text(f"SHOW {name}"))).scalar_one()
        if value not in good:
            problems.append(f"{name}={value} can lose acknowledged predictions in a crash")
    rows = await conn.execute(
        text(
            "SELECT relname FROM pg_class WHERE relname = ANY(:names) AND relpersistence <> 'p'"
            " AND relnamespace = to_regnamespace(current_schema())"
        ),
        {"names": list(PREDICTION_TABLES)},
    )
    problems.extend(f"table {name} is not logged: a crash empties it" for name in rows.scalars())
    return problems


async def _sqlite(conn: AsyncConnection) -> list[str]:
    problems = []
    synchronous = (await conn.execute(text("PRAGMA synchronous"))).scalar_one()
    if synchronous < 2:
        problems.append(f"PRAGMA synchronous={synchronous} (needs FULL=2) can lose acknowledged predictions")
    if not (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one():
        problems.append("PRAGMA foreign_keys is off: outputs could point at missing inputs")
    return problems


async def write_problem(conn: AsyncConnection, *, timeout_s: float) -> str | None:
    """Why a prediction could not be recorded now, in words; None when it could.

    On PostgreSQL: the database is not read-only, and the locks `record()` takes (ROW EXCLUSIVE on the
    input and output tables, what an INSERT takes) are granted within `timeout_s`. It writes no row, so
    the audit trail never holds a probe, and it needs only the INSERT privilege the append-only
    application role has. On SQLite: the write lock (`BEGIN IMMEDIATE`, what a writer needs first) is
    granted within `timeout_s`, so another process's long write transaction, or a read-only file, shows.
    The caller must roll back `conn`'s transaction (closing it does) to let the locks go.

    Raises:
        sqlalchemy.exc.DBAPIError: the database failed otherwise (the caller reports it unreachable).
    """
    if conn.dialect.name == "sqlite":
        return await _sqlite_write_problem(conn, timeout_s)
    if conn.dialect.name != "postgresql":
        return None
    if (await conn.execute(text("SHOW transaction_read_only"))).scalar_one() == "on":
        return "the database is read-only (a standby, or default_transaction_read_only=on)"
    wait_ms = max(1, round(timeout_s * 1000))
    await conn.execute(text(f"SET LOCAL lock_timeout = {wait_ms}"))
    await conn.execute(text(f"SET LOCAL statement_timeout = {2 * wait_ms}"))
    try:
        await conn.execute(text(f"LOCK TABLE {', '.join(_RECORDED_TABLES)} IN ROW EXCLUSIVE MODE"))
    except sa_exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) not in _WAIT_GAVE_UP:
            raise
        return f"{' or '.join(_RECORDED_TABLES)} is locked: an INSERT would wait more than {timeout_s:g} s"
    return None


async def _sqlite_write_problem(conn: AsyncConnection, timeout_s: float) -> str | None:
    usual = (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one()
    await conn.execute(text(f"PRAGMA busy_timeout = {max(1, round(timeout_s * 1000))}"))
    try:
        await conn.exec_driver_sql("BEGIN IMMEDIATE")
    except sa_exc.OperationalError as exc:
        reason = str(exc.orig).lower()
        if "locked" in reason or "busy" in reason:
            return f"the database is locked by another writer: an INSERT would wait more than {timeout_s:g} s"
        if "readonly" in reason or "read-only" in reason:
            return "the database file is read-only"
        raise
    finally:
        await conn.execute(text(f"PRAGMA busy_timeout = {int(usual)}"))
    return None
