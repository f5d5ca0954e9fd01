"""predictor_sql: the audit trail in PostgreSQL (asyncpg) or SQLite (aiosqlite), via SQLAlchemy async Core."""

from predictor_sql.migrate import head_revision, upgrade

__all__ = ["head_revision", "upgrade"]
