"""export_bundle: a fitted pipeline and its data, as the user holds them, in; a verified bundle out.

The order matters: infer and refine the schema, check that every row passes it, convert (see
`convert`), run the parity gate against the user's own pipeline on every row given, then write
`model.onnx` and `manifest.json`. Nothing is written unless every step passed.

The parity gate feeds the graph exactly as serving does: each row goes through the validator as a
caller would send it (missing as null) and through the runtime's feed, while scikit-learn predicts from
the user's own frame or array, unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from predictor_core import (
    ClassifierOutputs,
    FeatureKind,
    FeatureSchema,
    FeatureStats,
    GoldenSet,
    Label,
    ModelManifest,
    OnnxSignature,
    RegressorOutputs,
    Rule,
    Task,
    TaskOutputs,
    TrainingSummary,
    ValidatedBatch,
    ValidationFailed,
    validate_columns,
)
from predictor_core.bundle import EvaluationSummary, ParitySummary
from predictor_core.drift import (
    OUTPUT_LABEL,
    OUTPUT_PROBABILITY,
    OUTPUT_VALUE,
    Profile,
    TrainingProfile,
    profile_categories,
    profile_numbers,
)
from predictor_onnx.convert import ExportRefused, convert_pipeline, final_estimator, steps
from predictor_onnx.infer_schema import as_frame, column_values, infer_schema
from predictor_onnx.parity import ParityReport, check_parity
from predictor_onnx.runtime import OnnxRuntime

__all__ = ["Evaluation", "Export", "ExportRefused", "export_bundle", "output_profiles", "training_summary"]

_QUANTILES = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99}


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The metrics rows: their true targets and what the ONNX graph answered for them."""

    y_true: list[Any]
    outputs: TaskOutputs


@dataclass(frozen=True, slots=True)
class Export:
    """A written bundle and what the export found on the way."""

    path: Path
    manifest: ModelManifest
    parity: ParityReport
    adaptations: tuple[str, ...]
    """What the converted graph does differently from a plain skl2onnx conversion, in words."""
    evaluation: Evaluation


def export_bundle(
    pipeline: Any,
    X_train: Any,
    y_train: Iterable[Any],
    X_test: Any = None,
    y_test: Iterable[Any] | None = None,
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
    evaluation: str = "",
    held_out: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> Export:
    """Convert a fitted pipeline to ONNX, prove it matches the pipeline, write `out_dir/name/version/`.

    Args:
        pipeline: a fitted scikit-learn estimator or pipeline, exactly as it was fitted.
        X_train: the rows it was fitted on (a DataFrame or an array), summarised for drift checks.
        y_train: their target.
        X_test: rows for the metrics, in the same form; None measures the metrics on X_train.
        y_test: their target.
        name: the model's name (a bundle directory name and the ONNX graph name).
        version: the model version.
        out_dir: the bundle root; the bundle goes to `out_dir/name/version`.
        task: binary, multiclass or regression; inferred from the estimator when None.
        schema: a complete schema; when None it is inferred from the rows (see `infer_schema`).
        refine: per-feature Feature fields that override the inferred ones.
        rules: cross-field rules for the inferred schema.
        examples: real records for the inferred schema; None takes the first complete row and the
            first row with a gap.
        positive_class: for binary models; defaults to the second class, as scikit-learn does.
        description: what the model is, for the model card and the API.
        target: what the model predicts, in words.
        evaluation: where the test rows come from, in words (default: said from the arguments).
        held_out: False when the test rows may have been seen in training (a sample of the given rows).
        on_step: called with the name of each stage as it starts, for progress displays.

    Raises:
        ExportRefused: a row breaks the schema, a step cannot be converted (named, with what to do),
            a known converter trap is present, or the parity gate failed (ParityFailed).
    """
    step = on_step or (lambda _: None)
    step("schema")
    names = _feature_names(pipeline, X_train, schema)
    train = as_frame(X_train, names)
    test = None if X_test is None else as_frame(X_test, names)
    full = train if test is None else pd.concat([train, test], ignore_index=True)
    if schema is None:
        schema = infer_schema(full, refine=refine, rules=rules)
        chosen = list(examples) if examples is not None else _default_examples(full)
        schema = msgspec.structs.replace(schema, examples=tuple(chosen))
    if list(map(str, full.columns)) != list(schema.names):
        raise ExportRefused(
            f"the data's columns {list(full.columns)} differ from the schema's {list(schema.names)}"
        )
    batch = _validated(schema, full, "the rows given")
    _validated(schema, pd.DataFrame(list(schema.examples), columns=list(schema.names)), "the examples")
    estimator = final_estimator(pipeline)
    task = Task(task) if task is not None else _infer_task(estimator)
    classifier = task is not Task.REGRESSION
    step("conversion")
    conversion = convert_pipeline(pipeline, schema, full, name=name, classifier=classifier)
    graph = conversion.model
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
            inputs=conversion.inputs,
            outputs=dict(zip(("label", "probabilities"), outputs, strict=True))
            if classifier
            else {"value": outputs[0]},
            opsets={o.domain or "": o.version for o in graph.opset_import},
        ),
        sha256=hashlib.sha256(model).hexdigest(),
        created_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        classes=classes,
        positive_class=positive_class,
        versions=_versions(pipeline),
        description=description,
        target=target,
    )
    step("parity")
    runtime = OnnxRuntime(manifest, model)
    onnx_out = runtime.infer(batch)
    user_rows = X_train if X_test is None else _stack(X_train, X_test)
    report = check_parity(
        _sklearn_outputs(pipeline, user_rows, classifier),
        onnx_out,
        what=f"{name} {version}",
        estimator=estimator,
    )
    step("metrics")
    rows = slice(0, len(train)) if test is None else slice(len(train), None)
    truth = [_python(v) for v in (y_train if y_test is None else y_test)]
    metrics = _metrics(task, truth, onnx_out, rows, classes, positive_class)
    metrics["parity_max_abs_diff"] = report.max_abs_diff
    source = evaluation or (
        "the training rows (not held out: optimistic)" if test is None else "a held-out test set"
    )
    manifest = msgspec.structs.replace(
        manifest,
        metrics=metrics,
        evaluation=EvaluationSummary(rows=len(truth), held_out=test is not None and held_out, source=source),
        parity=ParitySummary(
            rows=report.rows,
            label_mismatches=report.label_mismatches,
            max_abs_diff=report.max_abs_diff,
            tolerance=report.tolerance,
        ),
        training=training_summary(
            schema,
            train,
            y_train,
            getattr(y_train, "name", None),
            outputs=_rows_of(onnx_out, slice(0, len(train))),
            classes=classes,
            positive_class=positive_class,
        ),
        golden=golden_set(batch, onnx_out),
    )
    step("writing")
    path = _write(Path(out_dir) / name / version, model, manifest)
    return Export(
        path=path,
        manifest=manifest,
        parity=report,
        adaptations=conversion.adaptations,
        evaluation=Evaluation(y_true=truth, outputs=_rows_of(onnx_out, rows)),
    )


