"""SqlAuditReader: the audit trail read back for monitoring (the AuditReader port).

A drift window is counted where the rows are. On PostgreSQL two statements run side by side, one for
the features and one for the outputs, and each counts every column of the window in a single pass:
a feature's value is read from the recorded `jsonb` once per row, a number is put in its training bin
with `width_bucket(value, edges)` (the core's bucket rule), and `GROUPING SETS` counts each column's
buckets at once. The `(model_version_id, created_at)` index bounds both to the window, and carries the
prediction id so that the outputs' statement joins `model_outputs` without reading the wide inputs.
Only a few hundred (column, bucket, count) rows travel to the client. On SQLite the window's rows are
read in chunks and counted in Python with the core's functions (`predictor_core.drift.WindowCounter`),
which give the same counts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from predictor_core import Labelled, TrainingProfile, WindowSummary
from predictor_core.drift import (
    OUTPUT_LABEL,
    OUTPUT_PROBABILITY,
    OUTPUT_VALUE,
    CategoryProfile,
    Profile,
    WindowCounter,
    tally,
)
from predictor_sql.errors import translate_db_errors
from predictor_sql.store import _prediction, create_engine
from predictor_sql.tables import model_inputs, model_outputs, model_versions, prediction_feedback

__all__ = ["CHUNK_ROWS", "POOL_SIZE", "STATEMENT_TIMEOUT_S", "SqlAuditReader", "window_queries"]

CHUNK_ROWS = 10_000
"""Rows read and counted at a time where the counting happens in Python (SQLite)."""
STATEMENT_TIMEOUT_S = 300.0
"""How long one monitoring statement may run (`connect`), and wait for a free connection."""
POOL_SIZE = 4
"""Connections of a reader's own pool: two windows at once (each runs two statements side by side)."""
_BUILT = 64
"""Window statements kept built (a pair per version and bounds); past it they are built again."""

_OUTPUT_COLUMNS = {
    OUTPUT_LABEL: model_outputs.c.label,
    OUTPUT_PROBABILITY: model_outputs.c.probability,
    OUTPUT_VALUE: model_outputs.c.value,
}


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _bounds(since: dt.datetime | None, until: dt.datetime | None) -> dict[str, dt.datetime]:
    """The window's given ends, as the parameters `_in_window`'s clauses take."""
    return {k: v for k, v in (("since", since), ("until", until)) if v is not None}


def _in_window(bounds: Mapping[str, dt.datetime]) -> list[Any]:
    """`created_at` within the given ends, as bound parameters: one statement serves every window."""
    where = []
    if "since" in bounds:
        where.append(model_inputs.c.created_at >= sa.bindparam("since"))
    if "until" in bounds:
        where.append(model_inputs.c.created_at < sa.bindparam("until"))
    return where


