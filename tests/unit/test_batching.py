"""BatchingInference: concurrent requests for one version share a runtime call, each gets its own rows."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from predictor_core import (
    BatchingInference,
    ClassifierOutputs,
    Feature,
    FeatureSchema,
    RegressorOutputs,
    RuntimeUnavailable,
    Task,
    TaskOutputs,
    ValidatedBatch,
    validate_records,
)
from tests.fakes import FakeRuntime, toy_manifest

BINARY = toy_manifest(Task.BINARY)
REGRESSION = toy_manifest(Task.REGRESSION, name="reg")


def rows(n: int, start: float = 0.0) -> list[dict[str, object]]:
    return [
        {"x": start + i, "y": start + 2.0 * i + 1, "n": i, "flag": i % 2 == 0, "colour": "red"}
        for i in range(n)
    ]


class GatedRuntime(FakeRuntime):
    """FakeRuntime whose calls wait for `gate` (so that requests queue meanwhile); fails on x == 99."""

    def __init__(self, manifest, *, unavailable: bool = False) -> None:  # type: ignore[no-untyped-def]
        super().__init__(manifest)
        self.gate = threading.Event()
        self.gate.set()
        self.sizes: list[int] = []
        self.unavailable = unavailable

    def infer(self, batch: ValidatedBatch, /) -> TaskOutputs:
        self.gate.wait(5)
        self.sizes.append(len(batch))
        if self.unavailable:
            raise RuntimeUnavailable("device lost")
        if (batch.columns["x"] == 99).any():
            raise ValueError("a value this model cannot take")
        return super().infer(batch)


def same(a: TaskOutputs, b: TaskOutputs) -> bool:
    if isinstance(a, RegressorOutputs):
        assert isinstance(b, RegressorOutputs)
        return bool(np.array_equal(a.values, b.values))
    assert isinstance(a, ClassifierOutputs)
    assert isinstance(b, ClassifierOutputs)
    assert a.codes is not None
    assert b.codes is not None  # the fake runtime gives its codes: each call's rows must keep theirs
    return bool(
        np.array_equal(a.labels, b.labels)
        and np.array_equal(a.probabilities, b.probabilities)
        and np.array_equal(a.codes, b.codes)
    )


async def queue_behind_a_running_call(
    scheduler: BatchingInference, runtime: GatedRuntime, batches: list[ValidatedBatch]
) -> list[TaskOutputs | BaseException]:
    """The first batch starts a call held open by the gate; the others queue behind it, then all run."""
    runtime.gate.clear()
    first = asyncio.ensure_future(scheduler.infer(runtime, batches[0]))
    while not runtime.gate.is_set() and not runtime.sizes and scheduler.calls == 0:
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.02)  # the first call is in its thread, waiting on the gate
    others = [asyncio.ensure_future(scheduler.infer(runtime, b)) for b in batches[1:]]
    await asyncio.sleep(0)
    runtime.gate.set()
    return list(await asyncio.gather(first, *others, return_exceptions=True))


@pytest.mark.parametrize("manifest", [BINARY, REGRESSION], ids=["binary", "regression"])
async def test_queued_requests_run_as_one_call_and_get_exactly_their_rows(manifest) -> None:  # type: ignore[no-untyped-def]
    runtime = GatedRuntime(manifest)
    batches = [validate_records(manifest.schema, rows(n, start=10.0 * n)) for n in (1, 3, 1, 2, 5)]
    outcomes = await queue_behind_a_running_call(BatchingInference(in_thread=True), runtime, batches)
    assert runtime.sizes == [1, 11]  # the first alone, then the four queued meanwhile together
    for batch, outputs in zip(batches, outcomes, strict=True):
        assert not isinstance(outputs, BaseException)
        assert same(outputs, FakeRuntime(manifest).infer(batch))


@pytest.mark.parametrize("in_thread", [False, True])
async def test_a_lone_request_is_run_at_once_alone(in_thread: bool) -> None:
    runtime = GatedRuntime(BINARY)
    scheduler = BatchingInference(in_thread=in_thread)
    batch = validate_records(BINARY.schema, rows(4))
    assert same(await scheduler.infer(runtime, batch), FakeRuntime(BINARY).infer(batch))
    assert runtime.sizes == [4]


async def test_on_the_loop_the_requests_of_one_turn_run_as_one_call() -> None:
    runtime = GatedRuntime(BINARY)
    scheduler = BatchingInference()
    batches = [validate_records(BINARY.schema, rows(n, start=float(n))) for n in (2, 1, 3)]
    outcomes = await asyncio.gather(*(scheduler.infer(runtime, b) for b in batches))
    assert runtime.sizes == [6]
    for batch, outputs in zip(batches, outcomes, strict=True):
        assert same(outputs, FakeRuntime(BINARY).infer(batch))
    await scheduler.infer(runtime, batches[0])  # a later turn: a call of its own
    assert runtime.sizes == [6, 2]


async def test_calls_are_bounded_in_rows() -> None:
    runtime = GatedRuntime(BINARY)
    batches = [validate_records(BINARY.schema, rows(n)) for n in (1, 3, 3, 2, 6)]
    await queue_behind_a_running_call(BatchingInference(max_rows=6, in_thread=True), runtime, batches)
    assert runtime.sizes == [1, 6, 2, 6]  # 3+3 fills a call; 2+6 would not fit; a 6 goes alone


async def test_one_bad_request_fails_alone() -> None:
    runtime = GatedRuntime(BINARY)
    bad = validate_records(BINARY.schema, [{**rows(1)[0], "x": 99.0, "y": 100.0}])
    batches = [validate_records(BINARY.schema, rows(1)), validate_records(BINARY.schema, rows(2)), bad]
    batches.append(validate_records(BINARY.schema, rows(3)))
    outcomes = await queue_behind_a_running_call(BatchingInference(in_thread=True), runtime, batches)
    assert isinstance(outcomes[2], ValueError)
    for i in (0, 1, 3):
        assert same(outcomes[i], FakeRuntime(BINARY).infer(batches[i]))  # type: ignore[arg-type]


async def test_an_unavailable_runtime_fails_the_call_without_retries() -> None:
    runtime = GatedRuntime(BINARY, unavailable=True)
    batches = [validate_records(BINARY.schema, rows(1)) for _ in range(4)]
    outcomes = await queue_behind_a_running_call(BatchingInference(in_thread=True), runtime, batches)
    assert all(isinstance(o, RuntimeUnavailable) for o in outcomes)
    assert runtime.sizes == [1, 3]


async def test_versions_are_never_merged() -> None:
    one, other = GatedRuntime(BINARY), GatedRuntime(toy_manifest(Task.BINARY, version="2"))
    scheduler = BatchingInference()
    batch = validate_records(BINARY.schema, rows(2))
    await asyncio.gather(*(scheduler.infer(r, batch) for r in (one, other, one, other)))
    assert sum(one.sizes) == 4
    assert sum(other.sizes) == 4


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=8))
def test_merged_calls_answer_like_separate_ones(sizes: list[int]) -> None:
    batches = [validate_records(BINARY.schema, rows(n, start=float(i))) for i, n in enumerate(sizes)]

    async def run() -> list[TaskOutputs | BaseException]:
        scheduler = BatchingInference(max_rows=7, in_thread=True)
        return await queue_behind_a_running_call(scheduler, GatedRuntime(BINARY), batches)

    for batch, outputs in zip(batches, asyncio.run(run()), strict=True):
        assert same(outputs, FakeRuntime(BINARY).infer(batch))  # type: ignore[arg-type]


def test_max_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BatchingInference(max_rows=0)


@pytest.mark.parametrize("dense", [True, False], ids=["dense", "with-categories"])
def test_concatenated_batches_hold_every_row_in_order(dense: bool) -> None:
    schema = FeatureSchema(
        features=(Feature(name="a", kind="number"), Feature(name="b", kind="integer"))
        if dense
        else BINARY.schema.features
    )
    make = (lambda i: {"a": 0.5 * i, "b": i}) if dense else (lambda i: rows(1, start=float(i))[0])
    batches = [
        validate_records(schema, [make(i) for i in range(k, k + n)]) for k, n in ((0, 2), (2, 1), (3, 4))
    ]
    merged = ValidatedBatch.concat(batches)
    whole = validate_records(schema, [make(i) for i in range(7)])
    assert len(merged) == 7
    assert list(merged.rows) == list(whole.rows)
    assert (merged.numbers is not None) is dense
    for name in schema.names:
        assert np.array_equal(merged.columns[name], whole.columns[name])
