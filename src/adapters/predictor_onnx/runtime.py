"""OnnxRuntime: one verified bundle in one `InferenceSession`, shared by every thread that predicts.

`InferenceSession.run` is thread-safe and releases the GIL, so one session per model version serves
all requests. Session options were chosen by measurement on a 2-core box (docs/models.md): one
intra-op thread and no spinning, because these graphs are tiny and concurrency comes from requests,
not from splitting one small batch across cores.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from predictor_core import (
    BundleError,
    ClassifierOutputs,
    ExecutionReport,
    FeatureKind,
    FeatureSchema,
    ModelManifest,
    RegressorOutputs,
    RuntimeUnavailable,
    TaskOutputs,
    TensorSpec,
    ValidatedBatch,
    class_array,
)
from predictor_onnx.class_index import class_index
from predictor_onnx.devices import CPU, check_active, requested_providers

__all__ = ["DEFAULT_THREADS", "MISSING_CATEGORY", "OnnxRuntime", "as_text", "build_feeds", "session_options"]

MISSING_CATEGORY = ""
"""How a missing value reaches a string input: skl2onnx string inputs cannot carry None, so the
exporter makes category imputers read `""` and the runtime maps null to it. Defined here, not with the
training code, so that serving never imports pandas."""

DEFAULT_THREADS = 1
"""Intra-op threads per session unless configured; see docs/models.md for the measurement."""

_CPU_ONLY_NOTE = (
    "scikit-learn models are ai.onnx.ml operators with CPU kernels only: they run on the CPU even "
    "when CUDA is active, plus host-device copies"
)
_NUMPY_TYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64}
_ONNX_TYPES = {"float32": "tensor(float)", "float64": "tensor(double)", "int64": "tensor(int64)"}


def as_text(value: Any) -> str:
    """The text form of a value in a string input: booleans `"True"`/`"False"`, integral numbers `"3"`.

    The exporter writes fitted categories in this form, and `build_feeds` writes validated values in
    it, so a boolean or integer column that a pipeline encodes with the categories matches them.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_CATEGORY
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer) or (
        isinstance(value, float | np.floating) and float(value).is_integer()
    ):
        return str(int(value))
    return str(value)


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Explicit options: never the runtime's all-cores default, which oversubscribes a shared box."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or DEFAULT_THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def build_feeds(
    schema: FeatureSchema, inputs: tuple[TensorSpec, ...], columns: Mapping[str, np.ndarray], rows: int
) -> dict[str, Any]:
    """ONNX input arrays from validated columns: [N, k] per input.

    String inputs get missing values as `""`, and booleans or integers as their text form
    (`as_text`) when a category branch reads them.
    """
    feeds: dict[str, Any] = {}
    for spec in inputs:
        if spec.dtype == "string":
            block = (
                np.array(
                    [_strings(schema.feature(name).kind, columns[name]) for name in spec.features],
                    dtype=object,
                )
                .reshape(-1, rows)
                .T.copy()
            )
        elif len(spec.features) == 1:
            block = columns[spec.features[0]].astype(_NUMPY_TYPES[spec.dtype]).reshape(rows, 1)
        else:
            # One C-level copy for every column at once: a per-column loop costs more than the model.
            block = np.array(
                [columns[name] for name in spec.features], dtype=_NUMPY_TYPES[spec.dtype]
            ).T.copy()
        feeds[spec.name] = block
    return feeds


def _strings(kind: FeatureKind, column: np.ndarray) -> np.ndarray:
    if kind is FeatureKind.CATEGORY:
        values = column.copy()
        values[values == None] = MISSING_CATEGORY  # noqa: E711 (elementwise, on an object array)
        return values
    if kind is FeatureKind.BOOLEAN:
        return np.array([as_text(None if v != v else bool(v)) for v in column.tolist()], dtype=object)
    return np.array([as_text(None if v != v else v) for v in column.tolist()], dtype=object)


