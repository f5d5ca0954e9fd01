"""Validation: raw records or columns in, typed ordered values out, or every problem at once.

Two paths give the same answer. The fast paths check a whole batch at once, never value by value in
Python: records of floats (dicts, or the Structs of `record_type` a decoder read a body into) go
through msgpack bytes into one matrix, other records through msgspec's C code, and columns (numpy
arrays, a DataFrame's) through numpy, column by column or as one block; rules are numpy operations.
A fast path only ever *accepts*: whenever it sees anything doubtful it hands over to the thorough path,
which walks every value to list every problem with its location. Valid traffic (the common case) never
pays for the thorough path.

The list is capped (`MAX_PROBLEMS` by default): past the cap, problems are only counted, without a
message, and unknown keys by arithmetic rather than one by one, so a hostile input with 100,000 unknown
keys costs milliseconds and yields a short answer. `ValidationFailed.total` says how many there are.

No silent coercion: `True` is not a number, `"5"` is not a number, `5.5` is not an integer, NaN and
infinities (and numbers too large for float32) are refused; missing is null, and only where the
feature is nullable. An integer feature takes an integral number in any JSON form (`59` and `59.0`), as
JSON Schema's `integer` does, and keeps it as the int 59.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Annotated, Any, Literal, cast

import msgspec
import numpy as np
import numpy.typing as npt

from predictor_core.errors import ValidationFailed
from predictor_core.problems import Problem, ProblemCode, shorten
from predictor_core.rules import COMPARISONS, Expr, Rule
from predictor_core.schema import Feature, FeatureKind, FeatureSchema

__all__ = [
    "MAX_PROBLEMS",
    "ColumnMatrix",
    "DecodedRecord",
    "ValidatedBatch",
    "record_type",
    "validate_columns",
    "validate_record",
    "validate_records",
]

MAX_PROBLEMS = 100
"""Problems listed by one ValidationFailed unless the caller asks for another cap; the others are counted."""

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ABSENT: Any = object()
_NUMERIC = (FeatureKind.NUMBER, FeatureKind.INTEGER, FeatureKind.BOOLEAN)
_ROW_BY_ROW_RULES = 16
"""Up to this many records, rules are checked row by row on scalars: cheaper than array set-up."""
_MATRIX_FROM_BYTES = 16
"""From this many records of floats, the matrix is read from their msgpack encoding (3 µs instead of
16 µs per 1,000 values here); fewer records pay less for msgspec and `np.array`."""
_ENCODER = msgspec.msgpack.Encoder()
_FLOAT64 = 0xCB
"""msgpack's type byte of a float 64, the only form msgspec gives a Python float."""
_KEY_ORDERS = 8
"""Key orders of float records whose msgpack layout a schema remembers (clients send one, usually)."""


@dataclass(frozen=True, slots=True, eq=False)
class ValidatedBatch:
    """Records that passed every check, as rows (for storage) and columns (for the runtime)."""

    schema: FeatureSchema
    rows: Sequence[tuple[Any, ...]]
    """One tuple per record, values in schema order, as sent (an integral float of an integer feature
    as its int: 59.0 is kept as 59); None where missing. From columns, built on first use (recording
    needs them, predicting does not), from the arrays validated."""
    columns: Mapping[str, np.ndarray] = field(repr=False)
    """Per feature: float64 for numbers, integers and booleans (NaN where missing); object array of
    str for categories (None where missing)."""
    numbers: np.ndarray | None = field(default=None, repr=False)
    """The whole batch as one float64 [N, F] matrix, when every feature is numeric and non-null."""
    sent: Sequence[Mapping[str, Any]] | None = field(default=None, repr=False)
    """The records as sent, when each holds exactly the schema's keys and `rows`' values (none converted):
    `records()` copies them rather than pairing names with values, 0.2 instead of 1.8 µs a record of 30."""

    def __len__(self) -> int:
        return len(self.rows)

    def records(self) -> list[dict[str, Any]]:
        """The validated values as one dict per record (JSON-ready), e.g. for the audit trail.

        In schema order, or in the order they were sent where `sent` holds them.
        """
        if self.sent is not None:
            return [dict(record) for record in self.sent]
        names = self.schema.names
        return [dict(zip(names, row, strict=True)) for row in self.rows]

    @classmethod
    def concat(cls, batches: Sequence[ValidatedBatch]) -> ValidatedBatch:
        """One batch of the rows of `batches` in order, all validated against the same schema.

        For one runtime call over several requests (micro-batching): dense batches stay one matrix with
        columns made on demand, and rows are joined only if asked for.
        """
        first = batches[0]
        rows = _LazyRows(lambda: [row for b in batches for row in b.rows], sum(map(len, batches)))
        matrices = [b.numbers for b in batches if b.numbers is not None]
        if len(matrices) == len(batches):
            numbers = np.concatenate(matrices)
            columns: Mapping[str, np.ndarray] = ColumnMatrix.at(numbers, _plan(first.schema).positions)
            return cls(first.schema, rows, columns, numbers)
        joined = {name: np.concatenate([b.columns[name] for b in batches]) for name in first.columns}
        return cls(first.schema, rows, joined)

    def matrix(self) -> npt.NDArray[np.float32]:
        """All features as one float32 [N, F] matrix in schema order; only for all-numeric schemas."""
        if self.numbers is not None:
            return self.numbers.astype(np.float32)
        if not self.schema.all_numeric:
            raise TypeError("matrix() needs a schema without category features; use columns")
        return np.column_stack([self.columns[n] for n in self.schema.names]).astype(np.float32)


