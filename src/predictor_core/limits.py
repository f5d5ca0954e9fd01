"""Per-key rate limits: a token bucket, its arithmetic, and the limiters that keep the buckets.

A key limited to `quota` requests per `window_s` seconds with a `burst` has a bucket that holds at most
`burst` tokens and refills at `quota / window_s` tokens a second; a request takes one token or is refused.
The arithmetic is here, once (`refill`, `decide`, `take`): the per-process `LocalRateLimiter` runs it in
this process, the Redis adapter runs the same steps in one atomic Lua script, so that every worker and
replica draws from one bucket per key. `FallbackRateLimiter` counts per process while the shared store
cannot be reached, rather than refusing every request or letting every request through.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

import msgspec

from predictor_core.errors import InvalidKeySpec, LimiterUnavailable

__all__ = [
    "Bucket",
    "FallbackRateLimiter",
    "LimitDecision",
    "LocalRateLimiter",
    "RateLimit",
    "RateLimiter",
    "decide",
    "parse_rate",
    "refill",
    "take",
]

log = logging.getLogger(__name__)

_WINDOWS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")
EPSILON = 1e-9
"""Tokens a bucket may miss and still hold a whole one: refills are floating-point sums of elapsed times."""
MAX_BUCKETS = 100_000
"""Most buckets a `LocalRateLimiter` keeps; beyond it the full ones (equal to no bucket) are dropped."""


class RateLimit(msgspec.Struct, frozen=True, kw_only=True):
    """At most `quota` requests per `window_s` seconds, of which up to `burst` may come at once."""

    quota: int
    window_s: int
    burst: int
    """The bucket's size: requests a key may send at once after being idle."""

    def __post_init__(self) -> None:
        if self.quota < 1 or self.window_s < 1 or self.burst < 1:
            raise InvalidKeySpec(
                f"a rate limit needs a quota, window and burst of at least 1, got {self.quota}/"
                f"{self.window_s}s with burst {self.burst}"
            )

    @property
    def per_second(self) -> float:
        """The refill rate in tokens a second."""
        return self.quota / self.window_s

    def __str__(self) -> str:
        window = {1: "s", 60: "min", 3600: "h", 86400: "d"}.get(self.window_s, f"{self.window_s}s")
        return f"{self.quota}/{window} (burst {self.burst})"


def parse_rate(text: str, burst: int | None = None) -> RateLimit:
    """`50/s`, `600/min`, `10000/h`, `100000/d` or `5/10s`; the burst defaults to the quota.

    Raises:
        InvalidKeySpec: not a rate this understands, or a quota or burst below 1.
    """
    found = _RATE.match(text.lower())
    unit = found and _WINDOWS.get(found.group(3))
    if found is None or unit is None:
        raise InvalidKeySpec(f"rate {text!r}: expected COUNT/UNIT such as 50/s, 600/min, 10000/h or 5/10s")
    quota = int(found.group(1))
    window = int(found.group(2) or 1) * unit
    return RateLimit(quota=quota, window_s=window, burst=quota if burst is None else burst)


class Bucket(NamedTuple):
    """A key's bucket: the tokens it held at `at` (seconds on the limiter's clock)."""

    tokens: float
    at: float


class LimitDecision(msgspec.Struct, frozen=True, kw_only=True):
    """What a bucket said about one request."""

    allowed: bool
    remaining: int
    """Whole tokens left after this request: requests the key may still send at once."""
    retry_after: float
    """Seconds until the next request fits (0 while tokens remain)."""
    reset: float
    """Seconds until the bucket is full again."""


def refill(bucket: Bucket | None, limit: RateLimit, now: float) -> float:
    """The tokens a bucket holds at `now`: a missing bucket is full, a bucket never exceeds the burst."""
    if bucket is None:
        return float(limit.burst)
    elapsed = max(0.0, now - bucket.at)  # a clock that stepped back refills nothing
    return min(float(limit.burst), bucket.tokens + elapsed * limit.per_second)


