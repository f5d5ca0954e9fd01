"""OnnxRuntime: devices, the execution report, missing values, threads and error translation."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import numpy as np
import onnxruntime as ort
import pytest

from predictor_core import (
    BundleError,
    ClassifierOutputs,
    ConfigurationError,
    PredictorError,
    RegressorOutputs,
    RuntimeUnavailable,
    ValidatedBatch,
    ValidationFailed,
    validate_records,
)
from predictor_onnx import BundleDirectory, OnnxRuntime, read_bundle, reference_root
from predictor_onnx.devices import CUDA, requested_providers

SHIPPED = reference_root()
HAS_CUDA = CUDA in ort.get_available_providers()


@pytest.fixture(scope="module")
def penguins() -> OnnxRuntime:
    return BundleDirectory([SHIPPED]).load("penguins", "1.0.0")


def penguin(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "bill_length_mm": 39.1,
        "bill_depth_mm": 18.7,
        "flipper_length_mm": 181.0,
        "body_mass_g": 3750.0,
        "island": "Torgersen",
        "sex": "male",
    }
    record.update(changes)
    return record


def test_cpu_report_says_where_every_node_ran(penguins: OnnxRuntime) -> None:
    report = penguins.execution
    assert report.requested == "cpu"
    assert report.providers == ("CPUExecutionProvider",)
    assert set(report.nodes_per_provider) == {"CPUExecutionProvider"}
    assert report.nodes_per_provider["CPUExecutionProvider"] > 10
    assert report.note == ""


def test_unknown_device_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"device must be one of cpu, cuda, auto, got 'tpu'"):
        requested_providers("tpu")


@pytest.mark.skipif(HAS_CUDA, reason="onnxruntime-gpu is installed here: the refusal path cannot be shown")
def test_cuda_without_onnxruntime_gpu_fails_fast() -> None:
    with pytest.raises(
        ConfigurationError, match=r"onnxruntime-gpu is not installed \(install predictor-core\[gpu\]\)"
    ):
        BundleDirectory([SHIPPED], device="cuda").load("breast_cancer", "1.0.0")


@pytest.mark.skipif(HAS_CUDA, reason="onnxruntime-gpu is installed here: auto would pick CUDA")
def test_auto_without_cuda_reports_the_cpu() -> None:
    runtime = BundleDirectory([SHIPPED], device="auto").load("breast_cancer", "1.0.0")
    assert runtime.execution.requested == "auto"
    assert runtime.execution.providers == ("CPUExecutionProvider",)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a CUDA device (none on this machine)")
def test_cuda_session_reports_cpu_bound_tree_nodes() -> None:
    runtime = BundleDirectory([SHIPPED], device="cuda").load("penguins", "1.0.0")
    assert runtime.execution.providers[0] == CUDA
    assert runtime.execution.nodes_per_provider.get("CPUExecutionProvider", 0) > 0
    assert "CPU kernels only" in runtime.execution.note


def test_missing_values_are_imputed_like_scikit_learn(penguins: OnnxRuntime) -> None:
    schema = penguins.manifest.schema
    gap = penguin(bill_length_mm=None, body_mass_g=None, sex=None)
    outputs = penguins.infer(validate_records(schema, [gap, penguin()]))
    assert isinstance(outputs, ClassifierOutputs)
    assert np.all(np.isfinite(outputs.probabilities))
    assert np.allclose(outputs.probabilities.sum(axis=1), 1.0, atol=1e-5)
    # A null category is imputed to the most frequent value ("male" in training), not treated as unseen.
    filled = penguins.infer(validate_records(schema, [penguin(sex=None)]))
    as_male = penguins.infer(validate_records(schema, [penguin(sex="male")]))
    assert isinstance(filled, ClassifierOutputs)
    assert isinstance(as_male, ClassifierOutputs)
    assert np.array_equal(filled.probabilities, as_male.probabilities)


def test_unseen_category_is_refused_by_the_schema_before_the_model(penguins: OnnxRuntime) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_records(penguins.manifest.schema, [penguin(island="Atlantis")])
    assert [p.loc for p in caught.value.problems] == [(0, "island")]
    assert "expected one of 'Biscoe', 'Dream', 'Torgersen'" in str(caught.value)


def test_eight_threads_get_identical_results(penguins: OnnxRuntime) -> None:
    from predictor_onnx.reference.datasets import load_dataset

    frame = load_dataset("penguins").frame
    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]
    batch = validate_records(penguins.manifest.schema, records)
    expected = penguins.infer(batch)
    assert isinstance(expected, ClassifierOutputs)

    def run(_: int) -> ClassifierOutputs:
        out = penguins.infer(batch)
        assert isinstance(out, ClassifierOutputs)
        return out

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, range(64)))
    assert all(np.array_equal(r.labels, expected.labels) for r in results)
    assert all(np.array_equal(r.probabilities, expected.probabilities) for r in results)


def test_onnxruntime_failures_surface_as_domain_errors(penguins: OnnxRuntime) -> None:
    # Validation makes this impossible; a batch built by hand shows what a runtime fault looks like.
    good = validate_records(penguins.manifest.schema, [penguin()])
    columns = {**good.columns, "bill_depth_mm": np.array(["deep"], dtype=object)}
    bad = ValidatedBatch(good.schema, good.rows, columns)
    with pytest.raises(
        RuntimeUnavailable, match=r"model 'penguins' version '1.0.0' failed to run: "
    ) as caught:
        penguins.infer(bad)
    assert isinstance(caught.value, PredictorError)


def test_a_provider_failing_mid_run_is_an_error_not_a_quiet_move_to_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """onnxruntime's own wrapper, on an execution-provider failure, prints, switches the session to
    the CPU for good and retries; the execution report would go on naming the device it left."""
    from onnxruntime.capi.onnxruntime_pybind11_state import EPFail

    runtime = BundleDirectory([SHIPPED]).load("penguins", "1.0.0")
    batch = validate_records(runtime.manifest.schema, [penguin()])
    session = runtime._session

    class FailingProvider:
        """The C session, but its runs fail as a provider's would."""

        def __init__(self, real: object) -> None:
            self.real = real

        def run(self, *args: object) -> object:
            raise EPFail("the device went away")

        def __getattr__(self, name: str) -> object:
            return getattr(self.real, name)

    monkeypatch.setattr(session, "_sess", FailingProvider(session._sess))
    with pytest.raises(RuntimeUnavailable, match="the device went away"):
        runtime.infer(batch)
    assert isinstance(session._sess, FailingProvider)  # no new session was made behind our back


