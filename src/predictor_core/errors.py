"""The domain's error tree; adapters map it to HTTP statuses, CLI exit codes or notebook messages.

The core never names an HTTP status: the HTTP adapter keeps that table in one place.

* PredictorError
  x ValidationFailed (ValueError)     input features broke the schema; carries every Problem
  x InvalidFeedback (ValueError)      a reported ground truth does not fit the model's task
  x SchemaError (ValueError)          a feature schema or rule is itself ill-formed
  x NotFound (LookupError)
    + ModelNotFound                   no such model name or version
    + PredictionNotFound              no such prediction id
  x Conflict                          the call contradicts what the store holds; never retried as is
    + DuplicatePrediction             a prediction id is recorded already
    + ModelConflict                   a model version the store does not know, or knows with another file
  x StoreRejected                     the store refused rows it was given (a constraint): a bug, not an outage
  x BundleError                       a model bundle is missing, corrupt, tampered or unsupported
    + PromotionRefused                a version cannot take traffic (no golden set, or it differs)
  x ConfigurationError                settings ask for what this machine cannot give (GPU absent...)
    + RecordingDisabled               lookups or feedback asked of a service that records nothing
  x Unavailable                       retryable: a dependency is down; carries retry_after
    + StoreUnavailable                the prediction store cannot commit right now
    + RuntimeUnavailable              the inference runtime cannot run (e.g. the GPU went away)

Each port names what it raises (see `predictor_core.ports`): only `Unavailable` is worth retrying.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from predictor_core.problems import Problem

__all__ = [
    "BundleError",
    "ConfigurationError",
    "Conflict",
    "DuplicatePrediction",
    "InvalidFeedback",
    "ModelConflict",
    "ModelNotFound",
    "NotFound",
    "PredictionNotFound",
    "PredictorError",
    "PromotionRefused",
    "RecordingDisabled",
    "RuntimeUnavailable",
    "SchemaError",
    "StoreRejected",
    "StoreUnavailable",
    "Unavailable",
    "ValidationFailed",
]


class PredictorError(Exception):
    """Base of every error the domain raises on purpose."""


class ValidationFailed(PredictorError, ValueError):
    """Input features broke the schema; `problems` lists every one of them, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        """Every problem found, in record then feature order."""
        super().__init__(self._summary())

    def _summary(self) -> str:
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the input:"
        lines = [f"  - {p}" for p in self.problems[:20]]
        if count > 20:
            lines.append(f"  ... and {count - 20} more (see .problems)")
        return "\n".join([head, *lines])


class InvalidFeedback(PredictorError, ValueError):
    """A reported ground truth does not fit the model's task (unknown class, non-finite value...)."""


class SchemaError(PredictorError, ValueError):
    """A feature schema or a cross-field rule is ill-formed; raised when it is built or loaded."""


class NotFound(PredictorError, LookupError):
    """Something asked for by name or id does not exist."""


class ModelNotFound(NotFound):
    """No model with that name, or no such version of it."""


class PredictionNotFound(NotFound):
    """No prediction was recorded under that id."""


class Conflict(PredictorError):
    """The call contradicts what the store already holds; repeating it unchanged fails the same way."""


class DuplicatePrediction(Conflict):
    """A prediction id of the call is recorded already; nothing of the call was recorded."""


class ModelConflict(Conflict):
    """The store does not know this model version, or knows it with another ONNX file.

    A changed model file needs a new version.
    """


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
