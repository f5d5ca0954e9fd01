"""`predictor models`, `predictor predict` and `predictor train`, run through click's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from predictor.cli import main
from predictor_onnx import read_bundle, reference_root
from predictor_onnx.reference.datasets import load_dataset


@pytest.fixture(autouse=True)
def plain_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PREDICTOR_MODEL", "PREDICTOR_MODEL_DIRS", "PREDICTOR_DEVICE", "PREDICTOR_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")


def test_models_lists_every_bundle_with_its_provider() -> None:
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    for name in ("breast_cancer (default)", "penguins", "diabetes"):
        assert name in result.output
    assert "CPUExecutionProvider" in result.output
    assert "roc_auc" in result.output


def test_predict_a_csv_to_a_csv_keeps_the_input_and_adds_predictions(tmp_path: Path) -> None:
    data = load_dataset("penguins")
    data.frame.to_csv(tmp_path / "in.csv", index=False)
    result = CliRunner().invoke(
        main,
        [
            "predict",
            "--model",
            "penguins",
            "--input",
            str(tmp_path / "in.csv"),
            "--output",
            str(tmp_path / "out.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == len(data.frame)
    assert {"island", "label", "probability_Gentoo"} <= set(out.columns)
    assert (out["label"] == data.target.to_numpy()).mean() > 0.95


def test_predict_parquet_in_json_out(tmp_path: Path) -> None:
    load_dataset("diabetes").frame.iloc[:10].to_parquet(tmp_path / "in.parquet")
    result = CliRunner().invoke(
        main,
        [
            "predict",
            "--model",
            "diabetes",
            "--input",
            str(tmp_path / "in.parquet"),
            "--output",
            str(tmp_path / "o.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "o.json").read_text())
    assert len(rows) == 10
    assert all(25 <= r["value"] <= 346 for r in rows)


def test_predict_json_records_to_stdout(tmp_path: Path) -> None:
    record = dict(read_bundle(reference_root() / "breast_cancer" / "1.0.0")[0].schema.examples[0])
    (tmp_path / "two.json").write_text(json.dumps([record, record]))
    result = CliRunner().invoke(main, ["predict", "--input", str(tmp_path / "two.json")])
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.stdout)
    assert [p["task"] for p in predictions] == ["binary", "binary"]


def test_invalid_records_fail_with_a_readable_message_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text(json.dumps({"mean_radius": "big"}))
    result = CliRunner().invoke(main, ["predict", "--input", str(tmp_path / "bad.json")])
    assert result.exit_code == 1
    assert "ValidationFailed" in result.output
    assert "mean_radius must be a number, got string 'big'" in result.output
    assert "Traceback" not in result.output


def test_unreadable_input_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data.xlsx").write_text("x")
    result = CliRunner().invoke(main, ["predict", "--input", str(tmp_path / "data.xlsx")])
    assert result.exit_code == 1
    assert "use .csv, .parquet or .json" in result.output


def test_train_rebuilds_a_reference_model_identically(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["train", "penguins", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rebuilt, _ = read_bundle(tmp_path / "penguins" / "1.0.0")
    shipped, _ = read_bundle(reference_root() / "penguins" / "1.0.0")
    assert rebuilt.sha256 == shipped.sha256
    assert rebuilt.metrics == shipped.metrics


def test_train_needs_names_or_all() -> None:
    result = CliRunner().invoke(main, ["train"])
    assert result.exit_code == 2
    assert "name the models to train, or pass --all" in result.output
    result = CliRunner().invoke(main, ["train", "iris"])
    assert "no reference model iris" in result.output


def test_an_alias_move_by_a_user_without_a_name_is_recorded_by_uid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import getpass
    import os

    def nameless() -> str:
        raise KeyError(f"getpwuid(): uid not found: {os.getuid()}")

    monkeypatch.setattr(getpass, "getuser", nameless)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")
    moved = CliRunner().invoke(main, ["models", "promote", "penguins", "1.0.0", "--alias", "candidate"])
    assert moved.exit_code == 0, moved.output
    assert f"penguins candidate: (none) -> 1.0.0 (by os:uid={os.getuid()})" in moved.output
