"""One problem found in the input: where, a stable code, a message a person can act on, the value."""

from __future__ import annotations

import enum
import math
from typing import Any

import msgspec

__all__ = ["Problem", "ProblemCode", "shorten"]

_MAX_TEXT = 80
_MAX_SAFE_INT = 2**53  # larger ints are shown as text: not every JSON reader keeps them exact


class ProblemCode(enum.StrEnum):
    """Stable, machine-readable reasons; clients may branch on them, so never rename one."""

    MISSING = "missing"
    """A required feature is absent, or null where the feature is not nullable."""
    UNKNOWN_FEATURE = "unknown_feature"
    """The record names a feature the model does not have."""
    WRONG_TYPE = "wrong_type"
    """The value has the wrong JSON type (a string for a number, a bool for a number...)."""
    OUT_OF_RANGE = "out_of_range"
    """A number lies outside the feature's inclusive bounds."""
    UNKNOWN_CATEGORY = "unknown_category"
    """A category value the model was not trained on and the schema does not allow."""
    NOT_FINITE = "not_finite"
    """NaN, an infinity, or a number too large for the model's float32 input."""
    RULE_VIOLATED = "rule_violated"
    """A cross-field consistency rule does not hold for this record."""
    NOT_A_RECORD = "not_a_record"
    """A record is not a mapping of feature names to values."""
    EMPTY = "empty"
    """The batch holds no record."""
    LENGTH_MISMATCH = "length_mismatch"
    """Columns of a column-oriented input have different lengths."""
    DUPLICATE_FEATURE = "duplicate_feature"
    """A column-oriented input gives a feature twice (a DataFrame with a repeated column name)."""


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """Where (`loc`), why (`code`, `msg`) and what (`value`, shortened) for one bad input."""

    loc: tuple[int | str, ...]
    """Record index, then the feature (or rule) name: (3, "mean_radius")."""
    code: ProblemCode
    msg: str
    value: Any = None
    """The offending value as sent, shortened when long; None when the value is absent."""

    def __str__(self) -> str:
        where = ".".join(str(part) for part in self.loc)
        return f"[{where}] {self.code.value}: {self.msg}"


def shorten(value: Any) -> Any:
    """Keep JSON scalars as they are; cut long strings and replace containers by a short repr."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN or Infinity; "nan" says more than null
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int) and -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
        return value
    if isinstance(value, str):
        return value if len(value) <= _MAX_TEXT else value[: _MAX_TEXT - 1] + "…"
    text = repr(value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"
