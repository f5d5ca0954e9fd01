"""The durability promise under load and outages: returned means recorded, never half a prediction."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import psycopg
import pytest
import sqlalchemy as sa
from asyncpg.exceptions._base import InternalClientError
from sqlalchemy import exc as sa_exc

from predictor_core import (
    BinaryPrediction,
    ConfigurationError,
    PredictionRecord,
    PredictionService,
    RegressionPrediction,
    StoreRejected,
    StoreUnavailable,
    Task,
    new_prediction_id,
)
from predictor_sql import SqlPredictionStore, create_engine, is_unavailable
from predictor_sql.bulk import driver_of, insert_rows
from predictor_sql.errors import translate_db_errors
from predictor_sql.held import HeldConnection
from predictor_sql.tables import model_inputs, model_outputs
from tests.fakes import fake_service, toy_manifest
from tests.functional.conftest import ThrowawayCluster, create_database, temporary_database
from tests.functional.server import free_port, running_server
from tests.functional.test_sql_schema import sync_url

MANIFEST = toy_manifest(Task.MULTICLASS, name="reliability")
ROW = {"x": 1.0, "y": 2.0, "n": 1, "flag": True, "colour": "blue"}


def service(store: SqlPredictionStore) -> PredictionService:
    return fake_service([MANIFEST], store)[0]


@contextlib.asynccontextmanager
async def started(url: str, **options: float) -> AsyncIterator[SqlPredictionStore]:
    store = SqlPredictionStore(url, **options)  # type: ignore[arg-type]
    await store.start()
    try:
        yield store
    finally:
        await store.close()


async def audit(store: SqlPredictionStore) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """The prediction ids with an input row, and those with an output row."""
    async with store.engine.connect() as conn:
        inputs = set((await conn.execute(sa.select(model_inputs.c.prediction_id))).scalars())
        outputs = set((await conn.execute(sa.select(model_outputs.c.prediction_id))).scalars())
    return inputs, outputs


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "fresh_pg_url")


async def test_200_concurrent_predictions_give_200_consistent_pairs(empty_url: str) -> None:
    async with started(empty_url, pool_timeout=30.0) as store:
        svc = service(store)
        results = await asyncio.gather(*(svc.predict([ROW], request_id=f"r{i}") for i in range(200)))
        returned = {p.prediction_id for [p] in results}
        inputs, outputs = await audit(store)
    assert len(returned) == 200
    assert inputs == outputs == returned


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_postgres_restart_mid_run_loses_nothing_returned(
    throwaway_pg: ThrowawayCluster, mode: str
) -> None:
    url = create_database(throwaway_pg.url)
    returned: list[uuid.UUID] = []
    failures: list[BaseException] = []
    restarted_at: list[float] = []
    async with started(url, pool_size=4, pool_timeout=0.5, connect_timeout=1.0, command_timeout=2.0) as store:
        svc = service(store)
        deadline = time.monotonic() + 30

        async def caller() -> None:
            # run until the database has been back for a while and this caller got through again
            while time.monotonic() < deadline:
                try:
                    [prediction] = await svc.predict([ROW])
                except Exception as exc:
                    failures.append(exc)
                    await asyncio.sleep(0.05)
                    continue
                assert prediction.prediction_id is not None
                returned.append(prediction.prediction_id)
                if restarted_at and time.monotonic() > restarted_at[0] + 0.5:
                    return

        async def outage() -> None:
            await asyncio.sleep(0.5)
            await asyncio.to_thread(throwaway_pg.stop, mode)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(throwaway_pg.start)
            restarted_at.append(time.monotonic())

        await asyncio.gather(outage(), *(caller() for _ in range(8)))
        assert (await store.health()).reachable
        inputs, outputs = await audit(store)

    assert failures, "the outage was not noticed"
    unexpected = [f for f in failures if not isinstance(f, StoreUnavailable)]
    assert not unexpected, unexpected[:3]
    assert all(f.retry_after > 0 for f in failures if isinstance(f, StoreUnavailable))
    assert set(returned) <= inputs, "a returned prediction was not recorded"
    assert inputs == outputs, "half a prediction was recorded"
    assert len(returned) == len(set(returned))


@pytest.mark.postgres
async def test_unreachable_database_is_a_retryable_error() -> None:
    store = SqlPredictionStore(
        f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x", connect_timeout=1.0
    )
    with pytest.raises(StoreUnavailable, match="retry later") as caught:
        await store.start()
    assert isinstance(caught.value.__cause__, OSError)
    health = await store.health()
    assert not health.reachable
    assert not health.durable
    await store.close()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_start_refuses_a_database_without_the_schema(
    backend: str, request: pytest.FixtureRequest, tmp_path
) -> None:
    if backend == "sqlite":
        urls = contextlib.nullcontext(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    else:
        urls = temporary_database(request.getfixturevalue("pg_server_url"), migrate=False)
    with urls as url:
        store = SqlPredictionStore(url)
        with pytest.raises(ConfigurationError, match="run `predictor db upgrade`"):
            await store.start()
        await store.close()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("ALTER DATABASE {db} SET synchronous_commit = off", "synchronous_commit=off"),
        ("ALTER TABLE model_outputs SET UNLOGGED", "model_outputs is not logged"),
    ],
)
async def test_health_refuses_settings_that_lose_acknowledged_rows(
    fresh_pg_url: str, change: str, named: str
) -> None:
    database = sa.engine.make_url(fresh_pg_url).database
    with psycopg.connect(sync_url(fresh_pg_url), autocommit=True) as conn:
        conn.execute(change.format(db=f'"{database}"'))
    async with started(fresh_pg_url) as store:
        health = await store.health()
    assert health.reachable
    assert not health.durable
    assert named in health.detail


READY = ("/health/ready", "/v2/health/ready")


@pytest.mark.postgres
def test_readiness_is_503_with_the_reason_when_the_database_is_not_durable(fresh_pg_url: str) -> None:
    database = sa.engine.make_url(fresh_pg_url).database
    with psycopg.connect(sync_url(fresh_pg_url), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = off')
    with running_server(fresh_pg_url) as base:
        for path in READY:
            answer = httpx.get(base + path, timeout=5)
            assert answer.status_code == 503, path
            assert answer.headers["retry-after"]
            assert "synchronous_commit=off" in answer.json()["detail"]
        health = httpx.get(base + "/health", timeout=5).json()
    assert health["status"] == "unavailable"
    assert health["database"]["durable"] is False
    assert health["database"]["writable"] is True


def _poll(base: str, status: int, within: float) -> tuple[float, httpx.Response]:
    """Seconds until every ready probe answers `status`, and the last answer; fails after `within`."""
    started = time.monotonic()
    while True:
        answers = [httpx.get(base + path, timeout=10) for path in READY]
        if all(a.status_code == status for a in answers):
            return time.monotonic() - started, answers[0]
        assert time.monotonic() - started < within, [(a.status_code, a.text) for a in answers]
        time.sleep(0.2)


@pytest.mark.postgres
async def test_a_writer_connection_left_mid_operation_is_an_outage_not_a_crash(
    fresh_pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncpg's InternalClientError ("another operation is in progress": a connection still consuming
    the error of a statement cut off mid-way) reached a caller raw once in CI, PostgreSQL stopped
    mid-load. It is StoreUnavailable, its connection thrown away, and the next call is recorded."""

    async def left_mid_operation(self: asyncpg.Connection, *args: object, **kwargs: object) -> None:
        raise InternalClientError("cannot switch to state 12; another operation (2) is in progress")

    async with started(fresh_pg_url) as store:
        service = fake_service([toy_manifest()], store)[0]
        await service.predict([ROW])  # registered, and a writer connection open
        monkeypatch.setattr(asyncpg.Connection, "execute", left_mid_operation)
        with pytest.raises(StoreUnavailable, match="another operation"):
            await service.predict([ROW])
        monkeypatch.undo()
        [prediction] = await service.predict([ROW])
        assert (await store.get(prediction.prediction_id)).prediction == prediction


