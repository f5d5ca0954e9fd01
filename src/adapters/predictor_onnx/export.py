"""export_bundle: a fitted scikit-learn pipeline and its data in, a verified model bundle out.

The order matters: infer and refine the schema, check that every training row passes it, convert with
ZipMap off and a fixed graph name (reproducible bytes), run the parity gate on all the data given, then
write `model.onnx` and `manifest.json`. Nothing is written unless every step passed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from predictor_core import (
    BundleError,
    ClassifierOutputs,
    FeatureKind,
    FeatureSchema,
    FeatureStats,
    Label,
    ModelManifest,
    OnnxSignature,
    RegressorOutputs,
    Rule,
    Task,
    TaskOutputs,
    TensorSpec,
    TrainingSummary,
    ValidationFailed,
    validate_columns,
)
from predictor_onnx.infer_schema import MISSING_CATEGORY, column_values, infer_schema, model_frame
from predictor_onnx.parity import check_parity
from predictor_onnx.runtime import OnnxRuntime, build_feeds

__all__ = ["ExportRefused", "export_bundle"]

TARGET_OPSET = 21
"""Default-domain opset of exported graphs: onnxruntime 1.18 (the oldest supported) runs it."""
_QUANTILES = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99}


class ExportRefused(BundleError):
    """The pipeline or its data cannot make a trustworthy bundle; nothing was written."""


def export_bundle(
    pipeline: Any,
    X_train: pd.DataFrame,
    y_train: Iterable[Any],
    X_test: pd.DataFrame,
    y_test: Iterable[Any],
    *,
    name: str,
    version: str,
    out_dir: Path | str,
    task: Task | str | None = None,
    schema: FeatureSchema | None = None,
    refine: Mapping[str, Mapping[str, Any]] | None = None,
    rules: Iterable[Rule] = (),
    examples: Iterable[Mapping[str, Any]] | None = None,
    positive_class: Label | None = None,
    description: str = "",
    target: str = "",
) -> Path:
    """Convert a fitted pipeline to ONNX, prove it matches, and write `out_dir/name/version/`.

    The pipeline must have been fitted on `model_frame(X_train, schema)`: numbers as float32-rounded
    floats and missing categories as `""` (imputed inside the pipeline), which is what the graph reads.

    Args:
        pipeline: a fitted scikit-learn estimator or pipeline.
        X_train: the training features (summarised in the manifest for drift checks).
        y_train: the training target.
        X_test: held-out features for the metrics; parity is checked on train and test together.
        y_test: the held-out target.
        name: the model's name (a bundle directory name and the ONNX graph name).
        version: the model version.
        out_dir: the bundle root; the bundle goes to `out_dir/name/version`.
        task: binary, multiclass or regression; inferred from the estimator when None.
        schema: a complete schema; when None it is inferred from both frames (see `infer_schema`).
        refine: per-feature Feature fields that override the inferred ones.
        rules: cross-field rules for the inferred schema.
        examples: real records for the inferred schema; None takes the first complete row and the
            first row with a gap.
        positive_class: for binary models; defaults to the second class, as scikit-learn does.
        description: what the model is, for the model card and the API.
        target: what the model predicts, in words.

    Returns:
        The bundle directory.

    Raises:
        ExportRefused: a row breaks the schema, skl2onnx cannot convert a step (named), a known
            converter trap is present, or the parity gate failed (ParityFailed).
    """
    from skl2onnx import convert_sklearn

    _refuse_known_traps(pipeline)
    full = pd.concat([X_train, X_test])
    if schema is None:
        schema = infer_schema(full, refine=refine, rules=rules)
        chosen = list(examples) if examples is not None else _default_examples(full)
        schema = msgspec.structs.replace(schema, examples=tuple(chosen))
    if list(map(str, full.columns)) != list(schema.names):
        raise ExportRefused(
            f"frame columns {list(full.columns)} differ from the schema's {list(schema.names)}"
        )
    _check_rows(schema, full, "the training and test frames")
    _check_rows(schema, pd.DataFrame(list(schema.examples), columns=list(schema.names)), "the examples")
    estimator = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    task = Task(task) if task is not None else _infer_task(estimator)
    classifier = task is not Task.REGRESSION
    inputs = _input_specs(schema, pipeline)
    try:
        graph = convert_sklearn(
            pipeline,
            initial_types=[(spec.name, _tensor_type(spec)) for spec in inputs],
            options={id(estimator): {"zipmap": False}} if classifier else None,
            target_opset=TARGET_OPSET,
            name=name,
        )
    except Exception as exc:  # skl2onnx raises RuntimeError, ValueError, NameError... per converter
        raise ExportRefused(f"skl2onnx cannot convert {_unsupported_step(pipeline)}: {exc}") from exc
    _canonical_opsets(graph)
    model = graph.SerializeToString()
    outputs = [o.name for o in graph.graph.output]
    classes = tuple(_python(c) for c in estimator.classes_) if classifier else None
    if task is Task.BINARY and positive_class is None:
        positive_class = classes[-1]  # type: ignore[index]
    manifest = ModelManifest(
        name=name,
        version=version,
        task=task,
        schema=schema,
        onnx=OnnxSignature(
            inputs=inputs,
            outputs=dict(zip(("label", "probabilities"), outputs, strict=True))
            if classifier
            else {"value": outputs[0]},
            opsets={o.domain or "": o.version for o in graph.opset_import},
        ),
        sha256=hashlib.sha256(model).hexdigest(),
        created_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        classes=classes,
        positive_class=positive_class,
        versions=_versions(),
        description=description,
        target=target,
    )
    runtime = OnnxRuntime(manifest, model)
    frame = model_frame(full, schema)
    onnx_out = runtime.run_feeds(_feeds(schema, inputs, frame))
    report = check_parity(_sklearn_outputs(pipeline, frame, classifier), onnx_out, what=f"{name} {version}")
    test_rows = slice(len(X_train), None)
    metrics = _metrics(task, list(y_test), onnx_out, test_rows, classes, positive_class)
    metrics["parity_max_abs_diff"] = report.max_abs_diff
    manifest = msgspec.structs.replace(
        manifest,
        metrics=metrics,
        training=_summary(schema, X_train, y_train, getattr(y_train, "name", None)),
    )
    return _write(Path(out_dir) / name / version, model, manifest)


def _canonical_opsets(graph: Any) -> None:
    """Sort and de-duplicate the opset imports, so the same model gives the same bytes.

    skl2onnx emits them in set order, which varies with PYTHONHASHSEED: without this the model hash
    would change from one export to the next.
    """
    opsets: dict[str, int] = {}
    for entry in graph.opset_import:
        opsets[entry.domain] = max(entry.version, opsets.get(entry.domain, 0))
    del graph.opset_import[:]
    for domain, version in sorted(opsets.items()):
        graph.opset_import.add(domain=domain, version=version)


def _check_rows(schema: FeatureSchema, frame: pd.DataFrame, what: str) -> None:
    """Every real row must pass the schema: a schema that refuses its own training data is wrong."""
    try:
        validate_columns(schema, {f.name: _as_sent(frame[f.name], f.kind) for f in schema.features})
    except ValidationFailed as exc:
        raise ExportRefused(f"the schema refuses rows of {what}:\n{exc}") from exc


def _as_sent(column: pd.Series, kind: FeatureKind) -> list[Any]:
    """Values as a caller would send them: the training marker `""` for a missing category is null."""
    values = column_values(column)
    if kind is FeatureKind.CATEGORY:
        return [None if v == MISSING_CATEGORY else v for v in values]
    return values


def _default_examples(frame: pd.DataFrame) -> list[dict[str, Any]]:
    gaps = frame.isna().any(axis=1).to_numpy()
    picks = [int(np.argmin(gaps))] + ([int(np.argmax(gaps))] if gaps.any() else [])
    return [{str(c): column_values(frame[c].iloc[[i]])[0] for c in frame.columns} for i in picks]


def _refuse_known_traps(pipeline: Any) -> None:
    for step in _steps(pipeline):
        kind = type(step).__name__
        if kind.startswith("HistGradientBoosting"):
            if getattr(step, "is_categorical_", None) is not None and np.any(step.is_categorical_):
                raise ExportRefused(
                    f"{kind} with native categorical features converts silently to wrong predictions "
                    "(skl2onnx exports categorical splits as numeric ones); one-hot encode instead"
                )
            pb_major = int(metadata.version("protobuf").split(".")[0])
            if pb_major >= 7:
                raise ExportRefused(
                    f"{kind} does not convert with skl2onnx under protobuf {metadata.version('protobuf')} "
                    "(a bool lands in an INTS attribute); use protobuf<7 to export it, or another estimator"
                )


def _steps(estimator: Any) -> list[Any]:
    """Every estimator inside pipelines and column transformers, depth first."""
    found = [estimator]
    for attribute in ("steps", "transformers_"):
        for item in getattr(estimator, attribute, []) or []:
            if not isinstance(item[1], str):
                found.extend(_steps(item[1]))
    return found


def _unsupported_step(pipeline: Any) -> str:
    """Name the step skl2onnx has no converter for (the whole pipeline when all are known)."""
    from skl2onnx._supported_operators import sklearn_operator_name_map

    containers = {"Pipeline", "ColumnTransformer", "FeatureUnion"}
    for step in _steps(pipeline):
        if type(step).__name__ not in containers and type(step) not in sklearn_operator_name_map:
            return f"{type(step).__module__}.{type(step).__name__} (no converter registered)"
    return f"{type(pipeline).__name__}"


def _infer_task(estimator: Any) -> Task:
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        return Task.REGRESSION
    return Task.BINARY if len(classes) == 2 else Task.MULTICLASS


def _input_specs(schema: FeatureSchema, pipeline: Any) -> tuple[TensorSpec, ...]:
    """One float matrix for all-numeric models; one input per column when columns are selected by name."""
    by_name = any(type(s).__name__ == "ColumnTransformer" for s in _steps(pipeline))
    if schema.all_numeric and not by_name:
        return (TensorSpec(name="X", dtype="float32", features=schema.names),)
    return tuple(
        TensorSpec(
            name=f.name, dtype="string" if f.kind is FeatureKind.CATEGORY else "float32", features=(f.name,)
        )
        for f in schema.features
    )


def _tensor_type(spec: TensorSpec) -> Any:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    return (StringTensorType if spec.dtype == "string" else FloatTensorType)([None, len(spec.features)])


def _feeds(schema: FeatureSchema, inputs: tuple[TensorSpec, ...], frame: pd.DataFrame) -> dict[str, Any]:
    columns = {
        f.name: frame[f.name].to_numpy(dtype=object if f.kind is FeatureKind.CATEGORY else np.float64)
        for f in schema.features
    }
    return build_feeds(inputs, columns, len(frame))


def _sklearn_outputs(pipeline: Any, frame: pd.DataFrame, classifier: bool) -> TaskOutputs:
    if classifier:
        return ClassifierOutputs(labels=pipeline.predict(frame), probabilities=pipeline.predict_proba(frame))
    return RegressorOutputs(values=np.asarray(pipeline.predict(frame), dtype=np.float64))


def _metrics(
    task: Task,
    y_test: list[Any],
    outputs: TaskOutputs,
    rows: slice,
    classes: tuple[Label, ...] | None,
    positive: Label | None,
) -> dict[str, float]:
    from sklearn import metrics

    if isinstance(outputs, RegressorOutputs):
        values = outputs.values[rows].astype(np.float64)
        return {
            "rmse": float(np.sqrt(metrics.mean_squared_error(y_test, values))),
            "mae": float(metrics.mean_absolute_error(y_test, values)),
            "r2": float(metrics.r2_score(y_test, values)),
        }
    labels = outputs.labels[rows].tolist()
    proba = outputs.probabilities[rows].astype(np.float64)
    proba = proba / proba.sum(axis=1, keepdims=True)  # float32 rows sum to 1 ± 1e-7; log_loss checks
    if task is Task.BINARY:
        column = list(classes or ()).index(positive)  # type: ignore[arg-type]  # binary: never None
        auc = metrics.roc_auc_score([y == positive for y in y_test], proba[:, column])
        f1 = metrics.f1_score(y_test, labels, pos_label=positive)
    else:
        auc = metrics.roc_auc_score(y_test, proba, multi_class="ovr", labels=list(classes or ()))
        f1 = metrics.f1_score(y_test, labels, average="macro")
    return {
        "accuracy": float(metrics.accuracy_score(y_test, labels)),
        "roc_auc": float(auc),
        "f1": float(f1),
        "log_loss": float(metrics.log_loss(y_test, proba, labels=list(classes or ()))),
    }


def _summary(
    schema: FeatureSchema, frame: pd.DataFrame, target: Iterable[Any], target_name: Any
) -> TrainingSummary:
    stats: dict[str, FeatureStats] = {}
    canonical: dict[str, list[Any]] = {}
    for feature in schema.features:
        values = column_values(frame[feature.name])
        canonical[feature.name] = values
        present = [v for v in values if v is not None]
        missing = len(values) - len(present)
        if feature.kind is FeatureKind.CATEGORY:
            counts = pd.Series(present, dtype=object).value_counts()
            stats[feature.name] = FeatureStats(
                count=len(present),
                missing=missing,
                frequencies={str(k): int(v) for k, v in sorted(counts.items())},
            )
            continue
        numbers = np.asarray(present, dtype=np.float64)
        if not numbers.size:
            stats[feature.name] = FeatureStats(count=0, missing=missing)
            continue
        stats[feature.name] = FeatureStats(
            count=len(present),
            missing=missing,
            mean=float(numbers.mean()),
            std=float(numbers.std(ddof=1)) if numbers.size > 1 else 0.0,
            min=float(numbers.min()),
            max=float(numbers.max()),
            quantiles={k: float(np.quantile(numbers, q)) for k, q in _QUANTILES.items()},
        )
    canonical["__target__"] = [_python(v) for v in target]
    fingerprint = hashlib.sha256(msgspec.json.encode(canonical, order="sorted")).hexdigest()
    return TrainingSummary(
        rows=len(frame),
        fingerprint=fingerprint,
        features=stats,
        target=None if target_name is None else str(target_name),
    )


def _python(value: Any) -> Any:
    """Turn numpy scalars into plain Python, so labels serialise and compare as the API sends them."""
    return value.item() if isinstance(value, np.generic) else value


def _versions() -> dict[str, str]:
    found = {}
    for dist in ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "protobuf"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def _write(bundle: Path, model: bytes, manifest: ModelManifest) -> Path:
    """Write both files via temporary names, so a crash never leaves a half-written bundle in place."""
    bundle.mkdir(parents=True, exist_ok=True)
    for filename, data in (("model.onnx", model), ("manifest.json", manifest.to_json() + b"\n")):
        temporary = bundle / f".{filename}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, bundle / filename)
    return bundle
