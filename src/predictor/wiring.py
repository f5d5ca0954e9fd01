"""The wiring: settings -> adapters -> model registry and use case, and the one owner of their resources.

Every entry point builds a `Wiring` and nothing else: the server's lifespan, `predictor serve`'s start-up
check, the notebook facade and the CLI. Building connects and loads nothing; `start()` opens what needs
opening (the store, then the watcher that applies model aliases and re-reads the bundles) and `close()`
releases it in reverse order (shadow scorings in flight are finished first). A server (`running()`) also
opens the access check: API keys in the database and the rate limiter (Redis or per process), and refuses
to serve when keys are required and none is defined.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import gc
import itertools
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from predictor.settings import Settings
from predictor_core import (
    AccessControl,
    AliasStore,
    AuditReader,
    BatchingInference,
    ConfigurationError,
    DriftReport,
    FallbackRateLimiter,
    KeyStore,
    LocalRateLimiter,
    ModelLifecycle,
    ModelMonitor,
    ModelRegistry,
    ModelSource,
    PredictionObserver,
    PredictionService,
    PredictionStore,
    PredictorError,
    ProfileMissing,
    RateLimiter,
    StoreUnavailable,
    ThreadedInference,
)
from predictor_core.scheduling import InferenceScheduler, InlineInference

if TYPE_CHECKING:
    from predictor_onnx import BundleDirectory

__all__ = ["Wiring", "build_limiter", "build_model_source", "default_model_name", "model_reference"]

log = logging.getLogger(__name__)
RESCAN_EVERY_S = 5.0
"""How often the watcher re-reads the bundles: new versions appear, removed ones stop being served."""
CREATE_A_KEY = "predictor keys create --name NAME --scopes predict,read"
GC_YOUNG_THRESHOLD = 50_000
"""Net allocations between two collections of the youngest generation in a server (CPython: 700)."""
_SCHEDULERS: dict[str, Callable[[], InferenceScheduler]] = {
    "inline": InlineInference,
    "batch": BatchingInference,
    "thread": ThreadedInference,
    "thread-batch": functools.partial(BatchingInference, in_thread=True),
}
"""The `inference` setting's schedulers (predictor_core.scheduling)."""


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
        keys: KeyStore | None = None,
        limiter: RateLimiter | None = None,
        observer: PredictionObserver | None = None,
        audit: AuditReader | None = None,
    ) -> None:
        """Build the object graph; nothing is connected, migrated or loaded yet.

        Args:
            settings: what to build; `settings.record` decides whether there is a store at all.
            source: a model source instead of the bundle directories (tests).
            store: a store instead of the SQL store of `settings` (tests); ignored when not recording.
            aliases: an alias store to go with `store` (tests); with the SQL store, its own.
            keys: a key store to go with `store` (tests); with the SQL store, its own.
            limiter: a rate limiter instead of the one `settings.redis_url` says (tests).
            observer: told the stages of every prediction (the server's metrics and request log).
            audit: the monitoring read side to go with `store` (tests); with the SQL store, its own.

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
            store, aliases, keys = _sql_stores(settings)
        self._store = store if settings.record else None
        self.keys = keys if settings.record else None
        """The API keys (the database's); None when nothing is recorded."""
        self.access: AccessControl | None = None
        """The access check of the HTTP API; None when auth is off (loopback, `PREDICTOR_AUTH=auto`)."""
        if settings.auth_required and self.keys is not None:
            self.access = AccessControl(self.keys, limiter or build_limiter(settings))
        self._access_open = False
        self.lifecycle = ModelLifecycle(self.registry, aliases) if settings.record and aliases else None
        """Promote, shadow and roll back; None when nothing is recorded (aliases live in the database)."""
        if self._store is not None and audit is None:
            audit = _audit_reader(self._store)
        self._audit = audit if self._store is not None else None
        self.monitor = (
            ModelMonitor(self._store, audit, models=self.registry, thresholds=settings.drift_thresholds())
            if self._store is not None and audit is not None
            else None
        )
        """Drift and live quality from the audit trail; None when nothing is recorded."""
        self._rolling = (
            self.monitor.rolling(dt.timedelta(seconds=settings.drift_window)) if self.monitor else None
        )
        """The drift gauges' window, kept in cells of time so that a refresh counts only what is new."""
        self.service = PredictionService(
            self.registry,
            self._store,
            inference=_SCHEDULERS[settings.inference](),
            observer=observer,
        )
        self._started = False
        self._watcher: asyncio.Task[None] | None = None

    async def start(self, *, watch: bool = True) -> None:
        """Open the store: migrate an embedded SQLite file, connect, check the schema revision.

        With `watch` (the default), also apply the aliases and start the watcher; a one-shot command that
        needs only the database (`predictor keys ...`) passes False.

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
        if self.lifecycle is not None and watch:
            await self.lifecycle.sync()
            self._watcher = asyncio.get_running_loop().create_task(self._watch(self.lifecycle))

    async def close(self) -> None:
        """Release every resource `start` and `running` opened; safe to call twice."""
        if self._access_open and self.access is not None and self.access.limiter is not None:
            self._access_open = False
            await self.access.limiter.close()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._store is not None and self._started:
            self._started = False
            await self.service.drain()
            await self._store.close()
        if self._audit is not None:
            await self._audit.close()  # its own small pool, opened by the first monitoring read

    async def _open_access(self) -> None:
        """Start the rate limiter and check a key exists, when the API needs keys.

        Raises:
            ConfigurationError: keys are required and none is defined, or nothing is recorded (keys live
                in the database).
            LimiterUnavailable: the Redis of `PREDICTOR_REDIS_URL` cannot be reached.
        """
        if not self.settings.auth_required:
            return
        why = (
            "PREDICTOR_AUTH=required"
            if self.settings.auth == "required"
            else f"the server listens on {self.settings.host}, beyond loopback"
        )
        if self.access is None:
            raise ConfigurationError(
                f"API keys are required ({why}) and they live in the database: PREDICTOR_RECORD=false "
                "is for benchmarks on loopback only"
            )
        if not await self.access.any_active():
            raise ConfigurationError(
                f"no API key is defined and keys are required ({why}): create one with `{CREATE_A_KEY}` "
                "(it uses the same database settings)"
            )
        if self.access.limiter is not None:
            self._access_open = True  # closed by close() even when start() fails half-way
            await self.access.limiter.start()

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

    async def refresh_drift(
        self, publish: Callable[[DriftReport], None], served: Callable[[set[tuple[str, str]]], None]
    ) -> None:
        """The drift of the version each model name serves, over the last `drift_window`, published.

        `served` is told the (name, version) pairs first, so gauges of versions no longer served go.
        A version without a training profile is skipped; a failing one is logged and skipped. Only the
        predictions recorded since the previous refresh are counted (`RollingDrift`).
        """
        if self._rolling is None:
            return
        current = {(entry.name, entry.current.version) for entry in self.registry.catalogue()}
        served(current)
        self._rolling.keep(current)
        now = dt.datetime.now(dt.UTC)
        for name, version in sorted(current):
            try:
                publish(await self._rolling.drift(name, version, now=now))
            except ProfileMissing:
                continue
            except PredictorError as exc:
                log.warning("drift of %s %s not refreshed: %s", name, version, exc)

    def drift_watcher(
        self, publish: Callable[[DriftReport], None], served: Callable[[set[tuple[str, str]]], None]
    ) -> Callable[[Any], AbstractAsyncContextManager[None]]:
        """A Litestar lifespan refreshing the drift every `drift_refresh` seconds (0: never).

        List it after `lifespan`, so that the store is open when it starts.
        """

        @asynccontextmanager
        async def watching(_: Any) -> AsyncIterator[None]:
            if self.monitor is None or not self.settings.drift_refresh:
                yield
                return

            async def loop() -> None:
                while True:
                    try:
                        await self.refresh_drift(publish, served)
                    except Exception:  # a background refresh must outlive any one failure
                        log.exception("drift gauges not refreshed")
                    await asyncio.sleep(self.settings.drift_refresh)

            task = asyncio.get_running_loop().create_task(loop())
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        return watching

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Wiring]:
        """Started, with the default model loaded (a broken bundle fails here), then closed."""
        await self.start()
        try:
            await asyncio.to_thread(self.registry.runtime)
            await self._open_access()
            yield self
        finally:
            await self.close()

    def lifespan(self, _: Any) -> AbstractAsyncContextManager[Wiring]:
        """For `Litestar(lifespan=[...])`: the server runs inside `running()`.

        SIGHUP re-reads the bundles and aliases (`reload`) instead of ending the process. SIGTERM and
        SIGINT turn readiness off first (`PredictionService.stop_accepting`: 503 "draining"), then,
        after `drain_delay` seconds (SIGINT: at once), reach the server's own handler: uvicorn closes the
        listening socket, lets the requests in flight finish within `drain_timeout`, and exits this
        lifespan, which waits for the shadow scorings and closes the store.
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
                with _tuned_garbage_collector(), self._draining_on_stop(loop):
                    yield self
        finally:
            if listening:
                loop.remove_signal_handler(signal.SIGHUP)

    @contextlib.contextmanager
    def _draining_on_stop(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        """Chain a handler before the server's SIGTERM / SIGINT ones (uvicorn sets them with `signal`)."""
        previous: dict[int, Any] = {}

        def stop(signum: int, frame: Any) -> None:
            first = not self.service.draining
            self.service.stop_accepting()
            delay = self.settings.drain_delay if signum == signal.SIGTERM and first else 0.0
            if delay > 0:
                log.info("draining: readiness is off; stopping in %.1f s", delay)
                loop.call_soon_threadsafe(loop.call_later, delay, _chain, previous[signum], signum, frame)
            else:
                _chain(previous[signum], signum, frame)

        try:
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, stop)
        except ValueError:  # not the main thread: the server's own handling applies
            pass
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


def _chain(handler: Any, signum: int, frame: Any) -> None:
    """Hand a signal on to the handler that was there before ours (the default action if none was)."""
    if callable(handler):
        handler(signum, frame)
    elif handler == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


def _sql_stores(settings: Settings) -> tuple[PredictionStore, AliasStore, KeyStore]:
    """The SQL prediction store, and the alias and key stores sharing its connection pool."""
    from predictor_sql import SqlAliasStore, SqlKeyStore, SqlPredictionStore

    store = SqlPredictionStore(settings.resolved_database_url())
    return store, SqlAliasStore(store.engine), SqlKeyStore(store.engine)


def build_limiter(settings: Settings) -> RateLimiter:
    """Redis when `redis_url` is set (counting per process while it is unreachable), else per process.

    Raises:
        ConfigurationError: `redis_url` is set but the `redis` extra is not installed.
    """
    if not settings.redis_url:
        return LocalRateLimiter()
    try:
        from predictor_redis import RedisRateLimiter
    except ImportError as exc:
        raise ConfigurationError(
            f"PREDICTOR_REDIS_URL is set but the Redis client is missing ({exc}): "
            "pip install 'predictor-core[redis]'"
        ) from None
    return FallbackRateLimiter(RedisRateLimiter(settings.redis_url), LocalRateLimiter())


def _audit_reader(store: PredictionStore) -> AuditReader | None:
    """The SQL store's monitoring read side; None for another store (tests bring theirs).

    It has a small pool of its own, so that long monitoring reads never hold the recording pool.
    """
    from predictor_sql import SqlPredictionStore
    from predictor_sql.monitoring import SqlAuditReader

    return SqlAuditReader.connect(store.url) if isinstance(store, SqlPredictionStore) else None


@contextlib.contextmanager
def _tuned_garbage_collector() -> Iterator[None]:
    """Freeze what start-up made, and collect the youngest generation only once garbage has piled up.

    Frozen: the oldest generation's collections otherwise walk the modules, models and app again and
    again while requests wait: one worker recording to PostgreSQL at 64 connections had a p99 of
    77-82 ms, 25-28 ms once frozen, and 11 % more requests a second (measured 2026-12-06,
    `benchmarks/bench_http.py`).

    The young threshold: a request frees what it allocates by reference counting (4 objects were
    found in cycles over 800 collections at 64 connections), so CPython's default of a collection every
    700 net allocations only ever walked the live objects of the requests in flight, 800-2,900 of them,
    about 100 times a second: 14 µs of CPU a request recording off and 31 µs recording to PostgreSQL
    (0.3 ms a collection on this machine). At `GC_YOUNG_THRESHOLD` a collection comes once that many
    objects outlive their request (cyclic garbage, or growth): none came in 10 s of load either way.

    Both are undone when serving ends, for a process that goes on (a test suite, an app embedded in
    another's process); objects someone else froze before stay frozen.
    """
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if not frozen:
            gc.unfreeze()