class SqlAuditReader:
    """Monitoring reads over an engine: its own (`connect`), or one it is lent."""

    def __init__(self, engine: AsyncEngine, *, owned: bool = False) -> None:
        """Use `engine` for every query; `close` disposes of it only when `owned`."""
        self._engine = engine
        self._owned = owned
        self._built: dict[tuple[int, bytes, bool, bool], tuple[sa.Select[Any], sa.Select[Any]]] = {}

    @classmethod
    def connect(cls, url: str, *, timeout: float = STATEMENT_TIMEOUT_S) -> SqlAuditReader:
        """A reader with a small pool of its own and a long statement timeout.

        A window of a million predictions takes seconds, over the recording pool's 10 s statement
        limit, and a window holds two connections meanwhile: a pool of its own keeps monitoring from
        starving the recording of predictions. Nothing connects before the first read.
        """
        engine = create_engine(url, pool_size=POOL_SIZE, pool_timeout=timeout, command_timeout=timeout)
        return cls(engine, owned=True)

    async def close(self) -> None:
        """Dispose of the engine when it is the reader's own."""
        if self._owned:
            await self._engine.dispose()

    async def versions(self, name: str, /) -> list[str]:
        """The versions of `name` the store has registered."""
        query = sa.select(model_versions.c.version).where(model_versions.c.name == name)
        with translate_db_errors("read the model versions"):
            async with self._engine.connect() as conn:
                return list((await conn.execute(query)).scalars())

    async def window(
        self,
        name: str,
        version: str,
        profile: TrainingProfile,
        /,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> WindowSummary:
        """The version's recorded inputs and outputs in [since, until), counted in the profile's bins."""
        with translate_db_errors("count a drift window"):
            async with self._engine.connect() as conn:
                version_id = await _version_id(conn, name, version)
                if version_id is None:
                    return WindowCounter(profile).summary()
                bounds = _bounds(since, until)
                if conn.dialect.name != "postgresql":
                    where = [model_inputs.c.model_version_id == version_id, *_in_window(bounds)]
                    return await _window_in_python(conn, profile, where, bounds)
            statements = self._statements(version_id, profile, bounds)
            return await _window_in_sql(self._engine, profile, statements, bounds)

    def _statements(
        self, version_id: int, profile: TrainingProfile, bounds: Mapping[str, dt.datetime]
    ) -> tuple[sa.Select[Any], sa.Select[Any]]:
        """A version's two window statements, built once with the bounds as parameters.

        Building them (dozens of bucket expressions) and their cache key costs ~8 ms of CPU, more
        than counting the few minutes of predictions a drift gauge refresh reads.
        """
        key = (version_id, msgspec.msgpack.encode(profile), "since" in bounds, "until" in bounds)
        built = self._built.get(key)
        if built is None:
            if len(self._built) >= _BUILT:
                self._built.clear()
            where = [model_inputs.c.model_version_id == version_id, *_in_window(bounds)]
            built = self._built[key] = window_queries(profile, where)
        return built

    async def labelled(
        self,
        name: str,
        version: str,
        /,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[Labelled]:
        """The predictions in [since, until) that have feedback, each with its latest one, oldest first."""
        bounds = _bounds(since, until)
        latest = (
            sa.select(sa.func.max(prediction_feedback.c.id).label("id"))
            .group_by(prediction_feedback.c.prediction_id)
            .subquery()
        )
        query = (
            sa.select(
                model_inputs.c.prediction_id,
                model_inputs.c.created_at,
                model_outputs.c.task,
                model_outputs.c.label,
                model_outputs.c.label_is_int,
                model_outputs.c.probability,
                model_outputs.c.probabilities,
                model_outputs.c.value,
                model_versions.c.name,
                model_versions.c.version,
                model_versions.c.sha256,
                prediction_feedback.c.actual_label,
                prediction_feedback.c.actual_is_int,
                prediction_feedback.c.actual_value,
            )
            .select_from(
                model_inputs.join(
                    model_outputs, model_outputs.c.prediction_id == model_inputs.c.prediction_id
                )
                .join(model_versions, model_versions.c.id == model_inputs.c.model_version_id)
                .join(
                    prediction_feedback, prediction_feedback.c.prediction_id == model_inputs.c.prediction_id
                )
                .join(latest, latest.c.id == prediction_feedback.c.id)
            )
            .where(model_versions.c.name == name, model_versions.c.version == version)
            .where(*_in_window(bounds))
            .order_by(model_inputs.c.created_at, model_inputs.c.prediction_id)
        )
        with translate_db_errors("read feedback for live quality"):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query, bounds)).all()
        return [
            Labelled(created_at=_utc(row.created_at), prediction=_prediction(row), actual=_actual(row))
            for row in rows
        ]


def _actual(row: Any) -> Any:
    if row.actual_value is not None:
        return float(row.actual_value)
    return int(row.actual_label) if row.actual_is_int else row.actual_label


async def _version_id(conn: AsyncConnection, name: str, version: str) -> int | None:
    query = sa.select(model_versions.c.id).where(
        model_versions.c.name == name, model_versions.c.version == version
    )
    found: int | None = (await conn.execute(query)).scalar_one_or_none()
    return found


def _bucket(value: Any, profile: Profile) -> Any:
    """The SQL of a value's bucket key, as `predictor_core.drift.tally` reads it."""
    if isinstance(profile, CategoryProfile):
        return value
    if not profile.edges:  # training had no value: anything present is out of range
        return sa.case((value.is_(None), sa.null()), else_=sa.literal(1))
    return sa.func.width_bucket(value, sa.literal(list(profile.edges), postgresql.ARRAY(sa.Double)))


