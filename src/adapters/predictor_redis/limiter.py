"""RedisRateLimiter: one token bucket per API key in Redis, taken from atomically by a Lua script.

Every worker and replica that shares the Redis server draws from the same bucket, and the script reads,
refills, takes and writes in one step that Redis runs alone, so concurrent workers never both take the
last token. Time is Redis's own (`TIME`), so replicas with drifting clocks still agree. The arithmetic is
`predictor_core.limits`' (refill to at most the burst, take one token when there is one); a bucket's key
expires once it would be full again, which is the same as having no bucket.

Redis being slow or down never stalls a request for long: every call waits at most `timeout` seconds, and
after a failure Redis is not asked again for `cooldown` seconds; meanwhile `LimiterUnavailable` tells the
caller (the wiring puts a per-process limiter behind this one, see `FallbackRateLimiter`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from predictor_core import LimitDecision, LimiterUnavailable, RateLimit
from predictor_core.limits import decide

__all__ = ["TAKE_SCRIPT", "RedisRateLimiter"]

TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
elseif now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
else
  tokens = math.min(burst, tokens)
end
local allowed = 0
if tokens + 1e-9 >= 1 then
  tokens = math.max(0, tokens - 1)
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""
"""Refill, take one token if there is one, store: KEYS[1] the bucket, ARGV rate (tokens/s) and burst.

The same steps as `predictor_core.limits.take`, `EPSILON` included."""


def _where(url: str) -> str:
    """The Redis URL without user or password: scheme, host, port and database."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisRateLimiter:
    """Token buckets in Redis, shared by every process that uses the same server and prefix."""

    shared = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "predictor:ratelimit:",
        timeout: float = 0.25,
        cooldown: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Build the client; nothing connects before `start()` or the first call.

        Args:
            url: `redis://[[user]:password@]host[:port][/db]`, `rediss://...` or `unix://...`.
            prefix: put before each key id to name its bucket.
            timeout: seconds one call to Redis may take (connecting included).
            cooldown: seconds Redis is left alone after a failure.
            clock: a monotonic clock in seconds, for the cooldown.
        """
        self.where = _where(url)
        self._client: Any = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._script = self._client.register_script(TAKE_SCRIPT)
        self._prefix = prefix
        self._cooldown = cooldown
        self._clock = clock
        self._down_until = 0.0

    @property
    def description(self) -> str:
        return f"redis ({self.where}): shared by every worker and replica"

    async def start(self) -> None:
        """Ping the server. Raises LimiterUnavailable naming the server (never its password)."""
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    async def close(self) -> None:
        await self._client.aclose()

    async def take(self, key_id: str, limit: RateLimit, /) -> LimitDecision:
        """Take a token from the key's bucket in Redis. Raises LimiterUnavailable."""
        if self._clock() < self._down_until:
            raise LimiterUnavailable(f"redis ({self.where}) failed less than {self._cooldown:g} s ago")
        try:
            allowed, tokens = await self._script(
                keys=[self._prefix + key_id], args=[repr(limit.per_second), limit.burst]
            )
        except (RedisError, OSError) as exc:
            self._down_until = self._clock() + self._cooldown
            raise self._unavailable(exc) from exc
        return decide(limit, float(tokens), bool(allowed))

    def _unavailable(self, exc: BaseException) -> LimiterUnavailable:
        reason = str(exc).splitlines()[0][:200] if str(exc) else ""
        return LimiterUnavailable(f"redis ({self.where}) is unreachable: {type(exc).__name__}: {reason}")
