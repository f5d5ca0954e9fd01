"""Drift: how far the live inputs and outputs of a model version are from what it saw in training.

Pure numpy, nothing else: no drift library is needed for these statistics (see docs/monitoring.md).

The training side is a `TrainingProfile`, written into the manifest at export (format 3): per number
feature, bin edges on the training quantiles and the training count of each bin, plus the missing count
and the training range; per category feature, the count of each category and of missing; the same for
the model's outputs (the predicted label, the positive-class probability, the predicted value).

The live side is a `Histogram` per feature in the same bins, counted by the store over a time window (in
SQL on PostgreSQL, with `count_numbers` / `count_categories` elsewhere): the same edges give the same
counts whichever side counts them, because both use one rule. A number's bucket is the number of edges
at or below it (`numpy.searchsorted(edges, x, side="right")`, PostgreSQL's `width_bucket(x, edges)`):
0 is below the training minimum, `len(edges)` above the training maximum (the last edge is the next
float after it), anything between is the bin `bucket - 1`.

The comparison (`compare`) gives, per feature: the population stability index (PSI) over the bins plus
a missing bin, the share of live values outside the training range, the share of categories training
never saw, and the change of the missing rate; its status follows the usual PSI convention by default
(below 0.1 stable, 0.1 to 0.2 watch, above 0.2 drift), with too few live rows said as `insufficient`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import msgspec
import numpy as np
import numpy.typing as npt

from predictor_core.predictions import BinaryPrediction, Prediction, RegressionPrediction

__all__ = [
    "DEFAULT_BINS",
    "OUTPUT_LABEL",
    "OUTPUT_PROBABILITY",
    "OUTPUT_VALUE",
    "PSI_FLOOR",
    "CategoryProfile",
    "DriftStatus",
    "DriftThresholds",
    "FeatureDrift",
    "Histogram",
    "NumericProfile",
    "Profile",
    "TrainingProfile",
    "WindowCounter",
    "WindowSummary",
    "category_text",
    "compare",
    "compare_window",
    "count_categories",
    "count_numbers",
    "merge_windows",
    "output_values",
    "profile_categories",
    "profile_numbers",
    "psi",
    "tally",
]

DEFAULT_BINS = 10
"""Quantile bins per number feature at export (deciles); fewer when the training values repeat."""
PSI_FLOOR = 1e-4
"""A share of 0 counts as this much in the PSI, so an empty bin gives a large finite term, not infinity
(the value Evidently uses)."""
OUTPUT_LABEL = "label"
"""The output profile of the predicted class (classifiers), as text."""
OUTPUT_PROBABILITY = "probability"
"""The output profile of the positive-class probability (binary classifiers)."""
OUTPUT_VALUE = "value"
"""The output profile of the predicted value (regressors)."""

DriftStatus: TypeAlias = Literal["stable", "watch", "drift", "insufficient"]
"""`insufficient`: fewer live rows than `DriftThresholds.min_rows`, too few for a verdict."""
Role: TypeAlias = Literal["feature", "output"]


class NumericProfile(msgspec.Struct, frozen=True, kw_only=True, tag="number", tag_field="kind"):
    """The training distribution of a number: counts per quantile bin, missing count, range."""

    edges: tuple[float, ...]
    """Ascending: the training minimum, the inner quantile cuts, then the next float after the training
    maximum. Bin i is [edges[i], edges[i+1]). Empty when training had no value at all."""
    counts: tuple[int, ...]
    """Training rows per bin (one fewer than the edges); every bin holds at least one."""
    missing: int
    """Training rows where the value was missing."""
    min: float | None = None
    max: float | None = None

    @property
    def rows(self) -> int:
        return sum(self.counts) + self.missing


class CategoryProfile(msgspec.Struct, frozen=True, kw_only=True, tag="category", tag_field="kind"):
    """The training distribution of a category (or a boolean, as "true"/"false"): counts per value."""

    categories: tuple[str, ...]
    """Every declared value, in the schema's order (a declared value training never saw has count 0)."""
    counts: tuple[int, ...]
    missing: int

    @property
    def rows(self) -> int:
        return sum(self.counts) + self.missing


Profile: TypeAlias = NumericProfile | CategoryProfile


class TrainingProfile(msgspec.Struct, frozen=True, kw_only=True):
    """What drift is measured against: the training rows' features and the model's outputs on them."""

    features: dict[str, Profile]
    """Feature name -> its training distribution, in schema order."""
    outputs: dict[str, Profile]
    """`label` (classifiers), `probability` (binary), `value` (regressors) -> the distribution of what
    the exported graph answered for the training rows."""
    bins: int = DEFAULT_BINS
    """The quantile bins asked for per number (repeated values give fewer)."""


