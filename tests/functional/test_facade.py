"""The notebook facade: dict, list and DataFrame in; the same shape out; readable validation errors."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictor.facade import Model, close, load_model, predict
from predictor_core import (
    BinaryPrediction,
    ClassifierOutputs,
    MulticlassPrediction,
    RegressionPrediction,
    ValidationFailed,
    validate_columns,
)
from predictor_onnx import BundleDirectory, reference_root
from predictor_onnx.infer_schema import column_values
from predictor_onnx.reference.datasets import load_dataset


@pytest.fixture(autouse=True)
def plain_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("PREDICTOR_MODEL", "PREDICTOR_MODEL_DIRS", "PREDICTOR_DEVICE", "PREDICTOR_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    close()  # the facade reads settings once: each test starts from its own environment
    yield
    close()


def first_record(name: str) -> dict[str, object]:
    frame = load_dataset(name).frame
    row = frame.iloc[[0]].astype(object).to_dict(orient="records")[0]
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def test_a_dict_gives_one_prediction_from_the_default_model() -> None:
    prediction = predict(first_record("breast_cancer"))
    assert isinstance(prediction, BinaryPrediction)
    assert prediction.model.name == "breast_cancer"
    assert prediction.label == "malignant"
    assert 0.5 < prediction.probability <= 1.0


def test_a_list_gives_a_list_in_order() -> None:
    data = load_dataset("penguins")
    frame = data.frame
    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in frame.iloc[[0, 3, 200]].to_dict(orient="records")
    ]
    predictions = predict(records, model="penguins")
    assert [type(p) for p in predictions] == [MulticlassPrediction] * 3
    assert [p.label for p in predictions] == data.target.iloc[[0, 3, 200]].tolist()


def test_a_dataframe_gives_a_dataframe_with_its_index() -> None:
    data = load_dataset("penguins")
    frame = data.frame.iloc[:40].set_axis([f"bird{i}" for i in range(40)])
    out = predict(frame, model="penguins")
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == list(frame.index)
    assert list(out.columns) == ["label", "probability_Adelie", "probability_Chinstrap", "probability_Gentoo"]
    assert (out["label"] == data.target.iloc[:40].to_numpy()).mean() > 0.95


def test_regression_frame_and_integer_columns_with_gaps() -> None:
    frame = load_dataset("diabetes").frame.iloc[:5].copy()
    frame["age"] = frame["age"].astype("float64")  # what pandas does to an int column with a gap
    out = predict(frame, model="diabetes")
    assert list(out.columns) == ["value"]
    assert out["value"].between(25, 346).all()
    single = predict(first_record("diabetes"), model="diabetes")
    assert isinstance(single, RegressionPrediction)
    assert single.value == pytest.approx(out["value"].iloc[0])
    frame.loc[frame.index[2], "age"] = math.nan  # a real gap: the other ages still read as ints
    with pytest.raises(ValidationFailed) as caught:
        predict(frame, model="diabetes")
    assert [(p.loc, p.code) for p in caught.value.problems] == [((frame.index[2], "age"), "missing")]


def test_a_bundle_path_and_a_loaded_model_give_the_same_answer() -> None:
    record = first_record("penguins")
    by_path = predict(record, model=reference_root() / "penguins" / "1.0.0")
    model = load_model("penguins")
    assert isinstance(model, Model)
    assert "penguins 1.0.0 (multiclass) on CPUExecutionProvider" in repr(model)
    by_model = predict(record, model=model)
    assert by_path.probabilities == by_model.probabilities
    assert model.predict(record).label == by_model.label


def test_validation_errors_say_which_record_which_feature_and_why() -> None:
    good = first_record("penguins")
    bad = [good, {**good, "island": "Atlantis", "body_mass_g": 99999.0}]
    with pytest.raises(ValidationFailed) as caught:
        predict(bad, model="penguins")
    assert [p.loc for p in caught.value.problems] == [(1, "body_mass_g"), (1, "island")]
    text = str(caught.value)
    assert "body_mass_g is 99999.0 g, expected 2000 ≤ x ≤ 7000" in text
    assert "island is 'Atlantis', expected one of 'Biscoe', 'Dream', 'Torgersen'" in text


async def test_recording_works_inside_a_running_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Jupyter runs an event loop: asyncio.run would fail there, so the facade records on its own loop.
    from predictor_sql import SqlPredictionStore, sqlite_url_for, upgrade

    url = sqlite_url_for(tmp_path / "audit.db")
    await asyncio.to_thread(upgrade, url)
    monkeypatch.setenv("PREDICTOR_DATABASE_URL", url)
    out = predict(load_dataset("breast_cancer").frame.iloc[:3], record=True)
    assert out["prediction_id"].notna().all()
    store = SqlPredictionStore(url)
    try:
        stored = await store.get(out["prediction_id"].iloc[2])
    finally:
        await store.close()
    assert stored.prediction.label == out["label"].iloc[2]
    assert stored.features["mean_radius"] == load_dataset("breast_cancer").frame["mean_radius"].iloc[2]


def test_data_as_pandas_holds_it_gives_the_frames_own_answers() -> None:
    data = load_dataset("penguins")
    frame = data.frame.iloc[:30]
    assert frame.isna().any().any()  # missing sexes and measurements, as NaN
    expected = predict(frame, model="penguins")["label"].tolist()
    as_dicts = predict(frame.to_dict("records"), model="penguins")
    assert [p.label for p in as_dicts] == expected
    rows = [predict(frame.iloc[i].to_dict(), model="penguins").label for i in range(len(frame))]
    assert rows == expected
    series = predict(frame.iloc[3], model="penguins")  # a Series is one record
    assert series.label == expected[3]
    odd = {
        **first_record("penguins"),
        "sex": pd.NA,
        "flipper_length_mm": np.int64(181),
        "body_mass_g": np.float32(3750.0),
    }
    assert predict(odd, model="penguins").label == "Adelie"


def test_labels_are_a_categorical_of_the_models_classes_recorded_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every class is a category, even one no row was given; recording changes nothing in the frame."""
    from predictor_sql import sqlite_url_for

    monkeypatch.setenv("DATABASE_URL", sqlite_url_for(tmp_path / "audit.db"))
    model = load_model("penguins")
    data = load_dataset("penguins")
    frame = data.frame[data.target == "Gentoo"].iloc[:5]
    unrecorded = model.predict(frame)
    recorded = model.predict(frame, record=True)
    classes = pd.CategoricalDtype(["Adelie", "Chinstrap", "Gentoo"])
    assert unrecorded["label"].dtype == recorded["label"].dtype == classes
    assert unrecorded["label"].tolist() == recorded["label"].tolist() == ["Gentoo"] * 5
    assert unrecorded["label"].value_counts().to_dict() == {"Gentoo": 5, "Adelie": 0, "Chinstrap": 0}
    pd.testing.assert_frame_equal(unrecorded, recorded.drop(columns="prediction_id"))


