import math

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from predictor_core import (
    Feature,
    FeatureSchema,
    ProblemCode,
    Rule,
    ValidationFailed,
    validate_columns,
    validate_record,
    validate_records,
)
from predictor_core.validation import _plan
from tests.fakes import toy_schema

SCHEMA = toy_schema()
F32_MAX = float(np.finfo(np.float32).max)


@st.composite
def valid_records(draw):
    x = draw(st.floats(0, 100, allow_nan=False))
    y = draw(st.one_of(st.floats(x, 100, allow_nan=False), st.integers(math.ceil(x), 100)))
    return {
        "x": x,
        "y": y,
        # an integer feature takes integral numbers in any JSON form: 3 and 3.0
        "n": draw(st.one_of(st.integers(0, 10), st.integers(0, 10).map(float))),
        "flag": draw(st.booleans()),
        "colour": draw(st.sampled_from(["red", "green", "blue", None])),
    }


# (feature, how to corrupt, expected code); each corruption breaks exactly one thing.
CORRUPTIONS = [
    ("x", "drop", ProblemCode.MISSING),
    ("x", None, ProblemCode.MISSING),
    ("x", True, ProblemCode.WRONG_TYPE),
    ("x", "5", ProblemCode.WRONG_TYPE),
    ("x", [1.0], ProblemCode.WRONG_TYPE),
    ("x", {"v": 1}, ProblemCode.WRONG_TYPE),
    ("x", math.nan, ProblemCode.NOT_FINITE),
    ("x", math.inf, ProblemCode.NOT_FINITE),
    ("x", -math.inf, ProblemCode.NOT_FINITE),
    ("x", 1e39, ProblemCode.NOT_FINITE),
    ("x", 10**400, ProblemCode.NOT_FINITE),
    ("x", -0.5, ProblemCode.OUT_OF_RANGE),
    ("y", 100.000001, ProblemCode.OUT_OF_RANGE),
    ("n", 3.5, ProblemCode.WRONG_TYPE),
    ("n", math.nan, ProblemCode.WRONG_TYPE),
    ("n", False, ProblemCode.WRONG_TYPE),
    ("n", 11, ProblemCode.OUT_OF_RANGE),
    ("n", -1, ProblemCode.OUT_OF_RANGE),
    ("flag", 1, ProblemCode.WRONG_TYPE),
    ("flag", "true", ProblemCode.WRONG_TYPE),
    ("flag", None, ProblemCode.MISSING),
    ("colour", "purple", ProblemCode.UNKNOWN_CATEGORY),
    ("colour", "Red", ProblemCode.UNKNOWN_CATEGORY),
    ("colour", 3, ProblemCode.WRONG_TYPE),
    ("colour", "drop", ProblemCode.MISSING),
    ("extra", 1.0, ProblemCode.UNKNOWN_FEATURE),
]


@pytest.mark.parametrize("count", [1, 40])  # the typed rows, and the matrix read from msgpack bytes
def test_records_valid_as_sent_are_copied_not_shared(count):
    """The audit trail's records are the caller's values, in their order; the caller's dicts stay theirs."""
    sent = [{"y": 2.5 + i, "x": 1.0 + i} for i in range(count)]  # not in schema order
    schema = FeatureSchema(features=(Feature(name="x", kind="number"), Feature(name="y", kind="number")))
    batch = validate_records(schema, sent)
    records = batch.records()
    assert records == sent
    assert all(list(r) == ["y", "x"] for r in records)
    assert batch.rows[0] == (1.0, 2.5)  # the model's order is the schema's
    sent[0]["x"] = 99.0
    assert records[0]["x"] == 1.0
    assert batch.records()[0] is not sent[0]


def corrupt(record, feature, how):
    record = dict(record)
    if how == "drop":
        del record[feature]
    else:
        record[feature] = how
    return record


