"""`GET /models/{name}[/versions/{version}]/drift` and `.../quality`: monitoring from the audit trail.

Drift compares the window's recorded inputs and outputs with the version's training profile; quality
judges the window's predictions by the feedback reported for them. Both need the `read` scope.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Request, get
from litestar.exceptions import ValidationException
from litestar.params import Parameter

from predictor_core import (
    DriftReport,
    DriftThresholds,
    ModelMonitor,
    QualityReport,
    RecordingDisabled,
    Scope,
)
from predictor_litestar.access import SCOPE
from predictor_litestar.dependencies import Monitor
from predictor_litestar.openapi import DENIALS, errors
from predictor_litestar.routes.predict import model_reference

__all__ = ["HANDLERS", "get_drift", "get_quality"]

_SINCE = Parameter(
    description="Window start, inclusive: an RFC 3339 date-time (`2026-12-01T00:00:00Z`; without an "
    "offset, UTC). Default: a day before `until`."
)
_UNTIL = Parameter(description="Window end, exclusive: an RFC 3339 date-time. Default: now.")


def _monitor(monitor: ModelMonitor | None) -> ModelMonitor:
    if monitor is None:
        raise RecordingDisabled("this server records no predictions: there is nothing to monitor")
    return monitor


def _asked(
    request: Request[Any, Any, Any],
    monitor: ModelMonitor | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> tuple[ModelMonitor, str, str | None, dt.datetime, dt.datetime]:
    """What both routes are asked: the monitor, the model and version in the path, and the window."""
    found = _monitor(monitor)
    name, version = model_reference(request)
    assert name is not None  # both paths name the model
    try:
        start, end = found.window(since, until)
    except ValueError as exc:
        raise ValidationException(detail=str(exc)) from None
    return found, name, version, start, end


@get(
    ["/models/{name:str}/drift", "/models/{name:str}/versions/{version:str}/drift"],
    summary="Drift of a model version over a time window: PSI per feature and output against training",
    description="Counts the window's recorded predictions in the training bins the bundle carries and "
    "compares: `psi` per feature and per model output (`output.label`, `output.probability`, "
    "`output.value`), with `status` stable (PSI below `watch`, 0.1 by default), watch (up to `drift`, "
    "0.2), drift (above), or insufficient (fewer rows than `min_rows`). Without a version: the one the "
    "name serves. 404 for a version exported before manifest format 3 (no training profile).",
    tags=["monitoring"],
    responses=errors(400, 404, 503, *DENIALS),
    opt={SCOPE: Scope.READ},
)
async def get_drift(
    request: Request[Any, Any, Any],
    monitor: Monitor,
    since: dt.datetime | None = _SINCE,
    until: dt.datetime | None = _UNTIL,
    watch: float | None = Parameter(default=None, gt=0, description="PSI from which a feature is `watch`."),
    drift: float | None = Parameter(default=None, gt=0, description="PSI above which a feature is `drift`."),
    min_rows: int | None = Parameter(default=None, ge=1, description="Fewest rows for a verdict."),
) -> DriftReport:
    found, name, version, start, end = _asked(request, monitor, since, until)
    chosen = found.thresholds
    try:
        thresholds = DriftThresholds(
            watch=chosen.watch if watch is None else watch,
            drift=chosen.drift if drift is None else drift,
            min_rows=chosen.min_rows if min_rows is None else min_rows,
        )
    except ValueError as exc:
        raise ValidationException(detail=str(exc)) from None
    return await found.drift(name, version, since=start, until=end, thresholds=thresholds)


@get(
    ["/models/{name:str}/quality", "/models/{name:str}/versions/{version:str}/quality"],
    summary="Live quality of a model version from feedback, over a window and per period of it",
    description="Accuracy, log-loss and calibration (classifiers) or MAE, RMSE and bias (regressors) of "
    "the window's predictions that have feedback (the latest per prediction), with their count.",
    tags=["monitoring"],
    responses=errors(400, 404, 503, *DENIALS),
    opt={SCOPE: Scope.READ},
)
async def get_quality(
    request: Request[Any, Any, Any],
    monitor: Monitor,
    since: dt.datetime | None = _SINCE,
    until: dt.datetime | None = _UNTIL,
    periods: int = Parameter(default=10, ge=1, le=1000, description="Periods the window is cut into."),
) -> QualityReport:
    found, name, version, start, end = _asked(request, monitor, since, until)
    return await found.quality(name, version, since=start, until=end, periods=periods)


HANDLERS = [get_drift, get_quality]
