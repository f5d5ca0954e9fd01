"""Drift statistics of the pure core: training profiles, live counts, PSI and statuses.

The statistical tests draw traffic from a known generator: the training rows and every live window come
from the same distribution unless a test shifts one thing, and each asserts what is flagged.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
import pytest

from predictor_core import (
    BinaryPrediction,
    CategoryProfile,
    DriftThresholds,
    Histogram,
    ModelIdentity,
    MulticlassPrediction,
    NumericProfile,
    RegressionPrediction,
    TrainingProfile,
    WindowSummary,
)
from predictor_core.drift import (
    OUTPUT_LABEL,
    OUTPUT_PROBABILITY,
    OUTPUT_VALUE,
    PSI_FLOOR,
    WindowCounter,
    category_text,
    compare,
    compare_window,
    count_categories,
    count_numbers,
    output_values,
    profile_categories,
    profile_numbers,
    psi,
    tally,
)

COLOURS = ("red", "green", "blue")
SHARES = (0.5, 0.3, 0.2)
TRAINING_ROWS = 2000
WINDOW_ROWS = 1000
FEATURES = ("x1", "x2", "x3", "x4", "colour", "flag", "gappy")


def draw(rng: np.random.Generator, n: int, **shift: Any) -> dict[str, Any]:
    """n rows of the generator; `shift` changes one thing (x1=1.0 adds one sd, colour=shares...)."""
    columns: dict[str, Any] = {
        name: rng.normal(0.0, 1.0, n) + shift.get(name, 0.0) for name in ("x1", "x2", "x3", "x4")
    }
    columns["colour"] = list(rng.choice(COLOURS, n, p=shift.get("colour", SHARES)))
    columns["flag"] = list(rng.random(n) < 0.4)
    gappy = rng.gamma(2.0, 1.0, n)
    gappy[rng.random(n) < 0.1] = np.nan
    columns["gappy"] = gappy
    # the model's output reads x2 only; `model` shifts what it answers for the same inputs
    score = 1.0 / (1.0 + np.exp(-(2.0 * columns["x2"] + shift.get("model", 0.0))))
    columns[OUTPUT_PROBABILITY] = score
    columns[OUTPUT_LABEL] = ["yes" if s >= 0.5 else "no" for s in score]
    return columns


def profile_of(columns: dict[str, Any]) -> TrainingProfile:
    return TrainingProfile(
        features={
            **{n: profile_numbers(columns[n]) for n in ("x1", "x2", "x3", "x4")},
            "colour": profile_categories(columns["colour"], COLOURS),
            "flag": profile_categories(columns["flag"], ("false", "true")),
            "gappy": profile_numbers(columns["gappy"]),
        },
        outputs={
            OUTPUT_LABEL: profile_categories(columns[OUTPUT_LABEL], ("no", "yes")),
            OUTPUT_PROBABILITY: profile_numbers(columns[OUTPUT_PROBABILITY]),
        },
    )


def window_of(profile: TrainingProfile, columns: dict[str, Any]) -> WindowSummary:
    n = len(columns["x1"])
    counter = WindowCounter(profile)
    rows = [{name: _plain(columns[name][i]) for name in FEATURES} for i in range(n)]
    outputs = [{k: _plain(columns[k][i]) for k in (OUTPUT_LABEL, OUTPUT_PROBABILITY)} for i in range(n)]
    for start in range(0, n, 300):  # in chunks, as a store reads them
        counter.add(rows[start : start + 300], outputs[start : start + 300])
    return counter.summary()


def _plain(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and math.isnan(value) else value


@pytest.fixture(scope="module")
def training() -> TrainingProfile:
    return profile_of(draw(np.random.default_rng(2026), TRAINING_ROWS))


def flagged(profile: TrainingProfile, window: WindowSummary) -> dict[str, float]:
    return {e.feature: e.psi for e in compare_window(profile, window) if e.status != "stable"}  # type: ignore[misc]


# -- what the issue asks for ---------------------------------------------------------------------------


def test_traffic_from_the_training_distribution_raises_no_drift(training: TrainingProfile) -> None:
    """The false-alarm rate over 200 windows of 1,000 rows: no `drift`, at most 1 % `watch` windows."""
    rng = np.random.default_rng(7)
    windows, alarms, drifts, largest = 200, 0, 0, 0.0
    for _ in range(windows):
        entries = compare_window(training, window_of(training, draw(rng, WINDOW_ROWS)))
        statuses = {e.status for e in entries}
        alarms += statuses != {"stable"}
        drifts += "drift" in statuses
        largest = max(largest, *(e.psi or 0.0 for e in entries))
    print(
        f"false alarms: {alarms}/{windows} windows not all stable, {drifts} with drift; max PSI {largest:.3f}"
    )
    assert drifts == 0
    assert alarms / windows <= 0.01


def test_a_small_training_set_gives_watch_now_and_then_but_never_drift() -> None:
    """300 training rows (the size of the reference data sets) against windows of `min_rows` rows."""
    profile = profile_of(draw(np.random.default_rng(2027), 300))
    rng = np.random.default_rng(12)
    windows, alarms, entries_flagged, entries, ratios = 100, 0, 0, 0, []
    for _ in range(windows):
        found = compare_window(profile, window_of(profile, draw(rng, DriftThresholds().min_rows)))
        assert all(e.status != "drift" for e in found)
        ratios += [e.psi / e.noise for e in found if e.psi is not None and e.noise]
        flagged_here = sum(e.status == "watch" for e in found)
        alarms += flagged_here > 0
        entries_flagged += flagged_here
        entries += len(found)
    print(
        f"300 training rows: {alarms}/{windows} windows with a watch, {entries_flagged}/{entries} entries;"
        f" mean PSI / noise {np.mean(ratios):.2f}"
    )
    assert entries_flagged / entries <= 0.1
    assert 0.5 <= np.mean(ratios) <= 2.0  # `noise` is what sampling alone gives, on average


def test_a_one_sd_shift_of_one_feature_flags_exactly_that_feature(training: TrainingProfile) -> None:
    window = window_of(training, draw(np.random.default_rng(8), WINDOW_ROWS, x1=1.0))
    found = flagged(training, window)
    print(f"x1 shifted by 1 sd: {found}")
    assert set(found) == {"x1"}
    entry = next(e for e in compare_window(training, window) if e.feature == "x1")
    assert entry.status == "drift"
    assert entry.psi is not None
    assert entry.psi > 0.5


def test_a_doubled_category_share_flags_exactly_that_feature(training: TrainingProfile) -> None:
    green = (0.5 * 0.4 / 0.7, 0.6, 0.2 * 0.4 / 0.7)  # green 0.3 -> 0.6, the others in proportion
    found = flagged(training, window_of(training, draw(np.random.default_rng(9), WINDOW_ROWS, colour=green)))
    blue = (0.5 * 0.6 / 0.8, 0.3 * 0.6 / 0.8, 0.4)  # blue 0.2 -> 0.4
    found_blue = flagged(
        training, window_of(training, draw(np.random.default_rng(10), WINDOW_ROWS, colour=blue))
    )
    print(f"green doubled: {found}; blue doubled: {found_blue}")
    assert set(found) == {"colour"}
    assert found["colour"] > 0.2  # drift
    assert set(found_blue) == {"colour"}
    assert found_blue["colour"] >= 0.1  # watch at least


def test_a_shifted_output_distribution_is_flagged(training: TrainingProfile) -> None:
    """Same inputs, another model behaviour: only the outputs move."""
    window = window_of(training, draw(np.random.default_rng(11), WINDOW_ROWS, model=1.5))
    found = flagged(training, window)
    print(f"output shifted: {found}")
    assert set(found) == {"output.label", "output.probability"}
    report = {e.feature: e for e in compare_window(training, window)}
    assert report["output.label"].role == "output"
    assert report["output.probability"].status == "drift"


# -- profiles ----------------------------------------------------------------------------------------------


def test_number_profiles_cut_at_training_quantiles_and_every_bin_holds_training_rows() -> None:
    values = np.random.default_rng(0).normal(size=1000)
    values[:7] = np.nan
    profile = profile_numbers(values)
    assert len(profile.edges) == 11
    assert len(profile.counts) == 10
    assert all(c > 0 for c in profile.counts)
    assert sum(profile.counts) + profile.missing == profile.rows == 1000
    assert profile.missing == 7
    assert list(profile.edges) == sorted(profile.edges)
    assert profile.edges[0] == profile.min
    assert profile.max is not None
    assert profile.edges[-1] == np.nextafter(profile.max, np.inf)
    assert all(95 <= c <= 105 for c in profile.counts)  # deciles
    # the training rows, counted live, are exactly the training counts
    live = count_numbers(profile, values)
    assert live.counts == profile.counts
    assert (live.below, live.above, live.missing) == (0, 0, 7)


def test_repeated_values_give_fewer_bins_and_no_values_give_none() -> None:
    profile = profile_numbers([1.0] * 50 + [2.0] * 30 + [3.0] * 20)
    assert profile.edges[:-1] == (1.0, 2.0, 3.0)
    assert profile.counts == (50, 30, 20)
    constant = profile_numbers([4.0, 4.0])
    assert constant.counts == (2,)
    empty = profile_numbers([math.nan, math.nan])
    assert (empty.edges, empty.counts, empty.missing, empty.min) == ((), (), 2, None)
    live = count_numbers(empty, [1.0, math.nan])
    assert (live.counts, live.above, live.missing) == ((), 1, 1)
    entry = compare("e", empty, live, thresholds=DriftThresholds(min_rows=1))
    assert entry.bins == ("(missing)", "(unseen)")
    assert entry.out_of_range == 1.0
    with pytest.raises(ValueError, match="bins must be at least 1"):
        profile_numbers([1.0], bins=0)


def test_an_edge_at_the_largest_float_stays_finite() -> None:
    profile = profile_numbers([0.0, np.finfo(np.float64).max])
    assert all(math.isfinite(e) for e in profile.edges)
    msgspec.json.encode(profile)  # JSON has no infinity


def test_category_profiles_keep_the_declared_order_and_count_missing() -> None:
    profile = profile_categories(["b", "a", None, "b", "z"], ("a", "b", "c"))
    assert profile.categories == ("a", "b", "c", "z")  # undeclared ones follow, sorted
    assert profile.counts == (1, 2, 0, 1)
    assert profile.missing == 1
    assert profile.rows == 5
    booleans = profile_categories([True, False, np.True_, None], ("false", "true"))
    assert booleans.counts == (1, 2)


def test_category_text_is_what_the_json_of_the_audit_trail_reads() -> None:
    assert [category_text(v) for v in (None, True, False, np.False_, "red", 3)] == [
        None,
        "true",
        "false",
        "false",
        "red",
        "3",
    ]


def test_profiles_round_trip_through_json_as_a_tagged_union() -> None:
    profile = TrainingProfile(
        features={"x": profile_numbers([1.0, 2.0, 3.0]), "c": profile_categories(["a"], ("a", "b"))},
        outputs={OUTPUT_VALUE: profile_numbers([0.5])},
    )
    raw = msgspec.json.decode(msgspec.json.encode(profile))
    assert raw["features"]["x"]["kind"] == "number"
    assert raw["features"]["c"]["kind"] == "category"
    assert msgspec.convert(raw, TrainingProfile) == profile


# -- counting ----------------------------------------------------------------------------------------------


def test_tally_of_store_buckets_equals_counting_in_python() -> None:
    """A store's width_bucket keys (0 below, len(edges) above, None missing) give the same histogram."""
    rng = np.random.default_rng(3)
    profile = profile_numbers(rng.normal(size=500))
    live = rng.normal(0.3, 1.5, 400)
    live[:10] = np.nan
    present = live[~np.isnan(live)]
    buckets: dict[Any, int] = {None: 10}
    for b in np.searchsorted(profile.edges, present, side="right").tolist():
        buckets[b] = buckets.get(b, 0) + 1
    assert tally(profile, buckets) == count_numbers(profile, live)
    assert tally(profile_numbers([math.nan]), {None: 2, 1: 3}) == Histogram(counts=(), missing=2, above=3)
    colours = profile_categories(["red", "green"], COLOURS)
    values = ["red", "red", None, "purple"]
    assert count_categories(colours, values) == tally(colours, {"red": 2, None: 1, "purple": 1})
    assert count_categories(colours, values) == Histogram(counts=(2, 0, 0), missing=1, unseen=1)


