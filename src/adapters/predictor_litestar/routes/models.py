"""`GET /models` and `GET /models/{name}[/versions/{version}]`: what each model is and what it accepts."""

from __future__ import annotations

import datetime as dt
from itertools import groupby
from typing import Any

import msgspec
from litestar import get
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from predictor_core import Label, ModelManifest, ModelNotFound, PredictionService, PredictorError, Task
from predictor_litestar.context import ApiContext
from predictor_litestar.openapi import errors

__all__ = ["ExecutionInfo", "ModelInfo", "model_info", "routes"]


class ExecutionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Where inference runs, as the runtime reports it after loading (never assumed)."""

    requested: str
    providers: list[str]
    nodes_per_provider: dict[str, int]
    note: str


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str
    """The version described here (the newest unless one was named)."""
    versions: list[str]
    task: Task
    classes: list[Label] | None
    positive_class: Label | None
    target: str
    description: str
    metrics: dict[str, float]
    """Held-out metrics measured when the model was exported."""
    features: dict[str, Any]
    """JSON Schema of one record: types, units, bounds, categories, and rules under `x-rules`."""
    sha256: str
    created_at: dt.datetime
    execution: ExecutionInfo | None
    """None when the model could not be loaded; `load_error` says why."""
    load_error: str | None = None


def model_info(service: PredictionService, manifest: ModelManifest, versions: list[str]) -> ModelInfo:
    execution, load_error = None, None
    try:
        report = service.runtime(manifest.name, manifest.version).execution
        execution = ExecutionInfo(
            requested=report.requested,
            providers=list(report.providers),
            nodes_per_provider=dict(report.nodes_per_provider),
            note=report.note,
        )
    except PredictorError as exc:
        load_error = str(exc)
    return ModelInfo(
        name=manifest.name,
        version=manifest.version,
        versions=versions,
        task=manifest.task,
        classes=list(manifest.classes) if manifest.classes is not None else None,
        positive_class=manifest.positive_class,
        target=manifest.target,
        description=manifest.description,
        metrics=dict(manifest.metrics),
        features=manifest.schema.json_schema(),
        sha256=manifest.sha256,
        created_at=manifest.created_at,
        execution=execution,
        load_error=load_error,
    )


def routes(ctx: ApiContext) -> list[HTTPRouteHandler]:
    service = ctx.service

    def by_name() -> dict[str, list[ModelManifest]]:
        ordered = sorted(service.models.list_models(), key=lambda m: m.name)
        return {name: list(group) for name, group in groupby(ordered, key=lambda m: m.name)}

    def describe(name: str, version: str | None) -> ModelInfo:
        manifests = by_name().get(name)
        if not manifests:
            raise ModelNotFound(f"no model {name!r}")
        versions = [m.version for m in manifests]
        chosen = (
            manifests[-1] if version is None else next((m for m in manifests if m.version == version), None)
        )
        if chosen is None:
            raise ModelNotFound(f"model {name!r} has no version {version!r} (it has {', '.join(versions)})")
        return model_info(service, chosen, versions)

    @get(
        "/models", summary="Every model, newest version, with schema and execution provider", tags=["models"]
    )
    async def list_models() -> list[ModelInfo]:
        return [model_info(service, ms[-1], [m.version for m in ms]) for ms in by_name().values()]

    @get(
        "/models/{name:str}",
        summary="One model: versions, task, classes, metrics, feature schema",
        tags=["models"],
        responses=errors(404),
    )
    async def get_model(name: FromPath[str]) -> ModelInfo:
        return describe(name, None)

    @get(
        "/models/{name:str}/versions/{version:str}",
        summary="One model version",
        tags=["models"],
        responses=errors(404),
    )
    async def get_version(name: FromPath[str], version: FromPath[str]) -> ModelInfo:
        return describe(name, version)

    return [list_models, get_model, get_version]
