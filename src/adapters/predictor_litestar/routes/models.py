"""`GET /models`, `GET /models/{name}[/versions/{version}]` and `GET /models/{name}/aliases`.

What each model is, what it accepts (with a valid example record), which version its name serves and why,
and how its aliases moved.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Request, get

from predictor_core import AliasChange, ExecutionReport, Label, ModelDescription, Scope, Task
from predictor_litestar.access import SCOPE
from predictor_litestar.dependencies import Lifecycle, Models
from predictor_litestar.openapi import DENIALS, errors
from predictor_litestar.routes.predict import model_reference

__all__ = [
    "HANDLERS",
    "Aliases",
    "ExecutionInfo",
    "ModelInfo",
    "get_aliases",
    "get_model",
    "list_models",
    "model_info",
]


class ExecutionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Where inference runs, as the runtime reports it after loading (never assumed)."""

    requested: str
    providers: list[str]
    nodes_per_provider: dict[str, int]
    note: str

    @classmethod
    def of(cls, report: ExecutionReport) -> ExecutionInfo:
        return cls(
            requested=report.requested,
            providers=list(report.providers),
            nodes_per_provider=dict(report.nodes_per_provider),
            note=report.note,
        )


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str
    """The version described here: the one the name serves now, unless a version was named."""
    versions: list[str]
    serving: bool
    """Whether this is the version `POST /models/{name}/predict` answers with now."""
    aliases: list[str]
    """The aliases naming this version (`production`, `shadow`, ...)."""
    task: Task
    classes: list[Label] | None
    positive_class: Label | None
    target: str
    description: str
    metrics: dict[str, float]
    """Held-out metrics measured when the model was exported."""
    features: dict[str, Any]
    """JSON Schema of one record: types, units, bounds, categories, and rules under `x-rules`."""
    example: dict[str, Any]
    """A valid record from the bundle: send `{"features": example}` to this version's predict route."""
    sha256: str
    created_at: dt.datetime
    loaded: bool
    """Whether a session of this version is loaded in this server process."""
    execution: ExecutionInfo | None
    """Where it runs; None when it is not loaded (`load_error` says why, if loading failed)."""
    load_error: str | None = None


def model_info(described: ModelDescription) -> ModelInfo:
    manifest = described.manifest
    return ModelInfo(
        name=manifest.name,
        version=manifest.version,
        versions=list(described.versions),
        serving=described.current,
        aliases=list(described.aliases),
        task=manifest.task,
        classes=list(manifest.classes) if manifest.classes is not None else None,
        positive_class=manifest.positive_class,
        target=manifest.target,
        description=manifest.description,
        metrics=dict(manifest.metrics),
        features=manifest.schema.json_schema(),
        example=manifest.schema.example(),
        sha256=manifest.sha256,
        created_at=manifest.created_at,
        loaded=described.execution is not None,
        execution=None if described.execution is None else ExecutionInfo.of(described.execution),
        load_error=described.load_error,
    )


@get(
    "/models",
    summary="Every model: the version it serves, its schema, and where it runs when loaded",
    description="Nothing is loaded to answer: `execution` is shown for versions already loaded.",
    tags=["models"],
    responses=errors(*DENIALS),
    opt={SCOPE: Scope.READ},
)
async def list_models(models: Models) -> list[ModelInfo]:
    return [model_info(models.describe(entry.name, load=False)) for entry in models.catalogue()]


@get(
    ["/models/{name:str}", "/models/{name:str}/versions/{version:str}"],
    summary="One model, or one of its versions: task, classes, metrics, schema, where it runs when loaded",
    description="Nothing is loaded to answer: `execution` is shown once the version is loaded (by a "
    "prediction, or `GET /v2/models/{name}/ready`, which loads it or says why it cannot).",
    tags=["models"],
    responses=errors(404, *DENIALS),
    opt={SCOPE: Scope.READ},
)
async def get_model(request: Request[Any, Any, Any], models: Models) -> ModelInfo:
    name, version = model_reference(request)
    return model_info(models.describe(name, version, load=False))


class AliasMove(msgspec.Struct, frozen=True, kw_only=True):
    alias: str
    from_version: str | None
    to_version: str | None
    changed_at: dt.datetime
    changed_by: str

    @classmethod
    def of(cls, change: AliasChange) -> AliasMove:
        return cls(
            alias=change.alias,
            from_version=change.from_version,
            to_version=change.to_version,
            changed_at=change.changed_at,
            changed_by=change.changed_by,
        )


class Aliases(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    serving: str
    """The version the bare name serves now, in this server process."""
    because: str
    """Why: "alias production", "pinned" (this process serves a fixed version) or "newest"."""
    aliases: dict[str, str]
    """Alias -> version, shared by every worker and replica."""
    history: list[AliasMove]
    """The latest alias changes, newest first (empty when the server records nothing)."""


@get(
    "/models/{name:str}/aliases",
    summary="A model's aliases, what its name serves and why, and the latest alias changes",
    tags=["models"],
    responses=errors(404, 503, *DENIALS),
    opt={SCOPE: Scope.READ},
)
async def get_aliases(request: Request[Any, Any, Any], models: Models, lifecycle: Lifecycle) -> Aliases:
    name, _ = model_reference(request)
    assert name is not None
    versions = models.versions(name)
    history = [] if lifecycle is None else await lifecycle.history(name, limit=20)
    return Aliases(
        name=name,
        serving=versions.current.version,
        because=models.serving(name),
        aliases=versions.aliases,
        history=[AliasMove.of(change) for change in history],
    )


HANDLERS = [list_models, get_model, get_aliases]
