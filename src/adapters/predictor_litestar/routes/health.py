"""Probes: `/health/live` (process up), `/health/ready` (model loaded, database reachable), `/health`.

The live and ready handlers also serve the Open Inference Protocol's `/v2/health/...` (the v2 router
registers them too), so both surfaces give one readiness answer.
"""

from __future__ import annotations

import msgspec
from litestar import get

from predictor_core import ServiceStatus
from predictor_litestar.access import PUBLIC, SCOPE
from predictor_litestar.dependencies import Access, Service
from predictor_litestar.openapi import errors

__all__ = ["HANDLERS", "PROBES", "health", "live", "ready"]


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
    """What an operator needs from an open page: never the URL, its host, user, password or file path."""

    backend: str = ""
    reachable: bool = False
    durable: bool = False
    writable: bool = False
    """False while a prediction could not be recorded now (its tables locked, a read-only database)."""
    detail: str = ""


class AccessSummary(msgspec.Struct, frozen=True, kw_only=True):
    auth: bool
    """Whether every route but these probes needs an API key (always, beyond loopback)."""
    rate_limits: str | None = None
    """Where the keys' token buckets live: shared in Redis, or per process (each worker counts on its own,
    so a key gets up to workers × its rate); None when auth is off."""
    shared: bool = False
    """True when every worker and replica draws from the same buckets now."""


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    """"ok" when ready to predict and record, "unavailable" otherwise."""
    recording: bool
    """False only for benchmarks run with recording off: predictions are then not kept."""
    model: ModelSummary
    database: DatabaseSummary | None
    access: AccessSummary = AccessSummary(auth=False)


@get("/health/live", summary="Liveness: the process answers", tags=["health"], opt={SCOPE: PUBLIC})
async def live() -> Live:
    return Live()


@get(
    "/health/ready",
    summary="Readiness: model loaded and database reachable, durable and writable",
    description=(
        "503 with the reason (and Retry-After) while the model is not loaded or the database is "
        "unreachable, not durable (e.g. synchronous_commit=off) or cannot record now (e.g. a table lock)."
    ),
    tags=["health"],
    responses=errors(503),
    opt={SCOPE: PUBLIC},
)
async def ready(service: Service) -> Ready:
    status = await service.status()
    if status.unavailable is not None:
        raise status.unavailable
    return Ready()


@get(
    "/health",
    summary="A readable summary: model, version, provider, database, access",
    tags=["health"],
    opt={SCOPE: PUBLIC},
)
async def health(service: Service, access: Access) -> Health:
    status = await service.status()
    return Health(
        status="ok" if status.ready else "unavailable",
        recording=status.recording,
        model=_model(status),
        database=None if status.store is None else _database(status),
        access=_access(access),
    )


def _access(access: Access) -> AccessSummary:
    if access is None:
        return AccessSummary(auth=False)
    limiter = access.limiter
    if limiter is None:
        return AccessSummary(auth=True)
    return AccessSummary(auth=True, rate_limits=limiter.description, shared=limiter.shared)


def _model(status: ServiceStatus) -> ModelSummary:
    model, identity = status.model, status.model.identity
    return ModelSummary(
        name=model.name,
        version=identity.version if identity else None,
        sha256=identity.sha256 if identity else None,
        task=model.task.value if model.task else None,
        provider=model.provider,
        error=model.error,
    )


def _database(status: ServiceStatus) -> DatabaseSummary:
    assert status.store is not None
    store = status.store
    return DatabaseSummary(
        backend=store.backend,
        reachable=store.reachable,
        durable=store.durable,
        writable=store.reachable and store.writable,
        detail=store.detail,
    )


PROBES = [live, ready]
"""The probes both surfaces serve (`/health/...` and `/v2/health/...`)."""
HANDLERS = [*PROBES, health]
