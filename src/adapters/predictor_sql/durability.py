"""Does the database keep committed rows through a crash? Read from the store's own connection.

Durability is a setting, not code: with `synchronous_commit=off` acknowledged rows were lost in a crash
(reliability.md §0.5, §2.5), and it can be set per role, per database or per session, so only the
application's own connection can tell. The store reports the answer in `health()`; a service that
cannot keep "returned means recorded" must not call itself ready.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["PREDICTION_TABLES", "durability_problems"]

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
