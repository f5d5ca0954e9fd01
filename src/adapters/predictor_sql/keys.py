"""SqlKeyStore: API keys in the audit database (the KeyStore port), shared by every worker and replica.

Only the SHA-256 of each key's secret is stored. Keys are never deleted, since the audit trail names them
(`model_inputs.key_id` and `prediction_feedback.key_id` reference them); revoking one sets `revoked_at`,
once. The server only reads this table (`sql/roles.sql` grants `predictor_app` SELECT alone); creating and
revoking keys is for the CLI run as the schema owner or a member of `predictor_admin`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from predictor_core import ApiKey, KeyConflict, KeyNotFound, RateLimit, Scope
from predictor_sql.errors import _is_unique_violation, translate_db_errors
from predictor_sql.tables import api_keys

__all__ = ["SqlKeyStore"]


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _key(row: Any) -> ApiKey:
    rate = None
    if row.rate is not None:
        rate = RateLimit(quota=row.rate, window_s=row.rate_window_s, burst=row.burst)
    created = _utc(row.created_at)
    assert created is not None
    return ApiKey(
        id=row.id,
        name=row.name,
        scopes=frozenset(Scope(s) for s in row.scopes.split(",")),
        secret_sha256=row.secret_sha256,
        created_at=created,
        rate=rate,
        revoked_at=_utc(row.revoked_at),
    )


class SqlKeyStore:
    """API keys over an engine it does not own (the prediction store's: one pool per process)."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Use `engine` for every query; its owner disposes of it."""
        self._engine = engine

    async def create(self, key: ApiKey, /) -> None:
        """Insert the key. Raises KeyConflict when its name (or id) is taken, StoreUnavailable."""
        rate = key.rate
        row = {
            "id": key.id,
            "name": key.name,
            "secret_sha256": key.secret_sha256,
            "scopes": ",".join(sorted(key.scopes)),
            "rate": None if rate is None else rate.quota,
            "rate_window_s": None if rate is None else rate.window_s,
            "burst": None if rate is None else rate.burst,
            "created_at": key.created_at,
            "revoked_at": key.revoked_at,
        }
        with translate_db_errors("create an API key"):
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(api_keys.insert().values(**row))
            except sa_exc.IntegrityError as exc:
                if not _is_unique_violation(exc):
                    raise  # a CHECK refused it: StoreRejected, a bug
                raise KeyConflict(f"a key named {key.name!r} exists already (revoked or not)") from exc

    async def get(self, key_id: str, /) -> ApiKey | None:
        """The key with this id, or None."""
        with translate_db_errors("read an API key"):
            async with self._engine.connect() as conn:
                row = (await conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id))).one_or_none()
        return None if row is None else _key(row)

    async def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""
        query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.name)
        with translate_db_errors("list the API keys"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        return [_key(row) for row in rows]

    async def revoke(self, name: str, at: dt.datetime, /) -> ApiKey:
        """Set the key's `revoked_at` unless it is set already. Raises KeyNotFound."""
        with translate_db_errors("revoke an API key"):
            async with self._engine.begin() as conn:
                await conn.execute(
                    sa.update(api_keys)
                    .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                    .values(revoked_at=at)
                )
                row = (await conn.execute(sa.select(api_keys).where(api_keys.c.name == name))).one_or_none()
        if row is None:
            raise KeyNotFound(f"no API key named {name!r} (`predictor keys list` shows them)")
        return _key(row)

    async def active_count(self) -> int:
        """Keys not revoked."""
        query = sa.select(sa.func.count()).select_from(api_keys).where(api_keys.c.revoked_at.is_(None))
        with translate_db_errors("count the API keys"):
            async with self._engine.connect() as conn:
                return int((await conn.execute(query)).scalar_one())
