"""sql/roles.sql: the application role records and reads predictions but cannot rewrite the audit trail."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from predictor_core import AccessControl, StoreRejected, Task, Unauthenticated, new_key
from predictor_sql import SqlKeyStore, SqlPredictionStore
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
        assert health.writable, health.detail  # the write probe needs no more than INSERT
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


@pytest.fixture
def login_in(fresh_pg_url: str) -> Iterator[Callable[[str], str]]:
    """Make login roles that are members of a group of sql/roles.sql; yields a maker of their URLs."""
    made: list[str] = []
    with psycopg.connect(sync_url(fresh_pg_url), autocommit=True) as conn:
        conn.execute((SQL_DIR / "roles.sql").read_text())

    def make(group: str) -> str:
        login = f"{group}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(sync_url(fresh_pg_url), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE {group}")
        made.append(login)
        return make_url(fresh_pg_url).set(username=login).render_as_string(hide_password=False)

    yield make
    with psycopg.connect(sync_url(fresh_pg_url), autocommit=True) as conn:
        for login in made:
            conn.execute(f"DROP OWNED BY {login}")
            conn.execute(f"DROP ROLE {login}")


async def test_only_the_admin_role_creates_and_revokes_keys_and_nobody_rewrites_one(login_in) -> None:
    admin_url, app_url = login_in("predictor_admin"), login_in("predictor_app")
    admin = SqlPredictionStore(admin_url)
    await admin.start()  # checks the schema revision: the admin role may read it
    try:
        keys = SqlKeyStore(admin.engine)
        key, token = new_key("ci", "predict", now=dt.datetime.now(dt.UTC))
        await keys.create(key)
        assert (await keys.revoke("ci", dt.datetime.now(dt.UTC))).revoked_at is not None
        [listed] = await keys.list_keys()
        assert listed.id == key.id
    finally:
        await admin.close()

    app = SqlPredictionStore(app_url)
    await app.start()
    try:
        access = AccessControl(SqlKeyStore(app.engine))
        with pytest.raises(Unauthenticated):
            await access.identify(token)  # the server reads keys, and this one is revoked
        other, _ = new_key("minted", "admin", now=dt.datetime.now(dt.UTC))
        with pytest.raises(StoreRejected, match="permission denied"):
            await SqlKeyStore(app.engine).create(other)
    finally:
        await app.close()

    with psycopg.connect(sync_url(app_url), autocommit=True) as conn:
        for statement in [
            "UPDATE api_keys SET revoked_at = NULL",
            "UPDATE api_keys SET scopes = 'admin'",
            "DELETE FROM api_keys",
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with psycopg.connect(sync_url(admin_url), autocommit=True) as conn:
        for statement in [
            "UPDATE api_keys SET scopes = 'admin'",
            f"UPDATE api_keys SET secret_sha256 = repeat('0', 64) WHERE id = '{key.id}'",
            "DELETE FROM api_keys",
            "TRUNCATE api_keys",
            "SELECT count(*) FROM model_inputs",
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
