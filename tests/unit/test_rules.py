import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from predictor_core import Rule, SchemaError
from predictor_core.rules import parse_rule


def cols(**values):
    return {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}


@pytest.mark.parametrize(
    ("expr", "a", "b", "violated"),
    [
        ("a >= b", 2.0, 1.0, False),
        ("a >= b", 1.0, 2.0, True),
        ("a > b", 1.0, 1.0, True),
        ("a <= b", 1.0, 1.0, False),
        ("a < b", 1.0, 1.0, True),
        ("a == b", 3.0, 3.0, False),
        ("a != b", 3.0, 3.0, True),
        ("a ^ 2 >= 4 * pi * b", 10.0, 7.9, False),
        ("a ^ 2 >= 4 * pi * b", 10.0, 8.0, True),
        ("a + b - 1 < 2 * (a - -b) / 2", 1.0, 1.0, False),
        ("sqrt(a) + abs(-b) >= exp(0) + log(1)", 4.0, 0.0, False),
        ("-a ^ 2 < 0", 3.0, 0.0, False),
        ("2 ^ 3 ^ 2 == 512", 0.0, 0.0, False),
        ("a >= 1.5e1", 15.0, 0.0, False),
        ("a >= .5", 0.25, 0.0, True),
    ],
)
def test_rules_evaluate_like_arithmetic(expr, a, b, violated):
    rule = Rule(name="r", expr=expr, message="m")
    with np.errstate(all="ignore"):
        assert rule.violations(cols(a=[a], b=[b])).tolist() == [violated]
        assert rule.row_check({"a": 0, "b": 1})(np.array([a, b])) is violated


FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1.0, -1.0]))


@given(
    st.sampled_from(
        ["a / b >= 1", "sqrt(a) < b", "log(a) + exp(b) != 3", "a ^ b <= a * b", "abs(a - b) == 0"]
    ),
    st.lists(st.tuples(FLOATS, FLOATS), min_size=1, max_size=20),
)
def test_row_by_row_and_vectorised_verdicts_agree(expr, pairs):
    rule = Rule(name="r", expr=expr, message="m")
    check = rule.row_check({"a": 0, "b": 1})
    with np.errstate(all="ignore"):
        vectorised = rule.violations(cols(a=[p[0] for p in pairs], b=[p[1] for p in pairs])).tolist()
        row_by_row = [check(np.array(p, dtype=np.float64)) for p in pairs]
    assert row_by_row == vectorised


def test_constant_rules_give_one_verdict_per_record():
    rule = Rule(name="r", expr="1 > 2", message="m")
    assert rule.violations(cols(a=[1.0, 2.0])).tolist() == [True, True]


def test_missing_operands_are_never_violations():
    rule = Rule(name="r", expr="a >= b", message="m")
    mask = rule.violations(cols(a=[math.nan, 1.0, 0.0], b=[5.0, math.nan, 1.0]))
    assert mask.tolist() == [False, False, True]


def test_rule_lists_the_features_it_reads():
    assert Rule(name="r", expr="a * pi >= sqrt(b) + 2", message="m").features == {"a", "b"}


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("a + b", "needs one comparison"),
        ("a >= b >= c", "unexpected '>='"),
        ("a >= ", "expected a value, found the end"),
        ("a >= (b", "expected ')'"),
        ("__import__('os') >= 1", "unexpected character"),
        ("a >= b; 1", "unexpected character ';'"),
        ("a >= )", "unexpected ')'"),
    ],
)
def test_bad_expressions_are_refused_with_the_reason(expr, fragment):
    with pytest.raises(SchemaError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        Rule(name="r", expr=expr, message="m")


def test_parse_never_calls_eval():
    left, op, right = parse_rule("a >= b")
    assert (left.op, op, right.op) == ("name", ">=", "name")