class Histogram(msgspec.Struct, frozen=True, kw_only=True):
    """Live rows of one feature in a window, counted in its training profile's bins."""

    counts: tuple[int, ...]
    """Rows per training bin or category, in the profile's order (values outside the range apart)."""
    missing: int = 0
    below: int = 0
    """Numbers below the training minimum."""
    above: int = 0
    """Numbers above the training maximum."""
    unseen: int = 0
    """Categories the training profile does not list."""

    @property
    def rows(self) -> int:
        return sum(self.counts) + self.missing + self.below + self.above + self.unseen


class WindowSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A time window of one model version's recorded predictions, counted in its training bins."""

    rows: int
    """Recorded predictions in the window."""
    features: dict[str, Histogram]
    outputs: dict[str, Histogram]


class DriftThresholds(msgspec.Struct, frozen=True, kw_only=True):
    """PSI boundaries of the statuses, and the fewest live rows for a verdict."""

    watch: float = 0.1
    """A PSI from here up to `drift` is `watch`; below it, `stable`."""
    drift: float = 0.2
    """A PSI above this is `drift`."""
    min_rows: int = 500
    """Fewer live rows than this give `insufficient`: a small sample's PSI is mostly noise (see
    `FeatureDrift.noise`: about bins / rows even when nothing changed)."""

    def __post_init__(self) -> None:
        if not 0 < self.watch <= self.drift or not math.isfinite(self.drift):
            raise ValueError(
                f"drift thresholds need 0 < watch <= drift, got watch {self.watch}, drift {self.drift}"
            )
        if self.min_rows < 1:
            raise ValueError(f"min_rows must be at least 1, got {self.min_rows}")

    def status(self, psi: float | None, rows: int) -> DriftStatus:
        if psi is None or rows < self.min_rows:
            return "insufficient"
        if psi > self.drift:
            return "drift"
        return "watch" if psi >= self.watch else "stable"


class FeatureDrift(msgspec.Struct, frozen=True, kw_only=True):
    """One feature (or model output) of a window against training."""

    feature: str
    """The feature's name; for outputs `output.label`, `output.probability` or `output.value`."""
    role: Role
    kind: Literal["number", "category"]
    psi: float | None
    """Population stability index over the training bins plus a missing bin; None without live rows."""
    noise: float | None
    """The PSI sampling alone gives on average when nothing changed: (bins - 1) x (1 / live rows +
    1 / training rows). A PSI within a few times this is indistinguishable from chance."""
    status: DriftStatus
    rows: int
    """Live rows in the window."""
    missing_training: float
    """Share of training rows where the value was missing."""
    missing_live: float | None
    missing_change: float | None
    """missing_live - missing_training."""
    out_of_range: float | None
    """Numbers: share of the live values present that lie outside the training [min, max]."""
    unseen: float | None
    """Categories: share of live rows with a value training never had."""
    bins: tuple[str, ...]
    """A label per bin: "[a, b)" ranges or categories, then "(missing)" (and "(unseen)")."""
    training: tuple[float, ...]
    """Training share per bin."""
    live: tuple[float, ...]
    """Live share per bin (out-of-range values counted in the first or last bin)."""
    edges: tuple[float, ...] | None = None
    """Numbers: the bin edges (for plots)."""


# -- building profiles (export) -------------------------------------------------------------------------


def profile_numbers(values: npt.ArrayLike, *, bins: int = DEFAULT_BINS) -> NumericProfile:
    """The profile of a number column: quantile bins of the values present (NaN is missing).

    Cuts are training values themselves (the inverted CDF), so every bin holds at least one training
    row and the same data always gives the same edges.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    gaps = np.isnan(x)
    present = x[~gaps]
    missing = int(gaps.sum())
    if not present.size:
        return NumericProfile(edges=(), counts=(), missing=missing)
    low, high = float(present.min()), float(present.max())
    cuts = np.quantile(present, np.arange(1, bins) / bins, method="inverted_cdf")
    inner = np.unique(cuts[cuts > low])
    with np.errstate(over="ignore"):  # the largest float has no next one: the top edge is itself then
        top = float(np.nextafter(high, np.inf))
    edges = np.concatenate([[low], inner, [top if math.isfinite(top) else high]])
    buckets = np.searchsorted(edges, present, side="right")
    counts = np.bincount(buckets, minlength=len(edges) + 1)[1 : len(edges)]
    return NumericProfile(
        edges=tuple(float(e) for e in edges),
        counts=tuple(int(c) for c in counts),
        missing=missing,
        min=low,
        max=high,
    )


def category_text(value: Any) -> str | None:
    """A category as the audit trail's JSON gives it back as text: booleans "true"/"false", None missing."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def profile_categories(values: Iterable[Any], categories: Sequence[str] = ()) -> CategoryProfile:
    """The profile of a category column; `categories` fixes the order (others follow, sorted)."""
    counted: dict[str | None, int] = {}
    for value in values:
        text = category_text(value)
        counted[text] = counted.get(text, 0) + 1
    missing = counted.pop(None, 0)
    declared = set(categories)
    order = list(categories) + sorted(c for c in counted if c is not None and c not in declared)
    return CategoryProfile(
        categories=tuple(order), counts=tuple(counted.get(c, 0) for c in order), missing=missing
    )


