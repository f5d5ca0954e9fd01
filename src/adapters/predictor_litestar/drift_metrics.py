"""Drift on /metrics: gauges per served model version and feature, set from the monitor's reports.

The wiring refreshes them every `drift_refresh` seconds (`Wiring.drift_watcher`) over the last
`drift_window` of recorded predictions, for the version each model name serves now. Labels are bounded
by what the server knows: model names and versions it serves, the features of their schemas and the
outputs (`output.label`...); a version that stops being served has its series removed, and at most
`MAX_SERIES` feature series exist at once.

- `predictor_drift_psi{model,version,feature}`: the PSI of the window against training;
- `predictor_drift_status{model,version,feature}`: 0 stable, 1 watch, 2 drift, -1 insufficient rows;
- `predictor_drift_rows{model,version}`: predictions in the window;
- `predictor_drift_refreshed_timestamp_seconds{model,version}`: when the window was last summarised.

With several workers each one refreshes (counting what each served version recorded since its last)
and the most recent value is shown (`multiprocess_mode="mostrecent"`).
"""

from __future__ import annotations

import math
import threading

from prometheus_client import CollectorRegistry, Gauge

from predictor_core import DriftReport

__all__ = ["MAX_SERIES", "STATUS_VALUES", "DriftGauges"]

MAX_SERIES = 2000
"""Most (model, version, feature) series at once; reports beyond are not shown."""
STATUS_VALUES = {"insufficient": -1, "stable": 0, "watch": 1, "drift": 2}


class DriftGauges:
    """The drift gauges, in a registry of the server's metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        """Create the gauges in `registry` (the server's own: several apps may share a process in tests)."""
        labels = ["model", "version", "feature"]
        self.psi = Gauge(
            "predictor_drift_psi",
            "PSI of the recorded features and outputs of the last drift window against training.",
            labels,
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.status = Gauge(
            "predictor_drift_status",
            "Drift status per feature and output: 0 stable, 1 watch, 2 drift, -1 too few rows.",
            labels,
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.rows = Gauge(
            "predictor_drift_rows",
            "Recorded predictions in the last drift window.",
            ["model", "version"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.refreshed = Gauge(
            "predictor_drift_refreshed_timestamp_seconds",
            "When the drift window of a model version was last summarised (Unix time).",
            ["model", "version"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self._shown: dict[tuple[str, str], set[str]] = {}
        self._lock = threading.Lock()

    def update(self, report: DriftReport) -> None:
        """Show one version's report; a version no longer in `served` is removed by `keep`."""
        key = (report.model, report.version)
        with self._lock:
            known = self._shown.setdefault(key, set())
            room = MAX_SERIES - sum(len(features) for features in self._shown.values())
            for entry in report.features:
                if entry.feature not in known:
                    if room <= 0:
                        continue
                    known.add(entry.feature)
                    room -= 1
                labels = (report.model, report.version, entry.feature)
                self.psi.labels(*labels).set(math.nan if entry.psi is None else entry.psi)
                self.status.labels(*labels).set(STATUS_VALUES[entry.status])
            self.rows.labels(*key).set(report.rows)
            self.refreshed.labels(*key).set(report.until.timestamp())

    def keep(self, served: set[tuple[str, str]]) -> None:
        """Remove the series of every version not in `served` (model, version)."""
        with self._lock:
            for key in [k for k in self._shown if k not in served]:
                for feature in self._shown.pop(key):
                    self.psi.remove(*key, feature)
                    self.status.remove(*key, feature)
                self.rows.remove(*key)
                self.refreshed.remove(*key)
