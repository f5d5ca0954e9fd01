"""Probes: `/health/live` (process up), `/health/ready` (model loaded, database reachable), `/health`."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.handlers import HTTPRouteHandler

from predictor_core import PredictorError, RuntimeUnavailable, StoreHealth, StoreUnavailable
from predictor_litestar.context import ApiContext
from predictor_litestar.openapi import errors

__all__ = ["routes"]


class Live(msgspec.Struct, frozen=True):
    live: bool = True


class Ready(msgspec.Struct, frozen=True):
    ready: bool = True


class ModelSummary(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str | None = None
    sha256: str | None = None
    task: str | None = None
    provider: str | None = None
    """The execution provider running the model (first in priority order)."""
    error: str | None = None


class DatabaseSummary(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    """With any password hidden."""
    backend: str = ""
    reachable: bool = False
    durable: bool = False
    detail: str = ""


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    """"ok" when ready to predict and record, "unavailable" otherwise."""
    recording: bool
    """False only for benchmarks run with recording off: predictions are then not kept."""
    model: ModelSummary
    database: DatabaseSummary | None


def routes(ctx: ApiContext) -> list[HTTPRouteHandler]:
    service = ctx.service

    def model_summary() -> ModelSummary:
        try:
            runtime = service.runtime()
        except PredictorError as exc:
            return ModelSummary(name=service.default_model, error=str(exc))
        m, providers = runtime.manifest, runtime.execution.providers
        return ModelSummary(
            name=m.name,
            version=m.version,
            sha256=m.sha256,
            task=m.task.value,
            provider=providers[0] if providers else None,
        )

    async def store_health() -> StoreHealth | None:
        return None if service.store is None else await service.store.health()

    @get("/health/live", summary="Liveness: the process answers", tags=["health"])
    async def live() -> Live:
        return Live()

    @get(
        "/health/ready",
        summary="Readiness: model loaded and database reachable",
        tags=["health"],
        responses=errors(503),
    )
    async def ready() -> Ready:
        """503 with the reason (and Retry-After) while the model or the database is unavailable."""
        model = model_summary()
        if model.error:
            raise RuntimeUnavailable(f"model {model.name!r} is not loaded: {model.error}", retry_after=30)
        store = await store_health()
        if store is not None and not store.reachable:
            raise StoreUnavailable(f"database unreachable: {store.detail}", retry_after=5)
        return Ready()

    @get("/health", summary="A readable summary: model, version, provider, database", tags=["health"])
    async def health() -> Health:
        model, store = model_summary(), await store_health()
        database = (
            None
            if store is None
            else DatabaseSummary(
                url=ctx.options.database,
                backend=store.backend,
                reachable=store.reachable,
                durable=store.durable,
                detail=store.detail,
            )
        )
        ok = model.error is None and (store is None or store.reachable)
        return Health(
            status="ok" if ok else "unavailable", recording=service.recording, model=model, database=database
        )

    return [live, ready, health]
