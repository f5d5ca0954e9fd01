"""sql/roles.sql: the application role records and reads predictions but cannot rewrite the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from predictor_core import Task
from predictor_sql import SqlPredictionStore
from tests.fakes import fake_service, toy_manifest
from tests.functional.test_sql_schema import SQL_DIR, sync_url

pytestmark = pytest.mark.postgres

MANIFEST = toy_manifest(Task.BINARY, name="roles")


@pytest.fixture
def app_login(fresh_pg_url: str) -> Iterator[str]:
    """An async URL of `fresh_pg_url` for a login role that is a member of predictor_app."""
    login = f"predictor_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(sync_url(fresh_pg_url), autocommit=True) as conn:
        conn.execute((SQL_DIR / "roles.sql").read_text())
        conn.execute((SQL_DIR / "roles.sql").read_text())  # idempotent
        conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE predictor_app")
    try:
        yield make_url(fresh_pg_url).set(username=login).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(sync_url(fresh_pg_url), autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {login}")
            conn.execute(f"DROP ROLE {login}")


async def test_app_role_records_but_cannot_update_or_delete(app_login: str) -> None:
    store = SqlPredictionStore(app_login)
    await store.start()
    try:
        service = fake_service([MANIFEST], store)[0]
        [prediction] = await service.predict([{"x": 1.0, "y": 2.0, "n": 1, "flag": True, "colour": "red"}])
        assert prediction.prediction_id is not None
        assert (await store.get(prediction.prediction_id)).prediction == prediction
        await service.record_feedback(prediction.prediction_id, "yes")
        health = await store.health()
        assert health.reachable
        assert health.durable
    finally:
        await store.close()

    forbidden = [
        "UPDATE model_outputs SET probability = 0.5",
        "UPDATE model_inputs SET request_id = 'forged'",
        "DELETE FROM model_outputs",
        "DELETE FROM model_inputs",
        "DELETE FROM prediction_feedback",
        "UPDATE model_versions SET sha256 = repeat('0', 64)",
        "TRUNCATE model_outputs",
        "DELETE FROM dataset_rows",
    ]
    with psycopg.connect(sync_url(app_login), autocommit=True) as conn:
        for statement in forbidden:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM model_outputs").fetchone() == (1,)
