"""The wiring: settings -> adapters -> model registry and use case, and the one owner of their resources.

Every entry point builds a `Wiring` and nothing else: the server's lifespan, `predictor serve`'s start-up
check, the notebook facade and the CLI. Building connects and loads nothing; `start()` opens what needs
opening (the store today; later a registry watcher, a rate-limit store, a metrics registry, a commit
flusher) and `close()` releases it, in reverse order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from predictor.settings import Settings
from predictor_core import (
    ModelRegistry,
    ModelSource,
    PredictionService,
    PredictionStore,
    ThreadedInference,
)

if TYPE_CHECKING:
    from predictor_onnx import BundleDirectory

__all__ = ["Wiring", "build_model_source", "default_model_name"]


def build_model_source(settings: Settings) -> BundleDirectory:
    """The default model's bundle if it is a path, then the configured directories, then the shipped ones."""
    from predictor_onnx import BundleDirectory, is_bundle_path, reference_root

    roots = [Path(p).expanduser() for p in settings.model_dirs]
    bundles = [Path(settings.model).expanduser()] if is_bundle_path(settings.model) else []
    return BundleDirectory(
        [*roots, reference_root()], bundles=bundles, device=settings.device, threads=settings.threads
    )


def default_model_name(settings: Settings) -> str:
    """The default model's name: `settings.model`, or the name in the manifest of the bundle it points to.

    Raises:
        BundleError: the configured bundle directory is missing or its manifest unreadable.
    """
    from predictor_onnx import is_bundle_path, read_manifest

    if is_bundle_path(settings.model):
        return read_manifest(Path(settings.model).expanduser()).name
    return settings.model


class Wiring:
    """Everything one process serves with, built from settings: registry, store and use case."""

    def __init__(
        self,
        settings: Settings,
        *,
        source: ModelSource | None = None,
        store: PredictionStore | None = None,
    ) -> None:
        """Build the object graph; nothing is connected, migrated or loaded yet.

        Args:
            settings: what to build; `settings.record` decides whether there is a store at all.
            source: a model source instead of the bundle directories (tests).
            store: a store instead of the SQL store of `settings` (tests); ignored when not recording.

        Raises:
            BundleError: the default model is a bundle path that cannot be read.
        """
        self.settings = settings
        self.registry = ModelRegistry(
            source if source is not None else build_model_source(settings),
            default_model=default_model_name(settings),
        )
        self._store = (store if store is not None else _sql_store(settings)) if settings.record else None
        self.service = PredictionService(
            self.registry, self._store, inference=ThreadedInference() if settings.offload else None
        )
        self._started = False

    async def start(self) -> None:
        """Open the store: migrate an embedded SQLite file, connect, check the schema revision.

        Raises:
            StoreUnavailable: the database cannot be reached.
            ConfigurationError: a PostgreSQL schema is missing or at another revision.
        """
        if self._store is None or self._started:
            return
        url = self.settings.resolved_database_url()
        if url.startswith("sqlite"):  # the zero set-up default; PostgreSQL is upgraded deliberately
            from predictor_sql import upgrade

            await asyncio.to_thread(upgrade, url)
        await self._store.start()
        self._started = True

    async def close(self) -> None:
        """Release every resource `start` opened; safe to call twice."""
        if self._store is not None and self._started:
            self._started = False
            await self._store.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Wiring]:
        """Started, with the default model loaded (a broken bundle fails here), then closed."""
        await self.start()
        try:
            await asyncio.to_thread(self.registry.runtime)
            yield self
        finally:
            await self.close()

    def lifespan(self, _: Any) -> AbstractAsyncContextManager[Wiring]:
        """For `Litestar(lifespan=[...])`: the server runs inside `running()`."""
        return self.running()


def _sql_store(settings: Settings) -> PredictionStore:
    from predictor_sql import SqlPredictionStore

    return SqlPredictionStore(settings.resolved_database_url())
