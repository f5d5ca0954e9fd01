"""The estimators data scientists use, each exported as fitted and served by the real onnxruntime.

Every case is a user-style pipeline (a ColumnTransformer over a pandas frame with ints, floats, bools,
categories and NaN), fitted by the test, exported with `predictor.export`, loaded back through
`predict(frame, model=<bundle dir>)`, and compared with the pipeline's own predictions on held-out rows.
docs/models.md's matrix quotes what these cases measure: `python -m tests.functional.test_export_matrix`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from predictor import export, predict
from predictor_onnx.parity import PROBABILITY_ATOL, VALUE_ATOL, VALUE_RTOL

NUMBERS = ["age", "income", "score"]
CATEGORIES = ["city", "plan", "member"]


def user_data(
    rows: int = 300, *, seed: int = 0, classes: int = 2
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """A frame as a data scientist holds it: int, float with NaN, bool, str with NaN, category dtype."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows),
            "income": rng.normal(50_000, 15_000, rows).round(2),
            "score": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(0, 1, rows)),
            "member": rng.random(rows) < 0.4,
            "city": pd.Series(rng.choice(["Lyon", "Oslo", "Pune"], rows)).where(rng.random(rows) > 0.1),
            "plan": pd.Categorical(rng.choice(["basic", "premium"], rows)),
        }
    )
    signal = (
        (frame["age"] - 50) / 20
        + frame["score"].fillna(0)
        + frame["member"] * 0.8
        + (frame["city"] == "Oslo") * 0.5
        + rng.normal(0, 0.5, rows)
    )
    cuts = np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1])
    labels = np.array(["no", "yes"]) if classes == 2 else np.array(["low", "mid", "high"])
    label = pd.Series(labels[np.searchsorted(cuts, signal)], name="label")
    value = pd.Series(signal * 10 + frame["income"] / 1000, name="value")
    return frame, label, value


def prepare(*, scaler: Any = None, encoder: str = "onehot") -> ColumnTransformer:
    numbers = [("impute", SimpleImputer(strategy="median"))] + ([("scale", scaler)] if scaler else [])
    encode = (
        OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        if encoder == "onehot"
        else OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    )
    return ColumnTransformer(
        [
            ("numbers", Pipeline(numbers), NUMBERS),
            (
                "categories",
                Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("encode", encode)]),
                CATEGORIES,
            ),
        ]
    )


def _sk(module: str, name: str, **params: Any) -> Callable[[], Any]:
    def make() -> Any:
        imported = (
            pytest.importorskip(module)
            if module in ("xgboost", "lightgbm")
            else __import__(module, fromlist=[name])
        )
        return getattr(imported, name)(**params)

    return make


