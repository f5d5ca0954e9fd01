"""export_bundle and infer_schema: what the exporter infers, what it refuses, and that its bytes repeat."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder, StandardScaler

from predictor_core import FeatureKind, Rule, SchemaError
from predictor_onnx import read_bundle
from predictor_onnx.export import ExportRefused, export_bundle
from predictor_onnx.infer_schema import infer_schema, model_frame
from predictor_onnx.parity import ParityFailed
from predictor_onnx.reference.datasets import load_dataset


def test_schema_inference_on_a_mixed_frame() -> None:
    frame = pd.DataFrame(
        {
            "length": [1.5, np.nan, 3.0],
            "count": pd.Series([1, 2, 3], dtype="int64"),
            "ok": [True, False, True],
            "colour": pd.Series(["red", None, "blue"], dtype=object),
            "shade": pd.Series(["dark", "light", "dark"], dtype="string"),
        }
    )
    schema = infer_schema(frame, refine={"length": {"unit": "mm", "minimum": 0.0}})
    kinds = {f.name: (f.kind, f.nullable) for f in schema.features}
    assert kinds == {
        "length": (FeatureKind.NUMBER, True),
        "count": (FeatureKind.INTEGER, False),
        "ok": (FeatureKind.BOOLEAN, False),
        "colour": (FeatureKind.CATEGORY, True),
        "shade": (FeatureKind.CATEGORY, False),
    }
    assert schema.feature("colour").categories == ("blue", "red")
    assert schema.feature("length").unit == "mm"
    assert schema.feature("length").minimum == 0.0


def test_refinements_of_unknown_features_are_refused() -> None:
    with pytest.raises(SchemaError, match=r"refinements for unknown features: width"):
        infer_schema(pd.DataFrame({"length": [1.0]}), refine={"width": {"unit": "mm"}})


def breast_cancer_split() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    data = load_dataset("breast_cancer")
    return data.frame.iloc[::2], data.target.iloc[::2], data.frame.iloc[1::2], data.target.iloc[1::2]


def test_export_writes_a_verified_bundle_with_identical_bytes_each_time(tmp_path: Path) -> None:
    X_train, y_train, X_test, y_test = breast_cancer_split()
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    pipeline.fit(model_frame(X_train, infer_schema(X_train)), y_train)
    first = export_bundle(
        pipeline, X_train, y_train, X_test, y_test, name="bc", version="1", out_dir=tmp_path / "a"
    )
    again = export_bundle(
        pipeline, X_train, y_train, X_test, y_test, name="bc", version="1", out_dir=tmp_path / "b"
    )
    manifest, model = read_bundle(first)
    assert hashlib.sha256(model).hexdigest() == manifest.sha256
    assert (again / "model.onnx").read_bytes() == model
    assert manifest.task == "binary"
    assert manifest.classes == ("benign", "malignant")
    assert manifest.positive_class == "malignant"
    assert set(manifest.metrics) >= {"accuracy", "roc_auc", "f1", "log_loss"}
    assert manifest.metrics["accuracy"] > 0.9
    assert manifest.training is not None
    assert manifest.training.rows == len(X_train)
    assert manifest.training.features["mean_radius"].quantiles is not None
    assert set(manifest.versions) >= {"scikit-learn", "skl2onnx", "onnx", "onnxruntime"}


def test_parity_gate_refuses_a_scaler_in_front_of_trees(tmp_path: Path) -> None:
    X_train, y_train, X_test, y_test = breast_cancer_split()
    pipeline = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=30, random_state=0))
    # scikit-learn scales in float64, the graph in float32: 1-ulp differences flip tree splits.
    pipeline.fit(model_frame(X_train, infer_schema(X_train)), y_train)
    with pytest.raises(ParityFailed, match=r"disagrees with scikit-learn"):
        export_bundle(pipeline, X_train, y_train, X_test, y_test, name="bad", version="1", out_dir=tmp_path)
    assert not (tmp_path / "bad").exists()


def test_a_schema_that_refuses_training_rows_is_refused(tmp_path: Path) -> None:
    X_train, y_train, X_test, y_test = breast_cancer_split()
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X_train, y_train)
    wrong = Rule(name="mean_above_worst", expr="mean_radius > worst_radius", message="made up")
    with pytest.raises(ExportRefused, match=r"the schema refuses rows of the training and test frames"):
        export_bundle(
            pipeline, X_train, y_train, X_test, y_test, name="x", version="1", out_dir=tmp_path, rules=[wrong]
        )


class Doubler(TransformerMixin, BaseEstimator):
    def fit(self, X: object, y: object = None) -> Doubler:
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X) * 2


def test_an_estimator_without_a_converter_is_named(tmp_path: Path) -> None:
    X_train, y_train, X_test, y_test = breast_cancer_split()
    pipeline = make_pipeline(Doubler(), LogisticRegression(max_iter=5000)).fit(X_train.to_numpy(), y_train)
    with pytest.raises(ExportRefused, match=r"cannot convert .*Doubler \(no converter registered\)"):
        export_bundle(pipeline, X_train, y_train, X_test, y_test, name="x", version="1", out_dir=tmp_path)


def test_hist_gradient_boosting_with_native_categories_is_refused(tmp_path: Path) -> None:
    data = load_dataset("penguins")
    frame = data.frame[["island", "sex"]].fillna("")
    encoded = OrdinalEncoder().fit_transform(frame)
    model = HistGradientBoostingClassifier(categorical_features=[0, 1], max_iter=5).fit(encoded, data.target)
    with pytest.raises(ExportRefused, match=r"native categorical features converts silently to wrong"):
        export_bundle(model, frame, data.target, frame, data.target, name="x", version="1", out_dir=tmp_path)