def test_answer_frames_are_the_same_from_blocks_as_from_arrays_recorded_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pandas 3 takes the answer's blocks as they are; older pandas take its columns, to the same frame."""
    from predictor import facade
    from predictor_sql import sqlite_url_for

    monkeypatch.setenv("DATABASE_URL", sqlite_url_for(tmp_path / "audit.db"))
    frames = {
        name: load_dataset(name).frame.iloc[10:30] for name in ("breast_cancer", "penguins", "diabetes")
    }
    answers = {
        (name, record): predict(f, model=name, record=record)
        for name, f in frames.items()
        for record in (False, True)
    }
    assert answers["penguins", False].columns.tolist() == [
        "label",
        "probability_Adelie",
        "probability_Chinstrap",
        "probability_Gentoo",
    ]
    assert answers["diabetes", True].columns.tolist() == ["value", "prediction_id"]
    monkeypatch.setattr(facade, "_from_blocks", lambda: None)
    for (name, record), answer in answers.items():
        again = predict(frames[name], model=name, record=record)
        if record:  # a new prediction each time: new ids
            assert again["prediction_id"].map(type).eq(type(answer["prediction_id"].iloc[0])).all()
            again, answer = again.drop(columns="prediction_id"), answer.drop(columns="prediction_id")
        pd.testing.assert_frame_equal(again, answer)
        assert list(again.index) == list(frames[name].index)


def test_a_block_with_a_gap_goes_whole_only_where_no_feature_takes_a_gap() -> None:
    """Where a feature takes a gap, NaN must be read as None first; where none does, it is refused anyway."""
    from predictor.facade import _columns
    from predictor_core import Feature, FeatureSchema
    from predictor_core.validation import ColumnMatrix

    strict = FeatureSchema(features=(Feature(name="a", kind="number"), Feature(name="b", kind="number")))
    lenient = FeatureSchema(
        features=(Feature(name="a", kind="number"), Feature(name="b", kind="number", nullable=True))
    )
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, math.nan]})
    assert isinstance(_columns(frame, strict), ColumnMatrix)
    assert _columns(frame, strict, whole=False)["b"] == [3.0, None]
    assert _columns(frame, lenient)["b"] == [3.0, None]
    assert isinstance(_columns(frame.fillna(0.0), lenient), ColumnMatrix)


