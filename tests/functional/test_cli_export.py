"""`predictor schema infer`, `predictor export` from skops and Parquet files, errors that say what to do."""

from __future__ import annotations

import tomllib
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from predictor.cli import main
from predictor.schema_file import read_schema_file, schema_refinements
from predictor_core import FeatureKind, SchemaError
from predictor_onnx import read_bundle


@pytest.fixture
def files(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    rows = 150
    frame = pd.DataFrame(
        {
            "height": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(170, 10, rows)),
            "shoe": rng.integers(35, 48, rows),
            "colour": pd.Series(rng.choice(["red", "green"], rows), dtype=object),
        }
    )
    frame["tall"] = np.where(frame["height"].fillna(170) > 172, "yes", "no")
    features = frame.drop(columns="tall")
    pipeline = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("n", SimpleImputer(strategy="median"), ["height", "shoe"]),
                        ("c", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
                    ]
                ),
            ),
            ("model", LogisticRegression()),
        ]
    ).fit(features, frame["tall"])
    joblib.dump(pipeline, tmp_path / "model.joblib")
    frame.to_parquet(tmp_path / "train.parquet")
    frame.to_csv(tmp_path / "train.csv", index=False)
    import skops.io as sio

    sio.dump(pipeline, tmp_path / "model.skops")
    return tmp_path


def test_schema_infer_writes_a_toml_file_that_export_reads_back(files: Path) -> None:
    result = CliRunner().invoke(
        main, ["schema", "infer", "--data", str(files / "train.csv"), "--target", "tall"]
    )
    assert result.exit_code == 0, result.output
    parsed = tomllib.loads(result.output)
    assert parsed["features"]["shoe"]["kind"] == "integer"
    assert parsed["features"]["height"]["nullable"] is True
    assert parsed["features"]["colour"]["categories"] == ["green", "red"]
    assert "# observed 35 .. 47" in result.output
    (files / "schema.toml").write_text(
        result.output + '\n[[rules]]\nname = "r"\nexpr = "shoe >= 30"\nmessage = "shoe sizes start at 30"\n'
    )
    refinements = read_schema_file(files / "schema.toml")
    assert refinements.refine["shoe"] == {"kind": FeatureKind.INTEGER, "nullable": False, "description": ""}
    assert [r.name for r in refinements.rules] == ["r"]


def test_export_from_a_skops_file_and_parquet_data(files: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "export",
            str(files / "model.skops"),
            "--data",
            str(files / "train.parquet"),
            "--target",
            "tall",
            "--name",
            "tall",
            "--version",
            "1",
            "--test-fraction",
            "0.25",
            "--out",
            str(files / "out"),
            "--no-card",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "unpickling" not in result.output  # skops loads without running code
    manifest, _ = read_bundle(files / "out" / "tall" / "1")
    assert manifest.evaluation is not None
    assert not manifest.evaluation.held_out
    assert "25% of the given rows" in manifest.evaluation.source
    assert manifest.classes == ("no", "yes")


def test_a_joblib_file_is_loaded_with_a_warning(files: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "export",
            str(files / "model.joblib"),
            "--data",
            str(files / "train.csv"),
            "--target",
            "tall",
            "--name",
            "tall",
            "--version",
            "1",
            "--out",
            str(files / "out"),
            "--no-card",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "unpickling model.joblib runs code from the file" in result.output
    assert "not held out: optimistic" in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "nope"], "train.csv has no column 'nope'"),
        (["--target", "tall", "--test-fraction", "0.2", "--test-data", "train.csv"], "not both"),
        (["--target", "tall", "--positive-class", "maybe"], "'maybe' is not a value of the target"),
    ],
)
def test_export_errors_say_what_is_wrong(files: Path, extra: list[str], message: str) -> None:
    args = [
        "export",
        str(files / "model.joblib"),
        "--data",
        str(files / "train.csv"),
        "--name",
        "x",
        "--version",
        "1",
    ]
    result = CliRunner().invoke(main, [*args, *[str(files / e) if e.endswith(".csv") else e for e in extra]])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_schema_file_with_an_unknown_key_is_refused_with_its_location(tmp_path: Path) -> None:
    (tmp_path / "schema.toml").write_text('[features.age]\nunits = "years"\n')
    with pytest.raises(
        SchemaError, match=r"schema.toml: invalid schema refinements: .*unknown field `units`"
    ):
        read_schema_file(tmp_path / "schema.toml")
    with pytest.raises(SchemaError, match=r"expected one comparison|needs one comparison"):
        schema_refinements({"rules": [{"name": "r", "expr": "age", "message": "m"}]})
