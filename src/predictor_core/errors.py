"""The domain's error tree; adapters map it to HTTP statuses, CLI exit codes or notebook messages.

The core never names an HTTP status: the HTTP adapter keeps that table in one place.

* PredictorError
  x ValidationFailed (ValueError)     input features broke the schema; carries every Problem
  x InvalidFeedback (ValueError)      a reported ground truth does not fit the model's task
  x SchemaError (ValueError)          a feature schema or rule is itself ill-formed
  x NotFound (LookupError)
    + ModelNotFound                   no such model name or version
    + PredictionNotFound              no such prediction id
  x BundleError                       a model bundle is missing, corrupt, tampered or unsupported
  x ConfigurationError                settings ask for what this machine cannot give (GPU absent...)
  x Unavailable                       retryable: a dependency is down; carries retry_after
    + StoreUnavailable                the prediction store cannot commit right now
    + RuntimeUnavailable              the inference runtime cannot run (e.g. the GPU went away)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from predictor_core.problems import Problem

__all__ = [
    "BundleError",
    "ConfigurationError",
    "InvalidFeedback",
    "ModelNotFound",
    "NotFound",
    "PredictionNotFound",
    "PredictorError",
    "RuntimeUnavailable",
    "SchemaError",
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


class BundleError(PredictorError):
    """A model bundle cannot be used: missing, corrupt, tampered with, or made for another runtime."""


class ConfigurationError(PredictorError):
    """The settings ask for something this machine or environment cannot give; fix the settings."""


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
