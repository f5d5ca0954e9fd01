"""The wiring: settings -> adapters -> use case (-> HTTP app). Nothing is built at import time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from predictor.settings import Settings
from predictor_core import ModelSource, PredictionService, PredictionStore

if TYPE_CHECKING:
    from predictor_onnx import BundleDirectory
    from predictor_sql import SqlPredictionStore

__all__ = ["build_model_source", "build_service", "build_store", "default_model_name"]

_UNSET: Any = object()


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
    return PredictionService(
        models if models is not None else build_model_source(settings),
        store,
        default_model=default_model_name(settings),
        **options,
    )