def test_values_outside_the_training_range_count_in_the_outer_bins_and_apart() -> None:
    profile = profile_numbers([float(v) for v in range(100)])
    live = count_numbers(profile, [-5.0, 0.0, 50.0, 99.0, 99.5, 200.0, math.nan])
    assert (live.below, live.above, live.missing) == (1, 2, 1)
    assert sum(live.counts) == 3  # 0.0 and 99.0 are inside: the range is inclusive
    entry = compare("v", profile, live, thresholds=DriftThresholds(min_rows=1))
    assert entry.out_of_range == pytest.approx(3 / 6)
    assert entry.live[0] == pytest.approx(2 / 7)  # -5 joins the first bin for the PSI
    assert entry.live[-2] == pytest.approx(3 / 7)  # 99, 99.5 and 200 the last one
    assert entry.bins[0] == "[0, 9)"  # cuts are training values: 9 is the 10 % quantile
    assert entry.bins[-2] == "[89, 99]"
    assert entry.edges == profile.edges


def test_window_counter_sums_chunks_and_reads_outputs_of_every_task() -> None:
    identity = ModelIdentity(name="m", version="1", sha256="0" * 64)
    assert output_values(BinaryPrediction(model=identity, label=1, probability=0.7)) == {
        OUTPUT_LABEL: "1",
        OUTPUT_PROBABILITY: 0.7,
    }
    assert output_values(MulticlassPrediction(model=identity, label="a", probabilities={"a": 1.0})) == {
        OUTPUT_LABEL: "a"
    }
    assert output_values(RegressionPrediction(model=identity, value=2.5)) == {OUTPUT_VALUE: 2.5}
    profile = TrainingProfile(
        features={"x": profile_numbers([1.0, 2.0, 3.0, 4.0])},
        outputs={OUTPUT_VALUE: profile_numbers([10.0, 20.0])},
    )
    counter = WindowCounter(profile)
    counter.add([{"x": 1.0}, {"x": None}], [{OUTPUT_VALUE: 10.0}, {OUTPUT_VALUE: 30.0}])
    counter.add([{"x": 9.0}], [{OUTPUT_VALUE: 15.0}])
    summary = counter.summary()
    assert summary.rows == 3
    assert summary.features["x"] == Histogram(counts=(1, 0, 0, 0), missing=1, above=1)
    assert summary.outputs[OUTPUT_VALUE] == Histogram(counts=(2, 0), above=1)
    empty = WindowCounter(profile).summary()
    assert empty.rows == 0
    assert empty.features["x"].rows == 0