@given(st.lists(valid_records(), min_size=1, max_size=20))
def test_any_valid_batch_passes_and_keeps_values_as_sent(records):
    batch = validate_records(SCHEMA, records)
    assert len(batch) == len(records)
    assert batch.records() == records
    assert all(type(r["n"]) is int for r in batch.records())  # 3.0 is kept as the int 3
    assert batch.columns["x"].dtype == np.float64
    assert batch.columns["x"].tolist() == [float(r["x"]) for r in records]
    assert batch.columns["colour"].tolist() == [r["colour"] for r in records]
    assert batch.columns["flag"].tolist() == [float(r["flag"]) for r in records]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(valid_records(), min_size=1, max_size=10),
    st.sampled_from(CORRUPTIONS),
    st.data(),
)
def test_any_single_corruption_is_reported_exactly_once_at_its_place(records, corruption, data):
    feature, how, code = corruption
    index = data.draw(st.integers(0, len(records) - 1))
    records = list(records)
    records[index] = corrupt(records[index], feature, how)
    with pytest.raises(ValidationFailed) as caught:
        validate_records(SCHEMA, records)
    (problem,) = caught.value.problems
    assert problem.code is code
    assert problem.loc == (index, feature)
    assert feature in problem.msg
    msgspec.json.encode(problem)  # always JSON-encodable, whatever the value


@given(st.lists(valid_records(), min_size=1, max_size=10), st.data())
def test_rule_violation_is_located_at_the_rule(records, data):
    index = data.draw(st.integers(0, len(records) - 1))
    records = list(records)
    records[index] = dict(records[index], x=50.0, y=49.5)
    with pytest.raises(ValidationFailed) as caught:
        validate_records(SCHEMA, records)
    (problem,) = caught.value.problems
    assert problem.code is ProblemCode.RULE_VIOLATED
    assert problem.loc == (index, "y_ge_x")
    assert problem.value == {"x": 50.0, "y": 49.5}
    assert "y must be at least x" in problem.msg


def test_every_problem_is_listed_in_record_then_feature_order():
    good = {"x": 1.0, "y": 2.0, "n": 3, "flag": True, "colour": "red"}
    records = [
        dict(good, colour="purple", x="1"),
        good,
        "not a record",
        dict(good, x=60.0, y=50.0, zz=1),
    ]
    with pytest.raises(ValidationFailed) as caught:
        validate_records(SCHEMA, records)
    found = [(p.loc, p.code) for p in caught.value.problems]
    assert found == [
        ((0, "x"), ProblemCode.WRONG_TYPE),
        ((0, "colour"), ProblemCode.UNKNOWN_CATEGORY),
        ((2,), ProblemCode.NOT_A_RECORD),
        ((3, "zz"), ProblemCode.UNKNOWN_FEATURE),
        ((3, "y_ge_x"), ProblemCode.RULE_VIOLATED),
    ]
    text = str(caught.value)
    assert text.startswith("5 problems in the input:")
    assert "[0.colour] unknown_category: colour is 'purple', expected one of 'red', 'green', 'blue'" in text


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(
    st.one_of(
        JSONISH,
        st.lists(JSONISH, max_size=5),
        st.lists(
            st.dictionaries(st.sampled_from(["x", "y", "n", "flag", "colour", "other"]), JSONISH), max_size=5
        ),
    )
)
def test_validation_raises_nothing_but_validation_failed(data):
    try:
        batch = validate_records(SCHEMA, data)
    except ValidationFailed as exc:
        assert exc.problems  # noqa: PT017 (hypothesis: either outcome is fine, but never another error)
        msgspec.json.encode(exc.problems)
    else:
        assert len(batch) == len(data)


@given(
    st.lists(
        st.dictionaries(st.sampled_from(["x", "y", "n", "flag", "colour"]), JSONISH, min_size=5),
        min_size=1,
        max_size=5,
    )
)
def test_fast_path_never_accepts_what_the_thorough_path_refuses(records):
    plan = _plan(SCHEMA)
    fast = plan.fast_records(records)
    try:
        plan.thorough(records, allow_unknown=False)
    except ValidationFailed:
        assert fast is None


