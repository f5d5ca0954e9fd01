"""Initial schema: model versions, inputs, outputs, feedback and the reference data sets.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False, comment="SHA-256 of the ONNX file"),
        sa.Column("task", sa.String(length=16), nullable=False),
        sa.Column(
            "manifest",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
            comment="the bundle's manifest.json",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "task IN ('binary', 'multiclass', 'regression')", name=op.f("ck_model_versions_task")
        ),
        sa.CheckConstraint("length(sha256) = 64", name=op.f("ck_model_versions_sha256")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_model_versions_name_version")),
        comment="Every model version that ever answered, with its full manifest.",
    )
    op.create_table(
        "reference_datasets",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("target_name", sa.String(length=100), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column(
            "fingerprint", sa.String(length=64), nullable=False, comment="SHA-256 of the imported rows"
        ),
        sa.Column(
            "imported_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint("row_count >= 0", name=op.f("ck_reference_datasets_row_count")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_datasets")),
        sa.UniqueConstraint("name", name=op.f("uq_reference_datasets_name")),
        comment="A reference model's training data set, imported by `predictor db import-dataset`.",
    )
    op.create_table(
        "dataset_rows",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("row_number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "features",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "target",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
            comment="class label or value, typed as in the data",
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["reference_datasets.id"],
            name=op.f("fk_dataset_rows_dataset_id_reference_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "row_number", name=op.f("pk_dataset_rows")),
        comment="The rows of a reference data set: features plus target.",
    )
    op.create_table(
        "model_inputs",
        sa.Column("prediction_id", sa.Uuid(), nullable=False, comment="UUIDv7: unguessable, time-ordered"),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column(
            "features",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
            comment="validated features as sent",
        ),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_inputs_model_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("prediction_id", name=op.f("pk_model_inputs")),
        comment="One row per predicted record: what the model was given.",
    )
    op.create_index(
        op.f("ix_model_inputs_created_at"),
        "model_inputs",
        ["created_at"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_index(
        op.f("ix_model_inputs_model_version_id_created_at"),
        "model_inputs",
        ["model_version_id", "created_at"],
        unique=False,
    )
    op.create_index(op.f("ix_model_inputs_request_id"), "model_inputs", ["request_id"], unique=False)
    op.create_table(
        "model_outputs",
        sa.Column("prediction_id", sa.Uuid(), nullable=False),
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
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
            comment="multiclass: class -> probability",
        ),
        sa.Column("value", sa.Double(), nullable=True, comment="regression: predicted value"),
        sa.Column("latency_ms", sa.Double(), nullable=False, comment="validation + inference of its batch"),
        sa.CheckConstraint(
            (
                "(task = 'binary' AND label IS NOT NULL AND label_is_int IS NOT NULL"
                " AND probability IS NOT NULL AND probabilities IS NULL AND value IS NULL)"
                " OR (task = 'multiclass' AND label IS NOT NULL AND label_is_int IS NOT NULL"
                " AND probabilities IS NOT NULL AND probability IS NULL AND value IS NULL)"
                " OR (task = 'regression' AND value IS NOT NULL AND label IS NULL AND label_is_int IS NULL"
                " AND probability IS NULL AND probabilities IS NULL)"
            ),
            name=op.f("ck_model_outputs_fields_of_task"),
        ),
        sa.CheckConstraint("latency_ms >= 0", name=op.f("ck_model_outputs_latency")),
        sa.CheckConstraint(
            "probability >= 0 AND probability <= 1", name=op.f("ck_model_outputs_probability")
        ),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["model_inputs.prediction_id"],
            name=op.f("fk_model_outputs_prediction_id_model_inputs"),
        ),
        sa.PrimaryKeyConstraint("prediction_id", name=op.f("pk_model_outputs")),
        comment="The prediction made from the input of the same id; written in the same transaction.",
    )
    op.create_table(
        "prediction_feedback",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=False),
            nullable=False,
        ),
        sa.Column("prediction_id", sa.Uuid(), nullable=False),
        sa.Column("actual_label", sa.String(length=200), nullable=True),
        sa.Column("actual_is_int", sa.Boolean(), nullable=True),
        sa.Column("actual_value", sa.Double(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            (
                "(actual_label IS NOT NULL AND actual_is_int IS NOT NULL AND actual_value IS NULL)"
                " OR (actual_label IS NULL AND actual_is_int IS NULL AND actual_value IS NOT NULL)"
            ),
            name=op.f("ck_prediction_feedback_one_actual"),
        ),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["model_inputs.prediction_id"],
            name=op.f("fk_prediction_feedback_prediction_id_model_inputs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction_feedback")),
        comment="Ground truth reported later for a prediction (append-only; the latest one counts).",
    )
    op.create_index(
        op.f("ix_prediction_feedback_prediction_id"), "prediction_feedback", ["prediction_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_prediction_feedback_prediction_id"), table_name="prediction_feedback")
    op.drop_table("prediction_feedback")
    op.drop_table("model_outputs")
    op.drop_index(op.f("ix_model_inputs_request_id"), table_name="model_inputs")
    op.drop_index(op.f("ix_model_inputs_model_version_id_created_at"), table_name="model_inputs")
    op.drop_index(op.f("ix_model_inputs_created_at"), table_name="model_inputs", postgresql_using="brin")
    op.drop_table("model_inputs")
    op.drop_table("dataset_rows")
    op.drop_table("reference_datasets")
    op.drop_table("model_versions")
