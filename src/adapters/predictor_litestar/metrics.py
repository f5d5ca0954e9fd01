"""Prometheus metrics of the HTTP server: what it answered, how fast, where the time went, what it refused.

Names follow the Prometheus conventions: the `predictor_` prefix, seconds, `_total` counters, and label
values bounded by what the server knows (route templates, status codes, HTTP methods, model versions,
the features and rules of their schemas), never by what a client sends.

One process counts in memory. With `predictor serve --workers N` every worker writes its counts to its
own files in one private directory (prometheus_client's multiprocess mode: `PROMETHEUS_MULTIPROC_DIR` is
set by `serve` before the workers start, and the directory is new for each run), and each `/metrics`
answer sums the files of every worker. Two things keep that directory from growing with worker restarts
(prometheus/client_python#275, BerriAI/litellm#28713): a worker that stops removes its live gauges
(`mark_process_dead`), and `sweep` folds the counters and histograms of every worker that is gone into
one archive file per type, then deletes its files, so no count is lost and no file is left behind. The
sweep runs when a worker starts and before every scrape, under a lock the scrapes also take.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import threading
from collections import Counter as Tally
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from predictor_core import ModelIdentity, ModelManifest, ModelRegistry, PredictorError, ValidationFailed

__all__ = [
    "CONTENT_TYPE",
    "METHODS",
    "OTHER",
    "UNMATCHED",
    "ServerMetrics",
    "is_loopback",
    "sweep",
]

CONTENT_TYPE = "text/plain; version=0.0.4"
"""The text exposition format every Prometheus version reads (Litestar adds `; charset=utf-8`)."""
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods counted by name; any other is counted as "OTHER" (a client may send any token)."""
OTHER = "(other)"
"""The label value of everything beyond a bounded set: a feature the schema lacks, a method, ..."""
UNMATCHED = "(unmatched)"
"""The route label of a request no route matched (404, 405)."""
RECORD = "(record)"
"""The feature label of a problem with a whole record (not a mapping, an empty batch...)."""
MAX_FAILURE_SERIES = 1000
"""Most (model, feature, code) series of validation failures one process creates; then feature="(other)"."""
_LOCK_FILE = ".sweep.lock"
_MmapedDict: Any = MmapedDict  # untyped in prometheus_client
_mark_process_dead: Any = mark_process_dead
_MultiProcessCollector: Any = MultiProcessCollector
_disable_created_metrics: Any = disable_created_metrics
_ARCHIVED = ("counter", "histogram", "summary")