def test_single_record_and_columns_give_the_same_batch_as_records():
    records = [
        {"x": 1.0, "y": 2, "n": 3, "flag": True, "colour": None},
        {"x": 0, "y": 0.5, "n": 0, "flag": False, "colour": "blue"},
    ]
    by_records = validate_records(SCHEMA, records)
    columns = {name: [r[name] for r in records] for name in SCHEMA.names}
    by_columns = validate_columns(SCHEMA, columns)
    by_numpy = validate_columns(
        SCHEMA, {k: np.asarray(v) if k in ("x", "n") else v for k, v in columns.items()}
    )
    assert by_columns.records() == by_records.records() == by_numpy.records()
    for name in SCHEMA.names:
        assert by_columns.columns[name].tolist() == pytest.approx(
            by_records.columns[name].tolist(), nan_ok=True
        ) or (by_columns.columns[name].tolist() == by_records.columns[name].tolist())
    assert validate_record(SCHEMA, records[0]).records() == records[:1]


def test_column_problems():
    with pytest.raises(ValidationFailed) as caught:
        validate_columns(SCHEMA, {"x": [1.0, 2.0], "y": [3.0], "n": [1, 2], "flag": [True, True], "zz": [1]})
    found = [(p.loc, p.code) for p in caught.value.problems]
    assert ((("zz",), ProblemCode.UNKNOWN_FEATURE)) in found
    assert ((("colour",), ProblemCode.MISSING)) in found
    assert ((("y",), ProblemCode.LENGTH_MISMATCH)) in found
    with pytest.raises(ValidationFailed) as caught:
        validate_columns(SCHEMA, {"x": [True], "y": [3.0], "n": [1], "flag": [True], "colour": ["red"]})
    assert [(p.loc, p.code) for p in caught.value.problems] == [((0, "x"), ProblemCode.WRONG_TYPE)]
    with pytest.raises(ValidationFailed, match="holds no record"):
        validate_columns(SCHEMA, {name: [] for name in SCHEMA.names})
    with pytest.raises(ValidationFailed, match="mapping of feature name"):
        validate_columns(SCHEMA, [[1, 2]])


@pytest.mark.parametrize("data", [{}, "x", b"x", 5, None])
def test_a_batch_must_be_a_list_of_records(data):
    with pytest.raises(ValidationFailed) as caught:
        validate_records(SCHEMA, data)
    assert caught.value.problems[0].code is ProblemCode.NOT_A_RECORD


def test_empty_batch_is_refused():
    with pytest.raises(ValidationFailed) as caught:
        validate_records(SCHEMA, [])
    assert caught.value.problems[0].code is ProblemCode.EMPTY


def test_unknown_features_may_be_allowed_explicitly():
    record = {"x": 1.0, "y": 2.0, "n": 3, "flag": True, "colour": "red", "note": "hi"}
    assert validate_record(SCHEMA, record, allow_unknown=True).records()[0]["x"] == 1.0
    assert (
        validate_columns(SCHEMA, {k: [v] for k, v in record.items()}, allow_unknown=True).records()[0]["n"]
        == 3
    )


def test_optional_features_may_be_absent():
    schema = FeatureSchema(
        features=(
            Feature(name="a", kind="number"),
            Feature(name="b", kind="number", required=False, nullable=True),
        )
    )
    batch = validate_records(schema, [{"a": 1.0}, {"a": 2.0, "b": 3.0}])
    assert batch.records() == [{"a": 1.0, "b": None}, {"a": 2.0, "b": 3.0}]
    assert np.isnan(batch.columns["b"][0])
    assert batch.matrix().dtype == np.float32
    with pytest.raises(TypeError, match="category"):
        validate_records(SCHEMA, [{"x": 1.0, "y": 2.0, "n": 3, "flag": True, "colour": "red"}]).matrix()


