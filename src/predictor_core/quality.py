"""Live quality: how good a model version's recorded predictions were, judged by the feedback received.

A prediction counts once it has a ground truth (the latest feedback for it); the window is the time the
prediction was made, not the time its feedback came. Classifiers get accuracy, log-loss and a
calibration table with its expected calibration error; regressors MAE, RMSE and the mean error (bias).
Each figure comes with the count of labelled predictions it rests on. Pure numpy.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import msgspec
import numpy as np

from predictor_core.predictions import (
    BinaryPrediction,
    Label,
    MulticlassPrediction,
    Prediction,
    RegressionPrediction,
    Task,
)

__all__ = [
    "CALIBRATION_BINS",
    "LOG_LOSS_EPS",
    "CalibrationBin",
    "Labelled",
    "Quality",
    "live_quality",
    "quality_over_time",
]

CALIBRATION_BINS = 10
"""Equal-width probability bins of the calibration table."""
LOG_LOSS_EPS = 1e-15
"""Probabilities are clipped to [eps, 1] before the log: a confident miss costs about 34.5, not infinity."""


class Labelled(msgspec.Struct, frozen=True, kw_only=True):
    """A recorded prediction and the ground truth reported for it (the latest, when there were several)."""

    created_at: dt.datetime
    """When the prediction was made (what the window selects on)."""
    prediction: Prediction
    actual: Label | float


class CalibrationBin(msgspec.Struct, frozen=True, kw_only=True):
    """Predictions whose probability fell in [lower, upper): what they said, and what happened."""

    lower: float
    upper: float
    count: int
    predicted: float
    """Mean predicted probability: of the positive class (binary), of the predicted class (multiclass)."""
    observed: float
    """Share that came true: the positive class (binary), the predicted class was right (multiclass)."""


class Quality(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The quality of the labelled predictions of one period (or of the whole window)."""

    start: dt.datetime | None
    end: dt.datetime | None
    """The period [start, end); None where the window was open on that side."""
    count: int
    """Labelled predictions: every figure below rests on these."""
    accuracy: float | None = None
    log_loss: float | None = None
    ece: float | None = None
    """Expected calibration error: sum over bins of count share x |observed - predicted|."""
    calibration: tuple[CalibrationBin, ...] | None = None
    mae: float | None = None
    rmse: float | None = None
    bias: float | None = None
    """Mean of predicted - actual: positive when the model over-estimates."""


def live_quality(
    task: Task,
    rows: Sequence[Labelled],
    *,
    positive_class: Label | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> Quality:
    """The quality of `rows`, labelled predictions of one model version.

    Labels are compared as text, as the audit trail keeps them (the class 1 and the label "1" agree).
    """
    if not rows:
        return Quality(start=start, end=end, count=0)
    if task is Task.REGRESSION:
        predicted = np.array([_value(r.prediction) for r in rows], dtype=np.float64)
        actual = np.array([float(r.actual) for r in rows], dtype=np.float64)
        error = predicted - actual
        return Quality(
            start=start,
            end=end,
            count=len(rows),
            mae=float(np.mean(np.abs(error))),
            rmse=float(math.sqrt(np.mean(error**2))),
            bias=float(np.mean(error)),
        )
    right = np.array([_label(r.prediction) == str(r.actual) for r in rows])
    if task is Task.BINARY:
        positive = str(positive_class)
        score = np.array([_probability(r.prediction) for r in rows], dtype=np.float64)
        is_positive = np.array([str(r.actual) == positive for r in rows])
        of_actual = np.where(is_positive, score, 1.0 - score)
        table = _calibration(score, is_positive)
    else:
        of_actual = np.array([_probabilities(r.prediction).get(str(r.actual), 0.0) for r in rows])
        confidence = np.array([max(_probabilities(r.prediction).values()) for r in rows], dtype=np.float64)
        table = _calibration(confidence, right)
    count = len(rows)
    return Quality(
        start=start,
        end=end,
        count=count,
        accuracy=float(right.mean()),
        log_loss=float(-np.mean(np.log(np.clip(of_actual, LOG_LOSS_EPS, 1.0)))),
        ece=float(sum(b.count / count * abs(b.observed - b.predicted) for b in table)),
        calibration=table,
    )


def quality_over_time(
    task: Task,
    rows: Sequence[Labelled],
    *,
    positive_class: Label | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    periods: int = 10,
) -> list[Quality]:
    """The window cut into `periods` equal spans, with the quality of each (empty spans have count 0).

    An open side of the window is closed at the first or last labelled prediction.
    """
    if periods < 1:
        raise ValueError(f"periods must be at least 1, got {periods}")
    if not rows and (since is None or until is None):
        return []
    first = since if since is not None else min(r.created_at for r in rows)
    last = until if until is not None else max(r.created_at for r in rows) + dt.timedelta(microseconds=1)
    span = (last - first) / periods
    bounds = [first + span * i for i in range(periods)] + [last]
    groups: list[list[Labelled]] = [[] for _ in range(periods)]
    for row in rows:
        if first <= row.created_at < last:
            index = min(int((row.created_at - first) / span), periods - 1) if span else 0
            groups[index].append(row)
    return [
        live_quality(task, group, positive_class=positive_class, start=bounds[i], end=bounds[i + 1])
        for i, group in enumerate(groups)
    ]


def _calibration(probability: np.ndarray, happened: np.ndarray) -> tuple[CalibrationBin, ...]:
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    index = np.clip(np.searchsorted(edges, probability, side="right") - 1, 0, CALIBRATION_BINS - 1)
    table = []
    for i in range(CALIBRATION_BINS):
        inside = index == i
        if inside.any():
            table.append(
                CalibrationBin(
                    lower=float(edges[i]),
                    upper=float(edges[i + 1]),
                    count=int(inside.sum()),
                    predicted=float(probability[inside].mean()),
                    observed=float(happened[inside].mean()),
                )
            )
    return tuple(table)


def _value(prediction: Prediction) -> float:
    assert isinstance(prediction, RegressionPrediction)
    return prediction.value


def _label(prediction: Prediction) -> str:
    assert not isinstance(prediction, RegressionPrediction)
    return str(prediction.label)


def _probability(prediction: Prediction) -> float:
    assert isinstance(prediction, BinaryPrediction)
    return prediction.probability


def _probabilities(prediction: Prediction) -> dict[str, float]:
    assert isinstance(prediction, MulticlassPrediction)
    return prediction.probabilities
