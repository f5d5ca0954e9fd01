"""API keys and scopes: what a key is, how it is checked, and the one access check every guarded call makes.

A key reads `pk_<id>_<secret>`. The id is public: it names the key in the audit trail, the alias history
and the logs, and finds its row. The secret is 256 random bits; only its SHA-256 is stored (a slow
password hash buys nothing against a secret nobody can guess, and would cost every request), and it is
compared in constant time (`hmac.compare_digest`). The full key is shown once, when it is created.

A key has scopes, each one a family of calls: `predict` (every predict and v2 infer route), `read`
(prediction lookups, models, aliases), `feedback` (ground truths) and `admin` (alias changes). No scope
implies another. A key may have a rate limit (see `predictor_core.limits`).

`AccessControl.admit(token, scope)` authenticates, authorises and takes a rate-limit token, in that
order: a request refused for its key or scope costs its key nothing. Verified keys are cached for at most
`KEY_CACHE_S` seconds per process, so a revocation reaches every worker and replica within about that.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec

from predictor_core.errors import InvalidKeySpec, RateLimited, ScopeMissing, Unauthenticated
from predictor_core.limits import LimitDecision, RateLimit, RateLimiter
from predictor_core.ports import KeyStore

__all__ = [
    "KEY_CACHE_S",
    "KEY_PREFIX",
    "AccessControl",
    "Admission",
    "ApiKey",
    "Scope",
    "check_key_name",
    "check_secret",
    "hash_secret",
    "new_key",
    "parse_scopes",
    "parse_token",
]

KEY_PREFIX = "pk"
KEY_CACHE_S = 1.0
"""Longest a process trusts what it read of a key: a revoked key is refused everywhere within about this."""
MAX_CACHED_KEYS = 4096
"""Most key ids remembered per process (unknown ones included); beyond it the expired ones are dropped."""
_ID_BYTES = 6
_SECRET_BYTES = 32
_ID = re.compile(r"^[0-9a-f]{12}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{43}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_NOWHERE = hashlib.sha256(b"no such key").hexdigest()


class Scope(enum.StrEnum):
    """A family of calls a key may make."""

    PREDICT = "predict"
    """Every predict route and the Open Inference Protocol's infer."""
    READ = "read"
    """Recorded predictions, models, aliases and their history."""
    FEEDBACK = "feedback"
    """Ground truths for recorded predictions."""
    ADMIN = "admin"
    """State changes: moving, rolling back and removing model aliases."""


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """An API key as stored: never its secret, only the secret's SHA-256."""

    id: str
    """Public: recorded with every prediction and feedback, shown in `predictor keys list`."""
    name: str
    scopes: frozenset[Scope]
    secret_sha256: str
    created_at: dt.datetime
    rate: RateLimit | None = None
    """None: not rate limited."""
    revoked_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Admission:
    """A request let through: the key that asked, and what its rate limit said (None: not limited)."""

    key: ApiKey
    limit: LimitDecision | None = None


def check_key_name(name: str) -> str:
    """The name, if it is 1 to 100 letters, digits, dots, dashes or underscores. Raises InvalidKeySpec."""
    if not _NAME.match(name):
        raise InvalidKeySpec(
            f"key name {name[:120]!r}: use 1 to 100 letters, digits, '.', '-' or '_', starting with a "
            "letter or digit"
        )
    return name


def parse_scopes(scopes: str | Iterable[str]) -> frozenset[Scope]:
    """Scopes from `predict,read` (or an iterable of names). Raises InvalidKeySpec naming the known ones."""
    names = [s.strip().lower() for s in (scopes.split(",") if isinstance(scopes, str) else scopes)]
    names = [n for n in names if n]
    values = [s.value for s in Scope]
    known = ", ".join(values)
    if not names:
        raise InvalidKeySpec(f"a key needs at least one scope: {known}")
    unknown = [n for n in names if n not in values]
    if unknown:
        raise InvalidKeySpec(f"unknown scope {unknown[0]!r}: the scopes are {known}")
    return frozenset(Scope(n) for n in names)


