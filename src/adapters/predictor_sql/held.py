"""One pooled connection kept checked out by a writer that writes one group of rows at a time.

Checking a connection out of SQLAlchemy's pool and back in costs about 55 µs of CPU (pool events,
reset on return, greenlet hops), more than encoding a group of 8 predictions: a group commit writes one
group at a time, so it keeps its connection between groups instead, and the driver's connection under
it. SQLAlchemy reaches that through a new greenlet each time, whose 16 KiB frame stack CPython maps and
unmaps (one mmap and one munmap per group in `strace`). Whatever a write raises, its connection is
thrown away (`invalidate`) and the next write checks out a fresh one: a connection the database dropped
is found by the write itself, which fails only its own group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from predictor_sql.bulk import TableRows, driver_of, insert_rows

__all__ = ["HeldConnection"]


class HeldConnection:
    """Writes groups of table rows on one connection of `engine`, taken at the first write."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        self._busy = False

    async def write(self, groups: Sequence[TableRows]) -> None:
        """Insert and commit every group's rows together, or raise and commit none (`insert_rows`).

        Raises:
            RuntimeError: a write is already under way: the caller must write one group at a time.
        """
        if self._busy:
            raise RuntimeError("HeldConnection.write called while a write is under way")
        self._busy = True
        try:
            if self._conn is None:
                self._conn = await self._engine.connect()
                self._driver = await driver_of(self._conn)
            await insert_rows(self._driver, self._conn.dialect, groups)
        except BaseException:
            # Never write on it again, whatever failed or interrupted the write: asyncpg raises a
            # statement's error before the connection is idle again, and a cancelled write leaves it
            # in an unknown state.
            conn, self._conn, self._driver = self._conn, None, None
            if conn is not None:
                await conn.invalidate()
            raise
        finally:
            self._busy = False

    async def close(self) -> None:
        """Give the connection back to the pool (the caller has no write under way)."""
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            await conn.close()
