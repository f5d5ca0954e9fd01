"""The domain's error tree; adapters map it to HTTP statuses, CLI exit codes or notebook messages.

The core never names an HTTP status: the HTTP adapter keeps that table in one place.

* PredictorError
  x ValidationFailed (ValueError)     input features broke the schema; carries every Problem
  x InvalidFeedback (ValueError)      a reported ground truth does not fit the model's task
  x SchemaError (ValueError)          a feature schema or rule is itself ill-formed
  x InvalidKeySpec (ValueError)      an API key's name, scopes or rate limit is ill-formed
  x NotFound (LookupError)
    + ModelNotFound                   no such model name or version
    + PredictionNotFound              no such prediction id
    + AliasNotFound                   a model has no such alias
    + KeyNotFound                     no API key of that name
    + ProfileMissing                  a model version has no training profile to measure drift against
  x Conflict                          the call contradicts what the store holds; never retried as is
    + DuplicatePrediction             a prediction id is recorded already
    + ModelConflict                   a model version the store does not know, or knows with another file
    + KeyConflict                     an API key name (or id) is taken already
  x AccessDenied                      the caller may not make this call (now)
    + Unauthenticated                 no key, or a malformed, unknown, wrong or revoked one
    + ScopeMissing                    a valid key without the scope the call needs
    + RateLimited                     the key is over its rate limit; carries retry_after and the limit
  x StoreRejected                     the store refused rows it was given (a constraint): a bug, not an outage
  x BundleError                       a model bundle is missing, corrupt, tampered or unsupported
    + PromotionRefused                a version cannot take traffic (no golden set, or it differs)
  x ConfigurationError                settings ask for what this machine cannot give (GPU absent...)
    + RecordingDisabled               lookups or feedback asked of a service that records nothing
  x Unavailable                       retryable: a dependency is down; carries retry_after
    + StoreUnavailable                the prediction store cannot commit right now
    + RuntimeUnavailable              the inference runtime cannot run (e.g. the GPU went away)
    + Draining                        this process is shutting down (readiness only; another may answer)
    + LimiterUnavailable              the shared rate-limit store (Redis) cannot be reached

Each port names what it raises (see `predictor_core.ports`): only `Unavailable` is worth retrying.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from predictor_core.limits import LimitDecision, RateLimit
    from predictor_core.problems import Problem

__all__ = [
    "AccessDenied",
    "AliasNotFound",
    "BundleError",
    "ConfigurationError",
    "Conflict",
    "Draining",
    "DuplicatePrediction",
    "InvalidFeedback",
    "InvalidKeySpec",
    "KeyConflict",
    "KeyNotFound",
    "LimiterUnavailable",
    "ModelConflict",
    "ModelNotFound",
    "NotFound",
    "PredictionNotFound",
    "PredictorError",
    "ProfileMissing",
    "PromotionRefused",
    "RateLimited",
    "RecordingDisabled",
    "RuntimeUnavailable",
    "SchemaError",
    "ScopeMissing",
    "StoreRejected",
    "StoreUnavailable",
    "Unauthenticated",
    "Unavailable",
    "ValidationFailed",
]


class PredictorError(Exception):
    """Base of every error the domain raises on purpose."""


class ValidationFailed(PredictorError, ValueError):
    """Input features broke the schema; `problems` lists every one of them, not just the first."""

    def __init__(self, problems: Sequence[Problem], *, total: int | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        """The problems found, in record then feature order: every one, or the first ones when the
        validator stopped listing them (`total` says how many there are)."""
        self.total: int = len(self.problems) if total is None else max(total, len(self.problems))
        """How many problems the input has; more than `len(problems)` when the list was capped."""
        super().__init__(self._summary())

    def _summary(self) -> str:
        count = self.total
        head = f"{count} problem{'s' if count != 1 else ''} in the input:"
        lines = [f"  - {p}" for p in self.problems[:20]]
        if count > len(lines):
            lines.append(f"  ... and {count - len(lines)} more (see .problems and .total)")
        return "\n".join([head, *lines])


class InvalidFeedback(PredictorError, ValueError):
    """A reported ground truth does not fit the model's task (unknown class, non-finite value...)."""