GOLDEN_ROWS = 16
"""Rows of the data kept with their ONNX outputs: a version must reproduce them to take traffic."""


def golden_set(batch: ValidatedBatch, outputs: TaskOutputs) -> GoldenSet:
    """Rows spread over the data, as the validator delivered them, and what the exported graph answered.

    The tolerance is the parity gate's: absolute for probabilities, relative to the values' size for
    regressors (a float32 step on large values is more than 1e-5).
    """
    picks = sorted({round(i) for i in np.linspace(0, len(batch) - 1, min(GOLDEN_ROWS, len(batch)))})
    records = batch.records()
    chosen = tuple(records[i] for i in picks)
    if isinstance(outputs, RegressorOutputs):
        values = tuple(float(v) for v in outputs.values[picks])
        scale = max((abs(v) for v in values), default=0.0)
        return GoldenSet(records=chosen, values=values, tolerance=1e-5 + 1e-5 * scale)
    assert isinstance(outputs, ClassifierOutputs)
    return GoldenSet(
        records=chosen,
        labels=tuple(_python(label) for label in outputs.labels[picks]),
        probabilities=tuple(tuple(float(p) for p in row) for row in outputs.probabilities[picks]),
    )


def _feature_names(pipeline: Any, X: Any, schema: FeatureSchema | None) -> list[str]:
    """Column names: the frame's, the schema's for an array, or those the pipeline was fitted with."""
    if isinstance(X, pd.DataFrame):
        return [str(c) for c in X.columns]
    if schema is not None:
        return list(schema.names)
    fitted = getattr(pipeline, "feature_names_in_", None)
    if fitted is not None:
        return [str(c) for c in fitted]
    width = np.asarray(X).shape[1]
    return [f"x{i}" for i in range(width)]


def _stack(first: Any, second: Any) -> Any:
    if isinstance(first, pd.DataFrame):
        return pd.concat([first, second])
    return np.concatenate([np.asarray(first), np.asarray(second)])


def _validated(schema: FeatureSchema, frame: pd.DataFrame, what: str) -> ValidatedBatch:
    """Every real row must pass the schema: a schema that refuses its own training data is wrong."""
    try:
        return validate_columns(schema, {f.name: column_values(frame[f.name]) for f in schema.features})
    except ValidationFailed as exc:
        raise ExportRefused(f"the schema refuses rows of {what}:\n{exc}") from exc


def _default_examples(frame: pd.DataFrame) -> list[dict[str, Any]]:
    gaps = frame.isna().any(axis=1).to_numpy()
    picks = [int(np.argmin(gaps))] + ([int(np.argmax(gaps))] if gaps.any() else [])
    return [{str(c): column_values(frame[c].iloc[[i]])[0] for c in frame.columns} for i in picks]


def _infer_task(estimator: Any) -> Task:
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        return Task.REGRESSION
    return Task.BINARY if len(classes) == 2 else Task.MULTICLASS


