"""The ASGI entry of `predictor serve`: settings -> store -> service -> Litestar app.

`uvicorn --factory predictor.app:create_app` works too; every worker process builds its own app from the
same environment. A SQLite database (the zero set-up default) is migrated at start-up; a PostgreSQL one
must be migrated beforehand (`predictor db upgrade`): start-up fails with that advice when it is not, as
upgrading a shared production schema should be a deliberate step.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar

from predictor.bootstrap import build_service, build_store
from predictor.settings import Settings
from predictor_litestar import ApiOptions
from predictor_litestar import create_app as create_http_app

__all__ = ["create_app", "prepare_database"]


def create_app(settings: Settings | None = None, *, offload: bool | None = None) -> Litestar:
    """The HTTP app for `settings` (read from the environment when None).

    Args:
        settings: what to serve; `Settings.load()` when None.
        offload: overrides `settings.offload` (validation and inference in a worker thread).

    Raises:
        ConfigurationError, BundleError, ModelNotFound: the settings or the default model are unusable.
    """
    settings = settings or Settings.load()
    offload = settings.offload if offload is None else offload
    store = build_store(settings) if settings.record else None
    service = build_service(settings, store=store, offload=_to_thread if offload else None)

    @asynccontextmanager
    async def open_store(_: Litestar) -> AsyncIterator[None]:
        if store is None:
            yield
            return
        await asyncio.to_thread(prepare_database, settings)
        await store.start()
        try:
            yield
        finally:
            await store.close()

    options = ApiOptions(
        max_batch=settings.max_batch,
        max_body_bytes=settings.max_body_bytes,
        database=settings.redacted_database_url() if settings.record else "",
    )
    return create_http_app(service, options, lifespan=[open_store])


def prepare_database(settings: Settings) -> None:
    """Migrate the SQLite database (the zero set-up default); PostgreSQL is left to `predictor db upgrade`."""
    url = settings.resolved_database_url()
    if settings.record and url.startswith("sqlite"):
        from predictor_sql import upgrade

        upgrade(url)


async def _to_thread(work: Any) -> Any:
    return await asyncio.to_thread(work)