# -- counting live values -------------------------------------------------------------------------------


def count_numbers(profile: NumericProfile, values: npt.ArrayLike) -> Histogram:
    """Live numbers (NaN is missing) counted in the profile's bins."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    gaps = np.isnan(x)
    present = x[~gaps]
    if not profile.edges:
        return Histogram(counts=(), missing=int(gaps.sum()), above=int(present.size))
    width = len(profile.edges)
    tallied = np.bincount(np.searchsorted(profile.edges, present, side="right"), minlength=width + 1)
    return Histogram(
        counts=tuple(int(c) for c in tallied[1:width]),
        missing=int(gaps.sum()),
        below=int(tallied[0]),
        above=int(tallied[width]),
    )


def count_categories(profile: CategoryProfile, values: Iterable[Any]) -> Histogram:
    """Live categories (None is missing) counted per training category."""
    counted: dict[str | None, int] = {}
    for value in values:
        text = category_text(value)
        counted[text] = counted.get(text, 0) + 1
    return tally(profile, counted)


def tally(profile: Profile, buckets: Mapping[Any, int]) -> Histogram:
    """A histogram from counts keyed as a store groups them.

    Keys are a number's bucket (see the module docstring) or a category's text; None is missing.
    """
    missing = int(buckets.get(None, 0))
    if isinstance(profile, CategoryProfile):
        known = set(profile.categories)
        unseen = sum(int(n) for key, n in buckets.items() if key is not None and key not in known)
        return Histogram(
            counts=tuple(int(buckets.get(c, 0)) for c in profile.categories), missing=missing, unseen=unseen
        )
    width = len(profile.edges)
    if not width:
        return Histogram(
            counts=(), missing=missing, above=sum(int(n) for k, n in buckets.items() if k is not None)
        )
    return Histogram(
        counts=tuple(int(buckets.get(b, 0)) for b in range(1, width)),
        missing=missing,
        below=sum(int(n) for k, n in buckets.items() if k is not None and k <= 0),
        above=sum(int(n) for k, n in buckets.items() if k is not None and k >= width),
    )


def output_values(prediction: Prediction) -> dict[str, Any]:
    """A prediction's outputs keyed as output profiles are: label text, probability, value."""
    if isinstance(prediction, RegressionPrediction):
        return {OUTPUT_VALUE: prediction.value}
    found: dict[str, Any] = {OUTPUT_LABEL: str(prediction.label)}
    if isinstance(prediction, BinaryPrediction):
        found[OUTPUT_PROBABILITY] = prediction.probability
    return found


class WindowCounter:
    """Counts recorded predictions into a `WindowSummary` chunk by chunk, in Python (SQLite, tests)."""

    def __init__(self, profile: TrainingProfile) -> None:
        self._profile = profile
        self._chunks: list[WindowSummary] = []

    def add(self, features: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]]) -> None:
        """A chunk of recorded rows: their features, and their outputs keyed as the profile's outputs."""
        self._chunks.append(
            WindowSummary(
                rows=len(features),
                features={
                    n: _count(p, [row.get(n) for row in features]) for n, p in self._profile.features.items()
                },
                outputs={
                    n: _count(p, [row.get(n) for row in outputs]) for n, p in self._profile.outputs.items()
                },
            )
        )

    def summary(self) -> WindowSummary:
        return merge_windows(self._profile, self._chunks)


def merge_windows(profile: TrainingProfile, parts: Sequence[WindowSummary]) -> WindowSummary:
    """Windows counted apart (consecutive cells of time) as one window: their counts added."""
    return WindowSummary(
        rows=sum(part.rows for part in parts),
        features={n: _sum(f, [part.features[n] for part in parts]) for n, f in profile.features.items()},
        outputs={n: _sum(o, [part.outputs[n] for part in parts]) for n, o in profile.outputs.items()},
    )


def _count(profile: Profile, values: list[Any]) -> Histogram:
    if isinstance(profile, CategoryProfile):
        return count_categories(profile, values)
    return count_numbers(profile, [math.nan if v is None else float(v) for v in values])