def hash_secret(secret: str) -> str:
    """The stored form of a key's secret: its SHA-256, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_secret(key: ApiKey, secret: str) -> bool:
    """Whether `secret` is the key's, compared in constant time."""
    return hmac.compare_digest(hash_secret(secret), key.secret_sha256)


def new_key(
    name: str,
    scopes: str | Iterable[str],
    *,
    rate: RateLimit | None = None,
    now: dt.datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key to store, and the full key to hand over once (`pk_<id>_<secret>`).

    Raises:
        InvalidKeySpec: an ill-formed name or an unknown scope.
    """
    key_id = secrets.token_hex(_ID_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    key = ApiKey(
        id=key_id,
        name=check_key_name(name),
        scopes=parse_scopes(scopes),
        secret_sha256=hash_secret(secret),
        created_at=now or dt.datetime.now(dt.UTC),
        rate=rate,
    )
    return key, f"{KEY_PREFIX}_{key_id}_{secret}"


def parse_token(token: str) -> tuple[str, str] | None:
    """The id and secret of a well-formed key; None for anything else (then no lookup is made)."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not _ID.match(key_id) or not _SECRET.match(secret):
        return None
    return key_id, secret


class AccessControl:
    """The access check of every guarded call: which key asks, whether it may, whether it may now."""

    def __init__(
        self,
        keys: KeyStore,
        limiter: RateLimiter | None = None,
        *,
        cache_s: float = KEY_CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Check keys against `keys` and rate limits with `limiter` (None: limits are not enforced).

        Args:
            keys: where the keys are stored.
            limiter: keeps the keys' token buckets.
            cache_s: how long a key read from the store is trusted; a revocation takes up to this long.
            clock: a monotonic clock in seconds, for the cache.
        """
        self._keys = keys
        self.limiter = limiter
        self._cache_s = cache_s
        self._clock = clock
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    async def identify(self, token: str | None) -> ApiKey:
        """The active key `token` is.

        Raises:
            Unauthenticated: no token, or a malformed, unknown, wrong or revoked one (never said which).
            StoreUnavailable: the key store cannot be read now.
        """
        if not token:
            raise Unauthenticated("this call needs an API key: send `Authorization: Bearer <key>`")
        parsed = parse_token(token)
        if parsed is None:
            raise Unauthenticated("the API key is not valid")
        key_id, secret = parsed
        key = await self._lookup(key_id)
        matches = hmac.compare_digest(hash_secret(secret), key.secret_sha256 if key is not None else _NOWHERE)
        if key is None or not matches or not key.active:
            raise Unauthenticated("the API key is not valid")
        return key

    async def admit(self, token: str | None, scope: Scope) -> Admission:
        """Let a call needing `scope` through, taking a token from the key's bucket.

        Raises:
            Unauthenticated: see `identify`.
            ScopeMissing: the key lacks `scope`.
            RateLimited: the key is over its limit.
            StoreUnavailable: the key store cannot be read now.
        """
        key = await self.identify(token)
        if scope not in key.scopes:
            held = ", ".join(sorted(key.scopes))
            raise ScopeMissing(
                f"key {key.id} may not do this: it needs the {scope.value!r} scope, the key has {held}",
                scope=scope.value,
            )
        if key.rate is None or self.limiter is None:
            return Admission(key)
        decision = await self.limiter.take(key.id, key.rate)
        if not decision.allowed:
            raise RateLimited(
                f"key {key.id} is limited to {key.rate}; retry after {decision.retry_after:.2f} s",
                limit=key.rate,
                decision=decision,
            )
        return Admission(key, decision)

    async def any_active(self) -> bool:
        """Whether the store holds at least one key that is not revoked. Raises StoreUnavailable."""
        return await self._keys.active_count() > 0

    async def _lookup(self, key_id: str) -> ApiKey | None:
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self._cache_s:
            return cached[1]
        key = await self._keys.get(key_id)
        if len(self._cache) >= MAX_CACHED_KEYS and key_id not in self._cache:
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self._cache_s}
            if len(self._cache) >= MAX_CACHED_KEYS:
                self._cache.clear()
        self._cache[key_id] = (now, key)
        return key
