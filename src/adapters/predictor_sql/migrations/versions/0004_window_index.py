"""The window index of `model_inputs` carries the prediction id (PostgreSQL).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10

A drift window (`predictor monitor drift`) counts the outputs of the window's predictions: with the
prediction id in the `(model_version_id, created_at)` index, that join reads the index alone
(an index-only scan) instead of the wide rows of recorded features. The index is rebuilt with
CREATE INDEX CONCURRENTLY under a temporary name and swapped in, so recording goes on meanwhile on a
large table. SQLite has no INCLUDE: its index stays as it is.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEX = "ix_model_inputs_model_version_id_created_at"
BUILDING = "ix_model_inputs_window_building"


def _rebuild(include: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():  # CONCURRENTLY cannot run inside a transaction
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {BUILDING}")  # left INVALID by an interrupted run
        op.execute(
            f"CREATE INDEX CONCURRENTLY {BUILDING} ON model_inputs (model_version_id, created_at){include}"
        )
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        op.execute(f"ALTER INDEX {BUILDING} RENAME TO {INDEX}")


def upgrade() -> None:
    _rebuild(" INCLUDE (prediction_id)")


def downgrade() -> None:
    _rebuild("")
