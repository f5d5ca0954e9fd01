"""The vectorised paths (float records as one matrix, whole columns) against the thorough path.

Each property feeds the same data to a fast path and to the thorough walk: both accept with the same
rows and matrices, or both refuse with the same problems (codes, locations, messages, order).
"""

import json
import math

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from predictor_core import Feature, FeatureSchema, Rule, ValidationFailed, validate_columns, validate_records
from predictor_core.validation import ColumnMatrix, _plan, record_type
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
    """('ok', records, matrix) or ('refused', problems, total) for one validation call.

    A record's keys are compared in sorted order: where the records were valid as sent, they are copied
    in the order they were sent in (`ValidatedBatch.sent`); the thorough path gives schema order.
    """
    try:
        batch = call()
    except ValidationFailed as failure:
        return ("refused", [(p.loc, p.code, p.msg, p.value) for p in failure.problems], failure.total)
    matrix = batch.matrix().tolist() if batch.schema.all_numeric else None
    return ("ok", [dict(sorted(record.items())) for record in batch.records()], matrix)


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
            with np.errstate(over="ignore"):  # 1e39 as float32 is inf, refused either way
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


# Issue #9's fast paths: dicts of floats read from their msgpack bytes, rules on Python floats for
# small batches, rules implied by the bounds left out, and a DataFrame's block taken whole.

RULED_FEATURES = (
    Feature(name="a", kind="number", minimum=0, maximum=100),
    Feature(name="b", kind="number", minimum=0, maximum=100),
    Feature(name="c", kind="number"),
    Feature(name="d", kind="number", minimum=-10, maximum=10),
)
RULED_RULES = (
    Rule(name="b_ge_a", expr="b >= a", message="m"),
    Rule(name="a_ge_0", expr="a >= 0", message="implied by the minimum of a"),
    Rule(name="huge", expr="1e40 != c", message="implied by float32 range"),
    Rule(name="a_le_90", expr="a <= 90", message="m"),
    Rule(name="c_gt", expr="c > -500000", message="m"),
    Rule(name="ratio", expr="b / d >= -50", message="d = 0: Python raises, numpy gives inf or NaN"),
    Rule(name="root", expr="d ^ 0.5 <= 3", message="d < 0: complex in Python, NaN in numpy"),
    Rule(name="sqrt", expr="sqrt(d + 5) >= 1", message="d < -5: ValueError in Python, NaN in numpy"),
    Rule(name="power", expr="c ^ 10 >= 4 * pi * a / 10", message="overflow for huge c in Python"),
    Rule(name="near", expr="abs(c - 5) >= 0.5", message="m"),
    Rule(name="neg", expr="-d <= 9.5", message="m"),
)
RULED = FeatureSchema(features=RULED_FEATURES, rules=RULED_RULES)
RULED_NULLABLE = FeatureSchema(
    features=(*RULED_FEATURES[:3], Feature(name="d", kind="number", minimum=-10, maximum=10, nullable=True)),
    rules=RULED_RULES,
)
RULED_LOG = FeatureSchema(  # log is left to numpy: its vectorised log may round otherwise than libm's
    features=RULED_FEATURES, rules=(*RULED_RULES, Rule(name="log", expr="log(b + 1) >= a / 30", message="m"))
)
RULED_VALUES = {
    "a": st.one_of(MOSTLY_VALID, MOSTLY_VALID, st.sampled_from([0.0, 90.0, 95.0]), ODD),
    "b": st.one_of(st.just(100.0), MOSTLY_VALID, ODD),
    "c": st.one_of(st.floats(-1e6, 1e6), st.sampled_from([5.0, 5.2, 1e30, -1e30, -0.0]), ODD),
    "d": st.one_of(st.floats(-10, 10), st.sampled_from([0.0, -0.0, -4.0, 9.5, -6.0]), ODD),
}


