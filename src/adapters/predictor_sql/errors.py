"""Translate "the database is down" in all its forms into the domain's retryable StoreUnavailable.

During a PostgreSQL restart asyncpg raises plain `ConnectionRefusedError` / `ConnectionResetError` that
SQLAlchemy does not wrap, next to pool timeouts and wrapped asyncpg errors (reliability.md §2.4 D1).
Catching only `SQLAlchemyError` would turn the first ones into crashes, so one classifier walks the
whole cause chain. Anything else (a constraint violation, a bug) propagates unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg
from sqlalchemy import exc as sa_exc

from predictor_core import StoreUnavailable

__all__ = ["RETRY_AFTER_S", "is_unavailable", "translate_db_errors"]

RETRY_AFTER_S = 2.0
"""What a caller is told to wait: a PostgreSQL restart or a failover takes seconds."""

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionRefusedError, ConnectionResetError, TimeoutError, socket errors
    sa_exc.TimeoutError,  # pool checkout timed out: every connection busy
    sa_exc.OperationalError,  # SQLite "database is locked", PostgreSQL connection failures
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    asyncpg.PostgresConnectionError,  # includes ConnectionDoesNotExistError
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now (starting up)
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
)


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc`, or anything in its cause chain, says the database cannot be reached now."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _UNAVAILABLE):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


@contextlib.contextmanager
def translate_db_errors(action: str) -> Iterator[None]:
    """Re-raise database outages met while doing `action` as StoreUnavailable, chained to the cause."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        detail = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
        raise StoreUnavailable(
            f"the prediction database is unavailable, cannot {action} ({detail}); retry later",
            retry_after=RETRY_AFTER_S,
        ) from exc
