"""A classifier graph's class index: read off the graph only where the label is provably the classes at
it, fetched instead of the label by the runtime, and giving the same labels as the graph's own output."""

from __future__ import annotations

import msgspec
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from predictor_core import ClassifierOutputs, validate_columns
from predictor_onnx import OnnxRuntime, read_bundle, reference_root
from predictor_onnx.class_index import class_index
from predictor_onnx.infer_schema import column_values
from predictor_onnx.reference.datasets import load_dataset
from predictor_onnx.runtime import build_feeds, session_options

CLASSIFIERS = ("breast_cancer", "penguins")


def picking_graph(classes: onnx.TensorProto, *between: str, pick: str = "Gather") -> onnx.GraphProto:
    """label = classes[ArgMax(scores)], through the operators `between` (each taking one input)."""
    nodes = [helper.make_node("ArgMax", ["scores"], ["index"], axis=1, keepdims=0)]
    picked = (
        helper.make_node("Gather", ["classes", "index"], ["picked"], axis=0)
        if pick == "Gather"
        else helper.make_node("ArrayFeatureExtractor", ["classes", "index"], ["picked"], domain="ai.onnx.ml")
    )
    nodes.append(picked)
    last = "picked"
    for i, op in enumerate(between):
        nodes.append(helper.make_node(op, [last], [f"after{i}"]))
        last = f"after{i}"
    nodes.append(helper.make_node("Identity", [last], ["label"]))
    return helper.make_graph(
        nodes,
        "picking",
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("label", classes.data_type, [None])],
        initializer=[classes],
    )


def strings(*values: str) -> onnx.TensorProto:
    return helper.make_tensor("classes", TensorProto.STRING, [len(values)], [v.encode() for v in values])


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_the_shipped_classifiers_label_is_read_off_its_argmax(name: str) -> None:
    manifest, model = read_bundle(reference_root() / name / "1.0.0")
    graph = onnx.load_from_string(model).graph
    index = class_index(graph, manifest.onnx.outputs["label"], manifest.classes or ())
    assert index is not None
    assert next(n for n in graph.node if index in n.output).op_type == "ArgMax"


@pytest.mark.parametrize("pick", ["Gather", "ArrayFeatureExtractor"])
def test_a_constant_list_of_the_manifests_classes_picked_by_an_argmax_is_read(pick: str) -> None:
    graph = picking_graph(strings("a", "b", "c"), pick=pick)
    assert class_index(graph, "label", ("a", "b", "c")) == "index"


def test_integer_classes_are_read_as_integers_only() -> None:
    graph = picking_graph(helper.make_tensor("classes", TensorProto.INT64, [3], [3, 7, 9]))
    assert class_index(graph, "label", (3, 7, 9)) == "index"
    assert class_index(graph, "label", ("3", "7", "9")) is None  # the label would come out as 3, not "3"


def test_anything_short_of_a_proof_reads_nothing() -> None:
    graph = picking_graph(strings("a", "b", "c"))
    assert class_index(graph, "label", ("a", "c", "b")) is None  # another order
    assert class_index(graph, "label", ("a", "b")) is None  # other classes
    assert class_index(graph, "label", ("a", "b", "c", "d")) is None
    assert class_index(graph, "scores", ("a", "b", "c")) is None  # not made by a pick
    assert class_index(picking_graph(strings("a", "b", "c"), "Neg"), "label", ("a", "b", "c")) is None
    not_argmax = picking_graph(strings("a", "b", "c"))
    not_argmax.node[0].CopyFrom(helper.make_node("ArgMin", ["scores"], ["index"], axis=1, keepdims=0))
    assert class_index(not_argmax, "label", ("a", "b", "c")) is None
    computed = picking_graph(strings("a", "b", "c"))  # the classes are an input, not a constant
    computed.initializer.pop()
    computed.input.append(helper.make_tensor_value_info("classes", TensorProto.STRING, [3]))
    assert class_index(computed, "label", ("a", "b", "c")) is None


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_the_runtime_fetches_the_index_and_gives_the_graphs_own_labels(name: str) -> None:
    manifest, model = read_bundle(reference_root() / name / "1.0.0")
    frame = load_dataset(name).frame
    batch = validate_columns(manifest.schema, {c: column_values(frame[c]) for c in frame.columns})
    runtime = OnnxRuntime(manifest, model)
    outputs = runtime.infer(batch)
    assert isinstance(outputs, ClassifierOutputs)
    assert outputs.codes is not None

    plain = ort.InferenceSession(model, session_options(), providers=["CPUExecutionProvider"])
    feeds = build_feeds(manifest.schema, manifest.onnx.inputs, batch.columns, len(batch))
    labels, probabilities = plain.run(
        [manifest.onnx.outputs["label"], manifest.onnx.outputs["probabilities"]], feeds
    )
    assert outputs.labels.tolist() == labels.reshape(-1).tolist()
    assert len(set(labels.tolist())) == len(manifest.classes or ())  # every class was predicted somewhere
    assert [manifest.classes[c] for c in outputs.codes.tolist()] == labels.reshape(-1).tolist()  # type: ignore[index]
    assert np.array_equal(outputs.probabilities, probabilities)


def test_a_graph_that_labels_inside_one_operator_is_asked_for_its_label() -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    manifest, _ = read_bundle(reference_root() / "breast_cancer" / "1.0.0")
    frame = load_dataset("breast_cancer").frame
    X = frame.to_numpy(dtype=np.float32)
    y = np.array(manifest.classes)[np.arange(len(X)) % 2]
    graph = to_onnx(
        LogisticRegression(max_iter=5000).fit(X, y), X[:1], target_opset=21, options={"zipmap": False}
    )
    assert [n.op_type for n in graph.graph.node if "label" in n.output] == ["LinearClassifier"]
    opsets = {o.domain: o.version for o in graph.opset_import}
    inputs = (msgspec.structs.replace(manifest.onnx.inputs[0], name="X", dtype="float32"),)
    outputs = {"label": "label", "probabilities": "probabilities"}
    manifest = msgspec.structs.replace(
        manifest, onnx=msgspec.structs.replace(manifest.onnx, inputs=inputs, outputs=outputs, opsets=opsets)
    )
    batch = validate_columns(manifest.schema, {c: column_values(frame[c]) for c in frame.columns})
    outputs = OnnxRuntime(manifest, graph.SerializeToString()).infer(batch)
    assert isinstance(outputs, ClassifierOutputs)
    assert outputs.codes is None
    plain = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    assert outputs.labels.tolist() == plain.run(["label"], {"X": X})[0].tolist()
