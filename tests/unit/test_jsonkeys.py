"""Repeated-key detection (`predictor_litestar.jsonkeys`): never misses one, never invents one, and
valid bodies never pay for the second parse."""

from __future__ import annotations

import json
import random
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from predictor_litestar import jsonkeys
from predictor_litestar.bodies import BatchBody, FeaturesBody
from predictor_litestar.jsonkeys import keys_decoded, repeated_key
from predictor_litestar.tensors import InferRequest


class Obj(list[tuple[str, Any]]):
    """A JSON object as written: its members in order, a key possibly more than once."""


TEXT = st.text(alphabet=st.sampled_from('ab:" \\é\t\x00'), max_size=4)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False), TEXT
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.lists(st.tuples(TEXT, inner), max_size=4).map(Obj)
    ),
    max_leaves=20,
)
OBJECTS = st.lists(st.tuples(TEXT, VALUES), max_size=5).map(Obj)


def dump(value: Any, rng: random.Random) -> str:
    """JSON text of `value` with random (valid) whitespace around every token."""

    def ws() -> str:
        return rng.choice(["", "", " ", "\n  ", "\t", " \r\n"])

    if isinstance(value, Obj):
        members = [
            f"{ws()}{json.dumps(k, ensure_ascii=rng.random() < 0.5)}{ws()}:{ws()}{dump(v, rng)}{ws()}"
            for k, v in value
        ]
        return "{" + ",".join(members) + ws() + "}"
    if isinstance(value, list):
        return "[" + ",".join(ws() + dump(v, rng) + ws() for v in value) + ws() + "]"
    return json.dumps(value, ensure_ascii=rng.random() < 0.5)


def first_repeat(value: Any, path: list[int | str] | None = None) -> tuple[list[int | str], str] | None:
    """The reference: depth first in document order, an object before what it holds."""
    path = path or []
    if isinstance(value, Obj):
        seen: set[str] = set()
        for key, _ in value:
            if key in seen:
                return path, key
            seen.add(key)
        children: list[tuple[int | str, Any]] = list(value)
    elif isinstance(value, list):
        children = list(enumerate(value))
    else:
        return None
    for step, child in children:
        found = first_repeat(child, [*path, step])
        if found is not None:
            return found
    return None


@settings(max_examples=300)
@given(VALUES, st.integers())
def test_any_json_value_any_layout(value, seed) -> None:
    body = dump(value, random.Random(seed)).encode()
    assert repeated_key(body, msgspec.json.decode(body)) == first_repeat(value)


@settings(max_examples=300)
@given(OBJECTS, st.integers())
def test_single_records_through_their_body_type(features, seed) -> None:
    body = dump(Obj([("features", features)]), random.Random(seed)).encode()
    decoded = msgspec.json.decode(body, type=FeaturesBody)
    assert repeated_key(body, decoded) == first_repeat(Obj([("features", features)]))


@settings(max_examples=200)
@given(st.lists(st.one_of(OBJECTS, SCALARS), max_size=6), st.integers())
def test_batches_through_their_body_type(records, seed) -> None:
    whole = Obj([("records", records)])
    body = dump(whole, random.Random(seed)).encode()
    assert repeated_key(body, msgspec.json.decode(body, type=BatchBody)) == first_repeat(whole)


def test_valid_bodies_are_never_parsed_twice(monkeypatch) -> None:
    def parse_again(body: bytes) -> None:
        raise AssertionError("the slow path ran on a body without repeated keys")

    monkeypatch.setattr(jsonkeys, "_locate", parse_again)
    record = {f"feature_{i}": i * 1.5 for i in range(30)}
    for body, kind in [
        (msgspec.json.encode({"features": record}), FeaturesBody),
        (json.dumps({"features": record}, indent=2).encode(), FeaturesBody),
        (msgspec.json.encode({"records": [record] * 1000}), BatchBody),  # numpy-counted
        (json.dumps({"records": [record, {"colour": "10:30"}] * 500}).encode(), BatchBody),
        (
            json.dumps(
                {
                    "id": "urn:uuid:0",
                    "inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}],
                    "outputs": [{"name": "label", "parameters": {"binary_data": True}}],
                    "parameters": {"binary_data_output": False},
                }
            ).encode(),
            InferRequest,
        ),
    ]:
        assert repeated_key(body, msgspec.json.decode(body, type=kind)) is None


class Defaults(msgspec.Struct):
    required: int
    plain: int = 0
    made: list[int] = msgspec.field(default_factory=list)


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (Defaults(1), 1),
        (Defaults(1, plain=2), 2),
        (Defaults(1, made=[3]), 2),
        ({"a": 1, "b": {"c": 2}}, 2),
        ([{"a": 1}], 0),
        (3, 0),
    ],
)
def test_other_values_count_only_what_they_surely_received(value, count) -> None:
    assert keys_decoded(value) == count


def test_what_the_standard_library_cannot_read_names_nothing() -> None:
    assert jsonkeys._locate(b"\xff") is None
