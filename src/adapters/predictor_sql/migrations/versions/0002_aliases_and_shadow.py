"""Model aliases (what `production` and other aliases name), their append-only history, shadow outputs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_alias_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=False),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("alias", sa.String(length=100), nullable=False),
        sa.Column("from_version", sa.String(length=100), nullable=True, comment="NULL: the alias was new"),
        sa.Column("to_version", sa.String(length=100), nullable=True, comment="NULL: the alias was removed"),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False, comment="key id, or OS user"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_alias_history")),
        comment="Every alias change, append-only, written with the change itself; rollback reads it.",
    )
    op.create_index(
        op.f("ix_model_alias_history_name_alias_id"),
        "model_alias_history",
        ["name", "alias", "id"],
        unique=False,
    )
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("alias", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "alias", name=op.f("pk_model_aliases")),
        comment="What each alias of a model names now; `production` is what the bare name serves.",
    )
    op.create_table(
        "shadow_outputs",
        sa.Column("prediction_id", sa.Uuid(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True, comment="predicted class, as text"),
        sa.Column(
            "label_is_int", sa.Boolean(), nullable=True, comment="the class was an integer: restores its type"
        ),
        sa.Column(
            "probability", sa.Double(), nullable=True, comment="binary: probability of the positive class"
        ),
        sa.Column(
            "probabilities",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
            comment="multiclass: class -> probability",
        ),
        sa.Column("value", sa.Double(), nullable=True, comment="regression: predicted value"),
        sa.Column("latency_ms", sa.Double(), nullable=False, comment="validation + inference of its batch"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            (
                "(task = 'binary' AND label IS NOT NULL AND label_is_int IS NOT NULL"
                " AND probability IS NOT NULL AND probabilities IS NULL AND value IS NULL)"
                " OR (task = 'multiclass' AND label IS NOT NULL AND label_is_int IS NOT NULL"
                " AND probabilities IS NOT NULL AND probability IS NULL AND value IS NULL)"
                " OR (task = 'regression' AND value IS NOT NULL AND label IS NULL AND label_is_int IS NULL"
                " AND probability IS NULL AND probabilities IS NULL)"
            ),
            name=op.f("ck_shadow_outputs_fields_of_task"),
        ),
        sa.CheckConstraint("latency_ms >= 0", name=op.f("ck_shadow_outputs_latency")),
        sa.CheckConstraint(
            "probability >= 0 AND probability <= 1", name=op.f("ck_shadow_outputs_probability")
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_shadow_outputs_model_version_id_model_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["model_inputs.prediction_id"],
            name=op.f("fk_shadow_outputs_prediction_id_model_inputs"),
        ),
        sa.PrimaryKeyConstraint("prediction_id", "model_version_id", name=op.f("pk_shadow_outputs")),
        comment="What a shadow version answered for a live input of the same id; never returned to a caller.",
    )


def downgrade() -> None:
    op.drop_table("shadow_outputs")
    op.drop_table("model_aliases")
    op.drop_index(op.f("ix_model_alias_history_name_alias_id"), table_name="model_alias_history")
    op.drop_table("model_alias_history")
