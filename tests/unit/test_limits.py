"""Token-bucket arithmetic and the per-process limiters: exact, bounded, and honest about what they count."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from predictor_core import (
    FallbackRateLimiter,
    InvalidKeySpec,
    LimiterUnavailable,
    LocalRateLimiter,
    RateLimit,
    parse_rate,
)
from predictor_core.limits import Bucket, decide, refill, take


@pytest.mark.parametrize(
    ("text", "burst", "expected"),
    [
        ("50/s", None, RateLimit(quota=50, window_s=1, burst=50)),
        ("50/s", 100, RateLimit(quota=50, window_s=1, burst=100)),
        ("600/min", None, RateLimit(quota=600, window_s=60, burst=600)),
        ("10000 / hour", 10, RateLimit(quota=10000, window_s=3600, burst=10)),
        ("5/10s", None, RateLimit(quota=5, window_s=10, burst=5)),
        ("100000/d", None, RateLimit(quota=100000, window_s=86400, burst=100000)),
    ],
)
def test_rates_are_read_as_quota_per_window(text: str, burst: int | None, expected: RateLimit) -> None:
    assert parse_rate(text, burst) == expected


@pytest.mark.parametrize("text", ["", "50", "50/", "/s", "fast", "50/fortnight", "-5/s", "0/s", "1.5/s"])
def test_unreadable_rates_are_refused_with_the_forms_that_work(text: str) -> None:
    with pytest.raises(InvalidKeySpec, match=r"50/s|at least 1"):
        parse_rate(text)


def test_a_burst_below_one_is_refused() -> None:
    with pytest.raises(InvalidKeySpec, match="at least 1"):
        parse_rate("5/s", 0)


def test_str_says_the_rate_as_it_was_given() -> None:
    assert str(parse_rate("50/s", 100)) == "50/s (burst 100)"
    assert str(parse_rate("600/min")) == "600/min (burst 600)"
    assert str(parse_rate("5/10s")) == "5/10s (burst 5)"


def test_a_fresh_bucket_lets_the_burst_through_then_refuses_with_the_wait() -> None:
    limit = parse_rate("10/s", 3)
    bucket = None
    decisions = []
    for _ in range(4):
        bucket, decision = take(bucket, limit, now=100.0)
        decisions.append(decision)
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[-1].retry_after == pytest.approx(0.1)
    assert decisions[-1].reset == pytest.approx(0.3)
    bucket, decision = take(bucket, limit, now=100.1)
    assert decision.allowed  # one token refilled in 0.1 s at 10/s


def test_a_bucket_never_holds_more_than_its_burst_and_a_clock_going_back_refills_nothing() -> None:
    limit = parse_rate("10/s", 5)
    assert refill(Bucket(0.0, 0.0), limit, now=3600.0) == 5.0
    assert refill(Bucket(2.0, 10.0), limit, now=9.0) == 2.0
    assert refill(None, limit, now=0.0) == 5.0


def test_decisions_count_whole_requests() -> None:
    limit = parse_rate("2/s", 4)
    decision = decide(limit, 2.9999999999, allowed=True)
    assert (decision.remaining, decision.retry_after) == (3, 0.0)
    decision = decide(limit, 0.5, allowed=False)
    assert (decision.remaining, decision.retry_after, decision.reset) == (0, 0.25, 1.75)


@settings(max_examples=200, deadline=None)
@given(
    quota=st.integers(1, 100),
    window=st.sampled_from([1, 10, 60]),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 2, allow_nan=False), min_size=1, max_size=200),
)
def test_no_window_ever_lets_more_through_than_the_burst_plus_the_refill(
    quota: int, window: int, burst: int, gaps: list[float]
) -> None:
    """Whatever the arrival times, from any request on, at most burst + rate × elapsed get through."""
    limit = RateLimit(quota=quota, window_s=window, burst=burst)
    now, bucket, allowed_at = 0.0, None, []
    for gap in gaps:
        now += gap
        bucket, decision = take(bucket, limit, now)
        assert 0.0 <= bucket.tokens <= burst
        assert decision.remaining <= burst
        if decision.allowed:
            allowed_at.append(now)
        else:
            assert decision.retry_after > 0
            assert decision.retry_after <= 1 / limit.per_second + 1e-9
    for i, start in enumerate(allowed_at):
        for j in range(i, len(allowed_at)):
            elapsed = allowed_at[j] - start
            assert j - i + 1 <= burst + elapsed * limit.per_second + 1e-6


@settings(max_examples=50, deadline=None)
@given(quota=st.integers(1, 1000), burst=st.integers(2, 100), seconds=st.integers(1, 20))
def test_a_steady_flood_gets_the_burst_plus_the_rate(quota: int, burst: int, seconds: int) -> None:
    """Asking far more often than allowed, exactly burst + rate × time get through (to one request).

    (With a burst of 1 a bucket that is full when no request comes wastes its refill: fewer get through.)
    """
    limit = RateLimit(quota=quota, window_s=1, burst=burst)
    step = min(1 / (4 * quota), seconds / (4 * (burst + quota * seconds)))
    bucket, allowed = None, 0
    for i in range(round(seconds / step) + 1):
        bucket, decision = take(bucket, limit, i * step)
        allowed += decision.allowed
    assert abs(allowed - (burst + quota * seconds)) <= 1


async def test_the_local_limiter_keeps_one_bucket_per_key() -> None:
    clock = [0.0]
    limiter = LocalRateLimiter(clock=lambda: clock[0])
    limit = parse_rate("1/s", 2)
    assert [(await limiter.take("a", limit)).allowed for _ in range(3)] == [True, True, False]
    assert (await limiter.take("b", limit)).allowed
    clock[0] = 1.0
    assert (await limiter.take("a", limit)).allowed
    assert not limiter.shared
    assert "per process" in limiter.description


async def test_the_local_limiter_forgets_full_buckets_when_it_holds_too_many() -> None:
    clock = [0.0]
    limiter = LocalRateLimiter(clock=lambda: clock[0], max_buckets=3)
    limit = parse_rate("1/s", 1)
    for key in "abc":
        await limiter.take(key, limit)
    clock[0] = 10.0  # every bucket is full again
    await limiter.take("d", limit)
    assert len(limiter._buckets) == 1
    clock[0] = 10.1
    for key in "efg":
        await limiter.take(key, limit)  # none is full: all are forgotten rather than growing past 3
    assert len(limiter._buckets) <= 3


class _Down:
    shared = True
    description = "a store that is down"

    def __init__(self) -> None:
        self.down = True

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def take(self, key_id: str, limit: RateLimit, /):
        if self.down:
            raise LimiterUnavailable("redis is down (fake)")
        return decide(limit, 0.0, allowed=True)


async def test_the_fallback_counts_per_process_while_the_shared_store_is_down(caplog) -> None:
    shared = _Down()
    limiter = FallbackRateLimiter(shared, LocalRateLimiter())
    limit = parse_rate("1/min", 1)
    assert (await limiter.take("a", limit)).allowed
    assert not (await limiter.take("a", limit)).allowed  # the per-process bucket counts meanwhile
    assert not limiter.shared
    assert "unreachable: redis is down" in limiter.description
    shared.down = False
    assert (await limiter.take("a", limit)).allowed
    assert limiter.shared
    assert limiter.description == "a store that is down"
    said = [r.getMessage() for r in caplog.records]
    assert sum("per process until" in m for m in said) == 1
    assert sum("shared again" in m for m in said) == 1


def test_rate_per_second_and_reset_agree() -> None:
    limit = parse_rate("600/min", 20)
    assert limit.per_second == 10
    assert math.isclose(decide(limit, 0.0, allowed=True).reset, 2.0)
