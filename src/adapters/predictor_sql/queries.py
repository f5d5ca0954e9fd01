"""The read side for the query scripts: recorded predictions and their statistics, with plain rows out.

The same questions in plain SQL live in `sql/queries/` for people who prefer psql.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from predictor_sql.errors import translate_db_errors
from predictor_sql.tables import (
    model_inputs,
    model_outputs,
    model_versions,
    prediction_feedback,
    shadow_outputs,
)

__all__ = ["COMPARE_COLUMNS", "PREDICTION_COLUMNS", "Stats", "compare", "predictions", "stats"]

PREDICTION_COLUMNS = (
    "prediction_id",
    "created_at",
    "model",
    "version",
    "task",
    "label",
    "probability",
    "probabilities",
    "value",
    "latency_ms",
    "request_id",
    "features",
)


def _joined() -> Any:
    return model_inputs.join(
        model_outputs, model_outputs.c.prediction_id == model_inputs.c.prediction_id
    ).join(model_versions, model_versions.c.id == model_inputs.c.model_version_id)


def _filters(
    model: str | None, version: str | None, since: dt.datetime | None, until: dt.datetime | None
) -> list[Any]:
    where = []
    if model is not None:
        where.append(model_versions.c.name == model)
    if version is not None:
        where.append(model_versions.c.version == version)
    if since is not None:
        where.append(model_inputs.c.created_at >= since)
    if until is not None:
        where.append(model_inputs.c.created_at < until)
    return where


async def predictions(
    engine: AsyncEngine,
    *,
    model: str | None = None,
    version: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    label: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Recorded predictions, newest first, as dicts keyed by PREDICTION_COLUMNS."""
    where = _filters(model, version, since, until)
    if label is not None:
        where.append(model_outputs.c.label == label)
    query = (
        sa.select(
            model_inputs.c.prediction_id,
            model_inputs.c.created_at,
            model_versions.c.name.label("model"),
            model_versions.c.version,
            model_outputs.c.task,
            model_outputs.c.label,
            model_outputs.c.label_is_int,
            model_outputs.c.probability,
            model_outputs.c.probabilities,
            model_outputs.c.value,
            model_outputs.c.latency_ms,
            model_inputs.c.request_id,
            model_inputs.c.features,
        )
        .select_from(_joined())
        .where(*where)
        .order_by(model_inputs.c.created_at.desc(), model_inputs.c.prediction_id.desc())
        .limit(limit)
    )
    with translate_db_errors("query predictions"):
        async with engine.connect() as conn:
            result = await conn.execute(query)
            rows = [dict(row._mapping) for row in result]
    for row in rows:  # SQLite hands back naive UTC
        row["created_at"] = row["created_at"].replace(tzinfo=row["created_at"].tzinfo or dt.UTC)
        if row.pop("label_is_int"):  # the label as the model gives it, as HTTP answers it
            row["label"] = int(row["label"])
    return rows


@dataclass(frozen=True, slots=True)
class Stats:
    counts: list[dict[str, Any]]
    """model, version, label, predictions: how many predictions of each label per model version."""
    latency: list[dict[str, Any]]
    """model, version, predictions, p50_ms, p95_ms, p99_ms."""
    accuracy: list[dict[str, Any]]
    """model, version, with_feedback, correct, accuracy (classifiers) or mae (regression)."""


async def stats(
    engine: AsyncEngine,
    *,
    model: str | None = None,
    version: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Stats:
    """Counts per model, version and label; latency percentiles; live accuracy where feedback exists."""
    where = _filters(model, version, since, until)
    key = (model_versions.c.name.label("model"), model_versions.c.version)
    counts_query = (
        sa.select(*key, model_outputs.c.label, sa.func.count().label("predictions"))
        .select_from(_joined())
        .where(*where)
        .group_by(*key, model_outputs.c.label)
        .order_by(*key, model_outputs.c.label)
    )
    with translate_db_errors("compute statistics"):
        async with engine.connect() as conn:
            counts = [dict(r._mapping) for r in await conn.execute(counts_query)]
            latency = await _latency(conn, where)
            accuracy = await _accuracy(conn, where)
    return Stats(counts=counts, latency=latency, accuracy=accuracy)


async def _latency(conn: AsyncConnection, where: Sequence[Any]) -> list[dict[str, Any]]:
    key = (model_versions.c.name.label("model"), model_versions.c.version)
    quantiles = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}
    if conn.dialect.name == "postgresql":
        # percentiles computed in the database: no latency column travels to the client
        columns = [
            sa.func.percentile_cont(q).within_group(model_outputs.c.latency_ms).label(name)
            for name, q in quantiles.items()
        ]
        query = (
            sa.select(*key, sa.func.count().label("predictions"), *columns)
            .select_from(_joined())
            .where(*where)
            .group_by(*key)
            .order_by(*key)
        )
        return [dict(r._mapping) for r in await conn.execute(query)]
    # SQLite has no percentile function: the embedded default holds little enough to sort here.
    rows = await conn.execute(
        sa.select(*key, model_outputs.c.latency_ms).select_from(_joined()).where(*where).order_by(*key)
    )
    groups: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        groups.setdefault((row.model, row.version), []).append(row.latency_ms)
    return [
        {"model": m, "version": v, "predictions": len(values)}
        | {name: _percentile(sorted(values), q) for name, q in quantiles.items()}
        for (m, v), values in groups.items()
    ]


