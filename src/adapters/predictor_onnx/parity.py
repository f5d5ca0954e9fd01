"""The parity gate: scikit-learn and onnxruntime must agree before a bundle is written.

Converters fail silently (a scaler in front of trees flips splits in float32, HistGradientBoosting's
native categories export as numeric splits, NaN routing is dropped), so the gate runs on every export.

Tolerances, on inputs rounded through float32 as the graph reads them:
- labels: identical, every row;
- probabilities: |onnx - sklearn| <= PROBABILITY_ATOL (they live in [0, 1]);
- regression values: |onnx - sklearn| <= VALUE_ATOL + VALUE_RTOL * |sklearn|. An absolute 1e-5 alone is
  impossible above ~128, where the float32 spacing of the output itself exceeds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from predictor_core import BundleError, ClassifierOutputs, TaskOutputs

__all__ = ["PROBABILITY_ATOL", "VALUE_ATOL", "VALUE_RTOL", "ParityFailed", "ParityReport", "check_parity"]

PROBABILITY_ATOL = 1e-5
VALUE_ATOL = 1e-5
VALUE_RTOL = 1e-5


class ParityFailed(BundleError):
    """The ONNX graph does not reproduce the scikit-learn pipeline within the documented tolerance."""


@dataclass(frozen=True, slots=True)
class ParityReport:
    rows: int
    label_mismatches: int
    max_abs_diff: float
    """Largest |onnx - sklearn| over every probability or value."""
    worst_row: int
    tolerance: str


def check_parity(
    expected: TaskOutputs, actual: TaskOutputs, *, what: str = "the model", estimator: Any = None
) -> ParityReport:
    """Compare scikit-learn's outputs (`expected`) with onnxruntime's; raise ParityFailed past tolerance.

    `estimator`, the pipeline's final step, picks the likely causes named in the error.
    """
    if isinstance(expected, ClassifierOutputs):
        assert isinstance(actual, ClassifierOutputs)
        flips = np.flatnonzero(
            np.asarray(expected.labels).astype(str) != np.asarray(actual.labels).astype(str)
        )
        diff = np.abs(actual.probabilities.astype(np.float64) - expected.probabilities.astype(np.float64))
        per_row = diff.max(axis=1) if diff.size else np.zeros(0)
        bad = per_row > PROBABILITY_ATOL
        tolerance = f"|Δp| <= {PROBABILITY_ATOL:g}"
    else:
        assert not isinstance(actual, ClassifierOutputs)
        flips = np.zeros(0, dtype=np.intp)
        want = expected.values.astype(np.float64).reshape(-1)
        per_row = np.abs(actual.values.astype(np.float64).reshape(-1) - want)
        bad = per_row > VALUE_ATOL + VALUE_RTOL * np.abs(want)
        tolerance = f"|Δ| <= {VALUE_ATOL:g} + {VALUE_RTOL:g}·|value|"
    worst = int(np.argmax(per_row)) if per_row.size else 0
    report = ParityReport(
        rows=len(per_row),
        label_mismatches=len(flips),
        max_abs_diff=float(per_row.max()) if per_row.size else 0.0,
        worst_row=worst,
        tolerance=tolerance,
    )
    if len(flips) or bad.any():
        raise ParityFailed(
            f"ONNX export of {what} disagrees with scikit-learn on {report.rows} rows: "
            f"{len(flips)} label mismatches (first rows {flips[:5].tolist()}), "
            f"{int(bad.sum())} rows beyond {tolerance} (max {report.max_abs_diff:.3g} at row {worst}). "
            f"{likely_causes(estimator)}"
        )
    return report


def likely_causes(estimator: Any) -> str:
    """What usually makes this kind of estimator disagree after conversion, and what to do."""
    kind = type(estimator).__name__ if estimator is not None else ""
    if kind.startswith("KNeighbors"):
        return (
            "KNeighbors: two training points at (nearly) the same distance are a tie that float rounding "
            "breaks differently; the graph computes distances in float64 like scikit-learn, so ties left "
            "are exact duplicates: deduplicate the training rows or use weights='distance'."
        )
    if kind.startswith(("LGBM", "XGB")):
        return (
            f"{kind}: the converted trees compare float32 inputs with float32 thresholds; a value within "
            "one float32 step of a threshold can take the other branch. Round such features (e.g. to 6 "
            "significant digits) before fitting, or use a scikit-learn tree ensemble."
        )
    return (
        "Common causes: missing numbers reaching trees with no imputer (skl2onnx drops their NaN "
        "routing: add a SimpleImputer), a transformer whose converter works in float32 in front of trees, "
        "a custom step whose converter differs from its transform."
    )