class ColumnMatrix(Mapping[str, np.ndarray]):
    """Columns held as one [N, K] matrix: name -> column, a view made on demand.

    A dense batch keeps its columns so (building 30 views per request costs more than most of what the
    runtime does with them), and a DataFrame's block of floats comes as one: it is a mapping of columns
    like any other, so every path takes it; `validate_columns` checks it whole, and the model reads it
    without a copy, when its names are exactly the schema's features, all of them numbers, in float64.
    """

    __slots__ = ("_where", "matrix")

    def __init__(self, names: Sequence[str], matrix: np.ndarray) -> None:
        """`names` of the matrix's columns, in its order, each once."""
        where = {name: j for j, name in enumerate(names)}
        if len(where) != len(names) or matrix.ndim != 2 or matrix.shape[1] != len(where):
            raise ValueError("a ColumnMatrix needs one distinct name per column of a 2-D matrix")
        self.matrix = matrix
        self._where: Mapping[str, int] = where

    @classmethod
    def at(cls, matrix: np.ndarray, where: Mapping[str, int]) -> ColumnMatrix:
        """Over a schema plan's own positions: nothing to build or check for each batch."""
        columns = cls.__new__(cls)
        columns.matrix, columns._where = matrix, where
        return columns

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._where)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.matrix[:, self._where[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


class _LazyRows(Sequence[tuple[Any, ...]]):
    """Rows made on first use by `make`.

    Tuples of 30 values cost more than the model, and predicting, or a merged runtime call, needs none
    of them (recording does).
    """

    __slots__ = ("_make", "_rows", "_size")

    def __init__(self, make: Callable[[], list[tuple[Any, ...]]], size: int) -> None:
        self._make = make
        self._size = size
        self._rows: list[tuple[Any, ...]] | None = None

    def _made(self) -> list[tuple[Any, ...]]:
        if self._rows is None:
            self._rows = self._make()
        return self._rows

    def __getitem__(self, index: Any) -> Any:
        return self._made()[index]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._made())

    def __len__(self) -> int:
        return self._size


def _rows_of(sources: list[tuple[list[Any] | np.ndarray, bool]]) -> list[tuple[Any, ...]]:
    """Rows of validated columns: each source holds the values as sent; integer features' floats as ints."""
    return list(zip(*(_plain_values(values, integer) for values, integer in sources), strict=True))


def _plain_values(values: list[Any] | np.ndarray, integer: bool) -> list[Any]:
    plain = values.tolist() if isinstance(values, np.ndarray) else values
    return [int(v) if isinstance(v, float) else v for v in plain] if integer else plain


class DecodedRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """A record a decoder typed whole: the base of every schema's `record_type`.

    Its fields are the schema's features by name, so `msgspec.structs.asdict` gives the record as sent.
    """


def record_type(schema: FeatureSchema) -> type[DecodedRecord] | None:
    """A Struct to decode this schema's records into, or None unless every feature is a non-null number.

    A decoder that reads a body straight into these (`list[record_type(schema)]`) makes no dict and no
    key string per record, and `validate_records` reads their floats as one matrix. Each field takes
    `int | float`, so an int stays an int (judged, and recorded, as sent); records holding one, or
    decoded for another schema, are judged as the dicts they were sent as. Whatever the Struct refuses
    (a null, a string, a missing or unknown key) is for the caller to decode the ordinary way, so its
    problems are listed as always.
    """
    return _plan(schema).record_type


@functools.lru_cache(maxsize=256)
def _record_type(names: tuple[str, ...]) -> type[DecodedRecord]:
    """One type per list of feature names: the registry's and the runtime's copies of a manifest share it."""
    fields = [(name, int | float) for name in names]
    return cast(type[DecodedRecord], msgspec.defstruct("Record", fields, bases=(DecodedRecord,), frozen=True))


def validate_record(
    schema: FeatureSchema,
    record: Any,
    /,
    *,
    allow_unknown: bool = False,
    max_problems: int = MAX_PROBLEMS,
) -> ValidatedBatch:
    """Validate one record (a mapping); problems are located at record index 0."""
    return validate_records(schema, [record], allow_unknown=allow_unknown, max_problems=max_problems)


def validate_records(
    schema: FeatureSchema,
    records: Sequence[Any],
    /,
    *,
    allow_unknown: bool = False,
    max_problems: int = MAX_PROBLEMS,
) -> ValidatedBatch:
    """Validate a list of records (mappings of feature name to value) into one batch.

    Raises:
        ValidationFailed: listing the first `max_problems` problems in record then feature order, each
            located at (record index, feature or rule), and counting them all (`total`).
    """
    if type(records) is not list and (
        isinstance(records, Mapping | str | bytes) or not isinstance(records, Sequence)
    ):
        raise ValidationFailed(
            [
                Problem(
                    loc=(),
                    code=ProblemCode.NOT_A_RECORD,
                    msg="expected a list of records",
                    value=shorten(records),
                )
            ]
        )
    if not records:
        raise ValidationFailed([Problem(loc=(), code=ProblemCode.EMPTY, msg="the batch holds no record")])
    plan = _plan(schema)
    if isinstance(records[0], DecodedRecord):
        batch = (
            plan.decoded_records(records)
            if len(records) >= _MATRIX_FROM_BYTES and not allow_unknown
            else None
        )
        if batch is not None:
            return batch
        records = [msgspec.structs.asdict(r) if isinstance(r, DecodedRecord) else r for r in records]
    batch = None if allow_unknown else plan.fast_records(records)
    if batch is not None:
        return batch
    return plan.thorough(records, allow_unknown=allow_unknown, limit=max_problems)


def validate_columns(
    schema: FeatureSchema,
    columns: Mapping[str, Iterable[Any]],
    /,
    *,
    allow_unknown: bool = False,
    max_problems: int = MAX_PROBLEMS,
) -> ValidatedBatch:
    """Validate column-oriented data ({feature: values}); numpy arrays and pandas columns are welcome.

    Column-level problems (unknown or absent column, unequal lengths) are located at (feature,);
    value problems at (record index, feature) as for records. At most `max_problems` are listed.
    """
    if not isinstance(columns, Mapping):
        raise ValidationFailed(
            [
                Problem(
                    loc=(),
                    code=ProblemCode.NOT_A_RECORD,
                    msg="expected a mapping of feature name to a column of values",
                    value=shorten(columns),
                )
            ]
        )
    if type(columns) is ColumnMatrix:
        batch = _plan(schema).matrix_columns(columns)
        if batch is not None:
            return batch
    unknown = [name for name in columns if name not in schema._by_name]
    lists: dict[str, list[Any] | np.ndarray] = {
        name: values if isinstance(values, np.ndarray) and _is_numeric_vector(values) else _as_list(values)
        for name, values in columns.items()
        if name in schema._by_name
    }
    problems: list[Problem] = []
    total = 0
    if not allow_unknown:
        total += len(unknown)
        problems.extend(
            Problem(
                loc=(str(name),),
                code=ProblemCode.UNKNOWN_FEATURE,
                msg=f"the model has no feature {str(name)!r}",
            )
            for name in unknown[:max_problems]
        )
    absent = [f.name for f in schema.features if f.name not in lists and f.required]
    total += len(absent)
    problems.extend(
        Problem(loc=(name,), code=ProblemCode.MISSING, msg=f"column {name!r} is required") for name in absent
    )
    lengths = {len(v) for v in lists.values()}
    if len(lengths) > 1:
        expected = len(next(iter(lists.values())))
        uneven = [(name, len(values)) for name, values in lists.items() if len(values) != expected]
        total += len(uneven)
        problems.extend(
            Problem(
                loc=(name,),
                code=ProblemCode.LENGTH_MISMATCH,
                msg=f"column has {length} values, expected {expected} like the first column",
            )
            for name, length in uneven
        )
    if total:
        raise ValidationFailed(problems[:max_problems], total=total)
    size = lengths.pop() if lengths else 0
    if size == 0:
        raise ValidationFailed([Problem(loc=(), code=ProblemCode.EMPTY, msg="the batch holds no record")])
    ordered = [lists.get(name, [None] * size) for name in schema.names]
    plan = _plan(schema)
    batch = plan.column_batch(ordered, size)
    if batch is not None:
        return batch
    rows = list(zip(*map(_as_list, ordered), strict=True))
    records = [dict(zip(schema.names, row, strict=True)) for row in rows]
    return plan.thorough(records, allow_unknown=True, limit=max_problems)


def _is_numeric_vector(values: Any) -> bool:
    """A 1-D numpy array of booleans, integers or floats (at most 64 bits): checked without Python values."""
    return (
        isinstance(values, np.ndarray)
        and values.ndim == 1
        and values.dtype.kind in "biuf"
        and values.dtype.itemsize <= 8
    )


def _as_list(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _converts(rows: Any, rows_type: Any) -> bool:
    try:
        msgspec.convert(rows, rows_type, strict=True)
    except (msgspec.ValidationError, OverflowError):
        return False
    return True


def _array_header(count: int) -> bytes:
    """The msgpack header of an array of `count` items."""
    if count < 16:
        return bytes([0x90 | count])
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def _float_matrix(rows: list[tuple[Any, ...]], width: int) -> np.ndarray | None:
    """The rows as a float64 [N, width] matrix when every value is a Python float, else None.

    msgspec encodes the rows in C; when every array header and every value's type byte sits where
    a list of float rows puts them, decoding from the start can only read floats, so the 8-byte
    big-endian values are read in place by numpy.
    """
    try:
        data = _ENCODER.encode(rows)
    except (OverflowError, TypeError, ValueError):  # a huge int, an object msgpack cannot hold
        return None  # the thorough path says what is wrong with it
    count, outer, inner = len(rows), _array_header(len(rows)), _array_header(width)
    stride = len(inner) + 9 * width
    if len(data) != len(outer) + count * stride or not data.startswith(outer):
        return None
    cells = np.frombuffer(data, np.uint8, offset=len(outer)).reshape(count, stride)
    if not (cells[:, len(inner) :: 9] == _FLOAT64).all():
        return None
    if not (cells[:, : len(inner)] == np.frombuffer(inner, np.uint8)).all():
        return None
    view = np.ndarray((count, width), ">f8", data, len(outer) + len(inner) + 1, (stride, 9))
    return view.astype(np.float64)


class _Plan:
    """Everything about a schema that validation needs, computed once per schema."""

    def __init__(self, schema: FeatureSchema) -> None:
        self.schema = schema
        self.names = schema.names
        self.known = frozenset(self.names)
        self.order = {name: i for i, name in enumerate(self.names)}
        self.width = len(self.names)
        self.all_required = all(f.required for f in schema.features)
        self.getter = itemgetter(*self.names)
        # An array-like Struct: msgspec caches its type information, a bare tuple[...] type is re-parsed
        # on every call (28 µs versus 2.6 µs for one 30-feature record, measured here).
        row_type = msgspec.defstruct(
            "Row", [(f.name, _msgspec_type(f)) for f in schema.features], array_like=True, frozen=True
        )
        self.strict_rows_type: Any = list[row_type]  # type: ignore[valid-type]
        self.integers = [i for i, f in enumerate(schema.features) if f.kind is FeatureKind.INTEGER]
        lenient = msgspec.defstruct(
            "LenientRow",
            [(f.name, _msgspec_type(f, integral_floats=True)) for f in schema.features],
            array_like=True,
            frozen=True,
        )
        self.lenient_rows_type: Any = list[lenient] if self.integers else None  # type: ignore[valid-type]
        self.numeric = [f for f in schema.features if f.kind in _NUMERIC]
        self.dense = len(self.numeric) == self.width and not any(f.nullable for f in self.numeric)
        self.positions = {f.name: k for k, f in enumerate(self.numeric)}
        # Fast paths only ever see a number within its feature's bounds (or NaN for null, which breaks
        # no rule), so a rule the bounds imply (`x >= 0` where x's minimum is 0) can never break there.
        checked = [rule for rule in schema.rules if not _implied_by_bounds(rule, schema)]
        self.simple_rules, self.complex_rules = _group_rules(checked, self.positions)
        self.simple_picks: list[tuple[Callable[[Any, Any], Any], Any, Any, bool]] = [
            (
                compare,
                _rows_at(left),
                _rows_at(right) if right.dtype.kind == "i" else right[:, None],
                right.dtype.kind == "i",
            )
            for compare, left, right in self.simple_rules
        ]
        # Compiled over feature positions, so a batch's rules read the contiguous rows of its [K, N]
        # matrix rather than columns of the [N, K] one (7 against 13 µs for two rules on 1,000 rows).
        self.complex_parts = [
            (rule, left.compile(self.positions), COMPARISONS[cmp], right.compile(self.positions))
            for rule in self.complex_rules
            for left, cmp, right in [rule.parsed]
        ]
        self.complex_checks = [rule.row_check(self.positions) for rule in self.complex_rules]
        self.floats_only = self.dense and all(f.kind is FeatureKind.NUMBER for f in schema.features)
        self.low = np.array([_bound(f.minimum, -_FLOAT32_MAX, max) for f in self.numeric])[:, None]
        self.high = np.array([_bound(f.maximum, _FLOAT32_MAX, min) for f in self.numeric])[:, None]
        self.integral = [k for k, f in enumerate(self.numeric) if f.kind is FeatureKind.INTEGER]
        self.allowed = {
            f.name: frozenset([*(f.categories or ()), *([None] if f.nullable else [])])
            for f in schema.features
            if f.kind is FeatureKind.CATEGORY
        }
        self.column_types = {f.name: _column_type(f) for f in self.numeric}
        self.lenient_column_types = {
            f.name: _column_type(f, integral_floats=True)
            for f in self.numeric
            if f.kind is FeatureKind.INTEGER
        }
        self.scalar_rules = [
            (compare, int(k), float(r) if right.dtype.kind == "f" else int(r), right.dtype.kind != "f")
            for compare, left, right in self.simple_rules
            for k, r in zip(left.tolist(), right.tolist(), strict=True)
        ]
        self.scalar_groups = [
            (
                compare,
                _getter(left.tolist()),
                _getter(right.tolist()) if right.dtype.kind == "i" else _constants(right.tolist()),
            )
            for compare, left, right in self.simple_rules
        ]
        plain = [_plain_check(rule, self.positions) for rule in self.complex_rules]
        self.plain_checks: list[Callable[[list[float]], bool]] | None = (
            None if None in plain else plain  # type: ignore[assignment]
        )
        self.layouts: dict[tuple[str, ...], _RecordLayout] = {}
        self.record_type = _record_type(self.names) if self.floats_only else None
        self.record_layout = _RecordLayout(self.names, self.names) if self.record_type else None

    def fast_records(self, records: Sequence[Any]) -> ValidatedBatch | None:
        """The batch when every record has exactly the schema's keys and valid values, else None."""
        if self.floats_only and self.all_required and len(records) >= _MATRIX_FROM_BYTES:
            stacked = self.float_dicts(records)
            if stacked is not None:  # every value a float: bounds and rules decide, as for rows below
                lazy = _LazyRows(
                    functools.partial(_rows_of_records, self.getter, self.width, records), len(records)
                )
                return self.matrix_batch(lazy, stacked.T, stacked, sent=records)
        rows = self.keyed(records)
        if rows is None:
            return None
        if self.floats_only and len(rows) >= _MATRIX_FROM_BYTES:
            numbers = _float_matrix(rows, self.width)
            if numbers is not None:
                return self.matrix_batch(rows, numbers, sent=records)
        typed = self.typed(rows)
        if typed is None:
            return None
        return self.fast_batch(typed, sent=records if typed is rows else None)  # else a value was repaired

    def decoded_records(self, records: Sequence[Any]) -> ValidatedBatch | None:
        """The batch of records typed by this schema's `record_type`, all floats, when bounds and rules hold.

        msgpack encodes such a Struct as it encodes a dict of its fields in schema order, so the bytes
        are read, and checked whole (an int's type byte or length is out of place), as `float_dicts`
        reads them: no record is looked at in Python.
        """
        if self.record_layout is None or self.record_type is None:
            return None
        stacked = self.record_layout.floats_of(records, self.record_type)
        if stacked is None:
            return None
        numbers = stacked.T
        return self.matrix_batch(
            _LazyRows(functools.partial(_matrix_rows, numbers), len(records)), numbers, stacked
        )

    def float_dicts(self, records: Sequence[Any]) -> np.ndarray | None:
        """The values as a float64 [F, N] matrix (schema order), or None.

        Only when every record is a dict of floats with exactly the schema's keys, each in the key
        order of the first record.

        Reading 30,000 values out of 1,000 dicts by key costs more than the model; encoding them to
        msgpack in C does it once, and the bytes are checked whole against the layout of that key order:
        every byte but the values' must be the template's (the map header, each key, each value's
        float-64 type byte), so decoding from the start could only read these keys and floats.
        """
        first = records[0]
        if type(first) is not dict or len(first) != self.width:
            return None
        last = records[-1]
        if type(last) is not dict or not all(type(v) is float for v in (*first.values(), *last.values())):
            return None  # a cheap look before paying for the encoding: ints, None, numpy scalars...
        layout = self.layouts.get(tuple(first))
        if layout is None:
            keys = tuple(first)
            if len(self.layouts) >= _KEY_ORDERS or not all(type(k) is str for k in keys):
                return None
            if set(keys) != self.known:
                return None
            layout = self.layouts[keys] = _RecordLayout(keys, self.names)
        return layout.floats_of(records, dict)

    def keyed(self, records: Sequence[Any]) -> list[tuple[Any, ...]] | None:
        """Rows in schema order when every record has exactly the schema's keys, else None."""
        if not self.all_required:
            return None
        try:
            rows = list(map(self.getter, records))
            if set(map(len, records)) != {self.width}:
                return None
        except (KeyError, TypeError, IndexError):
            return None
        if self.width == 1:
            rows = [(value,) for value in rows]
        return rows

    def typed(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]] | None:
        """The rows when msgspec accepts every value, integral floats of integer features made ints.

        Integer features are checked strictly first, so all-int traffic never pays for the repair.
        """
        if _converts(rows, self.strict_rows_type):
            return rows
        if self.lenient_rows_type is None or not _converts(rows, self.lenient_rows_type):
            return None
        repaired = []
        for row in rows:
            values = list(row)
            for i in self.integers:
                value = values[i]
                if isinstance(value, float):
                    if not value.is_integer():
                        return None
                    values[i] = int(value)
            repaired.append(tuple(values))
        return repaired

    def fast_batch(
        self, rows: list[tuple[Any, ...]], sent: Sequence[Mapping[str, Any]] | None = None
    ) -> ValidatedBatch | None:
        """The batch of typed rows when the rules hold too; None sends the caller to the thorough path.

        The msgspec types hold the float32 range, so a typed value is finite and NaN means null.
        `sent`: the records the rows were read from, when they hold exactly these values.
        """
        columns, numbers = self.columns(rows)
        if not self.rules_hold(columns, numbers):
            return None
        return ValidatedBatch(self.schema, rows, columns, numbers if self.dense else None, sent)

    def matrix_batch(
        self,
        rows: Sequence[tuple[Any, ...]],
        numbers: np.ndarray,
        stacked: np.ndarray | None = None,
        sent: Sequence[Mapping[str, Any]] | None = None,
    ) -> ValidatedBatch | None:
        """The batch of float rows already in a matrix, when bounds and rules hold.

        `stacked` is the same matrix as [F, N] in C order (`numbers` transposed), made if not given.
        `sent`: the records the rows were read from, when they hold exactly these values.
        """
        if stacked is None:  # reductions along contiguous rows: several times faster than down columns
            stacked = np.ascontiguousarray(numbers.T)
        if not self.within_bounds(stacked):
            return None
        columns = ColumnMatrix.at(numbers, self.positions)
        if not self.rules_hold(columns, numbers, stacked):
            return None
        return ValidatedBatch(self.schema, rows, columns, numbers, sent)

    def within_bounds(self, stacked: np.ndarray, which: list[int] | None = None) -> bool:
        """Whether numeric features (rows of `stacked`, [K, N]) are finite, in float32 range and in bounds.

        `which` picks features by numeric position; integer features must be integral too.
        """
        low, high = (self.low, self.high) if which is None else (self.low[which], self.high[which])
        if stacked.size and not (  # two reductions, no [K, N] temporaries; a NaN makes min and max NaN
            (stacked.min(axis=1, keepdims=True) >= low).all()
            and (stacked.max(axis=1, keepdims=True) <= high).all()
        ):
            return False
        integral = self.integral if which is None else [j for j, k in enumerate(which) if k in self.integral]
        if not integral:
            return True
        values = stacked[integral]
        return bool((values == np.floor(values)).all())

    def column_batch(self, given: list[list[Any] | np.ndarray], size: int) -> ValidatedBatch | None:
        """The batch of columns in schema order, each checked whole; None when anything is doubtful.

        Numeric arrays are checked as one block; lists by msgspec in C, then read by numpy.
        """
        numeric: list[np.ndarray] = []
        arrays: list[int] = []  # numeric positions of the columns given as numpy arrays
        texts: dict[str, np.ndarray] = {}
        for feature, values in zip(self.schema.features, given, strict=True):
            if isinstance(values, np.ndarray):
                if not _takes(feature, values.dtype.kind):
                    return None
                arrays.append(len(numeric))
                numeric.append(values)
                continue
            column = self.list_column(feature, values)
            if column is None:
                return None
            if feature.kind is FeatureKind.CATEGORY:
                texts[feature.name] = column
            else:
                numeric.append(column)
        stacked = np.array(numeric, dtype=np.float64) if numeric else np.empty((0, size))
        if arrays and not self.within_bounds(
            stacked if len(arrays) == len(numeric) else stacked[arrays],
            None if len(arrays) == len(numeric) else arrays,
        ):
            return None
        numbers = stacked.T
        columns = {
            f.name: texts[f.name] if f.name in texts else stacked[self.positions[f.name]]
            for f in self.schema.features
        }
        if not self.rules_hold(columns, numbers, stacked):
            return None
        sources = [
            (values, f.kind is FeatureKind.INTEGER)
            for f, values in zip(self.schema.features, given, strict=True)
        ]
        rows = _LazyRows(functools.partial(_rows_of, sources), size)
        return ValidatedBatch(self.schema, rows, columns, numbers if self.dense else None)

    def matrix_columns(self, given: ColumnMatrix) -> ValidatedBatch | None:
        """The batch of a float64 matrix of exactly the schema's number features, else None.

        The matrix is the batch's `numbers` as given (in schema order) or reordered (one copy).
        """
        matrix = given.matrix
        if not self.floats_only or matrix.dtype != np.float64 or not len(matrix):
            return None
        names = given.names
        if names == self.names:
            numbers = matrix
        elif len(names) == self.width and self.known.issuperset(names):
            numbers = np.column_stack([given[name] for name in self.names])
        else:
            return None
        rows = _LazyRows(functools.partial(_matrix_rows, numbers), len(numbers))
        return self.matrix_batch(rows, numbers)

    def list_column(self, feature: Feature, values: list[Any]) -> np.ndarray | None:
        """One column given as a list, as float64 (NaN: null) or an object array of categories.

        None when any value is not plainly valid.
        """
        if feature.kind is FeatureKind.CATEGORY:
            try:
                valid = self.allowed[feature.name].issuperset(values)
            except TypeError:  # unhashable values
                return None
            return np.array(values, dtype=object) if valid else None
        if _converts((values,), self.column_types[feature.name]):
            return np.array(values, dtype=np.float64)
        lenient = self.lenient_column_types.get(feature.name)
        if lenient is None or not _converts((values,), lenient):
            return None
        column = np.array(values, dtype=np.float64)
        present = column[~np.isnan(column)]
        return column if (present == np.floor(present)).all() else None

    def rules_hold(
        self, columns: Mapping[str, np.ndarray], numbers: np.ndarray, stacked: np.ndarray | None = None
    ) -> bool:
        """Whether every rule holds for every record; floating-point warnings are silenced here.

        Small batches are checked on Python floats (a comparison is ~0.1 µs there, ~1 µs as a numpy
        call on a one-row array); large ones with one numpy operation per group of rules, on the rows
        of `stacked` ([K, N] in C order, `numbers` transposed) when given.
        """
        if len(numbers) <= _ROW_BY_ROW_RULES:
            return self.rows_hold(numbers)
        by_feature = numbers.T if stacked is None else stacked
        with np.errstate(all="ignore"):
            for compare, left, right, by_name in self.simple_picks:
                lhs = by_feature[left]
                rhs = by_feature[right] if by_name else right  # other features, or constants as [k, 1]
                held = compare(lhs, rhs)  # False where an operand is NaN (missing), which breaks no rule
                if not held.all() and np.any(~held & ~np.isnan(lhs) & ~np.isnan(rhs)):
                    return False
            for rule, left_of, compare, right_of in self.complex_parts:
                held = compare(left_of(by_feature), right_of(by_feature))
                if not np.all(held) and rule.violations(columns).any():  # held: no NaN, nothing broken
                    return False
        return True

    def rows_hold(self, numbers: np.ndarray) -> bool:
        """`rules_hold` for a few records, on Python floats; numpy (and `np.errstate`) only if needed.

        A group of plain comparisons is one C-level `all(map(...))` per record; only when it finds a
        False (a broken rule, or a NaN operand, which breaks none) are its rules looked at one by one.
        The other rules run as Python arithmetic where it gives numpy's floats bit for bit; where
        Python would raise instead of giving an infinity or a NaN (x / 0, overflow, sqrt(-1), a
        complex power), the batch is judged by numpy's scalars as before.
        """
        rows = numbers.tolist()
        for values in rows:
            for compare, lefts, rights in self.scalar_groups:
                if not all(map(compare, lefts(values), rights(values))):
                    for compare_one, i, other, by_name in self.scalar_rules:
                        a, b = values[i], values[int(other)] if by_name else other
                        if a == a and b == b and not compare_one(a, b):  # x == x is False only for NaN
                            return False
                    break  # every plain rule of this record checked one by one
        if not self.complex_rules:
            return True
        if self.plain_checks is not None:
            try:
                return not any(broken(values) for values in rows for broken in self.plain_checks)
            except (ArithmeticError, ValueError, TypeError):
                pass
        with np.errstate(all="ignore"):
            return not any(check(values) for values in numbers for check in self.complex_checks)

    def columns(self, rows: list[tuple[Any, ...]]) -> tuple[Mapping[str, np.ndarray], np.ndarray]:
        """Per-feature arrays, plus the [N, K] float64 matrix of the K numeric features (NaN = missing)."""
        if self.dense:  # every feature numeric and never null: one C-level conversion for the whole batch
            numbers = np.array(rows, dtype=np.float64).reshape(len(rows), self.width)
            return ColumnMatrix.at(numbers, self.positions), numbers
        transposed = list(zip(*rows, strict=True))
        columns: dict[str, np.ndarray] = {}
        for feature, values in zip(self.schema.features, transposed, strict=True):
            if feature.kind is FeatureKind.CATEGORY:
                columns[feature.name] = np.array(values, dtype=object)
            elif feature.nullable:
                columns[feature.name] = np.fromiter(
                    (math.nan if v is None else v for v in values), dtype=np.float64, count=len(values)
                )
            else:
                columns[feature.name] = np.array(values, dtype=np.float64)
        numeric = [columns[f.name] for f in self.numeric]
        numbers = np.column_stack(numeric) if numeric else np.empty((len(rows), 0))
        return columns, numbers

    def thorough(
        self, records: Sequence[Any], *, allow_unknown: bool, limit: int = MAX_PROBLEMS
    ) -> ValidatedBatch:
        """Walk every value; raise ValidationFailed with the first `limit` problems, or return the batch.

        Past `limit` the walk only counts: no message is written and unknown keys are not listed.
        """
        listed: list[tuple[int, int, Problem]] = []  # (record, position, problem): in walk order, sorted
        total = 0
        clean_rows: list[tuple[Any, ...]] = []
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                total += 1
                if len(listed) < limit:
                    listed.append((index, -1, _not_a_record(record, index)))
                clean_rows.append((None,) * self.width)
                continue
            row: list[Any] = []
            present = 0
            for position, feature in enumerate(self.schema.features):
                value = record.get(feature.name, _ABSENT)
                present += value is not _ABSENT
                code = _fault(feature, value)
                if code is not None:
                    total += 1
                    if len(listed) < limit:
                        listed.append((index, position, _problem(feature, value, index, code)))
                    row.append(None)
                elif feature.kind is FeatureKind.INTEGER and isinstance(value, float):
                    row.append(int(value))  # integral: _fault refuses 59.5
                else:
                    row.append(None if value is _ABSENT else value)
            clean_rows.append(tuple(row))
            unknown = 0 if allow_unknown else len(record) - present
            if unknown:
                total += unknown
                listed.extend(
                    itertools.islice(
                        (
                            (index, self.width, _unknown_feature(key, value, index))
                            for key, value in record.items()
                            if key not in self.known
                        ),
                        max(0, limit - len(listed)),
                    )
                )
        columns, _ = self.columns(clean_rows)
        with np.errstate(all="ignore"):
            broken = [np.flatnonzero(rule.violations(columns)) for rule in self.schema.rules]
        total += sum(len(indexes) for indexes in broken)
        if not total:
            return ValidatedBatch(self.schema, clean_rows, columns)
        # a rule problem ranks among the first `limit` only up to the last record listed when the list is full
        horizon = listed[-1][0] if len(listed) >= limit else len(clean_rows)
        for number, (rule, indexes) in enumerate(zip(self.schema.rules, broken, strict=True)):
            for index in indexes[indexes <= horizon][:limit].tolist():
                involved = {name: clean_rows[index][self.order[name]] for name in sorted(rule.features)}
                problem = Problem(
                    loc=(index, rule.name),
                    code=ProblemCode.RULE_VIOLATED,
                    msg=f"{rule.message} ({rule.expr})",
                    value=involved,
                )
                listed.append((index, self.width + 1 + number, problem))
        listed.sort(key=lambda item: (item[0], item[1]))
        raise ValidationFailed([p for _, _, p in listed[:limit]], total=total)


def _not_a_record(record: Any, index: int) -> Problem:
    return Problem(
        loc=(index,),
        code=ProblemCode.NOT_A_RECORD,
        msg=f"record {index} is {_json_type(record)}, expected an object of features",
        value=shorten(record),
    )


def _unknown_feature(key: Any, value: Any, index: int) -> Problem:
    return Problem(
        loc=(index, str(key)),
        code=ProblemCode.UNKNOWN_FEATURE,
        msg=f"the model has no feature {str(key)!r}",
        value=shorten(value),
    )


def _fault(feature: Feature, value: Any) -> ProblemCode | None:
    """What is wrong with one value of one feature (None: nothing); the one judge, and a cheap one."""
    if value is _ABSENT or value is None:
        if value is _ABSENT and feature.required:
            return ProblemCode.MISSING
        return None if feature.nullable else ProblemCode.MISSING
    kind = feature.kind
    if kind is FeatureKind.CATEGORY:
        if not isinstance(value, str):
            return ProblemCode.WRONG_TYPE
        return None if value in feature.categories else ProblemCode.UNKNOWN_CATEGORY  # type: ignore[operator]
    if kind is FeatureKind.BOOLEAN:
        return None if isinstance(value, bool) else ProblemCode.WRONG_TYPE
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ProblemCode.WRONG_TYPE
    if kind is FeatureKind.INTEGER and not (isinstance(value, int) or value.is_integer()):
        return ProblemCode.WRONG_TYPE
    number = _as_float(value)
    if not math.isfinite(number) or abs(number) > _FLOAT32_MAX:
        return ProblemCode.NOT_FINITE
    low, high = feature.minimum, feature.maximum
    if (low is not None and number < low) or (high is not None and number > high):
        return ProblemCode.OUT_OF_RANGE
    return None


_EXPECTED = {
    FeatureKind.CATEGORY: "a string",
    FeatureKind.BOOLEAN: "true or false",
    FeatureKind.INTEGER: "an integer",
    FeatureKind.NUMBER: "a number",
}


def _problem(feature: Feature, value: Any, index: int, code: ProblemCode) -> Problem:
    """The located, explained problem `_fault` found (only written for the problems listed)."""
    loc = (index, feature.name)
    if code is ProblemCode.MISSING:
        if value is _ABSENT and feature.required:
            hint = " (send null for a missing value)" if feature.nullable else ""
            return Problem(loc=loc, code=code, msg=f"{feature.name} is required{hint}")
        return Problem(
            loc=loc, code=code, msg=f"{feature.name} is null, and this feature does not accept missing values"
        )
    if code is ProblemCode.WRONG_TYPE:
        return _wrong_type(loc, feature, value, _EXPECTED[feature.kind])
    if code is ProblemCode.UNKNOWN_CATEGORY:
        allowed = ", ".join(repr(c) for c in feature.categories[:12])  # type: ignore[index]
        more = ", ..." if len(feature.categories) > 12 else ""  # type: ignore[arg-type]
        return Problem(
            loc=loc,
            code=code,
            msg=f"{feature.name} is {shorten(value)!r}, expected one of {allowed}{more}",
            value=shorten(value),
        )
    if code is ProblemCode.NOT_FINITE:
        return Problem(
            loc=loc,
            code=code,
            msg=f"{feature.name} must be a finite number within float32 range "
            f"(±{_FLOAT32_MAX:.4g}); use null for a missing value where allowed",
            value=shorten(value),
        )
    low, high = feature.minimum, feature.maximum
    unit = f" {feature.unit}" if feature.unit else ""
    bounds = f"{'-∞' if low is None else f'{low:g}'} ≤ x ≤ {'∞' if high is None else f'{high:g}'}"
    return Problem(
        loc=loc,
        code=code,
        msg=f"{feature.name} is {shorten(value)}{unit}, expected {bounds}",
        value=shorten(value),
    )


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _wrong_type(loc: tuple[int | str, ...], feature: Feature, value: Any, expected: str) -> Problem:
    return Problem(
        loc=loc,
        code=ProblemCode.WRONG_TYPE,
        msg=f"{feature.name} must be {expected}, got {_json_type(value)} {shorten(value)!r}",
        value=shorten(value),
    )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _msgspec_type(feature: Feature, *, integral_floats: bool = False) -> Any:
    """The strict msgspec type that accepts exactly the valid values (finiteness and rules aside).

    With `integral_floats`, integer features take floats too; the caller then checks integrality.
    """
    base: Any
    if feature.kind is FeatureKind.CATEGORY:
        base = Literal[feature.categories]
    elif feature.kind is FeatureKind.BOOLEAN:
        base = bool
    else:  # within float32 range too, so that a value msgspec accepts is finite
        low = _bound(feature.minimum, -_FLOAT32_MAX, max)
        high = _bound(feature.maximum, _FLOAT32_MAX, min)
        if feature.kind is FeatureKind.INTEGER and not integral_floats:  # msgspec's int bounds are int64
            low, high = max(math.ceil(low), _INT64_MIN), min(math.floor(high), _INT64_MAX)
            base = Annotated[int, msgspec.Meta(ge=low, le=high)]
        else:
            base = Annotated[float, msgspec.Meta(ge=low, le=high)]
    return base | None if feature.nullable else base


def _column_type(feature: Feature, *, integral_floats: bool = False) -> Any:
    """A one-field array-like Struct holding a column: msgspec caches its type, not a bare list[...]."""
    values = list[_msgspec_type(feature, integral_floats=integral_floats)]  # type: ignore[misc,valid-type]
    return msgspec.defstruct("Column", [("values", values)], array_like=True, frozen=True)


def _bound(value: float | None, limit: float, tighter: Callable[[float, float], float]) -> float:
    return limit if value is None else tighter(value, limit)


def _takes(feature: Feature, dtype_kind: str) -> bool:
    """Whether a numpy array of this dtype kind holds values of the feature's JSON type."""
    if feature.kind is FeatureKind.BOOLEAN:
        return dtype_kind == "b"
    return feature.kind is not FeatureKind.CATEGORY and dtype_kind in "iuf"


_FLIPPED = {">=": "<=", ">": "<", "<=": ">=", "<": ">", "==": "==", "!=": "!="}


def _implied_by_bounds(rule: Rule, schema: FeatureSchema) -> bool:
    """Whether a rule comparing a number feature with a constant holds for every value in its bounds.

    The bounds are those every fast path enforces (the feature's, within float32 range).
    """
    left, op, right = rule.parsed
    if left.op == "num" and right.op == "name":
        left, op, right = right, _FLIPPED[op], left
    if left.op != "name" or right.op != "num":
        return False
    feature = schema._by_name[str(left.value)]
    if feature.kind not in (FeatureKind.NUMBER, FeatureKind.INTEGER):
        return False
    low = _bound(feature.minimum, -_FLOAT32_MAX, max)
    high = _bound(feature.maximum, _FLOAT32_MAX, min)
    constant = float(right.value)  # type: ignore[arg-type]
    implied = {
        ">=": low >= constant,
        ">": low > constant,
        "<=": high <= constant,
        "<": high < constant,
        "==": low == high == constant,
        "!=": constant < low or constant > high,
    }
    return implied[op]


def _rows_at(positions: np.ndarray) -> slice | np.ndarray:
    """A slice picking these rows when they are evenly spaced (a view, not a copy), else the positions."""
    values = positions.tolist()
    if len(values) == 1:
        return slice(values[0], values[0] + 1)
    step = values[1] - values[0]
    if step > 0 and values == list(range(values[0], values[-1] + 1, step)):
        return slice(values[0], values[-1] + 1, step)
    return positions


def _group_rules(
    rules: Sequence[Rule], positions: Mapping[str, int]
) -> tuple[list[tuple[Callable[[Any, Any], Any], np.ndarray, np.ndarray]], list[Rule]]:
    """Split rules into plain comparisons and the rest.

    Plain comparisons (feature vs feature or constant) are checked for all rules of a kind with one
    numpy operation; the rest are evaluated rule by rule.

    A simple group is (compare, left positions, right positions as int array or constants as floats).
    """
    groups: dict[tuple[str, bool], tuple[list[int], list[float]]] = {}
    complex_rules: list[Rule] = []
    for rule in rules:
        left, op, right = rule.parsed
        if left.op == "num" and right.op == "name":
            left, op, right = right, _FLIPPED[op], left
        if left.op != "name" or right.op not in ("name", "num"):
            complex_rules.append(rule)
            continue
        by_name = right.op == "name"
        lefts, rights = groups.setdefault((op, by_name), ([], []))
        lefts.append(positions[str(left.value)])
        rights.append(positions[str(right.value)] if by_name else float(right.value))  # type: ignore[arg-type]
    simple = [
        (
            COMPARISONS[op],
            np.array(lefts, dtype=np.intp),
            np.array(rights, dtype=np.intp if by_name else np.float64),
        )
        for (op, by_name), (lefts, rights) in groups.items()
    ]
    return simple, complex_rules


def _matrix_rows(numbers: np.ndarray) -> list[tuple[Any, ...]]:
    return list(map(tuple, numbers.tolist()))


def _rows_of_records(
    getter: Callable[[Any], Any], width: int, records: Sequence[Mapping[str, Any]]
) -> list[tuple[Any, ...]]:
    """Rows in schema order of records known to hold exactly the schema's keys."""
    rows = list(map(getter, records))
    return rows if width > 1 else [(value,) for value in rows]


class _RecordLayout:
    """Where msgpack puts each byte of a dict of floats with these keys in this order."""

    __slots__ = ("offsets", "others", "stride", "template")

    def __init__(self, keys: tuple[str, ...], names: Sequence[str]) -> None:
        template = _ENCODER.encode(dict.fromkeys(keys, 0.0))
        position = len(template) - sum(len(_ENCODER.encode(key)) + 9 for key in keys)  # the map header
        at: dict[str, int] = {}
        for key in keys:
            position += len(_ENCODER.encode(key)) + 1  # the key, then the value's type byte
            at[key] = position
            position += 8
        self.template = np.frombuffer(template, np.uint8)
        self.stride = len(template)
        self.offsets = [at[name] for name in names]
        """Where each feature's 8 bytes (big-endian float 64) start in a record, in schema order."""
        others = np.ones(self.stride, dtype=bool)
        for offset in self.offsets:
            others[offset : offset + 8] = False
        self.others = others
        """Every byte but the values'."""

    def floats_of(self, records: Sequence[Any], kind: type) -> np.ndarray | None:
        """The [F, N] values of `records`, every one exactly a `kind`, read from their msgpack encoding.

        None when a record is of another type (a subclass may read its values otherwise), cannot be
        encoded (an int past 64 bits), or any byte is out of place.
        """
        if set(map(type, records)) != {kind}:
            return None
        try:
            data = _ENCODER.encode(records)
        except (OverflowError, TypeError, ValueError):
            return None
        return self.read(data, len(records))

    def read(self, data: bytes, count: int) -> np.ndarray | None:
        """The [F, N] values of `count` records encoded as `data`, or None if any byte is out of place."""
        outer = _array_header(count)
        if len(data) != len(outer) + count * self.stride or not data.startswith(outer):
            return None
        cells = np.frombuffer(data, np.uint8, offset=len(outer)).reshape(count, self.stride)
        if not ((cells == self.template).all(axis=0) | ~self.others).all():
            return None
        start, stride = len(outer), self.stride
        return np.array(
            [np.ndarray((count,), ">f8", data, start + offset, (stride,)) for offset in self.offsets],
            dtype=np.float64,
        )


def _getter(positions: list[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A C-level getter of these positions as a tuple, even of one."""
    if len(positions) == 1:
        position = positions[0]
        return lambda values: (values[position],)
    return itemgetter(*positions)


def _constants(values: list[float]) -> Callable[[Sequence[Any]], tuple[float, ...]]:
    constants = tuple(values)
    return lambda _: constants


class _Constant:
    """A subexpression without features, computed once."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value


def _power(base: float, exponent: float) -> float:
    result = base**exponent  # C's pow, as numpy's; raises OverflowError where numpy gives inf
    if type(result) is not float:  # a negative base to a fractional power: complex here, NaN in numpy
        raise ValueError("complex power")
    return result


_PLAIN_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,  # raises ZeroDivisionError where numpy gives inf or NaN: numpy then judges
    "^": _power,
}
_PLAIN_UNARY: dict[str, Callable[[Any], Any]] = {
    "neg": operator.neg,
    "abs": abs,
    "sqrt": math.sqrt,  # raises ValueError for x < 0, where numpy gives NaN
}


_Plain = Callable[[Sequence[float]], Any]
"""An expression on one row of Python floats."""


def _plain_expr(expr: Expr, positions: Mapping[str, int]) -> _Plain | _Constant | None:
    """`expr` on one row of Python floats, or None where Python's floats could differ from numpy's.

    +, -, *, /, ^, negation, abs and sqrt are correctly rounded (or C's pow) in both; log and exp are
    not compiled, as numpy may use its own vectorised implementations for them.
    """
    if expr.op == "num":
        return _Constant(float(expr.value))  # type: ignore[arg-type]
    if expr.op == "name":
        return itemgetter(positions[str(expr.value)])
    args = [_plain_expr(arg, positions) for arg in expr.args]
    if any(arg is None for arg in args):
        return None
    if expr.op in _PLAIN_UNARY:
        return _unary(_PLAIN_UNARY[expr.op], args[0])  # type: ignore[arg-type]
    if expr.op in _PLAIN_ARITH:
        return _binary(_PLAIN_ARITH[expr.op], args[0], args[1])  # type: ignore[arg-type]
    return None


def _unary(func: Callable[[Any], Any], inner: _Plain | _Constant) -> _Plain | _Constant:
    if isinstance(inner, _Constant):
        return _folded(func, inner.value)
    return lambda values: func(inner(values))


def _binary(
    arith: Callable[[Any, Any], Any], left: _Plain | _Constant, right: _Plain | _Constant
) -> _Plain | _Constant:
    if isinstance(left, _Constant) and isinstance(right, _Constant):
        return _folded(arith, left.value, right.value)
    if isinstance(left, _Constant):
        constant, read = left.value, right
        return lambda values: arith(constant, read(values))  # type: ignore[operator]
    if isinstance(right, _Constant):
        constant, read = right.value, left
        return lambda values: arith(read(values), constant)
    return lambda values: arith(left(values), right(values))


def _folded(func: Callable[..., Any], *operands: float) -> _Plain | _Constant:
    """The constant `func(*operands)`, or a reader that always raises (so numpy judges) if it has none."""
    try:
        value = func(*operands)
    except (ArithmeticError, ValueError, TypeError):
        return _numpy_judges
    return _Constant(value) if type(value) is float else _numpy_judges


def _numpy_judges(values: Sequence[float]) -> float:
    raise ValueError("a constant Python cannot compute as numpy does")


def _plain_check(rule: Rule, positions: Mapping[str, int]) -> Callable[[Sequence[float]], bool] | None:
    """Whether one row (Python floats by numeric position) breaks the rule, as `Rule.row_check` says.

    None when the rule uses an operation Python computes otherwise; the check raises ArithmeticError,
    ValueError or TypeError where numpy would give an infinity or a NaN instead.
    """
    left, cmp, right = rule.parsed
    lhs, rhs = _plain_expr(left, positions), _plain_expr(right, positions)
    if lhs is None or rhs is None:
        return None
    compare = COMPARISONS[cmp]
    left_value = _reader(lhs)
    right_value = _reader(rhs)

    def broken(values: Sequence[float]) -> bool:
        a, b = left_value(values), right_value(values)
        return a == a and b == b and not compare(a, b)  # x == x is False only for NaN

    return broken


def _reader(plain: _Plain | _Constant) -> _Plain:
    if isinstance(plain, _Constant):
        value = plain.value
        return lambda _: value
    return plain


def _plan(schema: FeatureSchema) -> _Plan:
    plan: _Plan | None = schema.__dict__.get("_validation_plan")
    if plan is None:
        plan = schema.__dict__["_validation_plan"] = _Plan(schema)
    return plan