async def test_a_group_whose_outputs_are_refused_leaves_none_of_its_inputs(empty_url: str) -> None:
    """Inputs and outputs are one transaction: the outputs' insert (the second statement) refused, the
    inputs inserted before it are rolled back, on both backends."""
    binary = toy_manifest(Task.BINARY, name="atomic")
    async with started(empty_url) as store:
        await store.register_model(binary)
        now = dt.datetime.now(dt.UTC)
        records = [
            PredictionRecord(
                prediction=BinaryPrediction(
                    model=binary.identity, label="yes", probability=p, prediction_id=new_prediction_id()
                ),
                features=ROW,
                created_at=now,
                latency_ms=0.1,
            )
            for p in (0.2, 0.4, 1.5)  # 1.5 breaks model_outputs' CHECK on probability
        ]
        with pytest.raises(StoreRejected, match="probability"):
            await store.record(records)
        assert await audit(store) == (set(), set())
        await store.record(records[:2])
        ids = {r.prediction_id for r in records[:2]}
        assert await audit(store) == (ids, ids)


@pytest.mark.postgres
async def test_postgres_keeps_every_float_a_prediction_carries(pg_url: str) -> None:
    """The writer sends rows as JSON, which has no NaN or infinity (and jsonb no -0.0): those, the
    extremes of float64 and values that only round-trip at 17 digits are read back as the floats they
    were (features too, within the magnitudes written without an exponent, which jsonb keeps: under
    1e16)."""
    regression = toy_manifest(Task.REGRESSION, name="floats")
    values = [math.nan, math.inf, -math.inf, 5e-324, 1.7976931348623157e308, -0.0, 0.1 + 0.2, 1e-300]
    features = {**ROW, "x": 2.220446049250313e-16, "y": -123456789012.34567}
    async with started(pg_url) as store:
        await store.register_model(regression)
        now = dt.datetime.now(dt.UTC)
        records = [
            PredictionRecord(
                prediction=RegressionPrediction(
                    model=regression.identity, value=v, prediction_id=new_prediction_id()
                ),
                features=features,
                created_at=now,
                latency_ms=1e-9,
            )
            for v in values
        ]
        await store.record(records)
        for record, value in zip(records, values, strict=True):
            stored = await store.get(record.prediction_id)
            assert isinstance(stored.prediction, RegressionPrediction)
            got = stored.prediction.value
            assert (math.isnan(got) and math.isnan(value)) or (
                got == value and math.copysign(1, got) == math.copysign(1, value)
            )
            assert stored.features == features
            assert stored.created_at == now
            assert stored.latency_ms == 1e-9


