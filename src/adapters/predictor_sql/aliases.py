"""SqlAliasStore: model aliases and their append-only history, in the audit database (the AliasStore port).

Each move updates the current pointer (`model_aliases`) and appends to `model_alias_history` in one
transaction, so the history never misses a change and rollback can always read what came before. Every
worker and replica polls `aliases()`; the table holds a few rows, so a poll is one cheap query.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from predictor_core import AliasChange
from predictor_sql.errors import translate_db_errors
from predictor_sql.tables import CHANGED_BY_LENGTH, model_alias_history, model_aliases

__all__ = ["SqlAliasStore"]


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class SqlAliasStore:
    """Aliases over an engine it does not own (the prediction store's: one pool per process)."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Use `engine` for every query; its owner disposes of it."""
        self._engine = engine

    async def aliases(self) -> dict[str, dict[str, str]]:
        """Every alias now: model name -> alias -> version."""
        query = sa.select(model_aliases.c.name, model_aliases.c.alias, model_aliases.c.version)
        with translate_db_errors("read the model aliases"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        found: dict[str, dict[str, str]] = {}
        for row in rows:
            found.setdefault(row.name, {})[row.alias] = row.version
        return found

    async def move(self, name: str, alias: str, version: str | None, /, *, by: str) -> AliasChange:
        """Point the alias at `version` (None removes it) and append the change, in one transaction.

        The current row is locked while it moves (PostgreSQL), so concurrent moves of one alias each
        record the version they replaced.
        """
        now = dt.datetime.now(dt.UTC)
        by = by[:CHANGED_BY_LENGTH]
        key = (model_aliases.c.name == name, model_aliases.c.alias == alias)
        insert = (postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert)(
            model_aliases
        )
        with translate_db_errors("move a model alias"):
            async with self._engine.begin() as conn:
                before = (
                    await conn.execute(sa.select(model_aliases.c.version).where(*key).with_for_update())
                ).scalar_one_or_none()
                if version is None:
                    await conn.execute(sa.delete(model_aliases).where(*key))
                else:
                    await conn.execute(
                        insert.values(
                            name=name, alias=alias, version=version, changed_at=now
                        ).on_conflict_do_update(
                            index_elements=["name", "alias"], set_={"version": version, "changed_at": now}
                        )
                    )
                change = AliasChange(
                    name=name,
                    alias=alias,
                    from_version=before,
                    to_version=version,
                    changed_at=now,
                    changed_by=by,
                )
                await conn.execute(
                    model_alias_history.insert().values(
                        name=name,
                        alias=alias,
                        from_version=before,
                        to_version=version,
                        changed_at=now,
                        changed_by=by,
                    )
                )
        return change

    async def history(self, name: str, alias: str | None = None, /, *, limit: int = 50) -> list[AliasChange]:
        """The latest changes of a model's aliases (one alias when named), newest first."""
        query = sa.select(model_alias_history).where(model_alias_history.c.name == name)
        if alias is not None:
            query = query.where(model_alias_history.c.alias == alias)
        query = query.order_by(model_alias_history.c.id.desc()).limit(limit)
        with translate_db_errors("read the alias history"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        return [
            AliasChange(
                name=row.name,
                alias=row.alias,
                from_version=row.from_version,
                to_version=row.to_version,
                changed_at=_utc(row.changed_at),
                changed_by=row.changed_by,
            )
            for row in rows
        ]
