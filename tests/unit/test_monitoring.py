"""Live quality and the ModelMonitor use case, over the in-memory fakes."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Any

import msgspec
import pytest

from predictor_core import (
    BinaryPrediction,
    DriftThresholds,
    Feedback,
    Labelled,
    ModelIdentity,
    ModelManifest,
    ModelMonitor,
    ModelNotFound,
    MulticlassPrediction,
    ProfileMissing,
    RegressionPrediction,
    StoreUnavailable,
    Task,
    TrainingProfile,
    WindowSummary,
)
from predictor_core.monitoring import LATE_MARGIN
from predictor_core.quality import LOG_LOSS_EPS, live_quality, quality_over_time
from tests.fakes import (
    CREATED,
    InMemoryAuditReader,
    InMemoryModelSource,
    InMemoryPredictionStore,
    records_for,
    toy_manifest,
    with_profile,
)

ID = ModelIdentity(name="m", version="1", sha256="0" * 64)
T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


# -- live quality, by hand ---------------------------------------------------------------------------


def test_binary_quality_equals_a_hand_computation() -> None:
    rows = [  # (probability of "yes", predicted label, actual)
        (0.9, "yes", "yes"),
        (0.8, "yes", "no"),
        (0.3, "no", "no"),
        (0.05, "no", "yes"),
        (0.55, "yes", "yes"),
    ]
    labelled = [
        Labelled(created_at=at(i), prediction=BinaryPrediction(model=ID, label=lab, probability=p), actual=a)
        for i, (p, lab, a) in enumerate(rows)
    ]
    quality = live_quality(Task.BINARY, labelled, positive_class="yes")
    assert quality.count == 5
    assert quality.accuracy == pytest.approx(3 / 5)
    of_actual = [0.9, 1 - 0.8, 1 - 0.3, 0.05, 0.55]
    assert quality.log_loss == pytest.approx(-sum(math.log(p) for p in of_actual) / 5)
    assert quality.calibration is not None
    # one prediction per bin: what it said, and whether "yes" came true
    assert [(b.count, b.predicted, b.observed) for b in quality.calibration] == [
        (1, 0.05, 1.0),
        (1, 0.3, 0.0),
        (1, 0.55, 1.0),
        (1, 0.8, 0.0),
        (1, 0.9, 1.0),
    ]
    ece = (abs(1 - 0.05) + abs(0 - 0.3) + abs(1 - 0.55) + abs(0 - 0.8) + abs(1 - 0.9)) / 5
    assert quality.ece == pytest.approx(ece)
    assert quality.mae is None


def test_multiclass_quality_equals_a_hand_computation() -> None:
    rows = [
        ({"a": 0.7, "b": 0.2, "c": 0.1}, "a", "a"),
        ({"a": 0.1, "b": 0.6, "c": 0.3}, "b", "c"),
        ({"a": 0.2, "b": 0.2, "c": 0.6}, "c", "c"),
        ({"a": 1.0, "b": 0.0, "c": 0.0}, "a", "b"),  # a confident miss: clipped, not infinite
    ]
    labelled = [
        Labelled(
            created_at=at(i), prediction=MulticlassPrediction(model=ID, label=lab, probabilities=p), actual=a
        )
        for i, (p, lab, a) in enumerate(rows)
    ]
    quality = live_quality(Task.MULTICLASS, labelled)
    assert quality.accuracy == pytest.approx(2 / 4)
    losses = [-math.log(0.7), -math.log(0.3), -math.log(0.6), -math.log(LOG_LOSS_EPS)]
    assert quality.log_loss == pytest.approx(sum(losses) / 4)
    # calibration on the predicted class's probability: 0.7 right, 0.6 wrong, 0.6 right, 1.0 wrong
    ece = (abs(1 - 0.7) + abs(0.5 - 0.6) * 2 + abs(0 - 1.0)) / 4
    assert quality.ece == pytest.approx(ece)


def test_regression_quality_equals_a_hand_computation_and_labels_compare_as_text() -> None:
    values = [(10.0, 12.0), (5.0, 4.0), (7.5, 7.5)]
    labelled = [
        Labelled(created_at=at(i), prediction=RegressionPrediction(model=ID, value=v), actual=a)
        for i, (v, a) in enumerate(values)
    ]
    quality = live_quality(Task.REGRESSION, labelled)
    assert quality.mae == pytest.approx((2 + 1 + 0) / 3)
    assert quality.rmse == pytest.approx(math.sqrt((4 + 1 + 0) / 3))
    assert quality.bias == pytest.approx((-2 + 1 + 0) / 3)
    assert quality.accuracy is None
    integers = [
        Labelled(created_at=T0, prediction=BinaryPrediction(model=ID, label=1, probability=0.9), actual=1)
    ]
    assert live_quality(Task.BINARY, integers, positive_class=1).accuracy == 1.0
    empty = live_quality(Task.BINARY, [], positive_class=1, start=T0)
    assert (empty.count, empty.accuracy, empty.start) == (0, None, T0)


def test_quality_over_time_cuts_the_window_in_equal_periods() -> None:
    labelled = [
        Labelled(created_at=at(m), prediction=RegressionPrediction(model=ID, value=1.0), actual=a)
        for m, a in ((0, 1.0), (5, 3.0), (59, 5.0), (60, 0.0))  # 60 is outside [0, 60)
    ]
    periods = quality_over_time(Task.REGRESSION, labelled, since=at(0), until=at(60), periods=3)
    assert [(p.start, p.end, p.count) for p in periods] == [
        (at(0), at(20), 2),
        (at(20), at(40), 0),
        (at(40), at(60), 1),
    ]
    assert periods[0].mae == pytest.approx(1.0)
    assert periods[1].mae is None
    assert periods[2].mae == pytest.approx(4.0)
    # open sides close at the first and last labelled prediction
    opened = quality_over_time(Task.REGRESSION, labelled, periods=2)
    assert sum(p.count for p in opened) == 4
    assert opened[0].start == at(0)
    single = quality_over_time(Task.REGRESSION, labelled[:1], periods=4)
    assert [p.count for p in single] == [1, 0, 0, 0]
    assert quality_over_time(Task.REGRESSION, [], periods=3) == []
    with pytest.raises(ValueError, match="periods"):
        quality_over_time(Task.REGRESSION, labelled, periods=0)


# -- the use case ----------------------------------------------------------------------------------------


ROWS = [
    {
        "x": float(i % 50),
        "y": float(i % 50 + 10),
        "n": i % 10,
        "flag": i % 3 == 0,
        "colour": ("red", "green", None)[i % 3],
    }
    for i in range(600)
]


def monitor_with(
    *manifests: ModelManifest, recorded: list[Any] = (), served: bool = True, **options: Any
) -> tuple[ModelMonitor, InMemoryPredictionStore]:
    from predictor_core import ModelRegistry

    store = InMemoryPredictionStore()
    for manifest in recorded:
        store.models[(manifest.name, manifest.version)] = manifest
    registry = (
        ModelRegistry(InMemoryModelSource(list(manifests)), default_model=manifests[0].name)
        if served
        else None
    )
    clock = options.pop("clock", lambda: CREATED + dt.timedelta(hours=1))
    return ModelMonitor(store, InMemoryAuditReader(store), models=registry, clock=clock, **options), store


async def test_drift_of_recorded_traffic_against_the_training_profile() -> None:
    manifest = with_profile(toy_manifest(), ROWS)
    monitor, store = monitor_with(manifest, recorded=[manifest])
    await store.record(records_for(manifest, ROWS))
    report = await monitor.drift("toy")
    assert (report.model, report.version, report.rows) == ("toy", "1", 600)
    assert report.since == CREATED + dt.timedelta(hours=1) - dt.timedelta(days=1)
    assert [e.feature for e in report.features] == [
        "x",
        "y",
        "n",
        "flag",
        "colour",
        "output.label",
        "output.probability",
    ]
    assert all(
        e.psi == pytest.approx(0.0, abs=1e-12) for e in report.features
    )  # the training rows themselves
    assert report.status == "stable"
    assert report.drifted == []
    encoded = msgspec.json.decode(msgspec.json.encode(report))
    assert {"feature", "psi", "status"} <= set(encoded["features"][0])
    # shifted traffic a minute later
    shifted = [{**r, "x": min(r["x"] + 30.0, 100.0), "y": min(r["y"] + 30.0, 100.0)} for r in ROWS]
    later = [
        msgspec.structs.replace(r, created_at=CREATED + dt.timedelta(minutes=1))
        for r in records_for(manifest, shifted)
    ]
    await store.record(later)
    window = await monitor.drift("toy", "1", since=CREATED + dt.timedelta(seconds=30))
    assert window.rows == 600
    assert window.status == "drift"
    assert {"x", "y"} <= set(window.drifted)
    assert "n" not in window.drifted
    strict = await monitor.drift(
        "toy", since=CREATED, thresholds=DriftThresholds(watch=1e-9, drift=1e-6, min_rows=1)
    )
    assert strict.rows == 1200
    assert strict.thresholds.drift == 1e-6


async def test_entries_follow_the_schema_whatever_order_the_store_kept_the_profile_in() -> None:
    manifest = with_profile(toy_manifest(), ROWS)
    assert manifest.training is not None
    assert manifest.training.profile is not None
    profile = manifest.training.profile
    shuffled = msgspec.structs.replace(
        profile,
        features=dict(sorted(profile.features.items(), key=lambda item: (len(item[0]), item[0]))),
        outputs=dict(reversed(list(profile.outputs.items()))),
    )  # the order jsonb gives back: keys by length, then bytes
    kept = msgspec.structs.replace(
        manifest, training=msgspec.structs.replace(manifest.training, profile=shuffled)
    )
    monitor, store = monitor_with(manifest, recorded=[kept])
    await store.record(records_for(manifest, ROWS[:10]))
    report = await monitor.drift("toy")
    assert [e.feature for e in report.features] == [
        "x",
        "y",
        "n",
        "flag",
        "colour",
        "output.label",
        "output.probability",
    ]


async def test_a_version_without_a_profile_says_why_drift_cannot_be_measured() -> None:
    old = toy_manifest()
    monitor, store = monitor_with(old, recorded=[old])
    await store.record(records_for(old, ROWS[:5]))
    with pytest.raises(
        ProfileMissing, match=r"toy 1 has no training profile.*manifest format 3.*Export the model again"
    ):
        await monitor.drift("toy")
    quality = await monitor.quality("toy")  # quality needs no profile
    assert quality.overall.count == 0
    assert quality.exported == {"accuracy": 0.9}


async def test_the_version_meant_comes_from_the_registry_else_the_newest_recorded() -> None:
    one, two = (
        with_profile(toy_manifest(version="1.9.0"), ROWS),
        with_profile(toy_manifest(version="1.10.0"), ROWS),
    )
    monitor, _ = monitor_with(one, two)  # nothing recorded: read from the registry
    assert (await monitor.manifest("toy")).version == "1.10.0"
    report = await monitor.drift("toy", "1.9.0")
    assert (report.version, report.rows, report.status) == ("1.9.0", 0, "insufficient")
    unserved, _ = monitor_with(one, two, recorded=[one, two], served=False)
    assert (await unserved.manifest("toy")).version == "1.10.0"  # version order, not text order
    with pytest.raises(ModelNotFound, match="no model 'nope'"):
        await unserved.manifest("nope")
    with pytest.raises(ModelNotFound):
        await unserved.manifest("toy", "3")
    served, _ = monitor_with(one, two)
    with pytest.raises(ModelNotFound, match="no model 'nope'"):
        await served.manifest("nope")


class CountingAudit(InMemoryAuditReader):
    """The in-memory reader, noting each window it is asked to count."""

    def __init__(self, store: InMemoryPredictionStore) -> None:
        super().__init__(store)
        self.asked: list[tuple[dt.datetime, dt.datetime]] = []

    async def window(
        self,
        name: str,
        version: str,
        profile: TrainingProfile,
        /,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> WindowSummary:
        assert since is not None
        assert until is not None
        self.asked.append((since, until))
        return await super().window(name, version, profile, since=since, until=until)


def stamped(manifest: ModelManifest, rows: list[dict[str, Any]], when: dt.datetime) -> list[Any]:
    return [msgspec.structs.replace(r, created_at=when) for r in records_for(manifest, rows)]


def rolling_toy() -> tuple[ModelManifest, InMemoryPredictionStore, CountingAudit, ModelMonitor]:
    """The profiled toy model registered in an empty store, its monitor reading through a CountingAudit."""
    manifest = with_profile(toy_manifest(), ROWS)
    store = InMemoryPredictionStore()
    store.models[("toy", "1")] = manifest
    audit = CountingAudit(store)
    return manifest, store, audit, ModelMonitor(store, audit)


async def test_a_rolling_window_counts_only_what_is_new_and_agrees_with_a_full_count() -> None:
    """Issue #9's finding: the gauges read the whole window at every refresh, in every worker."""
    manifest, store, audit, monitor = rolling_toy()
    rolling = monitor.rolling(dt.timedelta(hours=24))  # 24 cells of an hour
    start = dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.UTC)
    hour = dt.timedelta(hours=1)
    minute = dt.timedelta(minutes=1)
    await store.record(stamped(manifest, ROWS[:200], start + hour + 5 * minute))
    await store.record(stamped(manifest, ROWS[200:400], start + 20 * hour))
    now = start + 24 * hour + 30 * minute

    first = await rolling.drift("toy", "1", now=now)
    assert len(audit.asked) == 25  # every cell: the one holding the window's start, ..., the newest
    assert audit.asked[-1] == (start + 24 * hour, now - LATE_MARGIN)  # not the last minute: commits in flight
    assert first.since == start  # whole cells: the window and less than one cell more
    assert (first.until, first.rows) == (now - LATE_MARGIN, 400)
    full = await monitor.drift("toy", "1", since=first.since, until=first.until)
    assert first.features == full.features

    # five minutes later only those five minutes are counted, a prediction stamped 20 s before the last
    # refresh but committed after it among them
    audit.asked.clear()
    await store.record(stamped(manifest, ROWS[400:500], now - dt.timedelta(seconds=20)))
    later = now + 5 * minute
    second = await rolling.drift("toy", "1", now=later)
    assert audit.asked == [(now - LATE_MARGIN, later - LATE_MARGIN)]
    assert second.rows == 500

    # the cells of hours 0 and 1 have left the window: the 200 predictions of 01:05 are no longer counted
    audit.asked.clear()
    third = await rolling.drift("toy", "1", now=start + 26 * hour + 10 * minute)
    assert third.since == start + 2 * hour
    assert third.rows == 300
    assert audit.asked == [  # the span since the last refresh, cut where the cells meet
        (later - LATE_MARGIN, start + 25 * hour),
        (start + 25 * hour, start + 26 * hour),
        (start + 26 * hour, start + 26 * hour + 9 * minute),
    ]
    full = await monitor.drift("toy", "1", since=third.since, until=third.until)
    assert (third.rows, third.features) == (full.rows, full.features)


