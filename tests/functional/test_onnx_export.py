"""export_bundle and infer_schema: what the exporter infers, adapts and refuses, and that its bytes repeat."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.svm import SVC

from predictor_core import FeatureKind, Rule, SchemaError
from predictor_onnx import read_bundle
from predictor_onnx.export import ExportRefused, export_bundle
from predictor_onnx.infer_schema import infer_schema
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
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X_train, y_train)
    first = export_bundle(
        pipeline, X_train, y_train, X_test, y_test, name="bc", version="1", out_dir=tmp_path / "a"
    ).path
    again = export_bundle(
        pipeline, X_train, y_train, X_test, y_test, name="bc", version="1", out_dir=tmp_path / "b"
    ).path
    manifest, model = read_bundle(first)
    assert hashlib.sha256(model).hexdigest() == manifest.sha256
    assert (again / "model.onnx").read_bytes() == model
    assert manifest.task == "binary"
    assert manifest.classes == ("benign", "malignant")
    assert manifest.positive_class == "malignant"
    assert set(manifest.metrics) >= {"accuracy", "roc_auc", "f1", "log_loss"}
    assert manifest.metrics["accuracy"] > 0.9
    assert manifest.evaluation is not None
    assert manifest.evaluation.held_out
    assert manifest.evaluation.rows == len(X_test)
    assert manifest.parity is not None
    assert manifest.parity.rows == len(X_train) + len(X_test)
    assert manifest.training is not None
    assert manifest.training.rows == len(X_train)
    assert manifest.training.features["mean_radius"].quantiles is not None
    assert set(manifest.versions) >= {"scikit-learn", "skl2onnx", "onnx", "onnxruntime"}


def test_a_scaler_in_front_of_trees_is_exported_as_fitted(tmp_path: Path) -> None:
    X_train, y_train, X_test, y_test = breast_cancer_split()
    pipeline = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=30, random_state=0))
    # scikit-learn scales in float64, then its trees read float32: the graph does the same.
    pipeline.fit(X_train, y_train)
    done = export_bundle(pipeline, X_train, y_train, X_test, y_test, name="rf", version="1", out_dir=tmp_path)
    assert done.parity.label_mismatches == 0
    assert done.parity.max_abs_diff <= 1e-6
    assert any("float32" in note for note in done.adaptations)


def test_a_schema_that_refuses_training_rows_is_refused(tmp_path: Path) -> None:
    X_train, y_train, X_test, y_test = breast_cancer_split()
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X_train, y_train)
    wrong = Rule(name="mean_above_worst", expr="mean_radius > worst_radius", message="made up")
    with pytest.raises(ExportRefused, match=r"the schema refuses rows of the rows given"):
        export_bundle(
            pipeline, X_train, y_train, X_test, y_test, name="x", version="1", out_dir=tmp_path, rules=[wrong]
        )
    assert not (tmp_path / "x").exists()


class Doubler(TransformerMixin, BaseEstimator):
    def fit(self, X: object, y: object = None) -> Doubler:
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X) * 2


def test_an_estimator_without_a_converter_is_named_with_its_path(tmp_path: Path) -> None:
    X_train, y_train, X_test, y_test = breast_cancer_split()
    pipeline = make_pipeline(Doubler(), LogisticRegression(max_iter=5000)).fit(X_train.to_numpy(), y_train)
    with pytest.raises(ExportRefused, match=r"Pipeline › doubler \(.*Doubler\) has no ONNX converter"):
        export_bundle(pipeline, X_train, y_train, X_test, y_test, name="x", version="1", out_dir=tmp_path)


def test_hist_gradient_boosting_with_native_categories_is_refused(tmp_path: Path) -> None:
    data = load_dataset("penguins")
    frame = data.frame[["island", "sex"]].fillna("")
    encoded = OrdinalEncoder().fit_transform(frame)
    model = HistGradientBoostingClassifier(categorical_features=[0, 1], max_iter=5).fit(encoded, data.target)
    with pytest.raises(ExportRefused, match=r"native categorical features converts silently to wrong"):
        export_bundle(model, encoded, data.target, name="x", version="1", out_dir=tmp_path)


def test_svc_without_probabilities_is_refused_with_the_fix(tmp_path: Path) -> None:
    X_train, y_train, _, _ = breast_cancer_split()
    model = make_pipeline(StandardScaler(), SVC()).fit(X_train, y_train)
    with pytest.raises(ExportRefused, match=r"CalibratedClassifierCV\(SVC\(\), ensemble=False\)"):
        export_bundle(model, X_train, y_train, name="x", version="1", out_dir=tmp_path)


def user_frame(rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "size": rng.normal(10, 3, rows),
            "colour": pd.Series(rng.choice(["red", "blue"], rows), dtype=object),
        }
    )


def test_a_column_mixing_none_and_nan_for_missing_is_refused(tmp_path: Path) -> None:
    frame = user_frame()
    frame.loc[3, "colour"] = None
    frame.loc[4, "colour"] = np.nan
    y = (frame["size"] > 10).astype(int)
    pipeline = make_pipeline(
        ColumnTransformer(
            [
                ("n", "passthrough", ["size"]),
                ("c", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()), ["colour"]),
            ]
        ),
        LogisticRegression(),
    ).fit(frame, y)
    with pytest.raises(ExportRefused, match=r"'colour' marks missing values both as None and as NaN"):
        export_bundle(pipeline, frame, y, name="x", version="1", out_dir=tmp_path)


def test_a_number_encoded_with_the_categories_is_refused_with_the_fix(tmp_path: Path) -> None:
    frame = user_frame()
    y = (frame["size"] > 10).astype(int)
    pipeline = make_pipeline(
        ColumnTransformer([("all", OneHotEncoder(handle_unknown="ignore"), ["size", "colour"])]),
        LogisticRegression(),
    ).fit(frame, y)
    with pytest.raises(ExportRefused, match=r"branch 'all' reads the number feature 'size' together with"):
        export_bundle(pipeline, frame, y, name="x", version="1", out_dir=tmp_path)


@pytest.mark.parametrize("name", ["breast_cancer", "penguins"])
def test_format_1_bundles_load_and_predict_as_they_always_did(name: str) -> None:
    """Bundles written before format 2 (float32 inputs, "" for a missing category) still serve."""
    import onnxruntime as ort

    from predictor_core import ClassifierOutputs, validate_columns
    from predictor_onnx import BundleDirectory
    from predictor_onnx.infer_schema import column_values
    from predictor_onnx.runtime import session_options

    runtime = BundleDirectory([FORMAT_1]).load(name, "1.0.0")
    manifest = runtime.manifest
    assert manifest.format_version == 1
    data = load_dataset(name).frame
    batch = validate_columns(manifest.schema, {c: column_values(data[c]) for c in data.columns})
    served = runtime.infer(batch)
    # the feed format 1 was written for: float32 numbers, "" for a missing category
    model = (FORMAT_1 / name / "1.0.0" / "model.onnx").read_bytes()
    session = ort.InferenceSession(model, session_options(), providers=["CPUExecutionProvider"])
    feeds = {}
    for spec in manifest.onnx.inputs:
        block = data[list(spec.features)]
        if spec.dtype == "string":
            feeds[spec.name] = block.astype(object).where(block.notna(), "").to_numpy()
        else:
            feeds[spec.name] = block.to_numpy(dtype=np.float32)
    labels, probabilities = session.run(None, feeds)
    assert isinstance(served, ClassifierOutputs)
    assert np.array_equal(served.labels, labels)
    assert np.array_equal(served.probabilities, probabilities)


FORMAT_1 = Path(__file__).parent / "data" / "format1"


def test_a_pipeline_fitted_on_an_array_exports_with_positional_names(tmp_path: Path) -> None:
    X_train, y_train, X_test, y_test = breast_cancer_split()
    arrays = X_train.to_numpy()[:, :5], X_test.to_numpy()[:, :5]
    pipeline = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=20, random_state=0))
    pipeline.fit(arrays[0], y_train)
    done = export_bundle(
        pipeline, arrays[0], y_train, arrays[1], y_test, name="a", version="1", out_dir=tmp_path
    )
    assert done.manifest.schema.names == ("x0", "x1", "x2", "x3", "x4")
    assert [(s.name, s.dtype) for s in done.manifest.onnx.inputs] == [("X", "float64")]
    assert done.parity.label_mismatches == 0
    assert done.parity.max_abs_diff <= 1e-6
