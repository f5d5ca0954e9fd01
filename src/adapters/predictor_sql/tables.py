"""The one MetaData of the audit trail; PostgreSQL is the reference, SQLite gets the same tables.

Choices made for volume (millions of predictions):
- prediction rows are keyed by the prediction id itself, a UUIDv7: unguessable for API users, yet ordered
  by time, so B-tree inserts stay at the right edge of the index like a sequence would;
- `created_at` of `model_inputs` has a BRIN index: tiny, and ideal for the time-range scans of the query
  scripts because rows arrive in time order;
- small tables (`model_versions`, `reference_datasets`) use integer identity keys that the wide tables
  reference with 4 bytes instead of repeating names;
- bounded `varchar`s for names, labels and request ids, `jsonb` only for the open-ended parts (features,
  class probabilities, manifests), `double precision` for scores so they round-trip exactly.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.schema import SchemaItem

__all__ = [
    "api_keys",
    "dataset_rows",
    "metadata",
    "model_alias_history",
    "model_aliases",
    "model_inputs",
    "model_outputs",
    "model_versions",
    "prediction_feedback",
    "reference_datasets",
    "shadow_outputs",
]

NAME_LENGTH = 100
LABEL_LENGTH = 200
REQUEST_ID_LENGTH = 128
CHANGED_BY_LENGTH = 200
KEY_ID_LENGTH = 32

JSONB = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
"""jsonb on PostgreSQL (indexable, compact), JSON text on SQLite; Python None is SQL NULL."""
BIGINT_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""SQLite only auto-increments an INTEGER PRIMARY KEY."""
TIMESTAMP = sa.DateTime(timezone=True)

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_TASKS = "('binary', 'multiclass', 'regression')"

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("name", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("version", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, comment="SHA-256 of the ONNX file"),
    sa.Column("task", sa.String(16), nullable=False),
    sa.Column("manifest", JSONB, nullable=False, comment="the bundle's manifest.json"),
    sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.text("CURRENT_TIMESTAMP")),
    sa.UniqueConstraint("name", "version"),
    sa.CheckConstraint(f"task IN {_TASKS}", name="task"),
    sa.CheckConstraint("length(sha256) = 64", name="sha256"),
    comment="Every model version that ever answered, with its full manifest.",
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column(
        "id", sa.String(KEY_ID_LENGTH), primary_key=True, comment="public: the <id> of pk_<id>_<secret>"
    ),
    sa.Column("name", sa.String(NAME_LENGTH), nullable=False, unique=True),
    sa.Column(
        "secret_sha256", sa.String(64), nullable=False, comment="SHA-256 of the secret, never the secret"
    ),
    sa.Column(
        "scopes", sa.String(100), nullable=False, comment="comma-separated: predict, read, feedback, admin"
    ),
    sa.Column("rate", sa.Integer, comment="requests per rate_window_s; NULL: not rate limited"),
    sa.Column("rate_window_s", sa.Integer),
    sa.Column("burst", sa.Integer, comment="requests at once after an idle spell (the token bucket's size)"),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Column("revoked_at", TIMESTAMP, comment="NULL: active; set once by `predictor keys revoke`"),
    sa.CheckConstraint("length(secret_sha256) = 64", name="secret_sha256"),
    sa.CheckConstraint("scopes <> ''", name="scopes"),
    sa.CheckConstraint(
        "(rate IS NULL AND rate_window_s IS NULL AND burst IS NULL)"
        " OR (rate >= 1 AND rate_window_s >= 1 AND burst >= 1)",
        name="rate",
    ),
    comment="API keys: who may call the HTTP API, with which scopes and rate limit. Never deleted.",
)

model_inputs = sa.Table(
    "model_inputs",
    metadata,
    sa.Column("prediction_id", sa.Uuid, primary_key=True, comment="UUIDv7: unguessable, time-ordered"),
    sa.Column("model_version_id", sa.Integer, sa.ForeignKey(model_versions.c.id), nullable=False),
    sa.Column("features", JSONB, nullable=False, comment="validated features as sent"),
    sa.Column("request_id", sa.String(REQUEST_ID_LENGTH)),
    sa.Column(
        "key_id", sa.String(KEY_ID_LENGTH), sa.ForeignKey(api_keys.c.id), comment="the API key that asked"
    ),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Index(None, "created_at", postgresql_using="brin"),
    # the prediction id rides along so a drift window joins model_outputs from the index alone (0004)
    sa.Index(None, "model_version_id", "created_at", postgresql_include=["prediction_id"]),
    sa.Index(None, "request_id"),
    comment="One row per predicted record: what the model was given.",
)


