"""sql/schema.sql (for a DBA) and the Alembic migrations (`predictor db upgrade`) build the same schema."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

import predictor_sql
from predictor_sql import create_engine
from predictor_sql.tables import metadata
from tests.functional.conftest import temporary_database

SQL_DIR = Path(__file__).parents[2] / "sql"

CATALOG = {
    "columns": """
        SELECT table_name, column_name, data_type, character_maximum_length, is_nullable,
               column_default, is_identity, identity_generation, col_description(
                   format('%I.%I', table_schema, table_name)::regclass, ordinal_position)
        FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2""",
    "tables": """
        SELECT relname, relpersistence, obj_description(oid, 'pg_class') FROM pg_class
        WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1""",
    "revision": "SELECT version_num FROM alembic_version",
}


def sync_url(async_url: str) -> str:
    return make_url(async_url).set(drivername="postgresql").render_as_string(hide_password=False)


def catalog(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(sync_url(url)) as conn:
        return {name: conn.execute(query).fetchall() for name, query in CATALOG.items()}


@pytest.mark.postgres
def test_schema_sql_equals_the_migrations(pg_server_url: str, fresh_pg_url: str) -> None:
    with temporary_database(pg_server_url, migrate=False) as ddl_url:
        with psycopg.connect(sync_url(ddl_url)) as conn:
            conn.execute((SQL_DIR / "schema.sql").read_text())
        from_ddl = catalog(ddl_url)
    from_migrations = catalog(fresh_pg_url)
    assert len(from_migrations["tables"]) == 11
    for part in CATALOG:
        assert from_ddl[part] == from_migrations[part], part


@pytest.mark.postgres
def test_migrations_continue_from_the_ddl(pg_server_url: str) -> None:

    with temporary_database(pg_server_url, migrate=False) as ddl_url:
        with psycopg.connect(sync_url(ddl_url)) as conn:
            conn.execute((SQL_DIR / "schema.sql").read_text())
        predictor_sql.upgrade(ddl_url)  # already at head: nothing to do, nothing fails
        assert catalog(ddl_url)["revision"] == [(predictor_sql.head_revision(),)]


@pytest.mark.parametrize("script", sorted((SQL_DIR / "queries").glob("*.sql")), ids=lambda p: p.name)
@pytest.mark.postgres
def test_plain_sql_queries_run(pg_url: str, script: Path) -> None:
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed")
    variables = {
        "model": "m",
        "since": "2026-01-01",
        "until": "2027-01-01",
        "request_id": "r",
        "dataset": "d",
    }
    args = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script), sync_url(pg_url)]
    for name, value in variables.items():
        args[1:1] = ["-v", f"{name}={value}"]
    subprocess.run(args, check=True, capture_output=True, timeout=60)


def _metadata_diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return [d for d in compare_metadata(context, metadata) if not _unreflectable(connection, d)]


def _unreflectable(connection: Connection, difference: object) -> bool:
    """Not a difference: Alembic's own table, and SQLite identity columns (SQLite has no IDENTITY)."""
    if isinstance(difference, tuple) and difference[0] == "remove_table":
        return bool(difference[1].name == "alembic_version")
    [change] = difference if isinstance(difference, list) else [difference]
    return (
        connection.dialect.name == "sqlite"
        and change[0] == "modify_default"
        and isinstance(change[-1], sa.Identity)
    )


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_tables_py_equals_the_migrations(backend: str, request: pytest.FixtureRequest) -> None:
    """The MetaData the store and queries use is exactly what `predictor db upgrade` builds."""
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "fresh_pg_url")
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_metadata_diff)
    finally:
        await engine.dispose()
    assert diff == []
