"""The index a classifier graph picks its label by, where the graph says so in so many nodes.

Many graphs make their label as `classes[ArgMax(scores)]`: an ArgMax, then a Gather or an
ArrayFeatureExtractor on a constant list of classes, then only reshapes (our forest converter, and
skl2onnx's converters of linear models in double precision, MLPs, naive Bayes and k-nearest
neighbours, for classes that are strings; for integer classes skl2onnx casts). Where that list is the
manifest's classes in order, the ArgMax's output is each label's position in them, exactly: the
runtime fetches it instead of the label, builds no string per record, and a DataFrame's label column
is made from those positions (pandas' codes) without comparing 1,000 strings to find them.
Graphs that compute their label inside one operator (LinearClassifier, TreeEnsembleClassifier,
SVMClassifier) say nothing of the kind, and keep being asked for the label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import onnx
from onnx import numpy_helper

__all__ = ["class_index"]

_SAME_ORDER = frozenset({"Reshape", "Identity", "Squeeze", "Unsqueeze", "Flatten"})
"""Operators that keep a tensor's values in row-major order, changing at most its shape."""


def class_index(graph: onnx.GraphProto, label: str, classes: Sequence[Any]) -> str | None:
    """The name of the ArgMax output that `label` is `classes` indexed by, or None.

    None where the label is not provably `classes[that output]`, value for value: another operator
    on the way, a list of classes that is not a constant, or one that differs from `classes` in any
    value, order or type (the label must come out as the same value either way).
    """
    producers = {output: node for node in graph.node for output in node.output}
    node = producers.get(label)
    while node is not None and node.domain in ("", "ai.onnx") and node.op_type in _SAME_ORDER:
        node = producers.get(node.input[0])
    if node is None or len(node.input) != 2 or not _picks(node):
        return None
    listed, index = node.input
    chooser = producers.get(index)
    if chooser is None or chooser.domain not in ("", "ai.onnx") or chooser.op_type != "ArgMax":
        return None
    constant = _constant(graph, producers, listed)
    return index if constant is not None and _same_classes(constant, classes) else None


def _picks(node: onnx.NodeProto) -> bool:
    """Whether `node` gives its first input's elements at the positions in its second."""
    if node.op_type == "ArrayFeatureExtractor":
        return node.domain == "ai.onnx.ml"
    if node.op_type == "Gather" and node.domain in ("", "ai.onnx"):
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        return axis in (0, -1)  # the one axis of a list of classes
    return False


def _constant(graph: onnx.GraphProto, producers: dict[str, onnx.NodeProto], name: str) -> list[Any] | None:
    """The values of a rank-1 constant tensor (an initializer or a Constant node), else None."""
    tensor = next((t for t in graph.initializer if t.name == name), None)
    if tensor is None:
        node = producers.get(name)
        if node is None or node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
            return None
        tensor = next((a.t for a in node.attribute if a.name == "value"), None)
    if tensor is None or len(tensor.dims) != 1:
        return None
    if tensor.data_type == onnx.TensorProto.STRING:
        return [bytes(v).decode("utf-8") for v in tensor.string_data]
    if tensor.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
        return [int(v) for v in numpy_helper.to_array(tensor).tolist()]
    return None


def _same_classes(constant: list[Any], classes: Sequence[Any]) -> bool:
    """Equal values of the same types: True == 1 in Python, but a label of 1 is not a label of True."""
    return len(constant) == len(classes) and all(
        type(c) is type(k) and c == k for c, k in zip(constant, classes, strict=True)
    )
