"""predictor_redis: per-key rate limits shared by every worker and replica, in Redis (redis-py asyncio).

Installed with the `redis` extra (`pip install "predictor-core[redis]"`); used when `PREDICTOR_REDIS_URL`
is set.
"""

from predictor_redis.limiter import RedisRateLimiter

__all__ = ["RedisRateLimiter"]
