"""`predictor.export`: the data scientist's own fitted pipeline to a served bundle, in one call.

    from predictor import export
    bundle = export(pipeline, X_train, y_train, name="churn", version="1.0.0", test=(X_test, y_test))

The pipeline is used as it was fitted (never refitted, its data never re-encoded); the bundle is written
only after the ONNX graph reproduced the pipeline's own predictions on every row given (the parity
gate). A short report says what was inferred, adapted, measured and where the bundle is.
Needs the `train` extra (scikit-learn, skl2onnx, pandas, matplotlib for the model card).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from predictor_core import FeatureSchema, Label, ModelManifest, Rule, SchemaError, Task

if TYPE_CHECKING:
    from rich.console import Console

    from predictor.schema_file import SchemaFile

__all__ = ["DEFAULT_ROOT", "ExportedBundle", "default_root", "export"]

DEFAULT_ROOT = Path("models")
"""Where bundles go when neither `out` nor PREDICTOR_MODEL_DIRS says: `./models/<name>/<version>/`."""
_SEED = 0


@dataclass(frozen=True, slots=True)
class ExportedBundle:
    """A verified bundle on disk: where it is, its manifest, and what the export found."""

    path: Path
    manifest: ModelManifest
    adaptations: tuple[str, ...]
    card: Path | None

    def __repr__(self) -> str:
        m = self.manifest
        return f"<ExportedBundle {m.name} {m.version} ({m.task}) at {self.path}>"


def default_root() -> Path:
    """The first PREDICTOR_MODEL_DIRS root (where `predictor serve` looks), else `./models`."""
    from predictor.settings import Settings

    dirs = Settings.load().model_dirs
    return Path(dirs[0]).expanduser() if dirs else DEFAULT_ROOT


def export(
    pipeline: Any,
    X: Any,
    y: Iterable[Any],
    *,
    name: str,
    version: str,
    out: Path | str | None = None,
    schema: FeatureSchema | SchemaFile | Mapping[str, Any] | Path | str | None = None,
    rules: Iterable[Rule] = (),
    task: Task | str | None = None,
    positive_class: Label | None = None,
    description: str = "",
    target: str = "",
    test: tuple[Any, Iterable[Any]] | float | None = None,
    card: bool = True,
    report: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> ExportedBundle:
    """Export a fitted scikit-learn pipeline as a bundle `predictor serve` and `predict()` can load.

    Args:
        pipeline: the fitted estimator or pipeline, as it is (joblib-loaded or still in memory).
        X: the rows it was fitted on, as a DataFrame (any dtypes: int, float, bool, category/object,
            NaN or None for missing) or an array.
        y: their target.
        name: the model's name, as callers will address it.
        version: the model version ("1.0.0").
        out: the bundle root; the bundle goes to `out/name/version`. Default: the first
            PREDICTOR_MODEL_DIRS root, else `./models`.
        schema: refinements of the inferred schema: a schema.toml path or a mapping of the same
            shape (bounds, units, descriptions, categories, nullability, rules); or a complete
            FeatureSchema used as is.
        rules: more cross-field rules (`Rule(name=..., expr=..., message=...)`).
        task: "binary", "multiclass" or "regression"; inferred from the estimator when None.
        positive_class: the class a binary prediction's probability is about (default: the second).
        description: what the model is, for the model card and the API.
        target: what the model predicts, in words.
        test: held-out `(X_test, y_test)` for the metrics; or a fraction of the given rows to measure
            them on (the pipeline may have seen those rows: the manifest says so); None measures
            them on the given rows, which is optimistic.
        card: also write the model card (Markdown and PNG plots) into `<bundle>/card/`.
        report: print a short report of the export.
        on_step: called with each stage's name as it starts (progress displays).

    Returns:
        The bundle: its path, manifest, the adaptations made for the conversion, and the card.

    Raises:
        ExportRefused: what cannot be exported faithfully and what to do instead (nothing is written).
        SchemaError: the schema refinements are malformed or name unknown features.
    """
    from predictor_onnx.export import export_bundle

    complete, refinements = _schema_arguments(schema)
    X_train, y_train, X_test, y_test, source = _split(X, y, test, classifier=_is_classifier(pipeline, task))
    done = export_bundle(
        pipeline,
        X_train,
        y_train,
        X_test,
        y_test,
        name=name,
        version=version,
        out_dir=Path(out) if out is not None else default_root(),
        task=task,
        schema=complete,
        refine=refinements.refine if refinements else None,
        rules=(*(refinements.rules if refinements else ()), *rules),
        positive_class=positive_class,
        description=description,
        target=target,
        evaluation=source,
        held_out=not isinstance(test, float | int),
        on_step=on_step,
    )
    card_path = None
    if card:
        if on_step:
            on_step("card")
        from predictor.card import write_card

        card_path = write_card(
            done.manifest, done.path / "card", y_true=done.evaluation.y_true, outputs=done.evaluation.outputs
        )
    bundle = ExportedBundle(
        path=done.path, manifest=done.manifest, adaptations=done.adaptations, card=card_path
    )
    if report:
        print_report(bundle)
    return bundle


def _schema_arguments(schema: Any) -> tuple[FeatureSchema | None, SchemaFile | None]:
    from predictor.schema_file import read_schema_file, schema_refinements

    if schema is None:
        return None, None
    if isinstance(schema, FeatureSchema):
        return schema, None
    if isinstance(schema, str | Path):
        return None, read_schema_file(schema)
    if isinstance(schema, Mapping) or type(schema).__name__ == "SchemaFile":
        return None, schema_refinements(schema)
    raise SchemaError(
        f"schema must be a schema.toml path, a mapping or a FeatureSchema, not {type(schema).__name__}"
    )


def _is_classifier(pipeline: Any, task: Any) -> bool:
    if task is not None:
        return Task(task) is not Task.REGRESSION
    final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    return hasattr(final, "classes_")


def _split(X: Any, y: Iterable[Any], test: Any, *, classifier: bool) -> tuple[Any, Any, Any, Any, str]:
    """Training rows, test rows (or None) and, in words, where the metrics come from."""
    if test is None:
        return X, y, None, None, ""
    if isinstance(test, tuple):
        if len(test) != 2:
            raise SchemaError("test must be (X_test, y_test) or a fraction between 0 and 1")
        return X, y, test[0], test[1], "a held-out test set"
    fraction = float(test)
    if not 0 < fraction < 1:
        raise SchemaError(f"a test fraction must be between 0 and 1, got {test!r}")
    import pandas as pd
    from sklearn.model_selection import train_test_split

    target = pd.Series(list(y)) if not isinstance(y, pd.Series) else y
    counts = target.value_counts()
    stratify = target if classifier and counts.min() >= 2 else None
    X_train, X_test, y_train, y_test = train_test_split(
        X, target, test_size=fraction, random_state=_SEED, stratify=stratify
    )
    source = (
        f"{fraction:.0%} of the given rows (random_state={_SEED}); not held out if the pipeline was "
        "fitted on them"
    )
    return X_train, y_train, X_test, y_test, source


def print_report(bundle: ExportedBundle, console: Console | None = None) -> None:
    """The export in a few lines: task, classes, schema, adaptations, parity, metrics, where it is."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    out = console or Console()
    m = bundle.manifest
    out.print(f"[bold]{escape(m.name)} {escape(m.version)}[/bold]: {m.task}" + escape(_classes(m)))
    table = Table(
        "feature", "kind", "missing", "categories / bounds", title="inferred schema", title_justify="left"
    )
    for f in m.schema.features:
        detail = (
            ", ".join(f.categories)
            if f.categories
            else " .. ".join("" if b is None else f"{b:g}" for b in (f.minimum, f.maximum))
            if f.minimum is not None or f.maximum is not None
            else ""
        )
        kind = f.kind.value + (f" [{f.unit}]" if f.unit else "")
        table.add_row(f.name, escape(kind), "yes" if f.nullable else "no", escape(detail))
    out.print(table)
    for rule in m.schema.rules:
        out.print(escape(f"rule {rule.name}: {rule.expr}"))
    for note in bundle.adaptations:
        out.print(escape(f"adapted: {note}"))
    p = m.parity
    if p is not None:
        out.print(
            f"parity with your pipeline on {p.rows} rows: {p.label_mismatches} label mismatches, "
            f"max |Δ| {p.max_abs_diff:.2g} ({p.tolerance})"
        )
    shown = {k: v for k, v in m.metrics.items() if k != "parity_max_abs_diff"}
    where = m.evaluation.source if m.evaluation else ""
    out.print("metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()) + f" on {where}")
    out.print(f"bundle: {bundle.path}" + (f"  card: {bundle.card / 'README.md'}" if bundle.card else ""))
    out.print(f"serve it: predictor serve --model {bundle.path}")
    example = msgspec.json.encode({"features": m.schema.example()}).decode()
    out.print(
        escape(f"try: curl -s localhost:8000/predict -H 'content-type: application/json' -d '{example}'"),
        soft_wrap=True,
    )


def _classes(manifest: ModelManifest) -> str:
    if not manifest.classes:
        return ""
    positive = f", positive class {manifest.positive_class!r}" if manifest.positive_class is not None else ""
    return f" (classes {', '.join(map(repr, manifest.classes))}{positive})"