def test_single_feature_schema_takes_the_fast_path():
    schema = FeatureSchema(features=(Feature(name="a", kind="number", minimum=0),))
    assert validate_records(schema, [{"a": 1.0}, {"a": 2}]).records() == [{"a": 1.0}, {"a": 2}]
    with pytest.raises(ValidationFailed):
        validate_records(schema, [{"a": -1.0}])


def test_long_values_are_shortened_in_problems():
    with pytest.raises(ValidationFailed) as caught:
        validate_record(SCHEMA, {"x": 1.0, "y": 2.0, "n": 3, "flag": True, "colour": "c" * 10_000})
    (problem,) = caught.value.problems
    assert len(problem.value) == 80
    assert len(problem.msg) < 300


def test_many_problems_are_summarised_in_the_message():
    with pytest.raises(ValidationFailed) as caught:
        validate_records(SCHEMA, [{}] * 10)
    assert len(caught.value.problems) == 50
    assert "... and 30 more" in str(caught.value)


def test_huge_integers_are_reported_without_breaking_json():
    with pytest.raises(ValidationFailed) as caught:
        validate_record(SCHEMA, {"x": 1.0, "y": 2.0, "n": 10**30, "flag": True, "colour": "red"})
    (problem,) = caught.value.problems
    assert problem.code is ProblemCode.OUT_OF_RANGE
    assert problem.value == str(10**30)
    assert F32_MAX > 1e38


RULED = FeatureSchema(
    features=(
        Feature(name="a", kind="number", minimum=-10, maximum=10),
        Feature(name="b", kind="number", minimum=-10, maximum=10),
        Feature(name="c", kind="integer", minimum=-10, maximum=10),
    ),
    rules=(
        Rule(name="a_ge_b", expr="a >= b", message="m"),
        Rule(name="c_nonneg", expr="0 <= c", message="m"),
        Rule(name="b_not_3", expr="b != 3", message="m"),
        Rule(name="iso", expr="a ^ 2 >= 4 * pi * c / 10", message="m"),
    ),
)


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "a": st.sampled_from([-10.0, -1.5, 0.0, 2.0, 3.0, 10.0]),
                "b": st.sampled_from([-10.0, -1.5, 0.0, 2.0, 3.0, 10.0]),
                "c": st.integers(-10, 10),
            }
        ),
        min_size=1,
        max_size=40,
    )
)
def test_grouped_rule_checks_agree_with_the_thorough_path(records):
    plan = _plan(RULED)
    assert len(plan.simple_rules) == 3
    assert [r.name for r in plan.complex_rules] == ["iso"]
    fast = plan.fast_records(records)
    try:
        plan.thorough(records, allow_unknown=False)
    except ValidationFailed as exc:
        assert fast is None
        assert {p.code for p in exc.problems} == {ProblemCode.RULE_VIOLATED}  # noqa: PT017
    else:
        assert fast is not None
        assert fast.records() == records


@given(st.lists(valid_records(), min_size=1, max_size=20))
def test_integral_floats_give_the_same_batch_on_both_paths_and_by_columns(records):
    plan = _plan(SCHEMA)
    fast = plan.fast_records(records)
    thorough = plan.thorough(records, allow_unknown=False)
    by_columns = validate_columns(SCHEMA, {name: [r[name] for r in records] for name in SCHEMA.names})
    expected = [dict(r, n=int(r["n"])) for r in records]
    assert fast is not None
    assert fast.records() == thorough.records() == by_columns.records() == expected
    assert [type(r["n"]) for r in thorough.records()] == [int] * len(records)


@pytest.mark.parametrize("value", [59.5, 59.000001, math.inf])
def test_a_fractional_integer_is_refused_with_wrong_type_at_its_place(value):
    schema = FeatureSchema(features=(Feature(name="age", kind="integer"), Feature(name="w", kind="number")))
    with pytest.raises(ValidationFailed) as caught:
        validate_records(schema, [{"age": 59.0, "w": 1.0}, {"age": value, "w": 1.0}])
    (problem,) = caught.value.problems
    assert problem.code is ProblemCode.WRONG_TYPE
    assert problem.loc == (1, "age")
    assert "must be an integer" in problem.msg
    assert validate_records(schema, [{"age": 59.0, "w": 1.0}]).records() == [{"age": 59, "w": 1.0}]


