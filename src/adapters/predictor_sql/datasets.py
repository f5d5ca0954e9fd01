"""Bulk, idempotent import of a reference model's training data set into `dataset_rows`.

The caller (the CLI) hands plain rows: predictor_sql knows nothing of pandas or of where data sets come
from. One transaction per import: a data set is there whole, or not at all. Importing the same rows
again changes nothing (same fingerprint); changed rows replace the old ones.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from predictor_sql.errors import translate_db_errors
from predictor_sql.tables import dataset_rows, reference_datasets

__all__ = ["ImportResult", "import_rows", "plain"]

CHUNK_ROWS = 1000
"""Rows per executemany: one round trip each (asyncpg pipelines the statements of a chunk)."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    name: str
    rows: int
    changed: bool
    """False when the same rows were already imported (nothing was written)."""


def plain(value: Any) -> Any:
    """A JSON-ready scalar: numpy scalars become Python ones, NaN (pandas' missing) becomes None."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


async def import_rows(
    engine: AsyncEngine,
    name: str,
    target_name: str,
    rows: Sequence[tuple[Mapping[str, Any], Any]],
    *,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import `(features, target)` rows as data set `name`, replacing an older import of other rows.

    Args:
        engine: the database.
        name: the data set's name (usually the reference model's).
        target_name: what the target column means.
        rows: features (a mapping of plain scalars) and target per row.
        progress: called with the number of rows written after each chunk.
    """
    clean = [({k: plain(v) for k, v in features.items()}, plain(target)) for features, target in rows]
    fingerprint = hashlib.sha256(msgspec.json.encode([target_name, clean], order="sorted")).hexdigest()
    with translate_db_errors(f"import data set {name}"):
        async with engine.begin() as conn:
            existing = (
                await conn.execute(
                    sa.select(reference_datasets.c.id, reference_datasets.c.fingerprint).where(
                        reference_datasets.c.name == name
                    )
                )
            ).one_or_none()
            if existing is not None and existing.fingerprint == fingerprint:
                return ImportResult(name=name, rows=len(clean), changed=False)
            if existing is not None:
                await conn.execute(dataset_rows.delete().where(dataset_rows.c.dataset_id == existing.id))
                await conn.execute(reference_datasets.delete().where(reference_datasets.c.id == existing.id))
            dataset_id = (
                await conn.execute(
                    reference_datasets.insert()
                    .values(name=name, target_name=target_name, row_count=len(clean), fingerprint=fingerprint)
                    .returning(reference_datasets.c.id)
                )
            ).scalar_one()
            for start in range(0, len(clean), CHUNK_ROWS):
                chunk = clean[start : start + CHUNK_ROWS]
                await conn.execute(
                    dataset_rows.insert(),
                    [
                        {"dataset_id": dataset_id, "row_number": start + i, "features": f, "target": t}
                        for i, (f, t) in enumerate(chunk)
                    ],
                )
                if progress is not None:
                    progress(len(chunk))
    return ImportResult(name=name, rows=len(clean), changed=True)
