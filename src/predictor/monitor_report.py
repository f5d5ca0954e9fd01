"""The monitoring report: one self-contained HTML page of a model version's drift and live quality.

A plot per feature and output (the training share of each bin beside the window's), the quality of each
period of the window, and the calibration of a classifier; the plots are PNGs embedded as data URIs and
the styles are inline, so the file can be mailed or archived and opened anywhere, offline.
Needs matplotlib (the `train` extra); the server never imports this module.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

from predictor_core import DriftReport, FeatureDrift, ModelManifest, QualityReport, Task

__all__ = ["render_report"]

_COLOURS = {"stable": "#2e7d32", "watch": "#f9a825", "drift": "#c62828", "insufficient": "#757575"}
_TRAINING, _LIVE = "#90a4ae", "#1565c0"
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       color: #212121; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #e0e0e0; }
.meta { color: #616161; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.92rem; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #eeeeee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.badge { color: white; border-radius: 0.8rem; padding: 0.1rem 0.6rem; font-size: 0.85rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(370px, 1fr)); gap: 1rem; }
figure { margin: 0; border: 1px solid #eeeeee; border-radius: 6px; padding: 0.4rem; }
figure img { width: 100%; }
figcaption { font-size: 0.85rem; color: #424242; }
.note { background: #fff8e1; border-left: 4px solid #f9a825; padding: 0.6rem 1rem; }
"""


def render_report(manifest: ModelManifest, drift: DriftReport | str, quality: QualityReport) -> str:
    """The page: `drift` is the report, or why there is none (a version without a training profile)."""
    import matplotlib

    matplotlib.use("Agg")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(manifest.name)} {_e(manifest.version)}: monitoring</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(manifest.name)} {_e(manifest.version)}</h1>",
        f"<p class='meta'>{_e(manifest.task)} model{': ' + _e(manifest.target) if manifest.target else ''}. "
        f"Window {quality.since:%Y-%m-%d %H:%M} to {quality.until:%Y-%m-%d %H:%M} UTC "
        "(the time predictions were made).</p>",
    ]
    parts += _drift_section(drift)
    parts += _quality_section(quality)
    parts.append("</body></html>")
    return "\n".join(parts)


def _drift_section(drift: DriftReport | str) -> list[str]:
    parts = ["<h2>Drift against training</h2>"]
    if isinstance(drift, str):
        return [*parts, f"<p class='note'>{_e(drift)}</p>"]
    t = drift.thresholds
    parts.append(
        f"<p>{drift.rows:,} recorded predictions in the window; overall {_badge(drift.status)}. "
        f"Population stability index (PSI) over the training bins and a missing bin: below {t.watch:g} "
        f"stable, up to {t.drift:g} watch, above that drift; fewer than {t.min_rows} rows give no verdict. "
        "<em>noise</em> is the PSI chance alone gives on average with these row counts.</p>"
    )
    rows = [
        "<table><tr><th>feature</th><th>status</th><th>PSI</th><th>noise</th><th>missing: training</th>"
        "<th>missing: live</th><th>out of range / unseen</th></tr>"
    ]
    for e in drift.features:
        outside = e.out_of_range if e.kind == "number" else e.unseen
        rows.append(
            f"<tr><td>{_e(e.feature)}</td><td>{_badge(e.status)}</td><td>{_num(e.psi)}</td>"
            f"<td>{_num(e.noise)}</td><td>{_pct(e.missing_training)}</td><td>{_pct(e.missing_live)}</td>"
            f"<td>{_pct(outside)}</td></tr>"
        )
    rows.append("</table>")
    parts += rows
    parts.append("<div class='grid'>")
    for entry in sorted(drift.features, key=lambda e: -(e.psi or 0.0)):  # the most drifted first
        caption = f"{_e(entry.feature)}: {_badge(entry.status)} PSI {_num(entry.psi)}"
        parts.append(f"<figure><img alt='{_e(entry.feature)}' src='{_feature_plot(entry)}'>")
        parts.append(f"<figcaption>{caption}</figcaption></figure>")
    parts.append("</div>")
    return parts