def test_label_columns_keep_integer_classes_and_any_label_the_manifest_does_not_list() -> None:
    from predictor.facade import _label_column, _to_frame
    from predictor_core import BinaryPrediction, ModelIdentity

    assert _label_column(np.array([1, 0, 1]), (0, 1)).dtype == np.int64
    identity = ModelIdentity(name="m", version="1", sha256="0" * 64)
    recorded = [BinaryPrediction(model=identity, label=v, probability=0.5) for v in (1, 0)]
    assert _to_frame(recorded, pd.RangeIndex(2), (0, 1))["label"].dtype == np.int64
    odd = np.array(["a", "z"], dtype=object)  # "z" is no class: shown as it is, not as a missing category
    assert _label_column(odd, ("a", "b")) is odd
    assert _label_column(odd[:1], ("a", "b")).tolist() == ["a"]


def test_a_mixed_frame_reads_each_kind_of_gap_as_missing() -> None:
    """NaN, None and pd.NA in a string column, NaN in a float one: the answers of the same dicts."""
    frame = load_dataset("penguins").frame.iloc[:6].reset_index(drop=True)
    frame["sex"] = frame["sex"].astype(object)
    frame.loc[0, "sex"], frame.loc[1, "sex"], frame.loc[2, "sex"] = None, math.nan, pd.NA
    frame.loc[3, "body_mass_g"] = math.nan
    records = [
        {k: (None if v is None or v is pd.NA or v != v else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]
    assert [records[i]["sex"] for i in range(3)] == [None, None, None]
    expected = predict(records, model="penguins")
    out = predict(frame, model="penguins")
    assert out["label"].tolist() == [p.label for p in expected]
    assert out["probability_Gentoo"].tolist() == [p.probabilities["Gentoo"] for p in expected]


def test_a_frame_of_several_numeric_kinds_gives_the_answers_of_its_dicts() -> None:
    """An int64 column among 29 float64 ones: the floats are read as one block, by position."""
    frame = load_dataset("breast_cancer").frame.iloc[:20].copy()
    frame["mean_texture"] = np.floor(frame["mean_texture"]).astype(np.int64)  # floor keeps the rules
    out = predict(frame)
    expected = predict(frame.to_dict("records"))
    assert out["probability"].tolist() == [p.probability for p in expected]


def test_a_repeated_column_is_refused_by_name_not_read_twice_or_once() -> None:
    frame = load_dataset("breast_cancer").frame.iloc[:3]
    repeated = pd.concat([frame, frame[["mean_radius"]] + 1.0], axis=1)  # the block path's dtypes
    with pytest.raises(ValidationFailed) as caught:
        predict(repeated)
    assert [(p.loc, p.code) for p in caught.value.problems] == [(("mean_radius",), "duplicate_feature")]
    assert "appears 2 times" in str(caught.value)
    penguins = load_dataset("penguins").frame.iloc[:3]
    with pytest.raises(ValidationFailed, match="duplicate_feature"):  # the column-by-column path
        predict(pd.concat([penguins, penguins[["island"]]], axis=1), model="penguins")


def test_numpy_booleans_and_integers_are_plain_values() -> None:
    record = first_record("diabetes")
    with_numpy = {k: (np.int64(v) if isinstance(v, int) else np.float64(v)) for k, v in record.items()}
    assert predict(with_numpy, model="diabetes").value == pytest.approx(
        predict(record, model="diabetes").value
    )


def test_drop_leaves_out_the_target_and_nothing_else() -> None:
    data = load_dataset("penguins")
    frame = data.frame.iloc[:5].assign(species=data.target.iloc[:5])
    with pytest.raises(ValidationFailed, match="unknown_feature"):
        predict(frame, model="penguins")
    assert len(predict(frame, model="penguins", drop=["species"])) == 5
    record = {**first_record("penguins"), "species": "Adelie"}
    assert predict(record, model="penguins", drop=["species"]).label == "Adelie"
    with pytest.raises(ValidationFailed, match="species"):
        predict(record, model="penguins", drop=["island_typo"])


def test_dataframe_problems_are_located_by_the_frames_index_labels() -> None:
    frame = load_dataset("penguins").frame.iloc[:4].set_axis(["a", "b", "c", "d"])
    frame.loc["c", "island"] = "Atlantis"
    with pytest.raises(ValidationFailed) as caught:
        predict(frame, model="penguins")
    assert [p.loc for p in caught.value.problems] == [("c", "island")]
    assert "[c.island] unknown_category" in str(caught.value)


def test_a_loaded_model_records_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from predictor_sql import SqlPredictionStore, sqlite_url_for

    url = sqlite_url_for(tmp_path / "audit.db")
    monkeypatch.setenv("DATABASE_URL", url)
    model = load_model("penguins")
    prediction = model.predict(first_record("penguins"), record=True)
    assert prediction.prediction_id is not None

    async def stored() -> object:
        store = SqlPredictionStore(url)
        try:
            return (await store.get(prediction.prediction_id)).prediction
        finally:
            await store.close()

    assert asyncio.run(stored()) == prediction
    assert predict(first_record("penguins"), model=model).prediction_id is None  # unrecorded: no id


def test_one_cached_wiring_shadows_recorded_frames_and_close_releases_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import sqlite3

    import msgspec

    from predictor import facade
    from predictor_core import ModelManifest
    from predictor_sql import sqlite_url_for

    newer = tmp_path / "models" / "breast_cancer" / "2.0.0"  # the shipped bundle again, as a newer version
    shutil.copytree(reference_root() / "breast_cancer" / "1.0.0", newer)
    manifest = ModelManifest.from_json((newer / "manifest.json").read_bytes())
    (newer / "manifest.json").write_bytes(msgspec.structs.replace(manifest, version="2.0.0").to_json())
    monkeypatch.setenv("PREDICTOR_MODEL_DIRS", str(tmp_path / "models"))
    path = tmp_path / "audit.db"
    monkeypatch.setenv("DATABASE_URL", sqlite_url_for(path))
    frame = load_dataset("breast_cancer").frame.iloc[:3]
    predict(frame, record=True)
    predict(frame.iloc[:1], record=True)
    [wiring] = facade._wirings.values()  # one wiring for both calls, started once
    assert wiring.lifecycle is not None
    facade._on_loop(wiring.lifecycle.move("breast_cancer", "shadow", "1.0.0", by="test"))
    predict(frame, record=True)  # a frame for the bare name: its shadow scores it too
    predict(frame, version="2.0.0", record=True)  # a version named explicitly: not shadowed
    close()  # drains the shadow scorings in flight, then closes the store
    assert facade._wirings == {}
    with sqlite3.connect(path) as db:
        assert db.execute("select count(*) from shadow_outputs").fetchone() == (3,)
        assert db.execute("select count(*) from model_inputs").fetchone() == (10,)


def test_a_frame_of_floats_is_validated_and_predicted_as_one_block() -> None:
    """Issue #9: a float64 frame reaches the core as its block; answers and errors are unchanged."""
    from predictor.facade import _columns
    from predictor_core import validate_columns
    from predictor_core.validation import ColumnMatrix

    model = load_model("breast_cancer")
    frame = load_dataset("breast_cancer").frame.iloc[:60].set_axis([f"p{i}" for i in range(60)])
    frame = frame[list(reversed(frame.columns))]  # any column order
    assert isinstance(_columns(frame, model.schema), ColumnMatrix)
    out = model.predict(frame)
    expected = model.predict(frame.to_dict(orient="records"))
    assert list(out.index) == list(frame.index)
    assert out["label"].tolist() == [p.label for p in expected]
    assert out["probability"].tolist() == [p.probability for p in expected]
    assert out.dtypes.tolist() == [pd.CategoricalDtype(list(model.manifest.classes)), np.dtype(np.float64)]

    bad = frame.copy()
    bad.loc["p3", "mean_radius"] = 99.0
    bad.loc["p7", "worst_radius"] = 0.5  # below mean_radius: a rule
    bad.loc["p9", "area_error"] = math.nan  # a gap: the frame is read column by column
    as_columns = {name: bad[name].tolist() for name in bad.columns}
    as_columns["area_error"] = [None if v != v else v for v in as_columns["area_error"]]
    with pytest.raises(ValidationFailed) as by_columns:
        validate_columns(model.schema, as_columns)
    with pytest.raises(ValidationFailed) as caught:
        model.predict(bad)
    assert [(p.code, p.msg) for p in caught.value.problems] == [
        (p.code, p.msg) for p in by_columns.value.problems
    ]
    assert [p.loc[0] for p in caught.value.problems] == ["p3", "p7", "p9"]
    bad.loc["p9", "area_error"] = 1.0  # no gap left: checked as one block, refused the same way
    assert isinstance(_columns(bad, model.schema), ColumnMatrix)
    with pytest.raises(ValidationFailed) as block:
        model.predict(bad)
    assert [(p.loc, p.code) for p in block.value.problems] == [
        (p.loc, p.code) for p in caught.value.problems if p.loc[0] != "p9"
    ]


def test_a_label_that_is_not_the_most_probable_class_is_shown_as_the_model_gave_it() -> None:
    """The frame's label codes come from the probabilities only where they agree with every label."""
    from predictor.facade import _label_column

    classes = ("benign", "malignant")
    labels = np.array(["benign", "malignant", "malignant"], dtype=object)
    agreeing = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5 + 1e-6]], dtype=np.float32)
    disagreeing = agreeing.copy()
    disagreeing[2] = [0.6, 0.4]  # an SVC's vote can differ from its probabilities
    for probabilities in (agreeing, disagreeing, None):
        column = _label_column(labels, classes, probabilities)
        assert isinstance(column, pd.Categorical)
        assert column.tolist() == labels.tolist()
        assert column.categories.tolist() == list(classes)
    three = ("Adelie", "Chinstrap", "Gentoo")
    labels = np.array(["Gentoo", "Adelie", "Chinstrap"], dtype=object)
    probabilities = np.array([[0.1, 0.2, 0.7], [0.8, 0.1, 0.1], [0.5, 0.4, 0.1]], dtype=np.float32)
    assert _label_column(labels, three, probabilities).tolist() == labels.tolist()
    unknown = np.array(["Gentoo", "Emperor"], dtype=object)
    assert _label_column(unknown, three, probabilities[:2]) is unknown  # not a class: shown as it is


