"""PostgreSQL and SQLite fixtures shared by the functional tests.

The server comes from `PREDICTOR_TEST_DATABASE_URL` (an admin URL, e.g.
`postgresql://postgres@127.0.0.1:5432/postgres`) or else from a throwaway cluster started here with
initdb/pg_ctl, as the `postgres` user when the tests run as root (PostgreSQL refuses root). Each test run
works in databases it creates and drops itself, never in a shared one. Where no PostgreSQL can be had the
tests are skipped, except in CI (`CI=true`) where that is a failure.

Redis (for the shared rate limits) comes from `PREDICTOR_TEST_REDIS_URL` (`.ci/run` starts a server and
sets it); without it the Redis tests are skipped, and in CI that is a failure too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from sqlalchemy.engine import make_url

import predictor_sql
from tests.functional.server import free_port, running_server

PG_BIN = Path(os.environ.get("PREDICTOR_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


@dataclass
class ThrowawayCluster:
    """A PostgreSQL cluster of its own in a temporary directory, on a free port of 127.0.0.1."""

    directory: Path
    port: int
    fsync: bool = True

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def create(cls, *, fsync: bool = True) -> ThrowawayCluster:
        """Run initdb and start the server; raises RuntimeError saying why when that is impossible."""
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"no PostgreSQL binaries in {PG_BIN} (set PREDICTOR_TEST_PG_BIN)")
        # mkdtemp in /tmp (not pytest's 0700 tmp_path) so the postgres user can enter it.
        directory = Path(tempfile.mkdtemp(prefix="predictor-pg-"))
        cluster = cls(directory=directory, port=free_port(), fsync=fsync)
        try:
            if os.geteuid() == 0:
                shutil.chown(directory, user="postgres", group="postgres")
            cluster._pg("initdb", "-D", str(cluster.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
            cluster.start()
        except (OSError, LookupError, subprocess.CalledProcessError) as exc:
            cluster.destroy()
            detail = getattr(exc, "stderr", "") or exc
            raise RuntimeError(f"cannot start a throwaway PostgreSQL: {detail}") from exc
        return cluster

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        if not self.fsync:
            options += " -c fsync=off"
        self._pg(
            "pg_ctl", "-D", str(self.data), "-l", str(self.directory / "log"), "-o", options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def _pg(self, program: str, *args: str) -> None:
        command = [str(PG_BIN / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"no PostgreSQL: {reason}")


def create_database(server_url: str, *, migrate: bool = True) -> str:
    """Create a uniquely named database on the server, migrate it, and return its asyncpg URL."""
    name = f"predictor_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(drivername="postgresql+asyncpg", database=name)
    async_url = url.render_as_string(hide_password=False)
    if migrate:
        predictor_sql.upgrade(async_url)
    return async_url


def drop_database(server_url: str, async_url: str) -> None:
    name = make_url(async_url).database
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def temporary_database(server_url: str, *, migrate: bool = True) -> Iterator[str]:
    url = create_database(server_url, migrate=migrate)
    try:
        yield url
    finally:
        drop_database(server_url, url)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """An admin URL (`postgresql://user@host:port/db`) of a server the tests may create databases on."""
    url = os.environ.get("PREDICTOR_TEST_DATABASE_URL")
    if url:
        try:
            with psycopg.connect(url, connect_timeout=5):
                pass
        except psycopg.Error as exc:
            _unavailable(f"PREDICTOR_TEST_DATABASE_URL is unreachable: {exc}")
        yield url
        return
    try:
        cluster = ThrowawayCluster.create()
    except RuntimeError as exc:
        _unavailable(str(exc))
    try:
        yield cluster.url
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """`redis://...` of a server the tests may write `predictor:*` keys to (PREDICTOR_TEST_REDIS_URL)."""
    url = os.environ.get("PREDICTOR_TEST_REDIS_URL")
    if not url:
        _unavailable_redis("PREDICTOR_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)")
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
    except (redis.RedisError, OSError) as exc:
        _unavailable_redis(f"PREDICTOR_TEST_REDIS_URL {url} does not answer: {exc}")
    return url


def _unavailable_redis(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Redis is required in CI: {reason}")
    pytest.skip(f"no Redis: {reason}")


@pytest.fixture(scope="session")
def pg_url(pg_server_url: str) -> Iterator[str]:
    """`postgresql+asyncpg://...` of a migrated database of this test run (shared by its tests)."""
    with temporary_database(pg_server_url) as url:
        yield url


@pytest.fixture
def fresh_pg_url(pg_server_url: str) -> Iterator[str]:
    """A migrated database for this test alone, for tests that count rows or change settings."""
    with temporary_database(pg_server_url) as url:
        yield url


@pytest.fixture
def throwaway_pg() -> Iterator[ThrowawayCluster]:
    """A cluster this test may stop and start (never the shared server): for outage tests."""
    try:
        cluster = ThrowawayCluster.create()
    except RuntimeError as exc:
        _unavailable(str(exc))
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """`sqlite+aiosqlite:///<tmp>/test.db`, migrated."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    predictor_sql.upgrade(url)
    return url


@pytest.fixture(scope="module")
def server(pg_url: str) -> Iterator[str]:
    """A real `predictor serve` process on PostgreSQL, one per test module; yields its base URL."""
    with running_server(pg_url) as base:
        yield base