# -- PSI and statuses ----------------------------------------------------------------------------------


def test_psi_by_hand() -> None:
    expected, actual = [0.5, 0.3, 0.2], [0.3, 0.3, 0.4]
    by_hand = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.4 - 0.2) * math.log(0.4 / 0.2)
    assert psi(expected, actual) == pytest.approx(by_hand)
    assert psi(expected, expected) == 0.0
    assert psi([1.0, 0.0], [1.0, 0.0]) == 0.0  # both empty: no term
    assert psi([1.0, 0.0], [0.9, 0.1]) == pytest.approx(
        (0.9 - 1.0) * math.log(0.9) + (0.1 - PSI_FLOOR) * math.log(0.1 / PSI_FLOOR)
    )
    with pytest.raises(ValueError, match="same bins"):
        psi([0.5, 0.5], [1.0])


def test_the_missing_rate_is_a_bin_of_the_psi_and_reported_apart() -> None:
    profile = profile_numbers([*range(90), *[math.nan] * 10])
    live = count_numbers(profile, [*range(0, 90, 2), *[math.nan] * 55])
    entry = compare("g", profile, live, thresholds=DriftThresholds(min_rows=100))
    assert entry.missing_training == pytest.approx(0.1)
    assert entry.missing_live == pytest.approx(0.55)
    assert entry.missing_change == pytest.approx(0.45)
    assert entry.status == "drift"
    assert entry.bins[-1] == "(missing)"
    assert entry.training[-1] == pytest.approx(0.1)
    # 10 bins and the missing one, 100 rows on each side
    assert entry.noise == pytest.approx(10 * (1 / 100 + 1 / 100))