def decide(limit: RateLimit, tokens: float, allowed: bool) -> LimitDecision:
    """The decision once `tokens` are left in the bucket (after the request's token, when allowed)."""
    rate = limit.per_second
    return LimitDecision(
        allowed=allowed,
        remaining=max(0, math.floor(tokens + EPSILON)),
        retry_after=0.0 if tokens + EPSILON >= 1.0 else (1.0 - tokens) / rate,
        reset=max(0.0, (limit.burst - tokens) / rate),
    )


def take(bucket: Bucket | None, limit: RateLimit, now: float) -> tuple[Bucket, LimitDecision]:
    """Take one token from the bucket if it holds one: the bucket after, and the decision."""
    tokens = refill(bucket, limit, now)
    allowed = tokens + EPSILON >= 1.0
    if allowed:
        tokens = max(0.0, tokens - 1.0)
    return Bucket(tokens, now), decide(limit, tokens, allowed)


class RateLimiter(Protocol):
    """Keeps one token bucket per API key, and takes a token for each request."""

    @property
    def shared(self) -> bool:
        """True when every worker and replica draws from the same buckets (False: per process)."""
        ...

    @property
    def description(self) -> str:
        """Where the buckets live, in words for `/health` and the start-up line."""
        ...

    async def start(self) -> None:
        """Check the limiter can be used. Raises LimiterUnavailable."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def take(self, key_id: str, limit: RateLimit, /) -> LimitDecision:
        """Take a token from the key's bucket, or say when one will be there.

        Raises:
            LimiterUnavailable: the shared store cannot be reached now.
        """
        ...


class LocalRateLimiter:
    """Buckets in this process's memory: exact for one process, each worker counting on its own."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_buckets: int = MAX_BUCKETS
    ) -> None:
        """Keep buckets on `clock` (seconds), at most `max_buckets` of them."""
        self._clock = clock
        self._buckets: dict[str, tuple[Bucket, RateLimit]] = {}
        self._max = max_buckets

    shared = False
    description = "per process: each worker keeps its own buckets, so a key gets up to workers × its rate"

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._buckets.clear()

    async def take(self, key_id: str, limit: RateLimit, /) -> LimitDecision:
        now = self._clock()
        known = self._buckets.get(key_id)
        bucket, decision = take(known[0] if known and known[1] == limit else None, limit, now)
        if len(self._buckets) >= self._max and key_id not in self._buckets:
            self._forget_full(now)
        self._buckets[key_id] = (bucket, limit)
        return decision

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that are full again (as good as absent); all of them if that frees nothing."""
        full = [k for k, (b, lim) in self._buckets.items() if refill(b, lim, now) >= lim.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self._max:
            self._buckets.clear()


class FallbackRateLimiter:
    """A shared limiter, and a per-process one that counts while the shared one cannot be reached.

    A store outage then neither refuses every request nor lifts every limit; it is logged once when it
    starts and once when it ends, and `description` says which one counts now.
    """

    def __init__(self, shared: RateLimiter, fallback: RateLimiter) -> None:
        """Take tokens from `shared`, from `fallback` while `shared` raises LimiterUnavailable."""
        self._shared = shared
        self._fallback = fallback
        self._down: str | None = None

    @property
    def shared(self) -> bool:
        return self._down is None

    @property
    def description(self) -> str:
        if self._down is None:
            return self._shared.description
        return f"{self._fallback.description} (the shared store is unreachable: {self._down})"

    async def start(self) -> None:
        await self._shared.start()
        await self._fallback.start()

    async def close(self) -> None:
        try:
            await self._shared.close()
        finally:
            await self._fallback.close()

    async def take(self, key_id: str, limit: RateLimit, /) -> LimitDecision:
        try:
            decision = await self._shared.take(key_id, limit)
        except LimiterUnavailable as exc:
            if self._down is None:
                log.warning("rate limits counted per process until the shared store answers: %s", exc)
            self._down = str(exc)
            return await self._fallback.take(key_id, limit)
        if self._down is not None:
            log.warning("rate limits shared again: the shared store answers")
            self._down = None
        return decision