async def test_the_writer_keeps_one_connection_between_groups_and_replaces_it_after_a_failure(
    empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Groups are written on one connection checked out once (a checkout costs more CPU than a small
    group); a write that fails throws it away, and the next write takes a fresh one and is recorded."""
    async with started(empty_url) as store:
        checkouts: list[object] = []
        sa.event.listen(
            store._writer.sync_engine, "checkout", lambda dbapi, record, proxy: checkouts.append(dbapi)
        )
        lookups: list[object] = []  # the driver's own connection, looked up once per connection

        async def counted(conn: object) -> object:
            lookups.append(conn)
            return await driver_of(conn)  # type: ignore[arg-type]

        monkeypatch.setattr("predictor_sql.held.driver_of", counted)
        recording = service(store)
        for _ in range(3):
            await recording.predict([ROW])
        assert len(checkouts) == 1
        assert len(lookups) == 1

        async def refused(*args: object, **kwargs: object) -> None:
            raise sa_exc.DBAPIError("INSERT", {}, ConnectionResetError("reset"), connection_invalidated=True)

        monkeypatch.setattr("predictor_sql.held.insert_rows", refused)
        with pytest.raises(StoreUnavailable):
            await recording.predict([ROW])
        monkeypatch.setattr("predictor_sql.held.insert_rows", insert_rows)
        [prediction] = await recording.predict([ROW])
        assert len(checkouts) == 2
        assert len(lookups) == 2
        assert checkouts[1] is not checkouts[0]
        assert (await store.get(prediction.prediction_id)).prediction == prediction
        assert len((await audit(store))[0]) == 4


async def test_a_held_connection_refuses_a_second_write_while_one_is_under_way(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writes at once on one connection would interleave their transactions: a bug, said at once."""
    gate = asyncio.Event()

    async def waits(*args: object) -> None:
        await gate.wait()

    monkeypatch.setattr("predictor_sql.held.insert_rows", waits)
    engine = create_engine(sqlite_url)
    held = HeldConnection(engine)
    first = asyncio.create_task(held.write([]))
    await asyncio.sleep(0.05)
    with pytest.raises(RuntimeError, match="under way"):
        await held.write([])
    gate.set()
    await first
    await held.write([])  # free again
    await held.close()
    await engine.dispose()


@pytest.mark.postgres
async def test_a_recording_that_times_out_is_unavailable_and_the_next_one_is_recorded(
    fresh_pg_url: str,
) -> None:
    """A statement cut by the command timeout leaves its connection busy cancelling: it is thrown away
    at once, never closed gracefully (asyncpg's "another operation is in progress") nor handed out again.
    """
    async with started(fresh_pg_url, command_timeout=0.3) as store:
        service = fake_service([toy_manifest()], store)[0]
        await service.predict([ROW])  # registered: only the recordings meet the lock
        for _ in range(3):
            with psycopg.connect(sync_url(fresh_pg_url)) as conn:  # a transaction, until the rollback
                conn.execute("LOCK TABLE model_inputs IN ACCESS EXCLUSIVE MODE")
                outcomes = await asyncio.gather(
                    *(service.predict([ROW]) for _ in range(4)), return_exceptions=True
                )
                conn.rollback()
            assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
        [prediction] = await service.predict([ROW])
        assert (await store.get(prediction.prediction_id)).prediction == prediction


@pytest.mark.postgres
def test_readiness_is_503_while_the_prediction_tables_are_locked_and_200_after(
    fresh_pg_url: str,
) -> None:
    with running_server(fresh_pg_url) as base:
        _poll(base, 200, within=5)
        with psycopg.connect(sync_url(fresh_pg_url)) as conn:  # a transaction, until the rollback
            conn.execute("LOCK TABLE model_inputs IN ACCESS EXCLUSIVE MODE")
            waited, answer = _poll(base, 503, within=5)
            assert "model_inputs or model_outputs is locked" in answer.json()["detail"]
            assert answer.headers["retry-after"]
            health = httpx.get(base + "/health", timeout=10).json()
            assert (health["database"]["reachable"], health["database"]["writable"]) == (True, False)
            conn.rollback()
        recovered, _ = _poll(base, 200, within=5)
    assert waited < 4
    assert recovered < 4


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(104, "reset"),
        sa_exc.TimeoutError("QueuePool limit of size 4 overflow 0 reached"),
        sa_exc.DBAPIError("INSERT", {}, Exception("gone"), connection_invalidated=True),
        sqlite3.OperationalError("database is locked"),
        InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    ],
    ids=["refused", "reset", "pool", "invalidated", "sqlite-locked", "asyncpg-busy"],
)
def test_outages_in_every_form_are_recognised(exc: BaseException) -> None:
    assert is_unavailable(exc)
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = exc
    assert is_unavailable(wrapped)


