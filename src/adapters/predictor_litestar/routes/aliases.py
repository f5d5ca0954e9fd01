"""Alias changes over HTTP (the `admin` scope): promote or shadow, roll back, remove.

Each goes through the same `ModelLifecycle` as `predictor models promote | rollback | unalias`: a version
is loaded and checked against its golden set before an alias names it, nothing moves on a refusal (409
with the reason), and every change is appended to the alias history with `changed_by` = `key:<key id>`
(`http:anonymous` on a server without auth). Every worker and replica serves the change within
`PREDICTOR_WATCH_INTERVAL`.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request, delete, post, put
from litestar.exceptions import ClientException

from predictor_core import ModelLifecycle, RecordingDisabled, Scope
from predictor_litestar.access import SCOPE, changed_by
from predictor_litestar.bodies import AliasTarget, read_json
from predictor_litestar.dependencies import Lifecycle, Models
from predictor_litestar.openapi import DENIALS, errors
from predictor_litestar.problems import BODY
from predictor_litestar.routes.models import AliasMove

__all__ = ["HANDLERS", "move_alias", "remove_alias", "roll_back_alias"]

_TARGET = msgspec.json.Decoder(AliasTarget)
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PATH = "/models/{name:str}/aliases/{alias:str}"
_REFUSED = (
    "Refused, nothing moved: the version's bundle does not load, it has no golden set or does not "
    "reproduce it (rollback: the alias has no change to roll back)",
    {
        "title": "Promotion refused",
        "status": 409,
        "detail": "churn 1.1.0 cannot take traffic as 'production': outputs differ from the golden set "
        "by up to 0.412 (tolerance 1e-05)",
    },
)
_NOT_FOUND = (
    "Unknown model or version, or (removal) an alias the model does not have",
    {"title": "Not found", "status": 404, "detail": "model 'churn' has no alias 'staging'"},
)
_SAID = {409: _REFUSED, 404: _NOT_FOUND}
_COMMON: dict[str, Any] = {"tags": ["models"], "status_code": 200}


def _target(request: Request[Any, Any, Any], models: Models) -> tuple[str, str]:
    """The model (known to the registry) and the alias named in the path."""
    name, alias = request.path_params["name"], request.path_params["alias"]
    if not _ALIAS.match(alias):
        raise ClientException(
            f"alias {alias[:120]!r}: use 1 to 100 letters, digits, '.', '-' or '_', starting with a letter "
            "or digit"
        )
    models.versions(name)  # ModelNotFound (404) for a model nobody serves
    return name, alias


def _lifecycle(lifecycle: ModelLifecycle | None) -> ModelLifecycle:
    if lifecycle is None:
        raise RecordingDisabled("this server records nothing, and aliases live in the database")
    return lifecycle


@put(
    _PATH,
    summary="Point an alias at a version, once the version reproduces its golden set",
    description="`production` is what the bare name serves; `shadow` scores live traffic beside it, never "
    "returned; other names are free. Recorded in the alias history with the key that asked.",
    opt={SCOPE: Scope.ADMIN, BODY: "version"},
    responses=errors(400, 404, 409, 413, 415, 503, *DENIALS, said=_SAID),
    **_COMMON,
)
async def move_alias(request: Request[Any, Any, Any], models: Models, lifecycle: Lifecycle) -> AliasMove:
    name, alias = _target(request, models)
    body = await read_json(request, _TARGET)
    change = await _lifecycle(lifecycle).move(name, alias, body.version, by=changed_by(request))
    return AliasMove.of(change)


@post(
    f"{_PATH}/rollback",
    summary="Point an alias back at the version it named before its latest change (checked again)",
    description="An alias that was new is removed (for `production`: the name serves its newest version).",
    opt={SCOPE: Scope.ADMIN},
    responses=errors(400, 404, 409, 503, *DENIALS, said=_SAID),
    **_COMMON,
)
async def roll_back_alias(request: Request[Any, Any, Any], models: Models, lifecycle: Lifecycle) -> AliasMove:
    name, alias = _target(request, models)
    change = await _lifecycle(lifecycle).rollback(name, alias, by=changed_by(request))
    return AliasMove.of(change)


@delete(
    _PATH,
    summary="Remove an alias (without `production`, the name serves its newest version)",
    opt={SCOPE: Scope.ADMIN},
    responses=errors(400, 404, 503, *DENIALS, said=_SAID),
    **_COMMON,
)
async def remove_alias(request: Request[Any, Any, Any], models: Models, lifecycle: Lifecycle) -> AliasMove:
    name, alias = _target(request, models)
    change = await _lifecycle(lifecycle).remove(name, alias, by=changed_by(request))
    return AliasMove.of(change)


HANDLERS = [move_alias, roll_back_alias, remove_alias]
