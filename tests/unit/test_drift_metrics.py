"""Drift gauges on /metrics, refreshed by the wiring: values, bounded labels, versions that go away."""

from __future__ import annotations

import asyncio
import datetime as dt
import math

import pytest
from prometheus_client import CollectorRegistry

from predictor.settings import Settings
from predictor.wiring import Wiring
from predictor_core import ConfigurationError, DriftReport, DriftThresholds
from predictor_litestar import drift_metrics
from predictor_litestar.drift_metrics import DriftGauges
from tests.fakes import (
    InMemoryAuditReader,
    InMemoryModelSource,
    InMemoryPredictionStore,
    toy_manifest,
    with_profile,
)

ROWS = [
    {
        "x": float(i % 40),
        "y": float(i % 40 + 5),
        "n": i % 10,
        "flag": i % 2 == 0,
        "colour": ("red", None)[i % 2],
    }
    for i in range(600)
]


def wiring_for(*manifests, **settings) -> tuple[Wiring, InMemoryPredictionStore]:
    store = InMemoryPredictionStore()
    wiring = Wiring(
        Settings.load({}, record=True, model=manifests[0].name, **settings),
        source=InMemoryModelSource(list(manifests)),
        store=store,
        audit=InMemoryAuditReader(store),
    )
    return wiring, store


async def predict_minutes_ago(wiring: Wiring, store: InMemoryPredictionStore, rows: list[dict]) -> None:
    """Predict and record `rows`, stamped two minutes ago: the gauges leave out the last minute."""
    import msgspec

    await wiring.service.predict(rows)
    earlier = dt.timedelta(minutes=2)
    for key, record in store.records.items():
        store.records[key] = msgspec.structs.replace(record, created_at=record.created_at - earlier)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_the_wiring_refreshes_gauges_for_the_versions_served() -> None:
    profiled = with_profile(toy_manifest(), ROWS)
    wiring, store = wiring_for(profiled, toy_manifest(name="old"))  # old: no profile, skipped
    await predict_minutes_ago(wiring, store, ROWS)
    registry = CollectorRegistry()
    gauges = DriftGauges(registry)
    await wiring.refresh_drift(gauges.update, gauges.keep)
    labels = {"model": "toy", "version": "1"}
    assert sample(registry, "predictor_drift_rows", **labels) == 600
    assert sample(registry, "predictor_drift_psi", **labels, feature="x") == pytest.approx(0.0, abs=1e-12)
    assert sample(registry, "predictor_drift_status", **labels, feature="output.label") == 0
    assert sample(registry, "predictor_drift_refreshed_timestamp_seconds", **labels) is not None
    assert sample(registry, "predictor_drift_rows", model="old", version="1") is None
    # the name serves another version: the old one's series go
    gauges.keep({("toy", "2")})
    assert sample(registry, "predictor_drift_rows", **labels) is None
    assert sample(registry, "predictor_drift_psi", **labels, feature="x") is None


async def test_statuses_and_missing_psi_are_shown_and_series_are_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = CollectorRegistry()
    gauges = DriftGauges(registry)
    wiring, _ = wiring_for(with_profile(toy_manifest(), ROWS), drift_min_rows=10_000)
    assert wiring.monitor is not None
    report = await wiring.monitor.drift("toy")  # nothing recorded: insufficient, no PSI
    gauges.update(report)
    labels = {"model": "toy", "version": "1", "feature": "x"}
    assert sample(registry, "predictor_drift_status", **labels) == -1
    value = sample(registry, "predictor_drift_psi", **labels)
    assert value is not None
    assert math.isnan(value)
    monkeypatch.setattr(drift_metrics, "MAX_SERIES", 8)  # 7 shown already: room for one more
    other = DriftReport(**{**_fields(report), "version": "2"})
    gauges.update(other)
    shown = next(s for s in registry.collect() if s.name == "predictor_drift_status").samples
    assert len(shown) == 8


def _fields(report: DriftReport) -> dict:
    return {f: getattr(report, f) for f in report.__struct_fields__}


async def test_the_drift_watcher_runs_while_the_server_does_and_not_when_off() -> None:
    wiring, store = wiring_for(with_profile(toy_manifest(), ROWS), drift_refresh=0.01)
    await predict_minutes_ago(wiring, store, ROWS)
    registry = CollectorRegistry()
    gauges = DriftGauges(registry)
    async with wiring.drift_watcher(gauges.update, gauges.keep)(None):
        for _ in range(100):
            if sample(registry, "predictor_drift_rows", model="toy", version="1"):
                break
            await asyncio.sleep(0.01)
    assert sample(registry, "predictor_drift_rows", model="toy", version="1") == 600
    off, _ = wiring_for(with_profile(toy_manifest(), ROWS), drift_refresh=0)
    quiet = CollectorRegistry()
    silent = DriftGauges(quiet)
    async with off.drift_watcher(silent.update, silent.keep)(None):
        await asyncio.sleep(0.02)
    assert sample(quiet, "predictor_drift_rows", model="toy", version="1") is None


async def test_drift_settings_are_checked() -> None:
    assert Settings.load({}).drift_thresholds() == DriftThresholds()
    assert Settings.load({"PREDICTOR_DRIFT_WATCH": "0.05"}).drift_thresholds().watch == 0.05
    with pytest.raises(ConfigurationError, match="invalid drift settings"):
        Settings.load({"PREDICTOR_DRIFT_WATCH": "0.5"}).drift_thresholds()
    with pytest.raises(ConfigurationError, match="drift_window must be positive"):
        Settings.load({"PREDICTOR_DRIFT_WINDOW": "0"}).drift_thresholds()
    with pytest.raises(ConfigurationError, match="at most 315360000 seconds"):  # not an OverflowError
        Settings.load({"PREDICTOR_DRIFT_WINDOW": "1e15"}).drift_thresholds()
    with pytest.raises(ConfigurationError, match="got inf"):  # JSON could not hand it to a worker
        Settings.load({"PREDICTOR_DRIFT_REFRESH": "inf"}).drift_thresholds()
    unrecorded = Wiring(Settings.load({}, record=False), source=InMemoryModelSource([toy_manifest()]))
    assert unrecorded.monitor is None
    await unrecorded.refresh_drift(lambda _: None, lambda _: None)  # nothing to do
    assert dt.timedelta(seconds=Settings.load({}).drift_window) == dt.timedelta(days=1)