def test_bugs_are_not_outages() -> None:
    assert not is_unavailable(sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not is_unavailable(ValueError("model not registered"))


@pytest.mark.parametrize(
    "exc",
    [
        sa_exc.DataError("INSERT", {}, Exception("value too long for type character varying(128)")),
        sa_exc.StatementError("cannot encode", "INSERT", {}, TypeError("not a UUID")),
        sqlite3.IntegrityError("FOREIGN KEY constraint failed"),
    ],
    ids=["driver", "statement", "sqlite"],
)
def test_what_the_database_refuses_crosses_the_port_as_store_rejected(exc: Exception) -> None:
    with (
        pytest.raises(StoreRejected, match="refused to record predictions") as caught,
        translate_db_errors("record predictions"),
    ):
        raise exc
    assert caught.value.__cause__ is exc
    with pytest.raises(KeyError), translate_db_errors("record predictions"):  # not the database's
        raise KeyError("a bug")


async def test_a_sqlite_recording_blocked_by_another_writer_is_unavailable_then_recorded(
    sqlite_url: str,
) -> None:
    """The bulk insert path's raw sqlite3 errors cross the port typed: locked is retryable, not a 500."""
    path = sqlite_url.split("///", 1)[1]
    store = SqlPredictionStore(sqlite_url, command_timeout=0.2)
    await store.start()
    service = fake_service([toy_manifest()], store)[0]
    await service.predict([ROW])  # the model is registered: only the recording meets the lock
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="database is locked"):
            await service.predict([ROW])
        other.execute("ROLLBACK")
        [prediction] = await service.predict([ROW])
        assert (await store.get(prediction.prediction_id)).prediction == prediction
    finally:
        other.close()
        await store.close()


async def test_sqlite_readiness_says_when_another_writer_holds_the_database(sqlite_url: str) -> None:
    """Another process's write transaction on the file: the store says it cannot record now, then can."""
    path = sqlite_url.split("///", 1)[1]
    store = SqlPredictionStore(sqlite_url, health_ttl=0.0, health_timeout=0.2)
    await store.start()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        assert (await store.health()).writable
        other.execute("BEGIN IMMEDIATE")  # the write lock, as a long migration or a backup tool holds it
        blocked = await store.health()
        assert blocked.reachable
        assert not blocked.writable
        assert "locked by another writer" in blocked.detail
        other.execute("ROLLBACK")
        assert (await store.health()).writable
        await fake_service([toy_manifest()], store)[0].predict([ROW])  # the probe left no lock behind
    finally:
        other.close()
        await store.close()