def _quality_section(quality: QualityReport) -> list[str]:
    regression = quality.task is Task.REGRESSION
    metrics = ("mae", "rmse", "bias") if regression else ("accuracy", "log_loss", "ece")
    overall = quality.overall
    parts = ["<h2>Live quality from feedback</h2>"]
    exported = ", ".join(f"{_e(k)} {v:.4g}" for k, v in quality.exported.items())
    if not overall.count:
        return [
            *parts,
            "<p class='note'>No prediction of the window has feedback yet: report ground truths with "
            "<code>POST /predictions/{id}/feedback</code> to measure the live quality.</p>",
            f"<p>At export: {exported}.</p>",
        ]
    parts.append(
        f"<p>{overall.count:,} predictions of the window have feedback (the latest per prediction counts). "
        f"At export: {exported}.</p>"
    )
    head = "".join(f"<th>{m}</th>" for m in metrics)
    rows = [f"<table><tr><th>period (UTC)</th><th>labelled</th>{head}</tr>"]
    for q in [*quality.periods, overall]:
        when = "whole window" if q is overall else f"{q.start:%m-%d %H:%M} to {q.end:%m-%d %H:%M}"
        cells = "".join(f"<td>{_num(getattr(q, m))}</td>" for m in metrics)
        rows.append(f"<tr><td>{when}</td><td>{q.count:,}</td>{cells}</tr>")
    rows.append("</table>")
    parts += rows
    parts.append("<div class='grid'>")
    parts.append(f"<figure><img alt='quality over time' src='{_quality_plot(quality, metrics)}'>")
    parts.append("<figcaption>Quality per period; bars: labelled predictions.</figcaption></figure>")
    if overall.calibration:
        parts.append(f"<figure><img alt='calibration' src='{_calibration_plot(quality)}'>")
        parts.append(
            f"<figcaption>Calibration: predicted probability against what happened; ECE "
            f"{_num(overall.ece)}.</figcaption></figure>"
        )
    parts.append("</div>")
    return parts


# -- plots ------------------------------------------------------------------------------------------------


def _feature_plot(entry: FeatureDrift) -> str:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.2, 2.9), dpi=90)
    positions = np.arange(len(entry.bins))
    axes.bar(positions - 0.2, entry.training, width=0.4, color=_TRAINING, label="training")
    axes.bar(positions + 0.2, entry.live, width=0.4, color=_LIVE, label="live")
    axes.set_xticks(positions, [_short_label(b) for b in entry.bins], rotation=45, ha="right", fontsize=7)
    axes.set_ylabel("share of rows", fontsize=8)
    axes.tick_params(axis="y", labelsize=7)
    axes.set_title(
        f"{entry.feature}  (PSI {_num(entry.psi)}, {entry.status})", fontsize=9, color=_COLOURS[entry.status]
    )
    axes.legend(fontsize=7, frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    return _png(figure)


def _quality_plot(quality: QualityReport, metrics: tuple[str, ...]) -> str:
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.2, 2.9), dpi=90)
    spans = [(p.start, p.end) for p in quality.periods if p.start is not None and p.end is not None]
    middles = [float(mdates.date2num(start + (end - start) / 2)) for start, end in spans]  # type: ignore[no-untyped-call]
    days = [(end - start).total_seconds() / 86400 for start, end in spans]
    counts = axes.twinx()
    counts.bar(middles, [p.count for p in quality.periods], width=[d * 0.8 for d in days], color="#eceff1")
    counts.set_ylabel("labelled", fontsize=8)
    counts.tick_params(labelsize=7)
    axes.set_zorder(counts.get_zorder() + 1)
    axes.patch.set_visible(False)
    for metric, colour in zip(metrics[:2], (_LIVE, "#ef6c00"), strict=True):
        values = [getattr(p, metric) for p in quality.periods]
        axes.plot(middles, [np.nan if v is None else v for v in values], "o-", color=colour, label=metric)
        exported = quality.exported.get(metric)
        if exported is not None:
            axes.axhline(exported, color=colour, linestyle=":", linewidth=1, label=f"{metric} at export")
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))  # type: ignore[no-untyped-call]
    axes.legend(fontsize=7, frameon=False)
    axes.tick_params(labelsize=7)
    figure.autofmt_xdate()
    return _png(figure)


def _calibration_plot(quality: QualityReport) -> str:
    import matplotlib.pyplot as plt

    table = quality.overall.calibration or ()
    figure, axes = plt.subplots(figsize=(5.2, 2.9), dpi=90)
    axes.plot([0, 1], [0, 1], ":", color="#9e9e9e", label="perfect")
    axes.plot([b.predicted for b in table], [b.observed for b in table], "o-", color=_LIVE, label="live")
    for b in table:
        axes.annotate(
            str(b.count), (b.predicted, b.observed), fontsize=6, xytext=(3, 3), textcoords="offset points"
        )
    what = "positive class" if quality.task is Task.BINARY else "predicted class"
    axes.set_xlabel(f"predicted probability ({what})", fontsize=8)
    axes.set_ylabel("observed share", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.legend(fontsize=7, frameon=False)
    return _png(figure)


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# -- text -------------------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _badge(status: str) -> str:
    return f"<span class='badge' style='background:{_COLOURS[status]}'>{_e(status)}</span>"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _short_label(label: str) -> str:
    return label if len(label) <= 22 else label[:20] + "…"