def _sklearn_outputs(pipeline: Any, rows: Any, classifier: bool) -> TaskOutputs:
    if classifier:
        return ClassifierOutputs(labels=pipeline.predict(rows), probabilities=pipeline.predict_proba(rows))
    return RegressorOutputs(values=np.asarray(pipeline.predict(rows), dtype=np.float64).reshape(-1))


def _rows_of(outputs: TaskOutputs, rows: slice) -> TaskOutputs:
    if isinstance(outputs, ClassifierOutputs):
        return ClassifierOutputs(labels=outputs.labels[rows], probabilities=outputs.probabilities[rows])
    return RegressorOutputs(values=outputs.values[rows])


def _metrics(
    task: Task,
    y_true: Sequence[Any],
    outputs: TaskOutputs,
    rows: slice,
    classes: tuple[Label, ...] | None,
    positive: Label | None,
) -> dict[str, float]:
    from sklearn import metrics

    if isinstance(outputs, RegressorOutputs):
        values = outputs.values[rows].astype(np.float64)
        return {
            "rmse": float(np.sqrt(metrics.mean_squared_error(y_true, values))),
            "mae": float(metrics.mean_absolute_error(y_true, values)),
            "r2": float(metrics.r2_score(y_true, values)),
        }
    labels = [_python(v) for v in outputs.labels[rows].tolist()]
    # float32 tree sums can dip a hair below 0 and rows sum to 1 ± 1e-7; log_loss checks both
    proba = np.clip(outputs.probabilities[rows].astype(np.float64), 0.0, None)
    proba = proba / proba.sum(axis=1, keepdims=True)
    found = set(y_true)
    if task is Task.BINARY:
        column = list(classes or ()).index(positive)  # type: ignore[arg-type]  # binary: never None
        auc = (
            metrics.roc_auc_score([y == positive for y in y_true], proba[:, column])
            if len(found) == 2
            else float("nan")
        )
        f1 = metrics.f1_score(y_true, labels, pos_label=positive)
    else:
        auc = (
            metrics.roc_auc_score(y_true, proba, multi_class="ovr", labels=list(classes or ()))
            if found == set(classes or ())
            else float("nan")
        )
        f1 = metrics.f1_score(y_true, labels, average="macro")
    return {
        "accuracy": float(metrics.accuracy_score(y_true, labels)),
        "roc_auc": float(auc),
        "f1": float(f1),
        "log_loss": float(metrics.log_loss(y_true, proba, labels=list(classes or ()))),
    }


def training_summary(
    schema: FeatureSchema,
    frame: pd.DataFrame,
    target: Iterable[Any],
    target_name: Any,
    *,
    outputs: TaskOutputs | None = None,
    classes: Sequence[Label] | None = None,
    positive_class: Label | None = None,
) -> TrainingSummary:
    """Per-feature statistics (count, missing, moments, quantiles or category counts) and a fingerprint.

    With the graph's `outputs` for the same rows, also the training profile drift is measured against:
    every feature and output binned (see `predictor_core.drift`).
    """
    stats: dict[str, FeatureStats] = {}
    canonical: dict[str, list[Any]] = {}
    profiles: dict[str, Profile] = {}
    for feature in schema.features:
        values = column_values(frame[feature.name])
        canonical[feature.name] = values
        present = [v for v in values if v is not None]
        missing = len(values) - len(present)
        if feature.kind in (FeatureKind.CATEGORY, FeatureKind.BOOLEAN):
            profiles[feature.name] = profile_categories(
                [_python(v) for v in values],
                feature.categories or (("false", "true") if feature.kind is FeatureKind.BOOLEAN else ()),
            )
        else:
            profiles[feature.name] = profile_numbers(
                np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            )
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
        profile=None
        if outputs is None
        else TrainingProfile(features=profiles, outputs=output_profiles(outputs, classes, positive_class)),
    )


def output_profiles(
    outputs: TaskOutputs, classes: Sequence[Label] | None, positive_class: Label | None
) -> dict[str, Profile]:
    """The training distribution of the graph's answers: label (and positive-class probability), or value."""
    if isinstance(outputs, RegressorOutputs):
        return {OUTPUT_VALUE: profile_numbers(outputs.values.astype(np.float64))}
    assert isinstance(outputs, ClassifierOutputs)
    labels = [str(_python(v)) for v in outputs.labels.tolist()]
    found: dict[str, Profile] = {OUTPUT_LABEL: profile_categories(labels, [str(c) for c in classes or ()])}
    if positive_class is not None and classes is not None and len(classes) == 2:
        column = list(classes).index(positive_class)
        probability = outputs.probabilities[:, column].astype(np.float64)
        found[OUTPUT_PROBABILITY] = profile_numbers(probability)
    return found


def _python(value: Any) -> Any:
    """Turn numpy scalars into plain Python, so labels serialise and compare as the API sends them."""
    return value.item() if isinstance(value, np.generic) else value


def _versions(pipeline: Any) -> dict[str, str]:
    found = {}
    used = {type(s).__module__.split(".")[0] for s in steps(pipeline)} & {"xgboost", "lightgbm"}
    boosters = (*sorted(used), "onnxmltools") if used else ()
    for dist in ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "protobuf", *boosters):
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
