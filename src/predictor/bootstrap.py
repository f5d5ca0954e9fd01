"""The wiring: settings -> adapters -> use case (-> HTTP app). Nothing is built at import time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from predictor.settings import Settings
from predictor_core import ModelSource, PredictionService, PredictionStore

if TYPE_CHECKING:
    from predictor_onnx import BundleDirectory
    from predictor_sql import SqlPredictionStore

__all__ = ["build_model_source", "build_service", "build_store"]

_UNSET: Any = object()


def build_model_source(settings: Settings) -> BundleDirectory:
    """Bundles from the configured directories first, then the reference bundles shipped with the package."""
    from predictor_onnx import BundleDirectory, reference_root

    roots = [Path(p).expanduser() for p in settings.model_dirs]
    return BundleDirectory([*roots, reference_root()], device=settings.device, threads=settings.threads)


def build_store(settings: Settings) -> SqlPredictionStore:
    """The SQL store for the configured database (SQLite in the user data dir by default); not started."""
    from predictor_sql import SqlPredictionStore

    return SqlPredictionStore(settings.resolved_database_url())


def build_service(
    settings: Settings,
    *,
    models: ModelSource | None = None,
    store: PredictionStore | None = _UNSET,
    record: bool | None = None,
    **options: Any,
) -> PredictionService:
    """The prediction use case wired from settings; any port can be overridden (tests, notebooks).

    Args:
        settings: what to build.
        models: a model source to use instead of the bundle directories.
        store: a store to use instead of the SQL store; None turns recording off.
        record: overrides `settings.record`; False means no store at all.
        options: passed to PredictionService (e.g. `offload`).
    """
    recording = settings.record if record is None else record
    if not recording:
        store = None
    elif store is _UNSET:
        store = build_store(settings)
    default_model = settings.model
    return PredictionService(
        models if models is not None else build_model_source(settings),
        store,
        default_model=default_model,
        **options,
    )