class OnnxRuntime:
    """A loaded model version; implements `predictor_core.InferenceRuntime`. Thread-safe."""

    def __init__(
        self, manifest: ModelManifest, model: bytes, *, device: str = "cpu", threads: int | None = None
    ) -> None:
        """Start a session for verified bundle bytes (see `BundleDirectory`, which checks the hash).

        Raises:
            BundleError: the graph does not match its manifest or onnxruntime cannot load it.
            ConfigurationError: the device cannot be had (fails fast, never falls back silently).
        """
        self._manifest = manifest
        inputs = manifest.onnx.inputs
        whole = (
            len(inputs) == 1
            and inputs[0].dtype in ("float32", "float64")
            and inputs[0].features == manifest.schema.names
        )
        self._whole_matrix = inputs[0].name if whole else None
        self._whole_dtype = _NUMPY_TYPES[inputs[0].dtype] if whole else None
        where = f"model {manifest.name!r} version {manifest.version!r}"
        graph = _check_graph(manifest, model, where)
        roles = manifest.onnx.outputs
        index = (  # fetched instead of the label where the graph picks the label by it
            class_index(graph.graph, roles["label"], manifest.classes or ())
            if {"label", "probabilities"} <= roles.keys()
            else None
        )
        if index is not None and index not in {o.name for o in graph.graph.output}:
            graph.graph.output.append(onnx.helper.make_tensor_value_info(index, onnx.TensorProto.INT64, None))
            model = graph.SerializeToString()
        providers = requested_providers(device)
        options = session_options(threads)
        with tempfile.TemporaryDirectory(prefix="predictor-onnx-") as scratch:
            # Profile the warm-up run only: it is how onnxruntime says which provider ran each node.
            options.enable_profiling = True
            options.profile_file_prefix = os.path.join(scratch, "warmup")
            try:
                self._session = ort.InferenceSession(model, options, providers=providers)
            except Exception as exc:  # onnxruntime's errors derive from Exception only
                raise BundleError(f"onnxruntime {ort.__version__} cannot load {where}: {exc}") from exc
            # onnxruntime's own wrapper answers a provider failing mid-run by printing, moving the
            # session to the CPU for good and retrying: the report would go on naming the device it left.
            self._session.disable_fallback()
            self._direct = callable(getattr(getattr(self._session, "_sess", None), "run", None))
            """Whether runs go to the C session under onnxruntime's Python wrapper (`_run`)."""
            active = self._session.get_providers()
            check_active(device, active)
            _check_signature(manifest, self._session, where)
            self._outputs = list(manifest.onnx.outputs.values())
            self._classes: np.ndarray | None = None
            if index is not None:  # the label's position in the classes, not a string per record
                self._outputs = [index, manifest.onnx.outputs["probabilities"]]
                self._classes = class_array(manifest.classes or ())
            self._run(_example_feeds(manifest))
            placement = _node_placement(self._session.end_profiling())
        note = _CPU_ONLY_NOTE if active[0] != CPU else ""
        self._execution = ExecutionReport(
            requested=device, providers=tuple(active), nodes_per_provider=placement, note=note
        )
        self._where = where

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    @property
    def execution(self) -> ExecutionReport:
        return self._execution

    def infer(self, batch: ValidatedBatch, /) -> TaskOutputs:
        """Run the model on a validated batch.

        Raises:
            RuntimeUnavailable: onnxruntime failed (e.g. the device went away); the message says why.
        """
        try:
            if self._whole_matrix is not None and batch.numbers is not None:
                # one input holding every feature in schema order: the validated matrix is the feed
                return self._run({self._whole_matrix: batch.numbers.astype(self._whole_dtype, copy=False)})
            return self._run(
                build_feeds(self._manifest.schema, self._manifest.onnx.inputs, batch.columns, len(batch))
            )
        except Exception as exc:  # the boundary: no onnxruntime error escapes as itself
            raise RuntimeUnavailable(f"{self._where} failed to run: {type(exc).__name__}: {exc}") from exc

    def run_feeds(self, feeds: Mapping[str, Any]) -> TaskOutputs:
        """Run prepared ONNX inputs (the export parity gate and benchmarks use this)."""
        return self._run(feeds)

    def _run(self, feeds: Mapping[str, Any]) -> TaskOutputs:
        # The wrapper's `run` checks the feed's names, WebGPU graph capture and OrtValue ownership on
        # every call, and holds the fallback to another provider (disabled above). The feeds here are
        # built from the signature checked at load, so that is repeated work: without it `predict(dict)`
        # took 0.95-0.96x the time on the three reference models (interleaved, 2026-12-07; a 1,000-row
        # DataFrame the same). `_sess`, the C session, is a private name of the wrapper (onnxruntime
        # 1.32 here); a wrapper without it is called as documented.
        if self._direct:
            results = self._session._sess.run(self._outputs, feeds, None)
        else:
            results = self._session.run(self._outputs, feeds)
        if len(results) == 1:
            return RegressorOutputs(values=results[0].reshape(-1))
        if self._classes is None:
            return ClassifierOutputs(labels=results[0].reshape(-1), probabilities=results[1])
        codes = results[0].reshape(-1)  # an index past the classes raises, as the graph's own pick would
        return ClassifierOutputs(labels=self._classes[codes], probabilities=results[1], codes=codes)

    def __repr__(self) -> str:
        return f"OnnxRuntime({self._where}, providers={list(self._execution.providers)})"