@pytest.mark.parametrize("name", ["breast_cancer", "penguins"])
def test_a_label_column_from_the_runtimes_codes_is_the_one_found_by_comparing_labels(name: str) -> None:
    from predictor.facade import _label_column

    runtime = BundleDirectory([reference_root()]).load(name, "1.0.0")
    frame = load_dataset(name).frame
    schema = runtime.manifest.schema
    outputs = runtime.infer(validate_columns(schema, {c: column_values(frame[c]) for c in frame.columns}))
    assert isinstance(outputs, ClassifierOutputs)
    assert outputs.codes is not None
    classes = runtime.manifest.classes or ()
    from_codes = _label_column(outputs.labels, classes, outputs.probabilities, outputs.codes)
    compared = _label_column(outputs.labels, classes, outputs.probabilities)
    assert isinstance(from_codes, pd.Categorical)
    assert from_codes.equals(compared)
    assert from_codes.tolist() == outputs.labels.tolist()
    assert len(set(from_codes.tolist())) == len(classes)


def test_answers_do_not_share_column_labels_and_renamed_columns_are_read_anew() -> None:
    model = load_model("breast_cancer")
    frame = load_dataset("breast_cancer").frame.iloc[:5].copy()
    first = model.predict(frame)
    first.columns.name = "answer"  # an Index's name is set in place
    assert model.predict(frame).columns.name is None
    frame.columns = ["radius", *frame.columns[1:]]  # the same frame, a new Index
    with pytest.raises(ValidationFailed) as caught:
        model.predict(frame)
    assert {(p.loc, p.code) for p in caught.value.problems} == {
        (("radius",), "unknown_feature"),
        (("mean_radius",), "missing"),
    }


