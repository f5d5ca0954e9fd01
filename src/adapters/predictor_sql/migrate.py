"""Schema versions: Alembic, driven from code so a pip-installed wheel can upgrade its own database."""

from __future__ import annotations

import asyncio
import concurrent.futures

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

__all__ = ["alembic_config", "current_revision", "head_revision", "upgrade"]


def alembic_config(url: str) -> Config:
    """An Alembic configuration for `url` (an async SQLAlchemy URL) without any alembic.ini."""
    config = Config()
    config.set_main_option("script_location", "predictor_sql:migrations")
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema at `url`; idempotent.

    Synchronous. Alembic's environment runs its own event loop, so when called from a running loop the
    migration runs in a helper thread (blocking the caller's loop meanwhile: fine for set-up, not for
    request paths; there, prefer `await asyncio.to_thread(upgrade, url)`).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(alembic_config(url), revision)
        return
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(command.upgrade, alembic_config(url), revision).result()


def head_revision() -> str | None:
    """The newest revision this release knows."""
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision a database is at (None when it was never migrated); for `run_sync`."""
    return MigrationContext.configure(connection).get_current_revision()
