"""The model card of a bundle: Markdown with metrics, schema, parity and training summary, plus PNG plots.

Everything but the performance plots comes from the manifest. ROC, precision-recall, confusion matrix
and calibration (classifiers), predicted-vs-actual and residuals (regressors) need rows with their true
target: the export passes its metrics rows; `predictor card --data FILE --target COLUMN` passes the
rows of a file, scored by the bundle itself. Feature distributions are drawn from the training
statistics in the manifest (quantiles and category counts), so every card shows the same ones.
Needs matplotlib (the `train` extra); the server never imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from predictor_core import ClassifierOutputs, FeatureKind, ModelManifest, RegressorOutputs, Task, TaskOutputs

__all__ = ["write_card"]


def write_card(
    manifest: ModelManifest,
    out_dir: Path | str,
    *,
    y_true: Sequence[Any] | None = None,
    outputs: TaskOutputs | None = None,
    data_source: str = "",
) -> Path:
    """Write `README.md` and the PNG plots into `out_dir`; returns it.

    Args:
        manifest: the bundle's manifest.
        out_dir: the card's directory (created).
        y_true: true targets of the evaluation rows, with `outputs` the bundle's answers for them.
        outputs: the ONNX outputs for those rows.
        data_source: what those rows are, in words (default: the manifest's evaluation summary).
    """
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots: list[tuple[str, str]] = []
    if y_true is not None and outputs is not None:
        if isinstance(outputs, ClassifierOutputs):
            plots += _classifier_plots(manifest, list(y_true), outputs, out)
        else:
            assert isinstance(outputs, RegressorOutputs)
            plots += _regressor_plots(list(y_true), outputs, out)
    if manifest.training is not None and manifest.training.features:
        plots.append(("Feature distributions (training rows)", _feature_plot(manifest, out)))
    source = data_source or (manifest.evaluation.source if manifest.evaluation else "")
    (out / "README.md").write_text(
        _markdown(manifest, plots, source, evaluated=outputs is not None), encoding="utf-8"
    )
    return out


# --- Markdown ------------------------------------------------------------------------------------------
def _markdown(manifest: ModelManifest, plots: list[tuple[str, str]], source: str, *, evaluated: bool) -> str:
    m = manifest
    lines = [f"# {m.name} {m.version}", ""]
    if m.description:
        lines += [m.description, ""]
    lines += [
        f"- **task**: {m.task}" + (f", predicting {m.target}" if m.target else ""),
        f"- **created**: {m.created_at.isoformat()}; model.onnx SHA-256 `{m.sha256}`",
    ]
    if m.classes:
        positive = f" (positive class `{m.positive_class}`)" if m.positive_class is not None else ""
        lines.append(f"- **classes**: {', '.join(f'`{c}`' for c in m.classes)}{positive}")
    lines += ["", "## Metrics", ""]
    if m.evaluation is not None:
        held = "held out" if m.evaluation.held_out else "**not held out**"
        lines += [
            f"Measured from the ONNX outputs on {m.evaluation.rows} rows: {m.evaluation.source} ({held}).",
            "",
        ]
    lines += ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in m.metrics.items() if k != "parity_max_abs_diff"]
    lines += ["", "## Parity with the fitted pipeline", ""]
    if m.parity is not None:
        p = m.parity
        lines.append(
            f"The ONNX graph was compared with the scikit-learn pipeline itself on {p.rows} rows before the "
            f"bundle was written: {p.label_mismatches} label mismatches, largest difference "
            f"{p.max_abs_diff:.3g} (tolerance {p.tolerance})."
        )
    else:
        lines.append(
            f"Largest difference at export: {m.metrics.get('parity_max_abs_diff', float('nan')):.3g}."
        )
    lines += ["", "## Training data", ""]
    if m.training is not None:
        t = m.training
        lines.append(
            f"{t.rows} rows"
            + (f", target `{t.target}`" if t.target else "")
            + f"; fingerprint `{t.fingerprint[:16]}…`."
        )
    lines += [
        "",
        "## Features",
        "",
        "| feature | kind | unit | bounds | categories | missing allowed | description |",
    ]
    lines.append("|---|---|---|---|---|---|---|")
    for f in m.schema.features:
        bounds = (
            ""
            if f.minimum is None and f.maximum is None
            else (
                f"{'' if f.minimum is None else f'{f.minimum:g}'} .. "
                f"{'' if f.maximum is None else f'{f.maximum:g}'}"
            )
        )
        categories = ", ".join(f.categories) if f.categories else ""
        lines.append(
            f"| `{f.name}` | {f.kind} | {f.unit or ''} | {bounds} | {categories} | "
            f"{'yes' if f.nullable else 'no'} | {f.description} |"
        )
    if m.schema.rules:
        lines += ["", "## Rules", "", "| rule | must hold | message |", "|---|---|---|"]
        lines += [f"| `{r.name}` | `{r.expr}` | {r.message} |" for r in m.schema.rules]
    lines += ["", "## Plots", ""]
    if not evaluated:
        lines += [
            "Performance plots need rows with their true target: "
            f"`predictor card {m.name} --data test.csv --target COLUMN`.",
            "",
        ]
    elif source:
        lines += [f"Performance plots are drawn from {source}.", ""]
    for title, filename in plots:
        lines += [f"### {title}", "", f"![{title}]({filename})", ""]
    lines += ["## Software", ""]
    lines += [f"- {k} {v}" for k, v in m.versions.items()]
    return "\n".join(lines) + "\n"


# --- plots -----------------------------------------------------------------------------------------------
def _classifier_plots(
    manifest: ModelManifest, y_true: list[Any], outputs: ClassifierOutputs, out: Path
) -> list[tuple[str, str]]:
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import ConfusionMatrixDisplay, auc, precision_recall_curve, roc_curve

    classes = list(manifest.classes or ())
    proba: Any = outputs.probabilities.astype(np.float64)
    labels = [v.item() if isinstance(v, np.generic) else v for v in outputs.labels.tolist()]
    shown: list[Any] = [manifest.positive_class] if manifest.task is Task.BINARY else classes
    truth = np.asarray([str(v) for v in y_true])
    plots = []

    figure, axes = plt.subplots(figsize=(5.5, 5))
    for cls in shown:
        positive = truth == str(cls)
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, proba[:, classes.index(cls)])
        axes.plot(fpr, tpr, label=f"{cls} (AUC {auc(fpr, tpr):.3f})")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    _finish(axes, "ROC curve", "false positive rate", "true positive rate")
    plots.append(("ROC curve", _save(figure, out, "roc.png")))

    figure, axes = plt.subplots(figsize=(5.5, 5))
    for cls in shown:
        positive = truth == str(cls)
        if not positive.any():
            continue
        precision, recall, _ = precision_recall_curve(positive, proba[:, classes.index(cls)])
        axes.plot(recall, precision, label=f"{cls} (base rate {positive.mean():.2f})")
    _finish(axes, "Precision-recall curve", "recall", "precision")
    plots.append(("Precision-recall curve", _save(figure, out, "precision_recall.png")))

    figure, axes = plt.subplots(figsize=(5.5, 5))
    ConfusionMatrixDisplay.from_predictions(
        truth, np.asarray([str(v) for v in labels]), labels=[str(c) for c in classes], ax=axes, colorbar=False
    )
    axes.set_title("Confusion matrix (rows: true, columns: predicted)")
    plots.append(("Confusion matrix", _save(figure, out, "confusion.png")))

    figure, axes = plt.subplots(figsize=(5.5, 5))
    for cls in shown:
        positive = truth == str(cls)
        if positive.all() or not positive.any():
            continue
        bins = max(2, min(10, len(truth) // 20))
        observed, predicted = calibration_curve(positive, proba[:, classes.index(cls)], n_bins=bins)
        axes.plot(predicted, observed, marker="o", label=str(cls))
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    _finish(axes, "Calibration", "predicted probability", "observed frequency")
    plots.append(("Calibration", _save(figure, out, "calibration.png")))
    return plots


def _regressor_plots(y_true: list[Any], outputs: RegressorOutputs, out: Path) -> list[tuple[str, str]]:
    import matplotlib.pyplot as plt

    actual = np.asarray(y_true, dtype=np.float64)
    predicted = outputs.values.astype(np.float64).reshape(-1)
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    figure, axes = plt.subplots(figsize=(5.5, 5))
    axes.scatter(actual, predicted, s=12, alpha=0.6)
    axes.plot([low, high], [low, high], linestyle=":", color="grey", label="predicted = actual")
    _finish(axes, "Predicted vs actual", "actual", "predicted")
    plots = [("Predicted vs actual", _save(figure, out, "predicted_vs_actual.png"))]
    figure, axes = plt.subplots(figsize=(5.5, 5))
    axes.scatter(predicted, actual - predicted, s=12, alpha=0.6)
    axes.axhline(0, linestyle=":", color="grey")
    _finish(axes, "Residuals", "predicted", "actual - predicted", legend=False)
    plots.append(("Residuals", _save(figure, out, "residuals.png")))
    return plots


def _feature_plot(manifest: ModelManifest, out: Path) -> str:
    """One small panel per feature: quantiles (p01..p99, box p25-p75) or category counts."""
    import matplotlib.pyplot as plt

    assert manifest.training is not None
    features = manifest.schema.features
    columns = min(4, len(features))
    rows = -(-len(features) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False)
    for axes, feature in zip(grid.ravel(), features, strict=False):
        stats = manifest.training.features.get(feature.name)
        title = feature.name + (f" [{feature.unit}]" if feature.unit else "")
        if stats is not None and stats.missing:
            title += f" ({stats.missing} missing)"
        axes.set_title(title, fontsize=9)
        axes.tick_params(labelsize=7)
        if stats is None:
            continue
        if feature.kind is FeatureKind.CATEGORY and stats.frequencies:
            names = list(stats.frequencies)
            axes.barh(names, [stats.frequencies[n] for n in names], color="tab:blue")
            axes.invert_yaxis()
        elif feature.kind is FeatureKind.BOOLEAN and stats.mean is not None:
            true = round(stats.count * stats.mean)
            axes.barh(["false", "true"], [stats.count - true, true], color="tab:blue")
            axes.invert_yaxis()
        elif stats.quantiles:
            q = stats.quantiles
            box = {"med": q["p50"], "q1": q["p25"], "q3": q["p75"], "whislo": q["p01"], "whishi": q["p99"]}
            axes.bxp([box | {"fliers": []}], orientation="horizontal", widths=0.5, positions=[0])
            axes.plot([stats.min, stats.max], [0, 0], "|", color="black", markersize=12)
            axes.set_yticks([])
            axes.set_xlabel("min | p01-p99 whiskers, p25-p75 box | max", fontsize=6)
    for axes in grid.ravel()[len(features) :]:
        axes.axis("off")
    figure.tight_layout()
    return _save(figure, out, "features.png")


def _finish(axes: Any, title: str, x: str, y: str, *, legend: bool = True) -> None:
    axes.set_title(title)
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    axes.grid(alpha=0.3)
    if legend:
        axes.legend(loc="best", fontsize=8)


def _save(figure: Any, out: Path, filename: str) -> str:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(out / filename, dpi=110)
    plt.close(figure)
    return filename
