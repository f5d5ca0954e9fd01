"""One contract for every KeyStore: the in-memory fake, SQLite and PostgreSQL keep API keys alike."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import msgspec
import pytest
import sqlalchemy as sa

from predictor_core import (
    AccessControl,
    KeyConflict,
    KeyNotFound,
    KeyStore,
    PredictionService,
    Scope,
    Unauthenticated,
    new_key,
    parse_rate,
)
from predictor_sql import SqlKeyStore, SqlPredictionStore, create_engine
from predictor_sql.tables import prediction_feedback
from tests.fakes import InMemoryKeyStore, InMemoryPredictionStore, fake_service

CREATED = dt.datetime(2026, 12, 10, 9, 30, 15, 123456, tzinfo=dt.UTC)
LATER = CREATED + dt.timedelta(hours=1)
ROW = {"x": 1.0, "y": 2.0, "n": 3, "flag": True, "colour": "red"}


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def keys(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[KeyStore]:
    if backend == "memory":
        yield InMemoryKeyStore()
        return
    engine = create_engine(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "fresh_pg_url"))
    try:
        yield SqlKeyStore(engine)
    finally:
        await engine.dispose()


async def test_keys_round_trip_with_scopes_limits_and_times(keys: KeyStore) -> None:
    plain, _ = new_key("plain", "predict", now=CREATED)
    limited, _ = new_key("limited", "read,admin,feedback", rate=parse_rate("600/min", 50), now=LATER)
    await keys.create(limited)
    await keys.create(plain)
    assert await keys.get(plain.id) == plain
    assert await keys.get(limited.id) == limited
    assert await keys.get("000000000000") is None
    assert await keys.list_keys() == [plain, limited]  # oldest first
    assert await keys.active_count() == 2


async def test_a_name_is_taken_for_good(keys: KeyStore) -> None:
    first, _ = new_key("ci", "predict", now=CREATED)
    await keys.create(first)
    await keys.revoke("ci", LATER)
    again, _ = new_key("ci", "read", now=LATER)
    with pytest.raises(KeyConflict, match="'ci' exists already"):
        await keys.create(again)
    assert await keys.list_keys() == [msgspec.structs.replace(first, revoked_at=LATER)]


async def test_revoking_sets_the_time_once_and_an_unknown_name_is_not_found(keys: KeyStore) -> None:
    key, _ = new_key("ci", "predict", now=CREATED)
    await keys.create(key)
    revoked = await keys.revoke("ci", LATER)
    assert revoked == msgspec.structs.replace(key, revoked_at=LATER)
    assert not revoked.active
    again = await keys.revoke("ci", LATER + dt.timedelta(days=1))
    assert again.revoked_at == LATER  # the first revocation stands
    assert await keys.get(key.id) == revoked
    assert await keys.active_count() == 0
    with pytest.raises(KeyNotFound, match="no API key named 'nobody'"):
        await keys.revoke("nobody", LATER)


async def test_the_access_check_refuses_a_revoked_key_once_its_cache_expired(keys: KeyStore) -> None:
    key, token = new_key("ci", "predict", now=CREATED)
    await keys.create(key)
    clock = [0.0]
    access = AccessControl(keys, clock=lambda: clock[0])
    assert (await access.admit(token, Scope.PREDICT)).key == key
    await keys.revoke("ci", LATER)
    clock[0] = 1.0
    with pytest.raises(Unauthenticated):
        await access.admit(token, Scope.PREDICT)


async def test_the_key_that_asked_is_recorded_with_predictions_and_feedback(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """The store writes the key id (a foreign key into api_keys on SQL) and reads it back."""
    if backend == "memory":
        keys: KeyStore = InMemoryKeyStore()
        store = InMemoryPredictionStore()
    else:
        store = SqlPredictionStore(
            request.getfixturevalue("sqlite_url" if backend == "sqlite" else "fresh_pg_url")
        )
        keys = SqlKeyStore(store.engine)
    await store.start()
    try:
        key, _ = new_key("asker", "predict,feedback", now=CREATED)
        await keys.create(key)
        service: PredictionService = fake_service(store=store)[0]
        [asked] = await service.predict([ROW], key_id=key.id)
        [anonymous] = await service.predict([ROW])
        assert asked.prediction_id is not None
        assert anonymous.prediction_id is not None
        assert (await store.get(asked.prediction_id)).key_id == key.id
        assert (await store.get(anonymous.prediction_id)).key_id is None
        feedback = await service.record_feedback(asked.prediction_id, "yes", key_id=key.id)
        assert feedback.key_id == key.id
        if isinstance(store, SqlPredictionStore):
            async with store.engine.connect() as conn:
                rows = (await conn.execute(sa.select(prediction_feedback.c.key_id))).all()
            assert [r.key_id for r in rows] == [key.id]
        else:
            assert [f.key_id for f in store.feedback] == [key.id]
    finally:
        await store.close()