class ServerMetrics:
    """The server's Prometheus metrics, in memory or, in multiprocess mode, in the shared directory.

    Every label value comes from a bounded set; the methods that count turn anything else into OTHER.
    """

    def __init__(self) -> None:
        """Create the metrics in a registry of their own (several apps may live in one test process)."""
        self.multiprocess = bool(getattr(values.ValueClass, "_multiprocess", False))
        """Whether prometheus_client writes to `PROMETHEUS_MULTIPROC_DIR` (decided when it was imported)."""
        self.directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") if self.multiprocess else None
        _disable_created_metrics()  # `_created` series would double the count of series, for nothing here
        self.registry = registry = CollectorRegistry()
        if not self.multiprocess:  # process metrics cannot be summed across processes
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        http = ["method", "route", "status"]
        self.requests = Counter(
            "predictor_http_requests",
            "HTTP requests answered, by route template and status.",
            http,
            registry=registry,
        )
        self.duration = Histogram(
            "predictor_http_request_duration_seconds",
            "Time from the request's arrival to the end of its answer.",
            http,
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.stages = Histogram(
            "predictor_stage_duration_seconds",
            "Time in each stage of a prediction call (decode, validate, infer, record), per model version.",
            ["model", "version", "stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.validation_failures = Counter(
            "predictor_validation_failures",
            "Invalid values refused by validation, by model, feature (or rule) and problem code.",
            ["model", "feature", "code"],
            registry=registry,
        )
        self.store_unavailable = Counter(
            "predictor_store_unavailable",
            "Requests answered 503 because the prediction store could not commit or be reached.",
            registry=registry,
        )
        self.in_flight = Gauge(
            "predictor_http_requests_in_flight",
            "Requests being handled now, health probes and scrapes aside (summed over live workers).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.max_in_flight = Gauge(
            "predictor_http_max_in_flight",
            "The bound on requests in flight (summed over live workers); 0 when unbounded.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.shed = Counter(
            "predictor_http_shed",
            "Requests refused at once with 503 because the worker had its bound of requests in flight.",
            registry=registry,
        )
        self.rate_limited = Counter(
            "predictor_rate_limited",
            "Requests refused with 429 because their API key was over its rate limit.",
            registry=registry,
        )
        self.model_info = Gauge(
            "predictor_model_info",
            "1 for each model version loaded in a live worker, with its ONNX hash and execution provider.",
            ["model", "version", "sha256", "provider"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self._models: ModelRegistry | None = None
        self._shown: dict[ModelIdentity, tuple[str, str, str, str]] = {}
        self._features: dict[ModelIdentity, frozenset[str]] = {}
        self._failure_series: set[tuple[str, str, str]] = set()
        self._children: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()

    # -- counting (called on the event loop, once or a few times per request) -------------------------

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request."""
        labels = (method if method in METHODS else "OTHER", route, str(status))
        children = self._children.get(labels)
        if children is None:
            children = self._children[labels] = (
                self.requests.labels(*labels),
                self.duration.labels(*labels),
            )
        children[0].inc()
        children[1].observe(seconds)
        if status == 429:
            self.rate_limited.inc()

    def stage(self, model: ModelIdentity, stage: str, seconds: float) -> None:
        """One stage of one prediction call."""
        key = (model, stage)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.stages.labels(model.name, model.version, stage)
            self.show_model(model)
        child.observe(seconds)

    def invalid(self, manifest: ModelManifest, failure: ValidationFailed) -> None:
        """The problems of one refused call, counted per (feature or rule, code)."""
        known = self._features.get(manifest.identity)
        if known is None:
            schema = manifest.schema
            known = frozenset([f.name for f in schema.features] + [r.name for r in schema.rules])
            self._features[manifest.identity] = known
        tally = Tally(
            (_feature_label(p.loc, known), str(p.code)) for p in failure.problems
        )  # many problems, few distinct labels: one inc per label set
        for (feature, code), count in tally.items():
            labels = (manifest.name, feature, code)
            if labels not in self._failure_series:
                if len(self._failure_series) >= MAX_FAILURE_SERIES:
                    labels = (manifest.name, OTHER, code)
                self._failure_series.add(labels)
            self.validation_failures.labels(*labels).inc(count)

    # -- models ---------------------------------------------------------------------------------------

    def track(self, models: ModelRegistry) -> None:
        """Show the versions `models` has loaded in `predictor_model_info` (at start, scrape, first use)."""
        self._models = models

    def show_model(self, identity: ModelIdentity) -> None:
        """Set the info series of a loaded version, with the provider it really runs on."""
        if identity in self._shown or self._models is None:
            return
        try:
            execution = self._models.describe(identity.name, identity.version, load=False).execution
        except PredictorError:  # its bundle went away meanwhile
            return
        if execution is None:  # not loaded (any more)
            return
        provider = execution.providers[0] if execution.providers else "unknown"
        labels = (identity.name, identity.version, identity.sha256, provider)
        self.model_info.labels(*labels).set(1)
        self._shown[identity] = labels

    def sync_models(self) -> None:
        """Bring `predictor_model_info` in line with the loaded versions (evicted ones go to 0)."""
        if self._models is None:
            return
        loaded = set(self._models.loaded())
        for identity in list(self._shown):
            if identity not in loaded:
                self.model_info.labels(*self._shown.pop(identity)).set(0)
        for identity in loaded:
            self.show_model(identity)

    # -- exposition and the multiprocess directory ----------------------------------------------------

    def render(self) -> bytes:
        """The text exposition of every metric: this process's, or every worker's in multiprocess mode.

        Blocking (a file lock and file reads in multiprocess mode): call it from a worker thread, after
        `sync_models` on the event loop.
        """
        if self.directory is None:
            return generate_latest(self.registry)
        with self._lock, _locked(self.directory):
            _sweep(Path(self.directory))
            registry = CollectorRegistry()
            _MultiProcessCollector(registry, path=self.directory)
            return generate_latest(registry)

    def start(self, max_in_flight: int | None) -> None:
        """At a worker's start: sweep what exited workers left, publish this worker's bound."""
        self.max_in_flight.set(max_in_flight or 0)
        self.sync_models()
        if self.directory is not None:
            sweep(self.directory)

    def stop(self) -> None:
        """At a worker's exit: its live gauges (in flight, bound, model info) leave the sums."""
        if self.directory is not None:
            with contextlib.suppress(OSError):
                _mark_process_dead(os.getpid(), self.directory)


def _feature_label(loc: tuple[int | str, ...], known: frozenset[str]) -> str:
    names = [part for part in loc if isinstance(part, str)]
    if not names:
        return RECORD
    return names[-1] if names[-1] in known else OTHER


def is_loopback(host: str | None) -> bool:
    """Whether a client address is a loopback one (127.0.0.0/8, ::1); False for anything unparsable."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (a zombie counts: it is swept once its parent reaps it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextlib.contextmanager
def _locked(directory: str | Path) -> Iterator[None]:
    fd = os.open(Path(directory) / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def sweep(directory: str | Path) -> list[int]:
    """Fold the files of exited processes into the archives and delete them; the pids swept.

    Counters, histograms and summaries add up, so a dead worker's values are added to
    `<type>_archive.db` (read by the collector like any worker's file) and its own file is removed:
    totals stay exact and the directory holds at most one file per type and live worker, plus the
    archives. Gauges of the dead are dropped, as `mark_process_dead` would.
    """
    with _locked(directory):
        return _sweep(Path(directory))


def _sweep(directory: Path) -> list[int]:
    dead: dict[int, list[Path]] = {}
    for path in directory.glob("*.db"):
        pid_text = path.stem.rsplit("_", 1)[-1]
        if not pid_text.isdigit():  # the archives
            continue
        pid = int(pid_text)
        if pid != os.getpid() and not pid_alive(pid):
            dead.setdefault(pid, []).append(path)
    for files in dead.values():
        for path in sorted(files):
            kind = path.name.split("_", 1)[0]
            if kind in _ARCHIVED:
                _archive(directory / f"{kind}_archive.db", path)
            path.unlink(missing_ok=True)
    return sorted(dead)


def _archive(archive: Path, dead: Path) -> None:
    rows = _MmapedDict.read_all_values_from_file(str(dead))
    into = _MmapedDict(str(archive))
    try:
        for key, value, timestamp, _ in rows:
            total, _ = into.read_value(key)
            into.write_value(key, total + value, timestamp)
    finally:
        into.close()