def _sum(profile: Profile, parts: list[Histogram]) -> Histogram:
    width = len(profile.categories if isinstance(profile, CategoryProfile) else profile.counts)
    counts = np.zeros(width, dtype=np.int64)
    for part in parts:
        counts += np.asarray(part.counts, dtype=np.int64)
    return Histogram(
        counts=tuple(int(c) for c in counts),
        missing=sum(p.missing for p in parts),
        below=sum(p.below for p in parts),
        above=sum(p.above for p in parts),
        unseen=sum(p.unseen for p in parts),
    )


# -- comparing ------------------------------------------------------------------------------------------


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike, *, floor: float = PSI_FLOOR) -> float:
    """Population stability index of two share vectors over the same bins: sum (a - e) ln(a / e).

    Shares below `floor` count as `floor` (an empty bin gives a large finite term, not infinity).
    """
    e = np.maximum(np.asarray(expected, dtype=np.float64), floor)
    a = np.maximum(np.asarray(actual, dtype=np.float64), floor)
    if e.shape != a.shape:
        raise ValueError(f"PSI needs the same bins on both sides, got {e.shape} and {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


def compare(
    name: str,
    profile: Profile,
    live: Histogram,
    *,
    role: Role = "feature",
    thresholds: DriftThresholds | None = None,
) -> FeatureDrift:
    """One feature's (or output's) live histogram against its training profile."""
    thresholds = thresholds or DriftThresholds()
    numeric = isinstance(profile, NumericProfile)
    train = np.asarray(profile.counts, dtype=np.float64)
    now = np.asarray(live.counts, dtype=np.float64)
    if now.shape != train.shape:
        raise ValueError(f"{name}: {len(live.counts)} live bins for {len(profile.counts)} training bins")
    spill = float(live.unseen)
    if numeric and now.size:
        now[0] += live.below  # out-of-range values belong to the outer bins, as in any open-ended PSI
        now[-1] += live.above
    else:
        spill += live.below + live.above
    labels = _labels(profile)
    train_rows = max(profile.rows, 1)
    expected = [*(train / train_rows), profile.missing / train_rows]
    actual = [*now, float(live.missing)]
    if spill:
        labels, expected, actual = (*labels, "(unseen)"), [*expected, 0.0], [*actual, spill]
    rows = live.rows
    shares = [a / rows for a in actual] if rows else [0.0] * len(actual)
    value = psi(expected, shares) if rows else None
    used = sum(1 for e, a in zip(expected, actual, strict=True) if e > 0 or a > 0)
    noise = (max(used, 1) - 1) * (1 / rows + 1 / train_rows) if rows else None
    present = rows - live.missing
    return FeatureDrift(
        feature=name if role == "feature" else f"output.{name}",
        role=role,
        kind="number" if numeric else "category",
        psi=value,
        noise=noise,
        status=thresholds.status(value, rows),
        rows=rows,
        missing_training=profile.missing / train_rows,
        missing_live=live.missing / rows if rows else None,
        missing_change=live.missing / rows - profile.missing / train_rows if rows else None,
        out_of_range=((live.below + live.above) / present if present else None) if numeric else None,
        unseen=(live.unseen / rows if rows else None) if not numeric else None,
        bins=labels,
        training=tuple(float(e) for e in expected),
        live=tuple(float(s) for s in shares),
        edges=profile.edges if isinstance(profile, NumericProfile) else None,
    )


def compare_window(
    profile: TrainingProfile, window: WindowSummary, thresholds: DriftThresholds | None = None
) -> list[FeatureDrift]:
    """Every feature, then every output, of a window against training."""
    thresholds = thresholds or DriftThresholds()
    entries = [
        compare(name, p, _live(window.features, name, p), thresholds=thresholds)
        for name, p in profile.features.items()
    ]
    entries += [
        compare(name, p, _live(window.outputs, name, p), role="output", thresholds=thresholds)
        for name, p in profile.outputs.items()
    ]
    return entries


def _live(histograms: Mapping[str, Histogram], name: str, profile: Profile) -> Histogram:
    found = histograms.get(name)
    if found is not None:
        return found
    width = len(profile.categories if isinstance(profile, CategoryProfile) else profile.counts)
    return Histogram(counts=(0,) * width)


def _labels(profile: Profile) -> tuple[str, ...]:
    if isinstance(profile, CategoryProfile):
        return (*profile.categories, "(missing)")
    edges = profile.edges
    ranges = [f"[{_short(edges[i])}, {_short(edges[i + 1])})" for i in range(len(edges) - 1)]
    if ranges:  # the last bin ends at the training maximum, inclusive
        ranges[-1] = f"[{_short(edges[-2])}, {_short(profile.max if profile.max is not None else edges[-1])}]"
    return (*ranges, "(missing)")


def _short(value: float) -> str:
    return f"{value:.4g}"
