"""predictor_sql: the audit trail in PostgreSQL (asyncpg) or SQLite (aiosqlite), via SQLAlchemy async Core.

Every prediction is recorded (validated input, output, model version) before it is returned; the schema
is versioned by Alembic migrations shipped inside this package (`upgrade(url)`).
"""

from predictor_sql.aliases import SqlAliasStore
from predictor_sql.durability import durability_problems
from predictor_sql.errors import is_unavailable, translate_db_errors
from predictor_sql.keys import SqlKeyStore
from predictor_sql.migrate import head_revision, upgrade
from predictor_sql.store import SqlPredictionStore, create_engine, redacted_url, sqlite_url_for

__all__ = [
    "SqlAliasStore",
    "SqlKeyStore",
    "SqlPredictionStore",
    "create_engine",
    "durability_problems",
    "head_revision",
    "is_unavailable",
    "redacted_url",
    "sqlite_url_for",
    "translate_db_errors",
    "upgrade",
]
