"""The shipped reference bundles: parity with their recipes on the whole dataset, schemas that accept
every real row, and the rules and categories their model cards promise."""

from __future__ import annotations

import numpy as np
import pytest

from predictor_core import ClassifierOutputs, FeatureKind, RegressorOutputs, Task, validate_columns
from predictor_onnx import BundleDirectory, reference_root
from predictor_onnx.infer_schema import column_values
from predictor_onnx.parity import PROBABILITY_ATOL, VALUE_ATOL, VALUE_RTOL
from predictor_onnx.reference.datasets import DATASETS, load_dataset
from predictor_onnx.reference.recipes import RECIPES, fit_pipeline, split

SOURCE = BundleDirectory([reference_root()])


@pytest.mark.parametrize("name", DATASETS)
def test_every_row_validates_and_the_bundle_matches_its_recipe_on_the_whole_dataset(name: str) -> None:
    data = load_dataset(name)
    runtime = SOURCE.load(name, "1.0.0")
    schema = runtime.manifest.schema
    assert list(data.frame.columns) == list(schema.names)
    batch = validate_columns(schema, {c: column_values(data.frame[c]) for c in data.frame.columns})
    assert len(batch) == len(data.frame)

    onnx = runtime.infer(batch)
    pipeline = fit_pipeline(name)
    frame = data.frame  # the pipeline predicts from the frame as loaded, as it was fitted
    if isinstance(onnx, ClassifierOutputs):
        assert np.array_equal(onnx.labels.astype(str), pipeline.predict(frame).astype(str))
        assert np.abs(onnx.probabilities - pipeline.predict_proba(frame)).max() <= PROBABILITY_ATOL
    else:
        assert isinstance(onnx, RegressorOutputs)
        assert np.allclose(onnx.values, pipeline.predict(frame), rtol=VALUE_RTOL, atol=VALUE_ATOL)


@pytest.mark.parametrize("name", DATASETS)
def test_examples_validate_and_manifests_are_complete(name: str) -> None:
    manifest = SOURCE.load(name, "1.0.0").manifest
    schema = manifest.schema
    assert schema.examples
    validate_columns(schema, {n: [e.get(n) for e in schema.examples] for n in schema.names})
    assert manifest.version == RECIPES[name].version
    assert manifest.training is not None
    assert manifest.training.rows == len(split(name)[0])
    expected = (
        {"rmse", "mae", "r2"}
        if manifest.task is Task.REGRESSION
        else {"accuracy", "roc_auc", "f1", "log_loss"}
    )
    assert expected <= set(manifest.metrics)


def test_breast_cancer_schema_carries_the_datas_invariants() -> None:
    schema = SOURCE.load("breast_cancer", "1.0.0").manifest.schema
    rules = {r.name: r.expr for r in schema.rules}
    measures = [n.removeprefix("mean_") for n in schema.names if n.startswith("mean_")]
    assert len(measures) == 10
    for m in measures:
        assert rules[f"worst_{m}_ge_mean"] == f"worst_{m} >= mean_{m}"
        assert rules[f"{m}_error_ge_0"] == f"{m}_error >= 0"
    assert rules["mean_isoperimetric"] == "mean_perimeter ^ 2 >= 4 * pi * mean_area"
    assert rules["worst_isoperimetric"] == "worst_perimeter ^ 2 >= 4 * pi * worst_area"
    assert schema.feature("mean_area").unit == "px²"
    assert SOURCE.load("breast_cancer", "1.0.0").manifest.positive_class == "malignant"


def test_breast_cancer_rules_refuse_an_impossible_record() -> None:
    from predictor_core import ValidationFailed, validate_record

    schema = SOURCE.load("breast_cancer", "1.0.0").manifest.schema
    record = dict(schema.examples[0]) | {"worst_radius": schema.examples[0]["mean_radius"] - 1}
    with pytest.raises(ValidationFailed) as caught:
        validate_record(schema, record)
    assert [p.loc for p in caught.value.problems] == [(0, "worst_radius_ge_mean")]


def test_penguins_declares_nullable_categories_and_bounded_nullable_numbers() -> None:
    schema = SOURCE.load("penguins", "1.0.0").manifest.schema
    assert schema.feature("island").categories == ("Biscoe", "Dream", "Torgersen")
    assert schema.feature("sex").categories == ("female", "male")
    assert schema.feature("sex").kind is FeatureKind.CATEGORY
    assert schema.feature("sex").nullable
    for name in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"):
        feature = schema.feature(name)
        assert feature.nullable
        assert feature.minimum is not None
        assert feature.maximum is not None
        assert feature.unit in {"mm", "g"}


def test_diabetes_uses_real_units_readable_names_and_the_cholesterol_rule() -> None:
    schema = SOURCE.load("diabetes", "1.0.0").manifest.schema
    assert schema.names == ("age", "sex", "bmi", "bp", "tc", "ldl", "hdl", "tch", "ltg", "glu")
    assert schema.feature("tc").unit == "mg/dL"
    assert schema.feature("age").kind is FeatureKind.INTEGER
    assert [r.expr for r in schema.rules] == ["ldl + hdl < tc"]