@st.composite
def float_dicts(draw, schema=RULED, min_size=16, max_size=40):
    """Records of the schema's keys in one key order, mostly floats, a few bent out of shape."""
    order = draw(st.permutations(schema.names))
    size = draw(st.integers(min_size, max_size))
    records = []
    for _ in range(size):
        record = {name: draw(RULED_VALUES[name]) for name in order}
        twist = draw(st.sampled_from(["none"] * 12 + ["shuffled", "missing", "extra", "subclass"]))
        if twist == "shuffled":
            record = dict(reversed(record.items()))
        elif twist == "missing":
            record.pop(order[0])
        elif twist == "extra":
            record["zz"] = 1.0
        elif twist == "subclass":
            record = Doubling(record)
        records.append(record)
    return records


class Doubling(dict):
    """A dict whose values read doubled: its own reading must win, never its raw storage."""

    def __getitem__(self, key):
        value = super().__getitem__(key)
        return 2 * value if type(value) is float else value

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default


@given(float_dicts())
def test_float_dicts_read_from_their_bytes_agree_with_the_thorough_path(records):
    plan = _plan(RULED)
    same(
        outcome(lambda: validate_records(RULED, records)),
        outcome(lambda: plan.thorough(records, allow_unknown=False)),
    )


@given(
    st.sampled_from([RULED, RULED_NULLABLE, RULED_LOG]).flatmap(
        lambda s: st.tuples(st.just(s), float_dicts(s, 1, 16))
    )
)
def test_rules_on_python_floats_agree_with_the_thorough_path(case):
    schema, records = case
    if schema is RULED_NULLABLE:
        records = [
            {**r, "d": None} if i % 3 == 0 and isinstance(r, dict) else r for i, r in enumerate(records)
        ]
    plan = _plan(schema)
    same(
        outcome(lambda: validate_records(schema, records)),
        outcome(lambda: plan.thorough(records, allow_unknown=False)),
    )


@pytest.mark.parametrize(
    ("d", "c", "holds"),
    [
        (0.0, 10.0, True),  # b / 0: inf in numpy, ZeroDivisionError in Python
        (-4.0, 10.0, True),  # (-4) ^ 0.5: NaN in numpy (not judged), complex in Python
        (-6.0, 10.0, True),  # sqrt(-1): NaN in numpy (not judged), ValueError in Python
        (1.0, 1e38, True),  # c ^ 10: inf in numpy, OverflowError in Python
        (1.0, 5.2, False),  # abs(c - 5) < 0.5
        (-9.9, 10.0, False),  # -d > 9.5
        (4.0, 10.0, True),
    ],
)
@pytest.mark.parametrize("count", [3, 40], ids=["row by row", "as arrays"])
def test_records_are_judged_as_numpy_judges_them(d, c, holds, count):
    records = [{"a": 1.0, "b": 2.0, "c": c, "d": d}] * count
    plan = _plan(RULED)
    fast, thorough = (
        outcome(lambda: validate_records(RULED, records)),
        outcome(lambda: plan.thorough(records, allow_unknown=False)),
    )
    same(fast, thorough)
    assert (fast[0] == "ok") is holds


def test_rules_the_bounds_imply_are_left_to_the_thorough_path():
    plan = _plan(RULED)
    checked = {r.name for r in plan.complex_rules} | {
        rule.name
        for rule in RULED.rules
        if rule.name not in {"a_ge_0", "huge"} and rule.name not in {r.name for r in plan.complex_rules}
    }
    assert "a_ge_0" not in checked
    assert "huge" not in checked
    assert len(plan.scalar_rules) == 2  # b >= a, a <= 90 (-500000 is an expression, negation)
    assert plan.plain_checks is not None
    assert _plan(RULED_LOG).plain_checks is None


@pytest.mark.parametrize(
    ("expr", "implied"),
    [
        ("a >= 0", True),
        ("0 <= a", True),
        ("a > 0", False),
        ("a > 0.5", False),
        ("a > -1", False),  # -1 is an expression (a negation), left to the general path
        ("a <= 100", True),
        ("a < 100", False),
        ("a != 150", True),
        ("a != 50", False),
        ("a == 0", False),
        ("b >= a", False),
        ("a * 1 >= 0", False),
    ],
)
def test_a_rule_is_implied_only_when_every_value_in_bounds_keeps_it(expr, implied):
    from predictor_core.validation import _implied_by_bounds

    assert _implied_by_bounds(Rule(name="r", expr=expr, message="m"), RULED) is implied


