"""Translate database errors into the store port's typed errors, so no SQLAlchemy or asyncpg error escapes.

- "The database is down" in all its forms becomes the retryable StoreUnavailable. During a PostgreSQL
  restart asyncpg raises plain `ConnectionRefusedError` / `ConnectionResetError` that SQLAlchemy does not
  wrap, next to pool timeouts and wrapped asyncpg errors; catching only `SQLAlchemyError` would turn the
  first ones into crashes, so one classifier walks the whole cause chain.
- A unique key violated (a prediction id recorded twice) becomes DuplicatePrediction.
- Any other refusal by the database (a CHECK, a value too long) becomes StoreRejected, whose message
  carries the database's reason but never the SQL parameters (they hold the features). Nor does the
  chained SQLAlchemy error: the engine hides parameters (`create_engine(hide_parameters=True)`), so a
  traceback of a failed statement logged anywhere shows the statement, not the values.
Exceptions that are not database errors (bugs) propagate unchanged.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import asyncpg
from asyncpg.exceptions._base import DataError as ValueNotSendable
from sqlalchemy import exc as sa_exc

from predictor_core import DuplicatePrediction, PredictorError, StoreRejected, StoreUnavailable

__all__ = ["RETRY_AFTER_S", "is_unavailable", "translate_db_errors"]

RETRY_AFTER_S = 2.0
"""What a caller is told to wait: a PostgreSQL restart or a failover takes seconds."""

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionRefusedError, ConnectionResetError, TimeoutError, socket errors
    sa_exc.TimeoutError,  # pool checkout timed out: every connection busy
    sa_exc.OperationalError,  # SQLite "database is locked", PostgreSQL connection failures
    sqlite3.OperationalError,  # the same, raw from the bulk insert path
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    asyncpg.PostgresConnectionError,  # includes ConnectionDoesNotExistError
    asyncpg.InterfaceError,
    asyncpg.exceptions._base.InternalClientError,  # a connection left mid-operation: this one is done for
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now (starting up)
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
)


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc`, or anything in its cause chain, says the database cannot be reached now."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ValueNotSendable):  # an InterfaceError, yet the value is at fault
            return False
        if isinstance(current, _UNAVAILABLE):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


def _is_unique_violation(exc: BaseException) -> bool:
    """A unique key violated: PostgreSQL's SQLSTATE 23505 (asyncpg's own or wrapped), or SQLite's message."""
    orig = exc.orig if isinstance(exc, sa_exc.IntegrityError) else exc  # else asyncpg's or sqlite3's own
    return getattr(orig, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(orig)


def _refused(exc: BaseException) -> bool:
    """The database (or the driver, for a value it cannot send) refused the statement: not a bug here.

    asyncpg's and sqlite3's own errors come unwrapped from the bulk insert path, which bypasses SQLAlchemy.
    """
    return isinstance(exc, sa_exc.SQLAlchemyError | asyncpg.PostgresError | ValueNotSendable | sqlite3.Error)


def _reason(exc: BaseException) -> str:
    """The first line of what the driver said, without SQLAlchemy's appended SQL and parameters."""
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    text = str(cause).strip()
    first = text.splitlines()[0][:200] if text else ""
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__


@contextlib.contextmanager
def translate_db_errors(action: str) -> Iterator[None]:
    """Re-raise what the database said while doing `action` as the port's typed errors, chained."""
    try:
        yield
    except PredictorError:
        raise
    except Exception as exc:
        if is_unavailable(exc):
            raise StoreUnavailable(
                f"the prediction database is unavailable, cannot {action} ({_reason(exc)}); retry later",
                retry_after=RETRY_AFTER_S,
            ) from exc
        unique = sa_exc.IntegrityError | asyncpg.UniqueViolationError | sqlite3.IntegrityError
        if isinstance(exc, unique) and _is_unique_violation(exc):
            raise DuplicatePrediction(f"cannot {action}: a prediction id is recorded already") from exc
        if _refused(exc):
            raise StoreRejected(f"the database refused to {action}: {_reason(exc)}") from exc
        raise  # not the database's: a bug here, which stays what it is