def test_unseen_categories_get_their_own_bin() -> None:
    profile = profile_categories(["a"] * 60 + ["b"] * 40, ("a", "b"))
    entry = compare(
        "c",
        profile,
        Histogram(counts=(60, 30), unseen=10),
        role="output",
        thresholds=DriftThresholds(min_rows=1),
    )
    assert entry.feature == "output.c"
    assert entry.kind == "category"
    assert entry.unseen == pytest.approx(0.1)
    assert entry.out_of_range is None
    assert entry.bins == ("a", "b", "(missing)", "(unseen)")
    assert entry.training[-1] == 0.0
    assert entry.status == "drift"  # 10 % of a value training never had: 0.1 * ln(0.1 / 1e-4) alone


def test_statuses_follow_the_thresholds_and_too_few_rows_are_insufficient() -> None:
    thresholds = DriftThresholds()
    assert [thresholds.status(v, 1000) for v in (0.0, 0.099, 0.1, 0.2, 0.2001)] == [
        "stable",
        "stable",
        "watch",
        "watch",
        "drift",
    ]
    assert thresholds.status(5.0, 499) == "insufficient"
    assert thresholds.status(None, 1000) == "insufficient"
    strict = DriftThresholds(watch=0.01, drift=0.05, min_rows=1)
    assert strict.status(0.03, 1) == "watch"
    for bad, message in (
        ({"watch": 0.0}, "0 < watch <= drift"),
        ({"watch": 0.3, "drift": 0.2}, "0 < watch <= drift"),
        ({"drift": math.inf}, "0 < watch <= drift"),
        ({"min_rows": 0}, "min_rows"),
    ):
        with pytest.raises(ValueError, match=message):
            DriftThresholds(**bad)


