"""What handlers get injected: the use cases and the HTTP options, one instance per app (Litestar DI).

Handlers annotate their parameters with these aliases (`service: Service`), so Litestar knows they are
dependencies and not query parameters, and `dependencies(...)` provides the values to the app.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from litestar.di import NamedDependency, Provide

from predictor_core import AccessControl, ModelLifecycle, ModelMonitor, ModelRegistry, PredictionService
from predictor_litestar.options import ApiOptions

__all__ = ["Access", "Lifecycle", "Models", "Monitor", "Options", "Service", "dependencies"]

Service: TypeAlias = NamedDependency[PredictionService]
Models: TypeAlias = NamedDependency[ModelRegistry]
Options: TypeAlias = NamedDependency[ApiOptions]
Lifecycle: TypeAlias = NamedDependency[ModelLifecycle | None]
"""None when the server records nothing: aliases live in the database."""
Access: TypeAlias = NamedDependency[AccessControl | None]
"""None when auth is off (a server on loopback): every route is open."""
Monitor: TypeAlias = NamedDependency[ModelMonitor | None]
"""Drift and live quality; None when the server records nothing."""


def dependencies(
    service: PredictionService,
    models: ModelRegistry,
    options: ApiOptions,
    lifecycle: ModelLifecycle | None,
    access: AccessControl | None = None,
    monitor: ModelMonitor | None = None,
) -> dict[str, Provide]:
    """The app-level providers of `service`, `models`, `options`, `lifecycle` and `access`."""
    return {
        "service": _constant(service),
        "models": _constant(models),
        "options": _constant(options),
        "lifecycle": _constant(lifecycle),
        "access": _constant(access),
        "monitor": _constant(monitor),
    }


def _constant(value: Any) -> Provide:
    def provide() -> Any:
        return value

    return Provide(provide, use_cache=True, sync_to_thread=False)
