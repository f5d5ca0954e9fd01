"""What the use case tells an observer: how long each stage of a prediction took, what validation refused.

Metrics and request logs are built from it by an adapter; the core knows neither.

`PredictionService.predict` calls the observer synchronously, on the caller's thread (the event loop for
the server), once per stage, so an observer must be cheap and must not raise. Without one nothing is
measured beyond the `perf_counter` calls the record's latency needs anyway.
"""

from __future__ import annotations

from typing import Literal, Protocol

from predictor_core.bundle import ModelManifest
from predictor_core.errors import ValidationFailed
from predictor_core.predictions import ModelIdentity

__all__ = ["STAGES", "NoObserver", "PredictionObserver", "Stage"]

Stage = Literal["validate", "infer", "record"]
"""The stages of one prediction the core times: checking the values against the version's schema,
running the model (through the scheduler, so waiting for a thread or a batch counts), and committing
inputs and outputs to the store (registering the version the first time included)."""

STAGES: tuple[Stage, ...] = ("validate", "infer", "record")


class PredictionObserver(Protocol):
    """Hears how a prediction went, stage by stage; implemented by the metrics and logs of an adapter."""

    def stage(self, model: ModelIdentity, stage: Stage, seconds: float, /) -> None:
        """One stage of one prediction call of `model` took `seconds` (a whole batch is one call)."""
        ...

    def invalid(self, manifest: ModelManifest, failure: ValidationFailed, /) -> None:
        """Validation refused a call to the version of `manifest`; `failure.problems` says why."""
        ...


class NoObserver:
    """The observer of a service nobody watches: the notebook facade and the CLI."""

    def stage(self, model: ModelIdentity, stage: Stage, seconds: float, /) -> None:
        """Ignore it."""

    def invalid(self, manifest: ModelManifest, failure: ValidationFailed, /) -> None:
        """Ignore it."""
