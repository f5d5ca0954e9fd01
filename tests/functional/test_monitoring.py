"""`predictor monitor drift | quality | report` end to end: a reference model's recorded traffic on SQLite."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from predictor.cli import main
from predictor.settings import Settings
from predictor.wiring import Wiring
from predictor_core import Prediction
from predictor_onnx.infer_schema import column_values
from predictor_onnx.reference.datasets import load_dataset

FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island", "sex"]
FORMAT_1 = Path(__file__).parent / "data" / "format1"


def penguins(n: int, seed: int, *, torgersen: float | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """n records drawn from the data set (with their species); `torgersen` forces that island's share."""
    data = load_dataset("penguins")
    frame = data.frame[FEATURES]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(frame), n)
    columns = {c: column_values(frame[c]) for c in FEATURES}
    rows = [{c: columns[c][i] for c in FEATURES} for i in picks.tolist()]
    if torgersen is not None:
        for row in rows:
            if rng.random() < torgersen:
                row["island"] = "Torgersen"
    species = [str(v) for v in np.asarray(data.target)[picks]]
    return rows, species


def record(
    url: str, rows: list[dict[str, Any]], *, model: str = "penguins", truth: list[str] = ()
) -> list[Prediction]:
    """Predict and record through the wiring, as the server does; report `truth` as feedback."""

    async def run() -> list[Prediction]:
        wiring = Wiring(Settings.load(database_url=url, record=True, model=model))
        await wiring.start()
        try:
            answers = await wiring.service.predict(rows)
            for answer, actual in zip(answers, truth, strict=False):
                assert answer.prediction_id is not None
                await wiring.service.record_feedback(answer.prediction_id, actual)
            return answers
        finally:
            await wiring.close()

    return asyncio.run(run())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The audit database: a SQLite file (counted in Python), a migrated PostgreSQL one (counted in SQL)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    return str(request.getfixturevalue("fresh_pg_url"))


def monitor(url: str, *args: str) -> Any:
    return CliRunner().invoke(main, ["monitor", *args, "--database-url", url])


def test_drift_json_has_an_entry_per_feature_and_for_the_output(url: str) -> None:
    rows, _ = penguins(600, seed=1)
    record(url, rows)
    result = monitor(url, "drift", "penguins", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["model"], report["version"], report["rows"]) == ("penguins", "1.0.0", 600)
    entries = report["features"]
    assert [e["feature"] for e in entries] == [*FEATURES, "output.label"]
    assert all(e["status"] in ("stable", "watch", "drift") for e in entries)
    assert all(isinstance(e["psi"], float) for e in entries)
    assert [e["role"] for e in entries][-1] == "output"
    assert report["drifted"] == []
    table = monitor(url, "drift", "penguins")
    assert table.exit_code == 0, table.output
    assert "island" in table.output
    assert "output.label" in table.output


def test_a_shifted_island_share_is_flagged_and_fails_on_request(url: str) -> None:
    rows, _ = penguins(600, seed=2, torgersen=0.5)
    record(url, rows)
    result = monitor(url, "drift", "penguins", "--format", "json", "--fail-on", "drift")
    assert result.exit_code == 3, result.output
    report = json.loads(result.output)
    statuses = {e["feature"]: e["status"] for e in report["features"]}
    assert statuses["island"] == "drift"
    assert {f for f, s in statuses.items() if s == "drift" and f in FEATURES} == {"island"}
    relaxed = monitor(url, "drift", "penguins", "--format", "json", "--drift", "50", "--watch", "40")
    assert relaxed.exit_code == 0
    assert {e["status"] for e in json.loads(relaxed.output)["features"]} == {"stable"}
    few = monitor(url, "drift", "penguins", "--format", "json", "--min-rows", "601")
    assert {e["status"] for e in json.loads(few.output)["features"]} == {"insufficient"}
    bad = monitor(url, "drift", "penguins", "--watch", "0.3", "--drift", "0.2")
    assert bad.exit_code == 2
    assert "watch <= drift" in bad.output
    backwards = monitor(url, "drift", "penguins", "--since", "2026-12-02", "--until", "2026-12-01")
    assert backwards.exit_code == 2
    assert "must start before it ends" in backwards.output


