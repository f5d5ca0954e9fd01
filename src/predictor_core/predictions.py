"""What a model answers, per task, and the identity of the model that answered."""

from __future__ import annotations

import enum
import functools
import uuid
from dataclasses import dataclass
from typing import Any, TypeAlias

import msgspec
import numpy as np
import numpy.typing as npt

__all__ = [
    "BinaryPrediction",
    "ClassifierOutputs",
    "Label",
    "ModelIdentity",
    "MulticlassPrediction",
    "Prediction",
    "RegressionPrediction",
    "RegressorOutputs",
    "Task",
    "TaskOutputs",
    "class_array",
]

Label: TypeAlias = str | int
"""A class label as the model was trained with it: a string or an integer."""


class Task(enum.StrEnum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"


class ModelIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """Which model answered: name, version and the SHA-256 of its ONNX file (the content, not the label)."""

    name: str
    version: str
    sha256: str


class BinaryPrediction(msgspec.Struct, frozen=True, kw_only=True, tag="binary", tag_field="task", gc=False):
    """Label plus the probability of the positive class.

    Not tracked by the garbage collector (`gc=False`): frozen, holding only strings, numbers, a UUID and
    the (untracked) identity, it can take part in no reference cycle, and a batch of 1,000 would
    otherwise set off a collection.
    """

    model: ModelIdentity
    label: Label
    probability: float
    """Probability of the model's positive class, whatever the label."""
    prediction_id: uuid.UUID | None = None


class MulticlassPrediction(msgspec.Struct, frozen=True, kw_only=True, tag="multiclass", tag_field="task"):
    """Label plus the probability of every class, keyed by the class as text."""

    model: ModelIdentity
    label: Label
    probabilities: dict[str, float]
    prediction_id: uuid.UUID | None = None


class RegressionPrediction(
    msgspec.Struct, frozen=True, kw_only=True, tag="regression", tag_field="task", gc=False
):
    """The predicted value; untracked by the garbage collector, as `BinaryPrediction`."""

    model: ModelIdentity
    value: float
    prediction_id: uuid.UUID | None = None


Prediction: TypeAlias = BinaryPrediction | MulticlassPrediction | RegressionPrediction


@dataclass(frozen=True, slots=True)
class ClassifierOutputs:
    """Raw classifier output of a runtime: one label and one probability row per record."""

    labels: npt.NDArray[np.generic]
    probabilities: npt.NDArray[np.floating]
    """[N, C], columns in the order of the manifest's classes."""
    codes: npt.NDArray[np.integer] | None = None
    """[N] each label's position in the manifest's classes, where the runtime knows it (the graph
    picked the label by it): `labels` is then the classes at `codes`, and needs no search to encode."""


@dataclass(frozen=True, slots=True)
class RegressorOutputs:
    values: npt.NDArray[np.floating]
    """[N] predicted values."""


TaskOutputs: TypeAlias = ClassifierOutputs | RegressorOutputs


@functools.cache
def class_array(classes: tuple[Label, ...]) -> npt.NDArray[Any]:
    """A model's classes as one array, as a runtime gives labels: int64 for integer classes, else objects.

    Indexed by class positions (`ClassifierOutputs.codes`, an argmax) it gives labels. Made once per
    tuple of classes and shared, hence read-only.
    """
    if all(type(c) is int for c in classes):
        known = np.array(classes, dtype=np.int64)
    else:
        known = np.empty(len(classes), dtype=object)
        known[:] = classes
    known.flags.writeable = False
    return known