def test_dicts_of_floats_are_read_exactly_and_their_rows_kept_as_sent():
    values = [0.1, -0.0, 5e-324, 99.99999999999999, 3.4028234663852886e38, 1 / 3]
    records = [{"c": values[i % 6], "b": 100.0 - i, "a": 0.0, "d": 9.0} for i in range(40)]
    assert _plan(RULED).float_dicts(records) is not None  # read from the bytes, not key by key
    batch = validate_records(RULED, records)
    assert batch.numbers is not None
    assert [row.hex() for rows in batch.numbers.tolist() for row in rows] == [
        v.hex() for r in records for v in (r["a"], r["b"], r["c"], r["d"])
    ]
    assert batch.records() == [{name: r[name] for name in RULED.names} for r in records]


@pytest.mark.parametrize("bad", [1, True, None, np.float64(1.0), "1.0", 10**400, [1.0]])
def test_a_value_not_a_float_among_dicts_of_floats_is_judged_as_before(bad):
    records = [{"a": 1.0, "b": 2.0, "c": 10.0, "d": 1.0} for _ in range(30)]
    records[17] = {**records[17], "c": bad}
    plan = _plan(RULED)
    same(
        outcome(lambda: validate_records(RULED, records)),
        outcome(lambda: plan.thorough(records, allow_unknown=False)),
    )


@st.composite
def column_matrices(draw):
    """A float matrix of RULED's columns (some orders, some names off), and the same as a dict."""
    names = list(draw(st.permutations(RULED.names)))
    twist = draw(st.sampled_from(["none"] * 6 + ["missing", "extra", "float32", "fortran"]))
    if twist == "missing":
        names.pop()
    elif twist == "extra":
        names.append("zz")
    size = draw(st.integers(1, 40))
    values = {
        "a": st.one_of(MOSTLY_VALID, MOSTLY_VALID, st.sampled_from([95.0, -1.0, math.nan, math.inf])),
        "b": st.one_of(st.just(100.0), MOSTLY_VALID),
        "c": st.one_of(st.floats(-1e6, 1e6), st.sampled_from([5.0, 1e39])),
        "d": st.one_of(st.floats(-10, 10), st.sampled_from([0.0, -4.0, 11.0])),
        "zz": st.just(1.0),
    }
    matrix = np.array(
        [draw(st.lists(values[n], min_size=size, max_size=size)) for n in names], dtype=np.float64
    ).T
    if twist == "float32":
        with np.errstate(over="ignore"):  # 1e39 becomes inf
            matrix = matrix.astype(np.float32)
    matrix = np.asfortranarray(matrix) if twist == "fortran" else np.ascontiguousarray(matrix)
    return ColumnMatrix(names, matrix)


@given(column_matrices())
def test_a_column_matrix_agrees_with_its_columns_and_the_thorough_path(given_matrix):
    as_dict = {name: given_matrix.matrix[:, j] for j, name in enumerate(given_matrix.names)}
    fast = outcome(lambda: validate_columns(RULED, given_matrix))
    same(fast, outcome(lambda: validate_columns(RULED, as_dict)))
    if not set(RULED.names) - set(given_matrix.names) and set(given_matrix.names) <= set(RULED.names):
        lists = {name: given_matrix[name].tolist() for name in given_matrix}
        records = [{name: lists[name][i] for name in RULED.names} for i in range(len(given_matrix.matrix))]
        same(fast, outcome(lambda: _plan(RULED).thorough(records, allow_unknown=True)))