def _calibrated_svc() -> Any:
    """SVC with probabilities, as scikit-learn 1.9 asks for them (SVC(probability=True) is deprecated)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    return CalibratedClassifierCV(SVC(), ensemble=False)


# (case id, task, estimator factory, scaler, encoder)
CASES = [
    (
        "LogisticRegression",
        "binary",
        _sk("sklearn.linear_model", "LogisticRegression", max_iter=1000),
        StandardScaler(),
        "onehot",
    ),
    (
        "LogisticRegression-multiclass",
        "multiclass",
        _sk("sklearn.linear_model", "LogisticRegression", max_iter=1000),
        MinMaxScaler(),
        "onehot",
    ),
    (
        "RandomForestClassifier",
        "binary",
        _sk("sklearn.ensemble", "RandomForestClassifier", n_estimators=30, random_state=0),
        None,
        "ordinal",
    ),
    (
        "RandomForestClassifier-scaled",
        "multiclass",
        _sk("sklearn.ensemble", "RandomForestClassifier", n_estimators=30, random_state=0),
        StandardScaler(),
        "onehot",
    ),
    (
        "ExtraTreesClassifier",
        "binary",
        _sk("sklearn.ensemble", "ExtraTreesClassifier", n_estimators=30, random_state=0),
        None,
        "onehot",
    ),
    (
        "GradientBoostingClassifier-scaled",
        "binary",
        _sk("sklearn.ensemble", "GradientBoostingClassifier", random_state=0),
        StandardScaler(),
        "onehot",
    ),
    (
        "HistGradientBoostingClassifier",
        "multiclass",
        _sk("sklearn.ensemble", "HistGradientBoostingClassifier", max_iter=30, random_state=0),
        None,
        "ordinal",
    ),
    (
        "DecisionTreeClassifier",
        "binary",
        _sk("sklearn.tree", "DecisionTreeClassifier", max_depth=5, random_state=0),
        MinMaxScaler(),
        "onehot",
    ),
    (
        "SVC-calibrated",
        "binary",
        lambda: _calibrated_svc(),
        StandardScaler(),
        "onehot",
    ),
    (
        "KNeighborsClassifier",
        "multiclass",
        _sk("sklearn.neighbors", "KNeighborsClassifier"),
        StandardScaler(),
        "onehot",
    ),
    (
        "XGBClassifier",
        "binary",
        _sk("xgboost", "XGBClassifier", n_estimators=30, max_depth=3),
        None,
        "onehot",
    ),
    (
        "LGBMClassifier",
        "multiclass",
        _sk("lightgbm", "LGBMClassifier", n_estimators=30, verbose=-1),
        None,
        "onehot",
    ),
    (
        "LinearRegression",
        "regression",
        _sk("sklearn.linear_model", "LinearRegression"),
        StandardScaler(),
        "onehot",
    ),
    ("Ridge", "regression", _sk("sklearn.linear_model", "Ridge"), MinMaxScaler(), "onehot"),
    ("Lasso", "regression", _sk("sklearn.linear_model", "Lasso", alpha=0.1), StandardScaler(), "ordinal"),
    (
        "ElasticNet",
        "regression",
        _sk("sklearn.linear_model", "ElasticNet", alpha=0.1),
        StandardScaler(),
        "onehot",
    ),
    (
        "RandomForestRegressor",
        "regression",
        _sk("sklearn.ensemble", "RandomForestRegressor", n_estimators=30, random_state=0),
        StandardScaler(),
        "onehot",
    ),
    (
        "ExtraTreesRegressor",
        "regression",
        _sk("sklearn.ensemble", "ExtraTreesRegressor", n_estimators=30, random_state=0),
        None,
        "ordinal",
    ),
    (
        "GradientBoostingRegressor",
        "regression",
        _sk("sklearn.ensemble", "GradientBoostingRegressor", random_state=0),
        StandardScaler(),
        "onehot",
    ),
    (
        "HistGradientBoostingRegressor",
        "regression",
        _sk("sklearn.ensemble", "HistGradientBoostingRegressor", max_iter=30, random_state=0),
        None,
        "onehot",
    ),
    ("SVR", "regression", _sk("sklearn.svm", "SVR", C=10.0), StandardScaler(), "onehot"),
    (
        "KNeighborsRegressor",
        "regression",
        _sk("sklearn.neighbors", "KNeighborsRegressor"),
        MinMaxScaler(),
        "onehot",
    ),
    (
        "XGBRegressor",
        "regression",
        _sk("xgboost", "XGBRegressor", n_estimators=30, max_depth=3),
        None,
        "onehot",
    ),
    (
        "LGBMRegressor",
        "regression",
        _sk("lightgbm", "LGBMRegressor", n_estimators=30, verbose=-1),
        None,
        "ordinal",
    ),
]


def run_case(case: tuple[Any, ...], out: Path) -> dict[str, Any]:
    """Fit, export, serve through predict(); returns the held-out differences and the bundle's parity."""
    name, task, make, scaler, encoder = case
    frame, label, value = user_data(classes=3 if task == "multiclass" else 2)
    y = value if task == "regression" else label
    if name.startswith("XGB") and task != "regression":  # XGBoost wants classes encoded as 0..k-1
        y = y.map({c: i for i, c in enumerate(sorted(set(y)))})
    train, test = slice(0, 225), slice(225, None)
    pipeline = Pipeline([("prepare", prepare(scaler=scaler, encoder=encoder)), ("model", make())])
    pipeline.fit(frame.iloc[train], y.iloc[train])
    bundle = export(
        pipeline,
        frame.iloc[train],
        y.iloc[train],
        name="m",
        version="1",
        out=out,
        test=(frame.iloc[test], y.iloc[test]),
        card=False,
        report=False,
    )
    held_out = frame.iloc[test]
    served = predict(held_out, model=bundle.path)
    assert bundle.manifest.parity is not None
    if task == "regression":
        want = pipeline.predict(held_out)
        return {
            "served_diff": float(np.abs(served["value"].to_numpy() - want).max()),
            "within": bool(np.allclose(served["value"], want, rtol=VALUE_RTOL, atol=VALUE_ATOL)),
            "label_flips": 0,
            "parity": bundle.manifest.parity,
        }
    want = pipeline.predict_proba(held_out)
    classes = list(pipeline.classes_)
    if task == "binary":
        got = served["probability"].to_numpy()
        diff = np.abs(got - want[:, classes.index(bundle.manifest.positive_class)])
    else:
        got = served[[f"probability_{c}" for c in classes]].to_numpy()
        diff = np.abs(got - want)
    return {
        "served_diff": float(diff.max()),
        "within": bool(diff.max() <= PROBABILITY_ATOL),
        "label_flips": int((served["label"].to_numpy() != pipeline.predict(held_out)).sum()),
        "parity": bundle.manifest.parity,
    }


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_exported_pipeline_serves_the_pipelines_own_predictions(
    case: tuple[Any, ...], tmp_path: Path
) -> None:
    found = run_case(case, tmp_path)
    assert found["label_flips"] == 0
    assert found["within"], found
    assert found["parity"].label_mismatches == 0


if __name__ == "__main__":  # prints the figures quoted in docs/models.md
    import tempfile

    for case in CASES:
        with tempfile.TemporaryDirectory() as scratch:
            try:
                found = run_case(case, Path(scratch))
            except Exception as exc:  # a refused or failing case is reported, not hidden
                print(f"| {case[0]} | {case[1]} | refused: {str(exc).splitlines()[0][:120]} |")
                continue
            parity = found["parity"]
            print(
                f"| {case[0]} | {case[1]} | {type(case[3]).__name__ if case[3] else 'none'} / {case[4]} | "
                f"{parity.max_abs_diff:.1e} on {parity.rows} rows | {found['served_diff']:.1e} |"
            )
