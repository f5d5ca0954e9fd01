"""The wiring: settings -> adapters -> model registry and use case, and the one owner of their resources.

Every entry point builds a `Wiring` and nothing else: the server's lifespan, `predictor serve`'s start-up
check, the notebook facade and the CLI. Building connects and loads nothing; `start()` opens what needs
opening (the store, then the watcher that applies model aliases and re-reads the bundles) and `close()`
releases it in reverse order (shadow scorings in flight are finished first).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from predictor.settings import Settings
from predictor_core import (
    AliasStore,
    ModelLifecycle,
    ModelRegistry,
    ModelSource,
    PredictionService,
    PredictionStore,
    StoreUnavailable,
    ThreadedInference,
)

if TYPE_CHECKING:
    from predictor_onnx import BundleDirectory

__all__ = ["Wiring", "build_model_source", "default_model_name", "model_reference"]

log = logging.getLogger(__name__)
RESCAN_EVERY_S = 5.0
"""How often the watcher re-reads the bundles: new versions appear, removed ones stop being served."""


def build_model_source(settings: Settings) -> BundleDirectory:
    """Where bundles come from: a bundle path, the model directories, the model store, the shipped ones.

    That is also the order of precedence: the first one wins a name and version found twice.
    """
    from predictor_onnx import BundleDirectory, is_bundle_path, reference_root

    roots = [Path(p).expanduser() for p in settings.model_dirs]
    bundles = [Path(settings.model).expanduser()] if is_bundle_path(settings.model) else []
    return BundleDirectory(
        [*roots, settings.resolved_model_store(), reference_root()],
        bundles=bundles,
        device=settings.device,
        threads=settings.threads,
    )


def model_reference(settings: Settings) -> tuple[str, str | None]:
    """The default model's name, and the version it is pinned to (`NAME@VERSION`, or a bundle path's).

    Raises:
        BundleError: the configured bundle directory is missing or its manifest unreadable.
    """
    from predictor_onnx import is_bundle_path, read_manifest

    if is_bundle_path(settings.model):
        manifest = read_manifest(Path(settings.model).expanduser())
        return manifest.name, manifest.version
    name, _, version = settings.model.partition("@")
    return name, version or None


def default_model_name(settings: Settings) -> str:
    """The default model's name (see `model_reference`)."""
    return model_reference(settings)[0]


class Wiring:
    """Everything one process serves with, built from settings: registry, store and use case."""

    def __init__(
        self,
        settings: Settings,
        *,
        source: ModelSource | None = None,
        store: PredictionStore | None = None,
        aliases: AliasStore | None = None,
    ) -> None:
        """Build the object graph; nothing is connected, migrated or loaded yet.

        Args:
            settings: what to build; `settings.record` decides whether there is a store at all.
            source: a model source instead of the bundle directories (tests).
            store: a store instead of the SQL store of `settings` (tests); ignored when not recording.
            aliases: an alias store to go with `store` (tests); with the SQL store, its own.

        Raises:
            BundleError: the default model is a bundle path that cannot be read.
            ModelNotFound: the default model is pinned to a version that does not exist.
        """
        self.settings = settings
        name, pinned = model_reference(settings)
        self.registry = ModelRegistry(
            source if source is not None else build_model_source(settings), default_model=name
        )
        if pinned is not None:
            self.registry.pin(name, pinned)
        if settings.record and store is None:
            store, aliases = _sql_stores(settings)
        self._store = store if settings.record else None
        self.lifecycle = ModelLifecycle(self.registry, aliases) if settings.record and aliases else None
        """Promote, shadow and roll back; None when nothing is recorded (aliases live in the database)."""
        self.service = PredictionService(
            self.registry, self._store, inference=ThreadedInference() if settings.offload else None
        )
        self._started = False
        self._watcher: asyncio.Task[None] | None = None

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
        if self.lifecycle is not None:
            await self.lifecycle.sync()
            self._watcher = asyncio.get_running_loop().create_task(self._watch(self.lifecycle))

    async def close(self) -> None:
        """Release every resource `start` opened; safe to call twice."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._store is not None and self._started:
            self._started = False
            await self.service.drain()
            await self._store.close()

    async def reload(self) -> None:
        """Re-read the bundles and the aliases now (what SIGHUP does to a running server)."""
        await asyncio.to_thread(self.registry.refresh)
        if self.lifecycle is not None:
            await self.lifecycle.sync()

    async def _watch(self, lifecycle: ModelLifecycle) -> None:
        """Apply alias changes every `watch_interval`; now and then re-read bundles, evict idle versions."""
        interval = self.settings.watch_interval
        rescan_every = max(1, round(RESCAN_EVERY_S / interval))
        down = False
        for tick in itertools.count(1):
            await asyncio.sleep(interval)
            try:
                await lifecycle.sync()
            except StoreUnavailable as exc:
                if not down:
                    log.warning("model aliases not refreshed, the last ones apply: %s", exc)
                down = True
                continue
            down = False
            if tick % rescan_every == 0:
                await asyncio.to_thread(self.registry.refresh)
                for identity in self.registry.evict_idle(self.settings.evict_after):
                    log.info("unloaded %s %s: no alias serves it, unused", identity.name, identity.version)

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
        """For `Litestar(lifespan=[...])`: the server runs inside `running()`.

        SIGHUP re-reads the bundles and aliases (`reload`) instead of ending the process.
        """
        return self._serving()

    @asynccontextmanager
    async def _serving(self) -> AsyncIterator[Wiring]:
        loop = asyncio.get_running_loop()
        reloads: set[asyncio.Task[None]] = set()

        def hangup() -> None:
            task = loop.create_task(self.reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        try:
            loop.add_signal_handler(signal.SIGHUP, hangup)
            listening = True
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no SIGHUP
            listening = False
        try:
            async with self.running():
                yield self
        finally:
            if listening:
                loop.remove_signal_handler(signal.SIGHUP)


def _sql_stores(settings: Settings) -> tuple[PredictionStore, AliasStore]:
    """The SQL prediction store and the alias store sharing its connection pool."""
    from predictor_sql import SqlAliasStore, SqlPredictionStore

    store = SqlPredictionStore(settings.resolved_database_url())
    return store, SqlAliasStore(store.engine)
