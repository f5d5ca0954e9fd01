"""The manifest of a model bundle: pure data about a model, read and written by the runtime adapter.

A bundle is a directory with `model.onnx` and `manifest.json`; this module knows nothing of files.
`MANIFEST_FORMAT` grows when the format changes; readers accept every format up to their own.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from predictor_core.drift import TrainingProfile
from predictor_core.errors import BundleError
from predictor_core.predictions import Label, ModelIdentity, Task
from predictor_core.schema import FeatureSchema

__all__ = [
    "MANIFEST_FORMAT",
    "EvaluationSummary",
    "FeatureStats",
    "GoldenSet",
    "ModelManifest",
    "OnnxSignature",
    "ParitySummary",
    "TensorSpec",
    "TrainingSummary",
]

MANIFEST_FORMAT = 3
"""2: inputs may be float64 and string inputs may carry booleans and integers as text (see
TensorSpec); the parity and evaluation summaries. 3: the training profile drift is measured against
(`TrainingSummary.profile`). Format 1 and 2 manifests load unchanged (without a profile)."""


class TensorSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One ONNX input: its name, element type and the features that feed it, in column order."""

    name: str
    dtype: str
    """"float32", "float64", "int64" or "string". A string input reads categories as they are, missing
    values as `""`, and booleans and integers in their text form ("True", "3"), which is how the
    exporter rewrites the categories of a branch that encodes them together (format 2)."""
    features: tuple[str, ...]


class OnnxSignature(msgspec.Struct, frozen=True, kw_only=True):
    inputs: tuple[TensorSpec, ...]
    outputs: dict[str, str]
    """Role -> ONNX output name: {"label": ..., "probabilities": ...} or {"value": ...}."""
    opsets: dict[str, int]
    """Domain -> opset version ("" is the default ONNX domain, "ai.onnx.ml" the traditional-ML one)."""


class FeatureStats(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Summary of one feature in the training data, kept for drift checks."""

    count: int
    missing: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    quantiles: dict[str, float] | None = None
    """"p01", "p05", "p25", "p50", "p75", "p95", "p99" -> value."""
    frequencies: dict[str, int] | None = None
    """Category -> count, for category features."""


class GoldenSet(msgspec.Struct, frozen=True, kw_only=True):
    """Records and what the exported graph answered for them: a version must reproduce it to take traffic."""

    records: tuple[dict[str, Any], ...]
    labels: tuple[Label, ...] | None = None
    """Classifiers: the label of each record."""
    probabilities: tuple[tuple[float, ...], ...] | None = None
    """Classifiers: one probability row per record, columns in the order of the manifest's classes."""
    values: tuple[float, ...] | None = None
    """Regressors: the value of each record."""
    tolerance: float = 1e-5
    """Largest |difference| accepted, absolute (the export's parity tolerance)."""


class ParitySummary(msgspec.Struct, frozen=True, kw_only=True):
    """What the export's parity gate measured: ONNX against the user's own fitted pipeline."""

    rows: int
    label_mismatches: int
    max_abs_diff: float
    """Largest |onnx - scikit-learn| over every probability (classifiers) or value (regressors)."""
    tolerance: str


class EvaluationSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Where the metrics come from, so a reader can tell held-out figures from optimistic ones."""

    rows: int
    held_out: bool
    """False when the metrics rows may have been seen by the pipeline in training."""
    source: str
    """In words: "a held-out test set", "20% of the given rows (the pipeline may have seen them)"."""


class TrainingSummary(msgspec.Struct, frozen=True, kw_only=True):
    rows: int
    fingerprint: str
    """SHA-256 of the training frame's canonical bytes: the same data gives the same fingerprint."""
    features: dict[str, FeatureStats]
    target: str | None = None
    profile: TrainingProfile | None = None
    """Binned training distributions of every feature and output, for drift (format 3 and later)."""


class ModelManifest(msgspec.Struct, frozen=True, kw_only=True):
    """Everything known about one model version; unknown keys are kept out, not refused (newer writers)."""

    name: str
    version: str
    task: Task
    schema: FeatureSchema
    onnx: OnnxSignature
    sha256: str
    """SHA-256 of model.onnx, checked at every load."""
    created_at: dt.datetime
    classes: tuple[Label, ...] | None = None
    """Class labels in the order of the probability columns (classifiers only)."""
    positive_class: Label | None = None
    """The class whose probability a binary prediction reports."""
    metrics: dict[str, float] = {}
    """Metrics measured at export from the ONNX outputs (accuracy, roc_auc, f1, log_loss / rmse, mae,
    r2); `evaluation` says on which rows."""
    evaluation: EvaluationSummary | None = None
    parity: ParitySummary | None = None
    training: TrainingSummary | None = None
    golden: GoldenSet | None = None
    """What a promotion checks before the version takes traffic (bundles exported by this release)."""
    versions: dict[str, str] = {}
    """Library versions used at export: scikit-learn, skl2onnx, onnx, onnxruntime, numpy."""
    description: str = ""
    target: str = ""
    """What the model predicts, in words (e.g. "diagnosis", "disease progression after one year")."""
    format_version: int = MANIFEST_FORMAT

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(name=self.name, version=self.version, sha256=self.sha256)

    def to_json(self) -> bytes:
        return msgspec.json.format(msgspec.json.encode(self), indent=2)

    @classmethod
    def from_json(cls, data: bytes | str) -> ModelManifest:
        """Parse a manifest file, refusing formats newer than this release understands."""
        try:
            raw: Any = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise BundleError(f"manifest is not valid JSON: {exc}") from exc
        return cls.from_builtins(raw)

    @classmethod
    def from_builtins(cls, raw: Any) -> ModelManifest:
        """A manifest from decoded JSON (a file, or the copy a store kept), checked as a file is."""
        version = raw.get("format_version", 1) if isinstance(raw, dict) else None
        if not isinstance(version, int) or version > MANIFEST_FORMAT:
            raise BundleError(
                f"manifest format {version!r} is newer than this release reads ({MANIFEST_FORMAT}); "
                "upgrade predictor-core"
            )
        try:
            manifest = msgspec.convert(raw, cls)
        except msgspec.ValidationError as exc:
            raise BundleError(f"invalid manifest: {exc}") from exc
        if manifest.task is not Task.REGRESSION and not manifest.classes:
            raise BundleError(f"manifest of {manifest.name!r}: a classifier needs its classes")
        if manifest.task is Task.BINARY and (
            manifest.classes is None
            or len(manifest.classes) != 2
            or manifest.positive_class not in manifest.classes
        ):
            raise BundleError(
                f"manifest of {manifest.name!r}: a binary model needs 2 classes "
                "and a positive class among them"
            )
        return manifest
