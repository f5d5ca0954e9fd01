"""API keys and the access check, with the in-memory key store: parsing, hashing, scopes, limits, cache."""

from __future__ import annotations

import datetime as dt
import hashlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from predictor_core import (
    KEY_CACHE_S,
    AccessControl,
    InvalidKeySpec,
    LocalRateLimiter,
    RateLimited,
    Scope,
    ScopeMissing,
    Unauthenticated,
    check_key_name,
    check_secret,
    hash_secret,
    new_key,
    parse_rate,
    parse_scopes,
    parse_token,
)
from tests.fakes import InMemoryKeyStore

NOW = dt.datetime(2026, 12, 10, tzinfo=dt.UTC)


def test_a_new_key_is_pk_id_secret_and_only_the_secret_hash_is_kept() -> None:
    key, token = new_key("ci", "predict,read", now=NOW)
    prefix, key_id, secret = token.split("_", 2)
    assert (prefix, key_id) == ("pk", key.id)
    assert len(key.id) == 12
    assert len(secret) == 43  # 256 bits, url-safe base64
    assert key.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest() == hash_secret(secret)
    assert secret not in msgspec.json.encode(key).decode()
    assert parse_token(token) == (key.id, secret)
    assert check_secret(key, secret)
    assert not check_secret(key, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    assert key.scopes == {Scope.PREDICT, Scope.READ}
    assert key.active


def test_two_keys_never_share_an_id_or_a_secret() -> None:
    made = [new_key(f"k{i}", "predict")[1] for i in range(200)]
    assert len({t.split("_")[1] for t in made}) == 200
    assert len(set(made)) == 200


@given(st.text(max_size=80))
def test_anything_that_is_not_a_key_parses_to_nothing_and_never_raises(text: str) -> None:
    parsed = parse_token(text)
    if parsed is not None:
        assert text == f"pk_{parsed[0]}_{parsed[1]}"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "pk",
        "pk_",
        "pk_0123456789ab",
        "pk_0123456789ab_short",
        "sk_0123456789ab_" + "a" * 43,
        "pk_0123456789AB_" + "a" * 43,
        "pk_0123456789ab_" + "a" * 42 + "!",
        "pk_0123456789ab_" + "a" * 44,
    ],
)
def test_malformed_keys_are_not_parsed(token: str) -> None:
    assert parse_token(token) is None


@pytest.mark.parametrize(
    ("given", "expected"), [("predict", {"predict"}), (" Read , ADMIN,", {"read", "admin"})]
)
def test_scopes_are_read_from_a_comma_separated_list(given: str, expected: set[str]) -> None:
    assert parse_scopes(given) == expected


@pytest.mark.parametrize(
    ("given", "said"), [("", "at least one scope"), ("predict,write", "unknown scope 'write'")]
)
def test_unknown_or_missing_scopes_are_refused_naming_the_known_ones(given: str, said: str) -> None:
    with pytest.raises(InvalidKeySpec, match=said) as caught:
        parse_scopes(given)
    assert "predict, read, feedback, admin" in str(caught.value)


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 101, "é", "a/b"])
def test_key_names_are_plain(name: str) -> None:
    with pytest.raises(InvalidKeySpec):
        check_key_name(name)
    assert check_key_name("ci-runner_2.eu") == "ci-runner_2.eu"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_every_bad_key_is_the_same_401_and_a_good_one_passes(clock: Clock) -> None:
    key, token = new_key("ci", "predict", now=NOW)
    revoked, revoked_token = new_key("old", "predict", now=NOW)
    store = InMemoryKeyStore(key, msgspec.structs.replace(revoked, revoked_at=NOW))
    access = AccessControl(store, clock=clock)
    with pytest.raises(Unauthenticated, match="needs an API key"):
        await access.identify(None)
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    unknown = "pk_000000000000_" + token.split("_", 2)[2]
    for bad in ("nonsense", wrong, unknown, revoked_token):
        with pytest.raises(Unauthenticated, match=r"^the API key is not valid$"):
            await access.identify(bad)
    assert await access.identify(token) == key


async def test_a_key_without_the_scope_gets_a_403_naming_it(clock: Clock) -> None:
    key, token = new_key("reader", "read,feedback", now=NOW)
    access = AccessControl(InMemoryKeyStore(key), clock=clock)
    with pytest.raises(ScopeMissing, match="needs the 'admin' scope, the key has feedback, read") as caught:
        await access.admit(token, Scope.ADMIN)
    assert caught.value.scope == "admin"
    admission = await access.admit(token, Scope.READ)
    assert (admission.key, admission.limit) == (key, None)


async def test_a_rate_limited_key_gets_its_burst_then_429_and_refused_calls_cost_nothing(
    clock: Clock,
) -> None:
    key, token = new_key("batch", "predict", rate=parse_rate("2/s", 3), now=NOW)
    access = AccessControl(InMemoryKeyStore(key), LocalRateLimiter(clock=clock), clock=clock)
    for _ in range(5):
        with pytest.raises(ScopeMissing):
            await access.admit(token, Scope.ADMIN)  # refused for its scope: takes no token
    remaining = [(await access.admit(token, Scope.PREDICT)).limit.remaining for _ in range(3)]  # type: ignore[union-attr]
    assert remaining == [2, 1, 0]
    with pytest.raises(RateLimited) as caught:
        await access.admit(token, Scope.PREDICT)
    assert caught.value.retry_after == pytest.approx(0.5)
    assert caught.value.limit == key.rate
    clock.now = 0.5
    assert (await access.admit(token, Scope.PREDICT)).limit is not None


async def test_keys_are_read_at_most_once_per_cache_period_and_a_revocation_lands_after_it(
    clock: Clock,
) -> None:
    key, token = new_key("ci", "predict", now=NOW)
    store = InMemoryKeyStore(key)
    access = AccessControl(store, clock=clock)
    for _ in range(50):
        await access.admit(token, Scope.PREDICT)
    assert store.reads == 1
    await store.revoke("ci", NOW)
    clock.now = KEY_CACHE_S - 0.01
    await access.admit(token, Scope.PREDICT)  # still trusted: read less than KEY_CACHE_S ago
    clock.now = KEY_CACHE_S
    with pytest.raises(Unauthenticated):
        await access.admit(token, Scope.PREDICT)
    assert store.reads == 2


async def test_unknown_ids_are_cached_too_and_the_cache_stays_bounded(clock: Clock, monkeypatch) -> None:
    monkeypatch.setattr("predictor_core.access.MAX_CACHED_KEYS", 10)
    store = InMemoryKeyStore()
    access = AccessControl(store, clock=clock)
    secret = "a" * 43
    for i in range(25):
        with pytest.raises(Unauthenticated):
            await access.identify(f"pk_{i:012x}_{secret}")
        with pytest.raises(Unauthenticated):
            await access.identify(f"pk_{i:012x}_{secret}")
    assert store.reads == 25
    assert len(access._cache) <= 10


async def test_any_active_sees_revocations() -> None:
    key, _ = new_key("only", "predict", now=NOW)
    store = InMemoryKeyStore(key)
    access = AccessControl(store)
    assert await access.any_active()
    await store.revoke("only", NOW)
    assert not await access.any_active()