async def test_a_failed_refresh_keeps_nothing_and_the_next_counts_the_same_span() -> None:
    manifest, store, audit, monitor = rolling_toy()
    rolling = monitor.rolling(dt.timedelta(hours=2), cells=4)
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    await store.record(stamped(manifest, ROWS[:50], now - dt.timedelta(minutes=30)))
    assert (await rolling.drift("toy", "1", now=now)).rows == 50
    await store.record(stamped(manifest, ROWS[50:80], now - dt.timedelta(seconds=30)))  # after the margin
    calls = 0
    counted = audit.window

    async def fails_second(*args: Any, **kwargs: Any) -> WindowSummary:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise StoreUnavailable("the database went away")
        return await counted(*args, **kwargs)

    audit.window = fails_second  # type: ignore[method-assign]
    # the span since the last refresh crosses a cell boundary: the first part (holding the 30 new
    # predictions) is counted, the second fails; kept, the first part would be counted twice next time
    with pytest.raises(StoreUnavailable):
        await rolling.drift("toy", "1", now=now + dt.timedelta(minutes=40))
    audit.window = counted  # type: ignore[method-assign]
    assert (await rolling.drift("toy", "1", now=now + dt.timedelta(minutes=40))).rows == 80


async def test_a_rolling_window_forgets_versions_and_starts_again_for_a_new_bundle() -> None:
    manifest, store, audit, monitor = rolling_toy()
    rolling = monitor.rolling(dt.timedelta(hours=2), cells=4)
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    await store.record(stamped(manifest, ROWS[:50], now - dt.timedelta(minutes=10)))
    assert (await rolling.drift("toy", "1", now=now)).rows == 50
    assert len(audit.asked) == 5
    audit.asked.clear()
    rolling.keep({("other", "1")})  # toy 1 is no longer served: its cells go
    assert (await rolling.drift("toy", "1", now=now)).rows == 50
    assert len(audit.asked) == 5  # counted from scratch
    audit.asked.clear()
    store.models[("toy", "1")] = msgspec.structs.replace(
        manifest, sha256="f" * 64
    )  # the same version, rebuilt
    await rolling.drift("toy", "1", now=now)
    assert len(audit.asked) == 5
    with pytest.raises(ValueError, match="positive"):
        monitor.rolling(dt.timedelta(0))
    store.models[("bare", "1")] = toy_manifest(name="bare")
    with pytest.raises(ProfileMissing):
        await rolling.drift("bare", "1", now=now)


