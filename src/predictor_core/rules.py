"""Cross-field consistency rules: a tiny arithmetic language, parsed once, evaluated on whole columns.

A rule is data: `Rule(name="worst_radius_ge_mean", expr="worst_radius >= mean_radius", message=...)`.
Its expression is parsed by the recursive-descent parser below (never `eval`) into a small tree that
is evaluated with numpy over a batch, so checking 1,000 records costs one vector operation per node.

Grammar (usual precedence, `^` binds tightest and is right-associative)::

    rule   := sum CMP sum            CMP is one of  >=  >  <=  <  ==  !=
    sum    := term (("+" | "-") term)*
    term   := unary (("*" | "/") unary)*
    unary  := "-" unary | power          so -a^2 is -(a^2), as in mathematics
    power  := atom ("^" unary)?
    atom   := NUMBER | NAME | "pi" | "(" sum ")" | ("abs" | "log" | "exp" | "sqrt") "(" sum ")"
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from predictor_core.errors import SchemaError

__all__ = ["COMPARISONS", "Expr", "Rule", "parse_rule"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_TOKEN = re.compile(
    r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(>=|<=|==|!=|[-+*/^()<>]))"
)
COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "^": operator.pow,
}
_FUNCS: dict[str, Callable[[Any], Any]] = {"abs": np.abs, "log": np.log, "exp": np.exp, "sqrt": np.sqrt}


@dataclass(frozen=True, slots=True)
class Expr:
    """A parsed expression node: a number, a feature name, a function call or an operation."""

    op: str
    """"num", "name", "neg", a function name, or an arithmetic operator."""
    args: tuple[Expr, ...] = ()
    value: float | str | None = None

    def names(self) -> frozenset[str]:
        """Feature names the expression reads."""
        if self.op == "name":
            return frozenset({str(self.value)})
        return frozenset().union(*(arg.names() for arg in self.args))

    def evaluate(self, columns: Mapping[str, FloatArray]) -> FloatArray | float:
        """Compute the expression for every record at once; unknown names were refused at parse time."""
        if self.op == "num":
            return float(self.value)  # type: ignore[arg-type]
        if self.op == "name":
            return columns[str(self.value)]
        if self.op == "neg":
            return -self.args[0].evaluate(columns)
        if self.op in _FUNCS:
            return _FUNCS[self.op](self.args[0].evaluate(columns))  # type: ignore[no-any-return]
        left, right = (arg.evaluate(columns) for arg in self.args)
        return _ARITH[self.op](left, right)  # type: ignore[no-any-return]

    def compile(self, positions: Mapping[str, int]) -> Callable[[Any], Any]:
        """A closure computing the expression from feature positions, for one row or a whole batch.

        Given one row of numbers, it computes one value; given a [K, N] matrix (one feature per row),
        every record's at once. Constants are numpy float64 scalars, so division by zero and overflow
        behave exactly as in `evaluate`. On one row it is far cheaper than array operations when a
        batch holds a handful of records; on a matrix it reads contiguous rows, no name looked up.
        """
        if self.op == "num":
            constant = np.float64(self.value)
            return lambda row: constant
        if self.op == "name":
            position = positions[str(self.value)]
            return lambda row: row[position]
        if self.op == "neg":
            inner = self.args[0].compile(positions)
            return lambda row: -inner(row)
        if self.op in _FUNCS:
            func, inner = _FUNCS[self.op], self.args[0].compile(positions)
            return lambda row: func(inner(row))
        arith, (left, right) = _ARITH[self.op], (arg.compile(positions) for arg in self.args)
        return lambda row: arith(left(row), right(row))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                raise SchemaError(f"rule {self.text!r}: unexpected character {text[pos:].lstrip()[:1]!r}")
            number, name, symbol = match.groups()
            kind = "num" if number is not None else "name" if name is not None else "sym"
            self.tokens.append((kind, number or name or symbol))
            pos = match.end()
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, symbol: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (symbol is not None and token[1] != symbol):
            found = "the end" if token is None else repr(token[1])
            wanted = repr(symbol) if symbol else "a value"
            raise SchemaError(f"rule {self.text!r}: expected {wanted}, found {found}")
        self.pos += 1
        return token

    def rule(self) -> tuple[Expr, str, Expr]:
        left = self.sum()
        token = self.peek()
        if token is None or token[1] not in COMPARISONS:
            raise SchemaError(f"rule {self.text!r}: needs one comparison (>=, >, <=, <, ==, !=)")
        self.pos += 1
        right = self.sum()
        if self.peek() is not None:
            raise SchemaError(f"rule {self.text!r}: unexpected {self.peek()[1]!r} after the comparison")  # type: ignore[index]
        return left, token[1], right

    def sum(self) -> Expr:
        node = self.term()
        while (token := self.peek()) is not None and token[1] in "+-" and token[0] == "sym":
            self.pos += 1
            node = Expr(token[1], (node, self.term()))
        return node

    def term(self) -> Expr:
        node = self.unary()
        while (token := self.peek()) is not None and token[1] in "*/" and token[0] == "sym":
            self.pos += 1
            node = Expr(token[1], (node, self.unary()))
        return node

    def unary(self) -> Expr:
        token = self.peek()
        if token is not None and token[1] == "-":
            self.pos += 1
            return Expr("neg", (self.unary(),))
        return self.power()

    def power(self) -> Expr:
        base = self.atom()
        token = self.peek()
        if token is not None and token[1] == "^":
            self.pos += 1
            return Expr("^", (base, self.unary()))
        return base

    def atom(self) -> Expr:
        kind, text = self.take()
        if kind == "num":
            return Expr("num", value=float(text))
        if kind == "name":
            if text == "pi":
                return Expr("num", value=math.pi)
            if text in _FUNCS:
                self.take("(")
                inner = self.sum()
                self.take(")")
                return Expr(text, (inner,))
            return Expr("name", value=text)
        if text == "(":
            inner = self.sum()
            self.take(")")
            return inner
        raise SchemaError(f"rule {self.text!r}: unexpected {text!r}")


class Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A named comparison that must hold for every record, with the message shown when it does not.

    A rule that reads a missing (null) value is not judged for that record: the model imputes it.
    """

    name: str
    expr: str
    message: str

    def __post_init__(self) -> None:
        # Fail at construction (and on load from JSON), not at the first request.
        _compiled(self)

    @property
    def parsed(self) -> tuple[Expr, str, Expr]:
        """(left expression, comparison, right expression)."""
        return _compiled(self)

    @property
    def features(self) -> frozenset[str]:
        """Feature names the rule reads."""
        left, _, right = _compiled(self)
        return left.names() | right.names()

    def violations(self, columns: Mapping[str, FloatArray]) -> BoolArray:
        """Mask of records that break the rule; NaN (missing) operands never count as a violation.

        Floating-point warnings (division by zero, overflow) are the caller's to silence: validation
        does it once for all rules with `np.errstate(all="ignore")`.
        """
        left, cmp, right = _compiled(self)
        lhs = np.asarray(left.evaluate(columns), dtype=np.float64)
        rhs = np.asarray(right.evaluate(columns), dtype=np.float64)
        broken = ~COMPARISONS[cmp](lhs, rhs) & ~np.isnan(lhs) & ~np.isnan(rhs)
        if broken.ndim == 0:  # no feature in the expression: one verdict for every record
            size = len(next(iter(columns.values()))) if columns else 1
            return np.full(size, bool(broken))
        return np.asarray(broken)

    def row_check(self, positions: Mapping[str, int]) -> Callable[[Sequence[Any]], bool]:
        """A closure telling whether one row (numpy float64 values by position) breaks the rule.

        Same verdicts as `violations`, for small batches. Call it under `np.errstate(all="ignore")`.
        """
        left, cmp, right = _compiled(self)
        lhs, rhs, compare = left.compile(positions), right.compile(positions), COMPARISONS[cmp]

        def broken(row: Sequence[Any]) -> bool:
            a, b = lhs(row), rhs(row)
            return not (a != a or b != b) and not compare(a, b)  # x != x only for NaN

        return broken


_CACHE: dict[str, tuple[Expr, str, Expr]] = {}


def parse_rule(expr: str) -> tuple[Expr, str, Expr]:
    """Parse `expr` into (left, comparison, right); raises SchemaError with the position of the fault."""
    return _Parser(expr).rule()


def _compiled(rule: Rule) -> tuple[Expr, str, Expr]:
    parsed = _CACHE.get(rule.expr)
    if parsed is None:
        parsed = _CACHE[rule.expr] = parse_rule(rule.expr)
    return parsed
