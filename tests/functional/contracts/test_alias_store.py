"""One contract for every AliasStore: the in-memory fake, SQLite and PostgreSQL keep aliases alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from predictor_core import AliasStore
from predictor_sql import SqlAliasStore, create_engine
from tests.fakes import InMemoryAliasStore


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def aliases(request: pytest.FixtureRequest) -> AsyncIterator[AliasStore]:
    if request.param == "memory":
        yield InMemoryAliasStore()
        return
    engine = create_engine(
        request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "fresh_pg_url")
    )
    try:
        yield SqlAliasStore(engine)
    finally:
        await engine.dispose()


async def test_moves_are_current_and_every_one_is_in_the_history(aliases: AliasStore) -> None:
    assert await aliases.aliases() == {}
    first = await aliases.move("m", "production", "1.0.0", by="alice")
    assert (first.from_version, first.to_version, first.changed_by) == (None, "1.0.0", "alice")
    await aliases.move("m", "production", "2.0.0", by="bob")
    await aliases.move("m", "shadow", "3.0.0", by="bob")
    await aliases.move("other", "production", "1", by="carol")
    assert await aliases.aliases() == {
        "m": {"production": "2.0.0", "shadow": "3.0.0"},
        "other": {"production": "1"},
    }
    history = await aliases.history("m", "production")
    assert [(c.from_version, c.to_version) for c in history] == [("1.0.0", "2.0.0"), (None, "1.0.0")]
    assert [c.alias for c in await aliases.history("m")] == ["shadow", "production", "production"]
    assert len(await aliases.history("m", limit=1)) == 1


async def test_removing_an_alias_is_a_change_too(aliases: AliasStore) -> None:
    await aliases.move("m", "shadow", "3.0.0", by="alice")
    removed = await aliases.move("m", "shadow", None, by="alice")
    assert (removed.from_version, removed.to_version) == ("3.0.0", None)
    assert await aliases.aliases() == {}
    assert [c.to_version for c in await aliases.history("m", "shadow")] == [None, "3.0.0"]