def test_quality_equals_the_feedback_by_hand(url: str) -> None:
    rows, species = penguins(120, seed=3)
    answers = record(url, rows, truth=species[:100])
    result = monitor(url, "quality", "penguins", "--format", "json", "--periods", "4")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    overall = report["overall"]
    assert overall["count"] == 100
    hits = sum(str(a.label) == s for a, s in zip(answers[:100], species[:100], strict=True))  # type: ignore[union-attr]
    assert overall["accuracy"] == pytest.approx(hits / 100)
    of_actual = [a.probabilities[s] for a, s in zip(answers[:100], species[:100], strict=True)]  # type: ignore[union-attr]
    assert overall["log_loss"] == pytest.approx(-np.mean(np.log(np.clip(of_actual, 1e-15, 1))))
    assert len(report["periods"]) == 4
    assert sum(p["count"] for p in report["periods"]) == 100
    table = monitor(url, "quality", "penguins")
    assert table.exit_code == 0, table.output
    assert "whole window" in table.output


def test_the_report_is_one_self_contained_page(url: str, tmp_path: Path) -> None:
    rows, species = penguins(700, seed=4, torgersen=0.4)
    record(url, rows, truth=species[:300])
    out = tmp_path / "report.html"
    result = monitor(url, "report", "penguins", "--out", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    images = re.findall(r"<img [^>]*src='([^']*)'", page)
    assert len(images) == len(FEATURES) + 1 + 2  # a plot per feature and output, quality, calibration
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert "http://" not in page
    assert "https://" not in page
    assert "<script" not in page
    assert "island" in page


def test_an_old_bundle_says_why_its_drift_cannot_be_measured(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = FORMAT_1 / "breast_cancer" / "1.0.0"
    data = load_dataset("breast_cancer").frame
    rows = [{c: column_values(data[c])[i] for c in data.columns} for i in range(5)]
    record(url, rows, model=str(bundle))
    monkeypatch.setenv("PREDICTOR_MODEL", str(bundle))
    result = monitor(url, "drift", "breast_cancer")
    assert result.exit_code == 1
    assert "ProfileMissing: breast_cancer 1.0.0 has no training profile" in result.output
    assert "manifest format 1" in result.output
    out = tmp_path / "old.html"
    written = monitor(url, "report", "breast_cancer", "--out", str(out))
    assert written.exit_code == 0, written.output
    assert "has no training profile" in out.read_text()


def test_a_rolling_window_counts_what_one_window_over_the_same_span_counts(url: str) -> None:
    """The drift gauges' cells of time, counted apart by the store, add up to the window counted whole."""
    import datetime as dt

    import sqlalchemy as sa

    from predictor_sql.store import create_engine
    from predictor_sql.tables import model_inputs

    batches = [penguins(120, seed)[0] for seed in (11, 12)] + [penguins(120, 13, torgersen=0.9)[0]]
    answers = [record(url, rows) for rows in batches]
    now = dt.datetime.now(dt.UTC)

    async def run() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:  # the first two batches recorded earlier in the day
                for batch, hours in zip(answers[:2], (23.5, 3.0), strict=True):
                    await conn.execute(
                        sa.update(model_inputs)
                        .where(model_inputs.c.prediction_id.in_([a.prediction_id for a in batch]))
                        .values(created_at=now - dt.timedelta(hours=hours))
                    )
        finally:
            await engine.dispose()
        wiring = Wiring(Settings.load(database_url=url, record=True, model="penguins"))
        await wiring.start()
        try:
            assert wiring.monitor is not None
            version = wiring.registry.resolve("penguins").version
            rolling = wiring.monitor.rolling(dt.timedelta(hours=24))
            # past the margin for commits in flight, 7 minutes on, and 2 hours on, when the batch of
            # 23.5 hours ago has left the window
            for minutes, rows in ((2, 360), (9, 360), (122, 240)):
                report = await rolling.drift("penguins", version, now=now + dt.timedelta(minutes=minutes))
                whole = await wiring.monitor.drift(
                    "penguins", version, since=report.since, until=report.until
                )
                assert report.rows == whole.rows == rows
                assert report.features == whole.features
        finally:
            await wiring.close()

    asyncio.run(run())
