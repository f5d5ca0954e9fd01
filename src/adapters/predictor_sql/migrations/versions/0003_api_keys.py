"""API keys (hashed secrets, scopes, rate limits, revocation), and the key that asked on inputs and feedback.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10

On SQLite the two new foreign keys need the tables copied (Alembic's batch mode); on PostgreSQL they are
plain ALTER TABLEs, and the new columns are nullable with no default, so no row is rewritten.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False, comment="public: the <id> of pk_<id>_<secret>"),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "secret_sha256",
            sa.String(length=64),
            nullable=False,
            comment="SHA-256 of the secret, never the secret",
        ),
        sa.Column(
            "scopes",
            sa.String(length=100),
            nullable=False,
            comment="comma-separated: predict, read, feedback, admin",
        ),
        sa.Column(
            "rate", sa.Integer(), nullable=True, comment="requests per rate_window_s; NULL: not rate limited"
        ),
        sa.Column("rate_window_s", sa.Integer(), nullable=True),
        sa.Column(
            "burst",
            sa.Integer(),
            nullable=True,
            comment="requests at once after an idle spell (the token bucket's size)",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "revoked_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="NULL: active; set once by `predictor keys revoke`",
        ),
        sa.CheckConstraint("length(secret_sha256) = 64", name=op.f("ck_api_keys_secret_sha256")),
        sa.CheckConstraint("scopes <> ''", name=op.f("ck_api_keys_scopes")),
        sa.CheckConstraint(
            "(rate IS NULL AND rate_window_s IS NULL AND burst IS NULL)"
            " OR (rate >= 1 AND rate_window_s >= 1 AND burst >= 1)",
            name=op.f("ck_api_keys_rate"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("name", name=op.f("uq_api_keys_name")),
        comment="API keys: who may call the HTTP API, with which scopes and rate limit. Never deleted.",
    )
    for table, said in (("model_inputs", "asked"), ("prediction_feedback", "reported it")):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("key_id", sa.String(length=32), nullable=True, comment=f"the API key that {said}")
            )
            batch.create_foreign_key(op.f(f"fk_{table}_key_id_api_keys"), "api_keys", ["key_id"], ["id"])


def downgrade() -> None:
    for table in ("prediction_feedback", "model_inputs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"fk_{table}_key_id_api_keys"), type_="foreignkey")
            batch.drop_column("key_id")
    op.drop_table("api_keys")