def window_queries(profile: TrainingProfile, where: list[Any]) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """The two PostgreSQL statements of a window: the features' buckets, and the outputs' buckets.

    Each reads the window's rows once and counts every column's values with `GROUPING SETS ((c0),
    (c1), ...)`; a result row is one (column, value, count), the column told by `grouping(c) = 0`.
    """
    json = sa.type_coerce(model_inputs.c.features, postgresql.JSONB)
    features = []
    for name, feature in profile.features.items():
        text = json[name].astext
        value = text if isinstance(feature, CategoryProfile) else sa.cast(text, sa.Double)
        features.append(_bucket(value, feature))
    outputs = [_bucket(_OUTPUT_COLUMNS[name], output) for name, output in profile.outputs.items()]
    joined = model_inputs.join(model_outputs, model_outputs.c.prediction_id == model_inputs.c.prediction_id)
    return (
        _grouping(sa.select(*_labelled(features)).where(*where)),
        _grouping(sa.select(*_labelled(outputs)).select_from(joined).where(*where)),
    )


def _labelled(columns: list[Any]) -> list[Any]:
    return [column.label(f"c{i}") for i, column in enumerate(columns)]


def _grouping(rows: sa.Select[Any]) -> sa.Select[Any]:
    width = len(rows.selected_columns)
    # OFFSET 0 keeps the subquery whole, so each bucket is computed once per row, not once per use
    window = rows.offset(0).subquery("w")
    keys = [window.c[f"c{i}"] for i in range(width)]
    grouped = sa.select(*keys, *(sa.func.grouping(k) for k in keys), sa.func.count())
    return grouped.group_by(sa.func.grouping_sets(*keys)) if keys else grouped


async def _window_in_sql(
    engine: AsyncEngine,
    profile: TrainingProfile,
    statements: tuple[sa.Select[Any], sa.Select[Any]],
    bounds: Mapping[str, dt.datetime],
) -> WindowSummary:
    """Features and outputs counted by two statements side by side (two pooled connections)."""
    features, outputs = statements
    counted_features, counted_outputs = await asyncio.gather(
        _counts(engine, features, bounds, len(profile.features)),
        _counts(engine, outputs, bounds, len(profile.outputs)),
    )
    return WindowSummary(
        rows=sum(counted_features[0].values()) if counted_features else 0,
        features={
            name: tally(part, counted)
            for (name, part), counted in zip(profile.features.items(), counted_features, strict=True)
        },
        outputs={
            name: tally(part, counted)
            for (name, part), counted in zip(profile.outputs.items(), counted_outputs, strict=True)
        },
    )


async def _counts(
    engine: AsyncEngine, query: sa.Select[Any], bounds: Mapping[str, dt.datetime], width: int
) -> list[dict[Any, int]]:
    """Value -> count for each of the `width` columns a `_grouping` query counts."""
    counted: list[dict[Any, int]] = [{} for _ in range(width)]
    if not width:
        return counted
    async with engine.connect() as conn, conn.begin():
        # compiling dozens of bucket expressions costs seconds and saves nothing on calls into jsonb
        await conn.execute(sa.text("SET LOCAL jit = off"))
        for row in await conn.execute(query, bounds):
            values = tuple(row)
            for i in range(width):
                if values[width + i] == 0:  # the row of a value of column i
                    counted[i][values[i]] = int(values[-1])
                    break
    return counted


async def _window_in_python(
    conn: AsyncConnection, profile: TrainingProfile, where: list[Any], bounds: Mapping[str, dt.datetime]
) -> WindowSummary:
    """The window's rows read in chunks and counted with the core's functions (SQLite)."""
    outputs = [_OUTPUT_COLUMNS[name].label(name) for name in profile.outputs]
    query = (
        sa.select(model_inputs.c.features, *outputs)
        .select_from(
            model_inputs.join(model_outputs, model_outputs.c.prediction_id == model_inputs.c.prediction_id)
        )
        .where(*where)
    )
    counter = WindowCounter(profile)
    result = await conn.stream(query, bounds)
    async for chunk in result.partitions(CHUNK_ROWS):
        counter.add(
            [row.features for row in chunk],
            [{name: row._mapping[name] for name in profile.outputs} for row in chunk],
        )
    return counter.summary()