def _percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _latest_feedback() -> Any:
    """Feedback rows, the latest one per prediction only (a later correction replaces an earlier one)."""
    latest = (
        sa.select(sa.func.max(prediction_feedback.c.id).label("id"))
        .group_by(prediction_feedback.c.prediction_id)
        .subquery()
    )
    return prediction_feedback.join(latest, latest.c.id == prediction_feedback.c.id)


async def _accuracy(conn: AsyncConnection, where: Sequence[Any]) -> list[dict[str, Any]]:
    feedback = _latest_feedback()
    key = (model_versions.c.name.label("model"), model_versions.c.version, model_outputs.c.task)
    correct = sa.func.sum(sa.case((prediction_feedback.c.actual_label == model_outputs.c.label, 1), else_=0))
    error = sa.func.avg(sa.func.abs(prediction_feedback.c.actual_value - model_outputs.c.value))
    query = (
        sa.select(*key, sa.func.count().label("with_feedback"), correct.label("correct"), error.label("mae"))
        .select_from(
            _joined().join(feedback, prediction_feedback.c.prediction_id == model_inputs.c.prediction_id)
        )
        .where(*where)
        .group_by(*key)
        .order_by(*key)
    )
    out = []
    for row in await conn.execute(query):
        entry = {"model": row.model, "version": row.version, "with_feedback": row.with_feedback}
        if row.task == "regression":
            entry |= {"mae": float(row.mae)}
        else:
            entry |= {"correct": int(row.correct), "accuracy": int(row.correct) / row.with_feedback}
        out.append(entry)
    return out


COMPARE_COLUMNS = (
    "model",
    "live_version",
    "shadow_version",
    "task",
    "pairs",
    "label_agreement",
    "mean_abs_diff",
    "max_abs_diff",
    "with_feedback",
    "live_accuracy",
    "shadow_accuracy",
    "live_mae",
    "shadow_mae",
)


async def compare(
    engine: AsyncEngine,
    model: str,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Live against shadow answers of the same inputs, per (live version, shadow version).

    `label_agreement` is the share of identical labels; the differences are |Δ| of the positive-class
    probability (binary), of every class probability (multiclass: the largest per record) or of the value
    (regression). Where feedback exists, each side's accuracy (or MAE) against the latest ground truth.
    """
    live_version, shadow_version = model_versions.alias("live"), model_versions.alias("shadow")
    live, shadow = model_outputs, shadow_outputs
    feedback = _latest_feedback()
    query = (
        sa.select(
            live_version.c.version.label("live_version"),
            shadow_version.c.version.label("shadow_version"),
            live.c.task,
            live.c.label,
            live.c.probability,
            live.c.probabilities,
            live.c.value,
            shadow.c.label.label("s_label"),
            shadow.c.probability.label("s_probability"),
            shadow.c.probabilities.label("s_probabilities"),
            shadow.c.value.label("s_value"),
            prediction_feedback.c.actual_label,
            prediction_feedback.c.actual_value,
        )
        .select_from(
            shadow.join(live, live.c.prediction_id == shadow.c.prediction_id)
            .join(model_inputs, model_inputs.c.prediction_id == shadow.c.prediction_id)
            .join(live_version, live_version.c.id == model_inputs.c.model_version_id)
            .join(shadow_version, shadow_version.c.id == shadow.c.model_version_id)
            .outerjoin(feedback, prediction_feedback.c.prediction_id == shadow.c.prediction_id)
        )
        .where(live_version.c.name == model)
        .order_by(live_version.c.version, shadow_version.c.version)
    )
    if since is not None:
        query = query.where(model_inputs.c.created_at >= since)
    if until is not None:
        query = query.where(model_inputs.c.created_at < until)
    groups: dict[tuple[str, str], list[Any]] = {}
    with translate_db_errors("compare live and shadow predictions"):
        async with engine.connect() as conn:
            for row in await conn.execute(query):
                groups.setdefault((row.live_version, row.shadow_version), []).append(row)
    return [_compared(model, key, rows) for key, rows in groups.items()]


def _compared(model: str, versions: tuple[str, str], rows: list[Any]) -> dict[str, Any]:
    task = rows[0].task
    if task == "regression":
        diffs = [abs(r.value - r.s_value) for r in rows if r.s_value is not None]
    elif task == "binary":
        diffs = [abs(r.probability - r.s_probability) for r in rows if r.s_probability is not None]
    else:
        diffs = [
            max(abs(p - (r.s_probabilities or {}).get(k, 0.0)) for k, p in r.probabilities.items())
            for r in rows
        ]
    entry: dict[str, Any] = {
        "model": model,
        "live_version": versions[0],
        "shadow_version": versions[1],
        "task": task,
        "pairs": len(rows),
        "label_agreement": None
        if task == "regression"
        else sum(r.label == r.s_label for r in rows) / len(rows),
        "mean_abs_diff": sum(diffs) / len(diffs) if diffs else None,
        "max_abs_diff": max(diffs, default=None),
    }
    if task == "regression":
        known = [r for r in rows if r.actual_value is not None]
        entry["with_feedback"] = len(known)
        if known:
            entry["live_mae"] = sum(abs(r.value - r.actual_value) for r in known) / len(known)
            entry["shadow_mae"] = sum(abs(r.s_value - r.actual_value) for r in known) / len(known)
        return entry
    known = [r for r in rows if r.actual_label is not None]
    entry["with_feedback"] = len(known)
    if known:
        entry["live_accuracy"] = sum(r.label == r.actual_label for r in known) / len(known)
        entry["shadow_accuracy"] = sum(r.s_label == r.actual_label for r in known) / len(known)
    return entry