def test_a_column_matrix_in_schema_order_is_the_models_input_without_a_copy():
    matrix = np.array([[1.0, 2.0, 10.0, 1.0], [3.0, 4.0, 20.0, 2.0]])
    batch = validate_columns(RULED, ColumnMatrix(RULED.names, matrix))
    assert batch.numbers is matrix
    assert batch.records() == [dict(zip(RULED.names, row, strict=True)) for row in matrix.tolist()]
    reordered = validate_columns(RULED, ColumnMatrix(RULED.names[::-1], matrix[:, ::-1]))
    assert reordered.numbers.tolist() == matrix.tolist()


def test_a_column_matrix_needs_distinct_names_one_per_column():
    with pytest.raises(ValueError, match="distinct name"):
        ColumnMatrix(["a", "a"], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="distinct name"):
        ColumnMatrix(["a"], np.zeros((2, 2)))


def decoded(schema, records):
    """The records as a decoder reads them into the schema's record type (None where it refuses them:
    a value not an int or a float, a key missing or unknown, NaN or an infinity, which JSON cannot carry)."""
    try:
        return msgspec.json.decode(json.dumps(records), type=list[record_type(schema)])
    except msgspec.DecodeError:
        return None


def _json_number(value):
    if type(value) is int:
        return abs(value) < 2**63
    return type(value) is float and math.isfinite(value)


@st.composite
def json_number_dicts(draw):
    """Records a decoder types whole: RULED's values that JSON carries as numbers, in one key order."""
    order = draw(st.permutations(RULED.names))
    values = {name: st.one_of(RULED_VALUES[name].filter(_json_number), st.just(2**70)) for name in order}
    return [{name: draw(values[name]) for name in order} for _ in range(draw(st.integers(1, 40)))]


@given(json_number_dicts())
def test_decoded_records_agree_with_the_thorough_path_on_the_dicts_sent(records):
    structs = decoded(RULED, records)
    assert structs is not None
    same(
        outcome(lambda: validate_records(RULED, structs)),
        outcome(lambda: _plan(RULED).thorough(records, allow_unknown=False)),
    )


def test_decoded_floats_are_read_as_one_matrix_exactly_and_kept_as_sent():
    values = [0.1, -0.0, 5e-324, 99.99999999999999, 3.4028234663852886e38, 1 / 3]
    records = [{"d": 9.0, "c": values[i % 6], "b": 100.0 - i, "a": 0.0} for i in range(40)]
    structs = decoded(RULED, records)
    plan = _plan(RULED)
    assert plan.decoded_records(structs) is not None  # the matrix, not the dicts
    batch = validate_records(RULED, structs)
    assert [v.hex() for row in batch.numbers.tolist() for v in row] == [
        v.hex() for r in records for v in (r["a"], r["b"], r["c"], r["d"])
    ]
    assert batch.records() == [{name: r[name] for name in RULED.names} for r in records]
    assert validate_records(RULED, structs[:3]).records() == batch.records()[:3]  # a few records too


def test_an_int_among_decoded_records_is_judged_and_kept_as_the_int_sent():
    records = [{"a": 1.0, "b": 2.0, "c": 10.0, "d": 1.0} for _ in range(30)]
    records[7] = {**records[7], "c": 12}
    structs = decoded(RULED, records)
    assert _plan(RULED).decoded_records(structs) is None  # not all floats: read as dicts
    assert validate_records(RULED, structs).records()[7]["c"] == 12
    assert type(validate_records(RULED, structs).records()[7]["c"]) is int


def test_only_a_schema_of_non_null_numbers_has_a_record_type_shared_by_its_copies():
    assert record_type(TOY) is None  # an integer, a boolean, a category
    assert record_type(RULED_NULLABLE) is None
    copy = msgspec.json.decode(msgspec.json.encode(RULED), type=FeatureSchema)
    assert copy is not RULED
    assert record_type(copy) is record_type(RULED)


def test_records_decoded_for_another_schema_are_judged_as_the_dicts_they_were():
    other = FeatureSchema(features=(Feature(name="a", kind="number"), Feature(name="z", kind="number")))
    sent = [{"a": 1.0, "z": 2.0}] * 20
    same(
        outcome(lambda: validate_records(RULED, decoded(other, sent))),
        outcome(lambda: validate_records(RULED, sent)),
    )