def _answer() -> list[SchemaItem]:
    """The columns and checks of one model answer, shared by live and shadow outputs."""
    return [
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("label", sa.String(LABEL_LENGTH), comment="predicted class, as text"),
        sa.Column("label_is_int", sa.Boolean, comment="the class was an integer: restores its type"),
        sa.Column("probability", sa.Double, comment="binary: probability of the positive class"),
        sa.Column("probabilities", JSONB, comment="multiclass: class -> probability"),
        sa.Column("value", sa.Double, comment="regression: predicted value"),
        sa.Column("latency_ms", sa.Double, nullable=False, comment="validation + inference of its batch"),
        sa.CheckConstraint("probability >= 0 AND probability <= 1", name="probability"),
        sa.CheckConstraint("latency_ms >= 0", name="latency"),
        sa.CheckConstraint(
            "(task = 'binary' AND label IS NOT NULL AND label_is_int IS NOT NULL AND probability IS NOT NULL"
            " AND probabilities IS NULL AND value IS NULL)"
            " OR (task = 'multiclass' AND label IS NOT NULL AND label_is_int IS NOT NULL"
            " AND probabilities IS NOT NULL AND probability IS NULL AND value IS NULL)"
            " OR (task = 'regression' AND value IS NOT NULL AND label IS NULL AND label_is_int IS NULL"
            " AND probability IS NULL AND probabilities IS NULL)",
            name="fields_of_task",
        ),
    ]


model_outputs = sa.Table(
    "model_outputs",
    metadata,
    sa.Column("prediction_id", sa.Uuid, sa.ForeignKey(model_inputs.c.prediction_id), primary_key=True),
    *_answer(),
    comment="The prediction made from the input of the same id; written in the same transaction.",
)

prediction_feedback = sa.Table(
    "prediction_feedback",
    metadata,
    sa.Column("id", BIGINT_KEY, sa.Identity(), primary_key=True),
    sa.Column(
        "prediction_id", sa.Uuid, sa.ForeignKey(model_inputs.c.prediction_id), nullable=False, index=True
    ),
    sa.Column("actual_label", sa.String(LABEL_LENGTH)),
    sa.Column("actual_is_int", sa.Boolean),
    sa.Column("actual_value", sa.Double),
    sa.Column("received_at", TIMESTAMP, nullable=False),
    sa.Column(
        "key_id",
        sa.String(KEY_ID_LENGTH),
        sa.ForeignKey(api_keys.c.id),
        comment="the API key that reported it",
    ),
    sa.CheckConstraint(
        "(actual_label IS NOT NULL AND actual_is_int IS NOT NULL AND actual_value IS NULL)"
        " OR (actual_label IS NULL AND actual_is_int IS NULL AND actual_value IS NOT NULL)",
        name="one_actual",
    ),
    comment="Ground truth reported later for a prediction (append-only; the latest one counts).",
)

reference_datasets = sa.Table(
    "reference_datasets",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("name", sa.String(NAME_LENGTH), nullable=False, unique=True),
    sa.Column("target_name", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("row_count", sa.Integer, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False, comment="SHA-256 of the imported rows"),
    sa.Column("imported_at", TIMESTAMP, nullable=False, server_default=sa.text("CURRENT_TIMESTAMP")),
    sa.CheckConstraint("row_count >= 0", name="row_count"),
    comment="A reference model's training data set, imported by `predictor db import-dataset`.",
)

dataset_rows = sa.Table(
    "dataset_rows",
    metadata,
    sa.Column(
        "dataset_id",
        sa.Integer,
        sa.ForeignKey(reference_datasets.c.id, ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("row_number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("features", JSONB, nullable=False),
    sa.Column("target", JSONB, nullable=False, comment="class label or value, typed as in the data"),
    comment="The rows of a reference data set: features plus target.",
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("name", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("alias", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("version", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("changed_at", TIMESTAMP, nullable=False),
    comment="What each alias of a model names now; `production` is what the bare name serves.",
)

model_alias_history = sa.Table(
    "model_alias_history",
    metadata,
    sa.Column("id", BIGINT_KEY, sa.Identity(), primary_key=True),
    sa.Column("name", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("alias", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("from_version", sa.String(NAME_LENGTH), comment="NULL: the alias was new"),
    sa.Column("to_version", sa.String(NAME_LENGTH), comment="NULL: the alias was removed"),
    sa.Column("changed_at", TIMESTAMP, nullable=False),
    sa.Column("changed_by", sa.String(CHANGED_BY_LENGTH), nullable=False, comment="key id, or OS user"),
    sa.Index(None, "name", "alias", "id"),
    comment="Every alias change, append-only, written with the change itself; rollback reads it.",
)

shadow_outputs = sa.Table(
    "shadow_outputs",
    metadata,
    sa.Column("prediction_id", sa.Uuid, sa.ForeignKey(model_inputs.c.prediction_id), primary_key=True),
    sa.Column("model_version_id", sa.Integer, sa.ForeignKey(model_versions.c.id), primary_key=True),
    *_answer(),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    comment="What a shadow version answered for a live input of the same id; never returned to a caller.",
)