async def test_windows_default_to_the_day_before_now_and_must_not_be_empty() -> None:
    now = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)
    monitor, _ = monitor_with(toy_manifest(), clock=lambda: now, window=dt.timedelta(hours=6))
    assert monitor.window() == (now - dt.timedelta(hours=6), now)
    naive = dt.datetime(2026, 12, 1, 8)
    assert monitor.window(naive) == (naive.replace(tzinfo=dt.UTC), now)
    assert monitor.window(until=naive) == (
        naive.replace(tzinfo=dt.UTC) - dt.timedelta(hours=6),
        naive.replace(tzinfo=dt.UTC),
    )
    with pytest.raises(ValueError, match="must start before it ends"):
        monitor.window(now, now)
    early = dt.datetime(1, 1, 1, 0, 0, 2, tzinfo=dt.timezone(dt.timedelta(hours=1, minutes=1)))
    for since, until in ((early, now), (None, dt.datetime(1, 1, 1, 1, tzinfo=dt.UTC))):
        with pytest.raises(ValueError, match="between the years 1 and 9999"):  # found by schemathesis: a 500
            monitor.window(since, until)
    store = InMemoryPredictionStore()
    _, until = ModelMonitor(store, InMemoryAuditReader(store)).window()  # the real clock
    assert abs(until - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    with pytest.raises(ValueError, match="must be positive"):
        monitor_with(toy_manifest(), window=dt.timedelta(0))


async def test_live_quality_per_version_and_window_from_the_latest_feedback() -> None:
    manifest = with_profile(toy_manifest(), ROWS)
    other = with_profile(toy_manifest(version="2"), ROWS)
    monitor, store = monitor_with(manifest, other, recorded=[manifest, other])
    mine = records_for(manifest, ROWS[:4])
    theirs = records_for(other, ROWS[:3])
    await store.record(mine)
    await store.record(theirs)
    for record in [*mine[:3], *theirs]:
        assert isinstance(record.prediction, BinaryPrediction)
        await store.record_feedback(
            Feedback(prediction_id=record.prediction_id, actual="no", received_at=CREATED)
        )
    first = mine[0].prediction
    assert isinstance(first, BinaryPrediction)
    corrected = "yes" if first.label == "no" else "no"  # a later report replaces the first
    await store.record_feedback(
        Feedback(prediction_id=mine[0].prediction_id, actual=corrected, received_at=CREATED)
    )
    report = await monitor.quality("toy", "1", since=CREATED, periods=2)
    assert (report.version, report.task, report.overall.count) == ("1", Task.BINARY, 3)
    expected = live_quality(
        Task.BINARY,
        [
            Labelled(created_at=CREATED, prediction=r.prediction, actual=corrected if i == 0 else "no")
            for i, r in enumerate(mine[:3])
        ],
        positive_class="yes",
    )
    assert report.overall.accuracy == expected.accuracy
    assert report.overall.log_loss == expected.log_loss
    assert len(report.periods) == 2
    assert sum(p.count for p in report.periods) == 3
    assert (await monitor.quality("toy", "2", since=CREATED)).overall.count == 3
    assert (await monitor.quality("toy", "1", since=CREATED + dt.timedelta(seconds=1))).overall.count == 0
    assert isinstance(uuid.UUID(str(mine[0].prediction_id)), uuid.UUID)
