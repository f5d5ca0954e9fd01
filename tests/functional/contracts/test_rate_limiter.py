"""One contract for every RateLimiter: the per-process one and Redis take tokens alike, to the token."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from predictor_core import LimiterUnavailable, LocalRateLimiter, RateLimiter, parse_rate
from predictor_redis import RedisRateLimiter


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "local":
        yield LocalRateLimiter()
        return
    # The contract is the tokens, not the latency: 100 concurrent takes open 100 connections, and on a
    # loaded CI machine one connect outlived the product's 0.25 s (the unreachable test below keeps it).
    redis_limiter = RedisRateLimiter(
        request.getfixturevalue("redis_url"), prefix=f"predictor:test:{uuid.uuid4().hex}:", timeout=5.0
    )
    await redis_limiter.start()
    try:
        yield redis_limiter
    finally:
        await redis_limiter.close()


async def test_the_burst_passes_then_the_next_waits_about_one_token(limiter: RateLimiter) -> None:
    limit = parse_rate("10/s", 5)
    decisions = [await limiter.take("k", limit) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert 0.05 < decisions[-1].retry_after <= 0.1
    assert 0.4 < decisions[-1].reset <= 0.5
    await asyncio.sleep(decisions[-1].retry_after + 0.02)
    assert (await limiter.take("k", limit)).allowed


async def test_keys_have_buckets_of_their_own(limiter: RateLimiter) -> None:
    limit = parse_rate("1/min", 1)
    assert (await limiter.take("a", limit)).allowed
    assert not (await limiter.take("a", limit)).allowed
    assert (await limiter.take("b", limit)).allowed


async def test_concurrent_takes_never_share_a_token(limiter: RateLimiter) -> None:
    limit = parse_rate("1/min", 20)
    decisions = await asyncio.gather(*(limiter.take("hot", limit) for _ in range(100)))
    assert sum(d.allowed for d in decisions) == 20


async def test_a_flood_gets_the_burst_plus_the_rate(limiter: RateLimiter) -> None:
    limit = parse_rate("50/s", 10)
    allowed, started = 0, time.monotonic()
    while time.monotonic() - started < 1.0:
        allowed += (await limiter.take("flood", limit)).allowed
    elapsed = time.monotonic() - started
    assert abs(allowed - (10 + 50 * elapsed)) <= 3


@pytest.mark.redis
async def test_an_unreachable_redis_is_said_fast_with_no_password_and_then_left_alone() -> None:
    limiter = RedisRateLimiter("redis://:hunter2@127.0.0.1:9/0", timeout=0.2, cooldown=5.0)
    with pytest.raises(LimiterUnavailable, match=r"redis \(redis://127.0.0.1:9/0\) is unreachable") as caught:
        await limiter.start()
    assert "hunter2" not in str(caught.value)
    started = time.monotonic()
    with pytest.raises(LimiterUnavailable):
        await limiter.take("k", parse_rate("1/s"))
    with pytest.raises(LimiterUnavailable, match="failed less than 5 s ago"):
        await limiter.take("k", parse_rate("1/s"))
    assert time.monotonic() - started < 1.0
    await limiter.close()