def _check_graph(manifest: ModelManifest, model: bytes, where: str) -> onnx.ModelProto:
    """The graph, once manifest and graph agree on opsets and nulls have an imputer to go to."""
    try:
        graph = onnx.load_from_string(model)
    except Exception as exc:  # protobuf raises its own DecodeError
        raise BundleError(f"model.onnx of {where} is not a readable ONNX file: {exc}") from exc
    opsets = {o.domain or "": o.version for o in graph.opset_import}
    if opsets != manifest.onnx.opsets:
        raise BundleError(
            f"{where}: the graph's opsets {opsets} differ from the manifest's {manifest.onnx.opsets}"
        )
    # Imputer (stock skl2onnx), IsNaN (the exporter's float64 imputer) or trees that route NaN themselves
    has_imputer = any(
        node.op_type in ("Imputer", "IsNaN")
        or any(a.name == "nodes_missing_value_tracks_true" and any(a.ints) for a in node.attribute)
        for node in graph.graph.node
    )
    nullable_numbers = [
        f.name for f in manifest.schema.features if f.nullable and f.kind is not FeatureKind.CATEGORY
    ]
    if nullable_numbers and not has_imputer:
        raise BundleError(
            f"{where}: the schema accepts missing values for {', '.join(nullable_numbers)} "
            "but the graph has no imputer to fill them"
        )
    return graph


def _check_signature(manifest: ModelManifest, session: ort.InferenceSession, where: str) -> None:
    inputs = {i.name: i.type for i in session.get_inputs()}
    wanted = {s.name: _ONNX_TYPES.get(s.dtype, f"tensor({s.dtype})") for s in manifest.onnx.inputs}
    if inputs != wanted:
        raise BundleError(f"{where}: graph inputs {inputs} differ from the manifest's {wanted}")
    outputs = {o.name: o.type for o in session.get_outputs()}
    for role, name in manifest.onnx.outputs.items():
        if not outputs.get(name, "").startswith("tensor("):
            raise BundleError(
                f"{where}: output {name!r} ({role}) must be a plain tensor, found "
                f"{outputs.get(name, 'none')} (export classifiers with ZipMap off)"
            )


def _example_feeds(manifest: ModelManifest) -> dict[str, Any]:
    record = manifest.schema.example()
    columns: dict[str, np.ndarray] = {}
    for feature in manifest.schema.features:
        value = record.get(feature.name)
        if feature.kind is FeatureKind.CATEGORY:
            columns[feature.name] = np.array([value], dtype=object)
        else:
            columns[feature.name] = np.array([np.nan if value is None else value], dtype=np.float64)
    return build_feeds(manifest.schema, manifest.onnx.inputs, columns, 1)


def _node_placement(profile_path: str) -> dict[str, int]:
    with open(profile_path, encoding="utf-8") as file:
        events = json.load(file)
    nodes = {
        event["name"]: event["args"]["provider"]
        for event in events
        if event.get("cat") == "Node" and "provider" in event.get("args", {})
    }
    return dict(Counter(nodes.values()))