# Problems are capped: a hostile input costs a bounded answer, and the cap never changes which come first.
LOTS = 10**9


def refusal(schema, records, cap):
    """(problems listed, total) of the ValidationFailed raised with `max_problems=cap`; None if valid."""
    try:
        validate_records(schema, records, max_problems=cap)
    except ValidationFailed as failure:
        return failure.problems, failure.total
    return None


@st.composite
def flawed_batches(draw):
    records = draw(st.lists(valid_records(), min_size=1, max_size=12))
    for i in range(len(records)):
        for _ in range(draw(st.integers(0, 3))):
            feature, how, _ = draw(st.sampled_from(CORRUPTIONS))
            records[i] = (
                corrupt(records[i], feature, how) if feature in records[i] or how != "drop" else records[i]
            )
        if draw(st.booleans()):
            records[i] = {**records[i], **{f"unknown_{k}": k for k in range(draw(st.integers(0, 4)))}}
        if draw(st.integers(0, 9)) == 0:
            records[i] = draw(st.sampled_from([3, "text", None, [1.0]]))
    return records


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(flawed_batches(), st.integers(1, 12))
def test_a_capped_list_is_the_head_of_the_full_list_and_the_total_is_exact(records, cap):
    full, capped = refusal(SCHEMA, records, LOTS), refusal(SCHEMA, records, cap)
    if full is None:
        assert capped is None
    else:
        assert capped == (full[0][:cap], len(full[0]))
        assert full[1] == len(full[0])


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "a": st.sampled_from([-10.0, 0.0, 2.0, 3.0, 10.0, "bad"]),
                "b": st.sampled_from([-10.0, 0.0, 3.0, 10.0, None]),
                "c": st.integers(-10, 10),
            }
        ),
        min_size=1,
        max_size=30,
    ),
    st.integers(1, 8),
)
def test_rule_problems_take_their_place_in_a_capped_list(records, cap):
    full, capped = refusal(RULED, records, LOTS), refusal(RULED, records, cap)
    if full is None:
        assert capped is None
    else:
        assert capped == (full[0][:cap], len(full[0]))


def test_a_flood_of_unknown_keys_lists_100_and_counts_them_all():
    record = {"x": 1.0, "y": 2.0, "n": 3, "flag": True, "colour": "red"}
    flood = {**record, **{f"k{i}": i for i in range(100_000)}}
    with pytest.raises(ValidationFailed) as caught:
        validate_record(SCHEMA, flood)
    assert len(caught.value.problems) == 100
    assert caught.value.total == 100_000
    assert [p.loc for p in caught.value.problems[:2]] == [(0, "k0"), (0, "k1")]
    assert str(caught.value).startswith("100000 problems in the input:")
    assert "... and 99980 more (see .problems and .total)" in str(caught.value)


def test_many_bad_records_are_capped_too():
    with pytest.raises(ValidationFailed) as caught:
        validate_records(SCHEMA, [{"x": "a", "y": "b"}] * 1000)
    assert len(caught.value.problems) == 100
    assert caught.value.total == 1000 * 5  # x, y wrong; n, flag, colour missing
    assert caught.value.problems[-1].loc == (19, "colour")


def test_column_problems_are_capped():
    columns = {f"c{i}": [1.0] for i in range(500)}
    with pytest.raises(ValidationFailed) as caught:
        validate_columns(SCHEMA, columns, max_problems=10)
    assert [p.loc for p in caught.value.problems] == [(f"c{i}",) for i in range(10)]
    assert caught.value.total == 500 + 5  # and every feature's column is missing