@pytest.mark.parametrize("name", ["breast_cancer", "penguins", "diabetes"])
def test_the_c_session_answers_as_the_documented_run(name: str) -> None:
    """Runs skip onnxruntime's Python wrapper (its per-call checks); where it has no C session to
    reach, the documented `run` answers, and both give the same outputs bit for bit."""
    runtime = BundleDirectory([SHIPPED]).load(name, "1.0.0")
    examples = list(runtime.manifest.schema.examples) * 3
    batch = validate_records(runtime.manifest.schema, examples)
    assert runtime._direct
    direct = runtime.infer(batch)
    runtime._direct = False  # as on an onnxruntime whose wrapper keeps no `_sess`
    documented = runtime.infer(batch)
    for got, want in zip(_arrays(direct), _arrays(documented), strict=True):
        np.testing.assert_array_equal(got, want)


def _arrays(outputs: ClassifierOutputs | RegressorOutputs) -> list[np.ndarray]:
    if isinstance(outputs, ClassifierOutputs):
        return [outputs.labels, outputs.probabilities]
    return [outputs.values]


def test_nullable_numbers_without_an_imputer_are_refused(tmp_path: Path) -> None:
    manifest, model = read_bundle(SHIPPED / "breast_cancer" / "1.0.0")
    first = msgspec.structs.replace(manifest.schema.features[0], nullable=True)
    schema = msgspec.structs.replace(manifest.schema, features=(first, *manifest.schema.features[1:]))
    with pytest.raises(
        BundleError, match=r"accepts missing values for mean_radius but the graph has no imputer"
    ):
        OnnxRuntime(msgspec.structs.replace(manifest, schema=schema), model)


def test_zipmap_outputs_are_refused() -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    manifest, _ = read_bundle(SHIPPED / "breast_cancer" / "1.0.0")
    X = np.random.default_rng(0).normal(size=(40, 30)).astype(np.float32)  # ZipMap takes float only
    y = np.array(["benign", "malignant"] * 20)
    graph = to_onnx(LogisticRegression().fit(X, y), X[:1], target_opset=21)  # ZipMap left on
    opsets = {o.domain: o.version for o in graph.opset_import}
    outputs = {"label": "output_label", "probabilities": "output_probability"}
    inputs = (msgspec.structs.replace(manifest.onnx.inputs[0], dtype="float32"),)
    manifest = msgspec.structs.replace(
        manifest, onnx=msgspec.structs.replace(manifest.onnx, inputs=inputs, outputs=outputs, opsets=opsets)
    )
    with pytest.raises(BundleError, match=r"must be a plain tensor.*ZipMap off"):
        OnnxRuntime(manifest, graph.SerializeToString())