def test_columns_of_pandas_own_dtypes_give_the_answers_of_their_dicts() -> None:
    """Categorical, nullable string and nullable integer columns are read as the frame stores them."""
    frame = load_dataset("penguins").frame.iloc[:8].reset_index(drop=True)
    records = [
        {k: (None if v is None or v != v else v) for k, v in row.items()} for row in frame.to_dict("records")
    ]
    typed = frame.astype({"island": "category", "sex": "string"})
    typed.loc[4, "sex"] = pd.NA
    records[4]["sex"] = None
    expected = predict(records, model="penguins")
    out = predict(typed, model="penguins")
    assert out["label"].tolist() == [p.label for p in expected]
    assert out["probability_Adelie"].tolist() == [p.probabilities["Adelie"] for p in expected]

    diabetes = load_dataset("diabetes").frame.iloc[:4].reset_index(drop=True)
    nullable = diabetes.astype({"age": "Int64", "sex": "Int64"})
    assert out_values(nullable) == out_values(diabetes)
    nullable.loc[2, "age"] = pd.NA
    with pytest.raises(ValidationFailed) as caught:
        predict(nullable, model="diabetes")
    assert [(p.loc, p.code) for p in caught.value.problems] == [((2, "age"), "missing")]


def out_values(frame: pd.DataFrame) -> list[float]:
    return predict(frame, model="diabetes")["value"].tolist()
