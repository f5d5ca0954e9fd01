"""The vectorised paths (float records as one matrix, whole columns) against the thorough path.

Each property feeds the same data to a fast path and to the thorough walk: both accept with the same
rows and matrices, or both refuse with the same problems (codes, locations, messages, order).
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from predictor_core import Feature, FeatureSchema, Rule, ValidationFailed, validate_columns, validate_records
from predictor_core.validation import _plan
from tests.fakes import toy_schema

FLOATS = FeatureSchema(
    features=(
        Feature(name="a", kind="number", minimum=0, maximum=100),
        Feature(name="b", kind="number", minimum=0, maximum=100),
        Feature(name="c", kind="number"),
    ),
    rules=(
        Rule(name="b_ge_a", expr="b >= a", message="m"),
        Rule(name="iso", expr="b ^ 2 >= 4 * pi * a / 10", message="m"),
    ),
)
TOY = toy_schema()

MOSTLY_VALID = st.floats(0, 100, allow_nan=False)
ODD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 105),
    st.sampled_from([True, None, "5", 1e39, 10**400]),
)


def outcome(call):
    """('ok', records, matrix) or ('refused', problems, total) for one validation call."""
    try:
        batch = call()
    except ValidationFailed as failure:
        return ("refused", [(p.loc, p.code, p.msg, p.value) for p in failure.problems], failure.total)
    matrix = batch.matrix().tolist() if batch.schema.all_numeric else None
    return ("ok", batch.records(), matrix)


def same(fast, thorough):
    """Equal outcomes; NaN values in refusals compare equal to themselves."""
    assert fast[0] == thorough[0]
    assert repr(fast) == repr(thorough)


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "a": st.one_of(MOSTLY_VALID, MOSTLY_VALID, MOSTLY_VALID, ODD),
                "b": st.one_of(MOSTLY_VALID, MOSTLY_VALID, MOSTLY_VALID, ODD),
                "c": st.one_of(st.floats(-1e6, 1e6), ODD),
            }
        ),
        min_size=1,
        max_size=40,  # across the size where records of floats become one matrix
    )
)
def test_float_records_as_one_matrix_agree_with_the_thorough_path(records):
    plan = _plan(FLOATS)
    same(
        outcome(lambda: validate_records(FLOATS, records)),
        outcome(lambda: plan.thorough(records, allow_unknown=False)),
    )


def test_the_matrix_of_float_records_is_read_exactly():
    records = [{"a": float(i % 100), "b": 100.0, "c": -(i**1.5)} for i in range(50)]
    batch = validate_records(FLOATS, records)
    assert batch.numbers is not None
    assert batch.numbers.tolist() == [[r["a"], r["b"], r["c"]] for r in records]
    assert batch.records() == records


TOY_VALUES = {
    "x": st.one_of(MOSTLY_VALID, ODD),
    "y": st.one_of(st.just(100.0), MOSTLY_VALID, ODD),
    "n": st.one_of(st.integers(0, 10), st.integers(0, 10).map(float), st.sampled_from([3.5, -1, 11, False])),
    "flag": st.one_of(st.booleans(), st.sampled_from([1, None])),
    "colour": st.sampled_from(["red", "green", "blue", None, "purple", 3]),
}


@st.composite
def toy_columns(draw):
    """Columns of the toy schema as lists, or as numpy arrays wherever the values allow one."""
    size = draw(st.integers(1, 30))
    columns = {
        name: draw(st.lists(values, min_size=size, max_size=size)) for name, values in TOY_VALUES.items()
    }
    as_arrays = draw(st.sets(st.sampled_from(sorted(TOY_VALUES))))
    for name in as_arrays:
        values = columns[name]
        if all(type(v) is float for v in values):
            columns[name] = np.array(values, dtype=draw(st.sampled_from([np.float64, np.float32])))
        elif all(type(v) is int and -(2**63) <= v < 2**63 for v in values):  # 10**400 stays a list
            columns[name] = np.array(values, dtype=np.int64)
        elif all(type(v) is bool for v in values):
            columns[name] = np.array(values, dtype=bool)
    return columns


@given(toy_columns())
def test_columns_agree_with_the_thorough_path(columns):
    lists = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in columns.items()}
    size = len(lists["x"])
    records = [{name: lists[name][i] for name in TOY.names} for i in range(size)]
    plan = _plan(TOY)
    fast = outcome(lambda: validate_columns(TOY, columns))
    same(fast, outcome(lambda: plan.thorough(records, allow_unknown=True)))
    if fast[0] == "ok":
        batch = validate_columns(TOY, columns)
        thorough = plan.thorough(records, allow_unknown=True)
        for name in TOY.names:
            assert repr(batch.columns[name].tolist()) == repr(thorough.columns[name].tolist())


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.uint8])
def test_numeric_arrays_are_taken_whole(dtype):
    values = np.array([1, 2, 3], dtype=dtype)
    schema = FeatureSchema(features=(Feature(name="a", kind="number"), Feature(name="n", kind="integer")))
    batch = validate_columns(schema, {"a": values, "n": values})
    assert batch.numbers is not None
    assert batch.numbers.tolist() == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
    assert [type(r["n"]) for r in batch.records()] == [int] * 3


@pytest.mark.parametrize("bad", [math.nan, math.inf, 1e39, -1.0])
def test_a_bad_value_in_an_array_is_reported_as_from_a_list(bad):
    schema = FeatureSchema(features=(Feature(name="a", kind="number", minimum=0),))
    with pytest.raises(ValidationFailed) as from_array:
        validate_columns(schema, {"a": np.array([1.0, bad])})
    with pytest.raises(ValidationFailed) as from_list:
        validate_columns(schema, {"a": [1.0, bad]})
    assert from_array.value.problems == from_list.value.problems
    assert from_array.value.problems[0].loc == (1, "a")
