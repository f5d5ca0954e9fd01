"""The journey: a data scientist's own fitted pipeline to served predictions, without refitting anything.

Each pipeline is built as a user would (a ColumnTransformer over a pandas frame with ints, floats,
a bool, categories and NaN, no project helper), exported through Python and through the CLI from a
joblib file and CSV files, served by a real `predictor serve --model <bundle dir>`, and its HTTP and
`predict()` answers are compared with the pipeline's own predict / predict_proba on held-out rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from predictor import export, predict
from predictor.cli import main
from predictor_onnx import read_bundle
from tests.functional.server import running_server

pytestmark = pytest.mark.postgres

SCHEMA_TOML = """
[features.age]
description = "age at signup"
unit = "years"
minimum = 0
maximum = 120

[features.visits]
minimum = 0

[[rules]]
name = "spend_within_income"
expr = "spend <= income"
message = "monthly spend cannot exceed monthly income"
"""


def customers(rows: int = 320, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(3_000, 800, rows).clip(500).round(2)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "visits": rng.integers(0, 30, rows),
            "income": income,
            "spend": (income * rng.uniform(0.05, 0.6, rows)).round(2),
            "rating": np.where(rng.random(rows) < 0.12, np.nan, rng.normal(3.5, 1, rows).round(1)),
            "newsletter": rng.random(rows) < 0.3,
            "region": pd.Series(rng.choice(["north", "south", "east", "west"], rows), dtype=object),
            "plan": pd.Categorical(rng.choice(["free", "pro", "team"], rows)),
        }
    )
    frame.loc[rng.random(rows) < 0.1, "region"] = np.nan
    score = (
        frame["visits"] / 10
        - (frame["age"] - 45) / 30
        + frame["rating"].fillna(3.5)
        - 3.5
        + frame["newsletter"] * 0.7
        + (frame["plan"] == "pro") * 0.6
        + rng.normal(0, 0.6, rows)
    )
    frame["churned"] = np.where(score > score.median(), "yes", "no")
    frame["segment"] = pd.cut(score, 3, labels=["casual", "regular", "loyal"]).astype(str)
    frame["lifetime_value"] = (frame["spend"] * 12 * (1 + score.clip(-0.9))).round(2)
    return frame


FEATURES = ["age", "visits", "income", "spend", "rating", "newsletter", "region", "plan"]
NUMBERS = ["age", "visits", "income", "spend", "rating"]
CATEGORIES = ["newsletter", "region", "plan"]


def user_pipeline(task: str) -> Pipeline:
    numbers = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categories = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    prepare = ColumnTransformer([("numbers", numbers, NUMBERS), ("categories", categories, CATEGORIES)])
    model: Any = {
        "binary": GradientBoostingClassifier(random_state=0),
        "multiclass": LogisticRegression(max_iter=2000),
        "regression": RandomForestRegressor(n_estimators=40, random_state=0),
    }[task]
    return Pipeline([("prepare", prepare), ("model", model)])


TARGETS = {"binary": "churned", "multiclass": "segment", "regression": "lifetime_value"}


@pytest.fixture(scope="module", params=["binary", "multiclass", "regression"])
def journey(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pg_url: str
) -> Iterator[dict]:
    task = request.param
    work = tmp_path_factory.mktemp(task)
    data = customers()
    train, test = data.iloc[:240], data.iloc[240:]
    target = TARGETS[task]
    pipeline = user_pipeline(task).fit(train[FEATURES], train[target])
    (work / "schema.toml").write_text(SCHEMA_TOML)
    by_python = export(
        pipeline,
        train[FEATURES],
        train[target],
        name=f"customers_{task}",
        version="1.0.0",
        out=work / "python",
        schema=work / "schema.toml",
        test=(test[FEATURES], test[target]),
        report=False,
    )
    joblib.dump(pipeline, work / "model.joblib")
    train.to_csv(work / "train.csv", index=False)
    test.to_csv(work / "test.csv", index=False)
    extra = [c for c in TARGETS.values() if c != target]
    for name in ("train.csv", "test.csv"):  # the CSV holds the features and this task's target only
        pd.read_csv(work / name).drop(columns=extra).to_csv(work / name, index=False)
    result = CliRunner().invoke(
        main,
        [
            "export",
            str(work / "model.joblib"),
            "--data",
            str(work / "train.csv"),
            "--target",
            target,
            "--name",
            f"customers_{task}",
            "--version",
            "2.0.0",
            "--schema",
            str(work / "schema.toml"),
            "--test-data",
            str(work / "test.csv"),
            "--out",
            str(work / "cli"),
        ],
    )
    assert result.exit_code == 0, result.output
    by_cli = work / "cli" / f"customers_{task}" / "2.0.0"
    with (
        running_server(pg_url, "--model", str(by_cli)) as base,
        httpx.Client(base_url=base, timeout=30) as http,
    ):
        yield {
            "task": task,
            "pipeline": pipeline,
            "test": test,
            "python": by_python,
            "cli": by_cli,
            "http": http,
            "cli_output": result.output,
        }


def as_json(row: pd.Series) -> dict[str, Any]:
    """A held-out row as a client would send it: NaN as null, numpy scalars as plain JSON values."""
    out: dict[str, Any] = {}
    for name in FEATURES:
        value = row[name]
        if isinstance(value, np.generic):
            value = value.item()
        out[name] = None if isinstance(value, float) and math.isnan(value) else value
    return out


def expected(pipeline: Pipeline, frame: pd.DataFrame, task: str) -> tuple[list[Any], np.ndarray]:
    if task == "regression":
        return [], pipeline.predict(frame)
    return list(pipeline.predict(frame)), pipeline.predict_proba(frame)


def test_both_exports_verify_parity_with_the_users_own_pipeline(journey: dict) -> None:
    for path in (journey["python"].path, journey["cli"]):
        manifest, _ = read_bundle(path)
        assert manifest.parity is not None
        assert manifest.parity.rows == 320
        assert manifest.parity.label_mismatches == 0
        assert manifest.evaluation is not None
        assert manifest.evaluation.held_out
        assert manifest.schema.feature("age").unit == "years"
        assert [r.name for r in manifest.schema.rules] == ["spend_within_income"]
    assert "parity with your pipeline on 320 rows" in journey["cli_output"]
    assert (journey["python"].path / "card" / "README.md").is_file()


def test_http_answers_are_the_pipelines_own_predictions(journey: dict) -> None:
    task, pipeline, test = journey["task"], journey["pipeline"], journey["test"]
    records = [as_json(row) for _, row in test.iterrows()]
    response = journey["http"].post("/predict/batch", json={"records": records})
    assert response.status_code == 200, response.text
    answers = response.json()["predictions"]
    labels, numbers = expected(pipeline, test[FEATURES], task)
    if task == "regression":
        got = np.array([a["value"] for a in answers])
        assert np.allclose(got, numbers, rtol=1e-5, atol=1e-5)
        return
    assert [a["label"] for a in answers] == labels
    classes = list(pipeline.classes_)
    if task == "binary":
        got = np.array([a["probability"] for a in answers])
        assert np.abs(got - numbers[:, classes.index("yes")]).max() <= 1e-5
    else:
        got = np.array([[a["probabilities"][c] for c in classes] for a in answers])
        assert np.abs(got - numbers).max() <= 1e-5


def test_predict_on_the_held_out_frame_gives_the_pipelines_own_predictions(journey: dict) -> None:
    task, pipeline, test = journey["task"], journey["pipeline"], journey["test"]
    served = predict(test[FEATURES], model=journey["python"].path)
    labels, numbers = expected(pipeline, test[FEATURES], task)
    if task == "regression":
        assert np.allclose(served["value"], numbers, rtol=1e-5, atol=1e-5)
    else:
        assert served["label"].tolist() == labels
        if task == "binary":
            assert np.abs(served["probability"].to_numpy() - numbers[:, 1]).max() <= 1e-5


def test_the_schema_files_rule_refuses_a_violating_record_with_its_message(journey: dict) -> None:
    record = as_json(journey["test"].iloc[0]) | {"income": 1000.0, "spend": 1500.0}
    response = journey["http"].post("/predict", json={"features": record})
    assert response.status_code == 422
    (problem,) = response.json()["errors"]
    assert problem["loc"] == ["features", "spend_within_income"]
    assert "monthly spend cannot exceed monthly income" in problem["msg"]


def test_an_integer_feature_takes_59_point_0_and_refuses_59_point_5(journey: dict) -> None:
    record = as_json(journey["test"].iloc[0])
    accepted = journey["http"].post("/predict", json={"features": record | {"age": 59.0}})
    assert accepted.status_code == 200, accepted.text
    stored = journey["http"].get(f"/predictions/{accepted.json()['prediction_id']}").json()
    assert stored["features"]["age"] == 59
    assert isinstance(stored["features"]["age"], int)
    refused = journey["http"].post("/predict", json={"features": record | {"age": 59.5}})
    assert refused.status_code == 422
    (problem,) = refused.json()["errors"]
    assert (problem["loc"], problem["code"]) == (["features", "age"], "wrong_type")


def test_a_card_is_drawn_from_a_test_file_by_the_bundle_itself(journey: dict, tmp_path: Path) -> None:
    test_csv = journey["cli"].parent.parent.parent / "test.csv"
    result = CliRunner().invoke(
        main,
        [
            "card",
            str(journey["cli"]),
            "--out",
            str(tmp_path),
            "--data",
            str(test_csv),
            "--target",
            TARGETS[journey["task"]],
        ],
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "README.md").read_text()
    assert "## Parity with the fitted pipeline" in text
    assert "spend_within_income" in text
    wanted = (
        {"predicted_vs_actual.png", "residuals.png"}
        if journey["task"] == "regression"
        else {"roc.png", "precision_recall.png", "confusion.png", "calibration.png"}
    )
    assert wanted | {"features.png"} <= {p.name for p in tmp_path.glob("*.png")}
    for png in tmp_path.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