def test_an_empty_window_has_no_psi() -> None:
    profile = TrainingProfile(
        features={"x": profile_numbers([1.0, 2.0])}, outputs={OUTPUT_LABEL: profile_categories(["a"], ("a",))}
    )
    entries = compare_window(profile, WindowSummary(rows=0, features={}, outputs={}))
    assert [(e.feature, e.psi, e.noise, e.status, e.rows) for e in entries] == [
        ("x", None, None, "insufficient", 0),
        ("output.label", None, None, "insufficient", 0),
    ]
    assert entries[0].missing_live is None
    assert entries[0].out_of_range is None
    assert entries[1].unseen is None


def test_live_bins_must_match_the_profile() -> None:
    with pytest.raises(ValueError, match="2 live bins for 3 training bins"):
        compare(
            "x",
            NumericProfile(edges=(0.0, 1.0, 2.0, 3.0), counts=(1, 1, 1), missing=0),
            Histogram(counts=(1, 1)),
        )
    assert CategoryProfile(categories=("a",), counts=(3,), missing=1).rows == 4


def test_manifests_of_format_1_and_2_load_without_a_profile_and_format_3_keeps_it() -> None:
    from predictor_core import MANIFEST_FORMAT, ModelManifest
    from tests.fakes import toy_manifest, with_profile

    rows = [{"x": float(i), "y": float(i + 1), "n": i % 10, "flag": True, "colour": "red"} for i in range(50)]
    profiled = with_profile(toy_manifest(), rows)
    assert MANIFEST_FORMAT == 3
    again = ModelManifest.from_json(profiled.to_json())
    assert again.training is not None
    assert again.training == profiled.training
    for old in (1, 2):
        raw = msgspec.json.decode(profiled.to_json())
        raw["format_version"] = old
        del raw["training"]["profile"]
        loaded = ModelManifest.from_builtins(raw)
        assert loaded.format_version == old
        assert loaded.training is not None
        assert loaded.training.profile is None