class SchemaError(PredictorError, ValueError):
    """A feature schema or a cross-field rule is ill-formed; raised when it is built or loaded."""


class InvalidKeySpec(PredictorError, ValueError):
    """An API key's name, scopes or rate limit is ill-formed (said when the key is created)."""


class NotFound(PredictorError, LookupError):
    """Something asked for by name or id does not exist."""


class ModelNotFound(NotFound):
    """No model with that name, or no such version of it."""


class PredictionNotFound(NotFound):
    """No prediction was recorded under that id."""


class AliasNotFound(NotFound):
    """The model has no alias of that name (nothing to remove)."""


class KeyNotFound(NotFound):
    """No API key of that name."""


class ProfileMissing(NotFound):
    """The model version carries no training profile, so its drift cannot be measured.

    Bundles exported before manifest format 3 have none; their live quality can still be measured, and
    exporting the model again (as a new version) gives it a profile.
    """


class Conflict(PredictorError):
    """The call contradicts what the store already holds; repeating it unchanged fails the same way."""


class DuplicatePrediction(Conflict):
    """A prediction id of the call is recorded already; nothing of the call was recorded."""


class ModelConflict(Conflict):
    """The store does not know this model version, or knows it with another ONNX file.

    A changed model file needs a new version.
    """


class KeyConflict(Conflict):
    """An API key of that name (or, very rarely, id) exists already; keys are never renamed or reused."""


class AccessDenied(PredictorError):
    """The caller may not make this call, or not now; nothing of the call was done."""


class Unauthenticated(AccessDenied):
    """No API key was sent, or the one sent is malformed, unknown, wrong or revoked.

    The message never says which of these it was, nor echoes the key.
    """


class ScopeMissing(AccessDenied):
    """A valid API key that lacks the scope the call needs."""

    def __init__(self, message: str, *, scope: str) -> None:
        super().__init__(message)
        self.scope = scope
        """The scope the call needs (`predict`, `read`, `feedback` or `admin`)."""


class RateLimited(AccessDenied):
    """The API key used up its rate limit; the same call succeeds after `retry_after` seconds."""

    def __init__(self, message: str, *, limit: RateLimit, decision: LimitDecision) -> None:
        super().__init__(message)
        self.limit = limit
        """The key's limit: its quota per window and its burst."""
        self.decision = decision
        """What the bucket said: nothing remaining, when the next request fits and when it is full again."""

    @property
    def retry_after(self) -> float:
        """Seconds until the next request of this key fits in its limit."""
        return self.decision.retry_after


class StoreRejected(PredictorError):
    """The store refused the rows it was given (a constraint, or a value it cannot hold).

    Nothing of the call was recorded. A bug or a schema mismatch, not an outage: retrying does not help.
    """


class BundleError(PredictorError):
    """A model bundle cannot be used: missing, corrupt, tampered with, or made for another runtime."""


class PromotionRefused(BundleError):
    """A version may not take traffic under an alias: it fails its golden set, or has none to check.

    Nothing changed: the alias still names the version it named before.
    """


class ConfigurationError(PredictorError):
    """The settings ask for something this machine or environment cannot give; fix the settings."""


class RecordingDisabled(ConfigurationError):
    """The service runs without a store (recording off), so there is nothing to look up or annotate."""


class Unavailable(PredictorError):
    """A dependency is down for now; the same call may succeed later."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        """Seconds a caller should wait before retrying."""


class StoreUnavailable(Unavailable):
    """The prediction store cannot commit now; nothing of the failed call was recorded as a prediction."""


class RuntimeUnavailable(Unavailable):
    """The inference runtime cannot run now."""


class Draining(Unavailable):
    """This process is shutting down: it finishes the requests it has and should be sent no new ones."""


class LimiterUnavailable(Unavailable):
    """The shared rate-limit store cannot be reached now (the limiter then counts per process)."""
