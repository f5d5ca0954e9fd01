"""One contract for every InferenceRuntime: the fake model and real onnxruntime sessions behave alike."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from predictor_core import (
    ClassifierOutputs,
    InferenceRuntime,
    RegressorOutputs,
    Task,
    TaskOutputs,
    ValidatedBatch,
    validate,
)
from predictor_onnx import BundleDirectory, reference_root
from tests.fakes import FakeRuntime, toy_manifest

ROWS = 7


@pytest.fixture(
    params=[
        *(f"fake-{task.value}" for task in Task),
        "onnx-breast_cancer",
        "onnx-penguins",
        "onnx-diabetes",
    ]
)
def runtime(request: pytest.FixtureRequest) -> InferenceRuntime:
    kind, what = request.param.split("-")
    if kind == "fake":
        return FakeRuntime(toy_manifest(Task(what)))
    return BundleDirectory([reference_root()]).load(what, "1.0.0")


def _batch(runtime: InferenceRuntime) -> ValidatedBatch:
    example = runtime.manifest.schema.example()
    return validate(runtime.manifest, [example] * ROWS, "records")


def _rows(outputs: TaskOutputs) -> list[object]:
    if isinstance(outputs, RegressorOutputs):
        return outputs.values.tolist()
    return [*outputs.labels.tolist(), *outputs.probabilities.tolist()]


def test_reports_where_it_runs(runtime: InferenceRuntime) -> None:
    assert runtime.execution.requested == "cpu"
    assert runtime.execution.providers


def test_outputs_are_row_aligned_and_fit_the_task(runtime: InferenceRuntime) -> None:
    manifest = runtime.manifest
    outputs = runtime.infer(_batch(runtime))
    if manifest.task is Task.REGRESSION:
        assert isinstance(outputs, RegressorOutputs)
        assert outputs.values.shape == (ROWS,)
        assert np.isfinite(outputs.values).all()
        return
    assert isinstance(outputs, ClassifierOutputs)
    classes = manifest.classes or ()
    assert outputs.labels.shape == (ROWS,)
    assert outputs.probabilities.shape == (ROWS, len(classes))
    assert set(outputs.labels.tolist()) <= set(classes)
    np.testing.assert_allclose(outputs.probabilities.sum(axis=1), 1.0, atol=1e-5)
    winners = [classes[i] for i in outputs.probabilities.argmax(axis=1)]
    assert winners == outputs.labels.tolist()


def test_many_threads_get_the_same_answers(runtime: InferenceRuntime) -> None:
    batch = _batch(runtime)
    expected = _rows(runtime.infer(batch))
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _rows(runtime.infer(batch)), range(32)))
    assert all(answer == expected for answer in answers)
