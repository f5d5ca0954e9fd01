"""`predictor monitor ...`: drift and live quality of a model version, straight from the audit trail.

`drift` compares a window of recorded inputs and outputs with the training profile the bundle carries;
`quality` judges the window's predictions by the feedback received for them; `report` writes both as one
self-contained HTML page with a plot per feature. The database is the one the server records into
(`--database-url`, else DATABASE_URL or the settings, else the local SQLite file).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import msgspec

from predictor.cli.common import domain_errors, when

if TYPE_CHECKING:
    from predictor_core import DriftReport, DriftThresholds, ModelMonitor, QualityReport

__all__ = ["commands", "monitor"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_STYLE = {"stable": "green", "watch": "yellow", "drift": "bold red", "insufficient": "dim"}
FAILED_STATUS = 3
"""Exit status of `monitor drift --fail-on` when an entry reached that status (1 is an error, 2 usage)."""


def _window_options(command: F) -> F:
    """The version, window and database options every monitor command shares."""
    for option in reversed(
        [
            click.argument("name"),
            click.option("--version", "version", help="Model version (default: the one NAME serves)."),
            click.option("--since", help="Window start, UTC, inclusive (default: a day before --until)."),
            click.option("--until", help="Window end, UTC, exclusive (default: now)."),
            click.option(
                "--database-url",
                envvar="DATABASE_URL",
                help="SQLAlchemy URL of the audit trail (default: settings, then the local SQLite file).",
            ),
        ]
    ):
        command = option(command)
    return command


def _with_monitor(database_url: str | None, work: Callable[[ModelMonitor], Awaitable[T]]) -> T:
    """Run `work` with the monitor of a started wiring (the database holds the recorded predictions)."""
    from predictor.settings import Settings
    from predictor.wiring import Wiring

    async def main() -> T:
        wiring = Wiring(Settings.load(record=True, database_url=database_url))
        assert wiring.monitor is not None  # recording is on: there is a store
        await wiring.start()
        try:
            return await work(wiring.monitor)
        finally:
            await wiring.close()

    return asyncio.run(main())


def _window(monitor: ModelMonitor, since: str | None, until: str | None) -> tuple[dt.datetime, dt.datetime]:
    try:
        return monitor.window(when(since), when(until))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since/--until") from None


@click.group()
def monitor() -> None:
    """Drift and live quality of model versions, from the recorded predictions and their feedback."""


@monitor.command()
@_window_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option(
    "--watch", type=click.FloatRange(min=0, min_open=True), help="PSI from which a feature is `watch`."
)
@click.option("--drift", type=click.FloatRange(min=0, min_open=True), help="PSI above which it is `drift`.")
@click.option("--min-rows", type=click.IntRange(min=1), help="Fewest rows in the window for a verdict.")
@click.option(
    "--fail-on",
    type=click.Choice(["watch", "drift"]),
    help=f"Exit with status {FAILED_STATUS} when any feature or output reaches this status (for cron, CI).",
)
@domain_errors
def drift(
    name: str,
    version: str | None,
    since: str | None,
    until: str | None,
    database_url: str | None,
    fmt: str,
    watch: float | None,
    drift: float | None,
    min_rows: int | None,
    fail_on: str | None,
) -> None:
    """PSI of every feature and output of model NAME over a window, against its training profile.

    Statuses follow the PSI convention: below 0.1 stable, 0.1 to 0.2 watch, above 0.2 drift (change
    them with --watch and --drift); fewer rows than --min-rows (default 500) are `insufficient`.
    """

    async def work(monitor: ModelMonitor) -> DriftReport:
        start, end = _window(monitor, since, until)
        thresholds = _thresholds(monitor.thresholds, watch, drift, min_rows)
        return await monitor.drift(name, version, since=start, until=end, thresholds=thresholds)

    report = _with_monitor(database_url, work)
    if fmt == "json":
        click.echo(msgspec.json.encode(report).decode())
    else:
        _print_drift(report)
    reached = {"watch": ("watch", "drift"), "drift": ("drift",)}.get(fail_on or "", ())
    if any(entry.status in reached for entry in report.features):
        sys.exit(FAILED_STATUS)


def _thresholds(
    default: DriftThresholds, watch: float | None, drift: float | None, min_rows: int | None
) -> DriftThresholds:
    chosen = msgspec.structs.asdict(default) | {
        k: v for k, v in {"watch": watch, "drift": drift, "min_rows": min_rows}.items() if v is not None
    }
    try:
        return type(default)(**chosen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--watch/--drift") from None


def _print_drift(report: DriftReport) -> None:
    from rich.console import Console
    from rich.table import Table

    title = (
        f"{report.model} {report.version}: {report.rows:,} predictions from {report.since:%Y-%m-%d %H:%M} "
        f"to {report.until:%Y-%m-%d %H:%M} UTC"
    )
    table = Table(title=title)
    for column in ("feature", "status", "psi", "noise", "missing (train → live)", "out of range / unseen"):
        table.add_column(column, justify="left" if column in ("feature", "status") else "right")
    for e in report.features:
        missing = f"{e.missing_training:.1%} → {_share(e.missing_live)}"
        outside = _share(e.out_of_range if e.kind == "number" else e.unseen)
        table.add_row(
            e.feature,
            f"[{_STYLE[e.status]}]{e.status}[/]",
            _number(e.psi),
            _number(e.noise),
            missing,
            outside,
        )
    console = Console()
    console.print(table)
    t = report.thresholds
    console.print(
        f"status {report.status}; PSI < {t.watch:g} stable, up to {t.drift:g} watch, above drift; "
        f"fewer than {t.min_rows} rows: insufficient. noise: the PSI of chance alone."
    )


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


@monitor.command()
@_window_options
@click.option("--periods", default=10, show_default=True, type=click.IntRange(min=1), help="Periods shown.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@domain_errors
def quality(
    name: str,
    version: str | None,
    since: str | None,
    until: str | None,
    database_url: str | None,
    periods: int,
    fmt: str,
) -> None:
    """Live quality of model NAME from feedback: accuracy, log-loss, calibration, or MAE and RMSE."""

    async def work(monitor: ModelMonitor) -> QualityReport:
        start, end = _window(monitor, since, until)
        return await monitor.quality(name, version, since=start, until=end, periods=periods)

    report = _with_monitor(database_url, work)
    if fmt == "json":
        click.echo(msgspec.json.encode(report).decode())
        return
    from rich.console import Console
    from rich.table import Table

    regression = report.task == "regression"
    metrics = ("mae", "rmse", "bias") if regression else ("accuracy", "log_loss", "ece")
    table = Table(title=f"{report.model} {report.version}: live quality from feedback")
    table.add_column("period (UTC)")
    table.add_column("labelled", justify="right")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for q in [*report.periods, report.overall]:
        when = "whole window" if q is report.overall else f"{q.start:%m-%d %H:%M} → {q.end:%m-%d %H:%M}"
        table.add_row(when, str(q.count), *(_number(getattr(q, m)) for m in metrics))
    console = Console()
    console.print(table)
    exported = ", ".join(f"{k} {v:.4g}" for k, v in report.exported.items())
    console.print(f"at export: {exported}")


@monitor.command()
@_window_options
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file to write (self-contained: plots are embedded).",
)
@click.option("--periods", default=10, show_default=True, type=click.IntRange(min=1))
@domain_errors
def report(
    name: str,
    version: str | None,
    since: str | None,
    until: str | None,
    database_url: str | None,
    out: Path,
    periods: int,
) -> None:
    """One HTML page for model NAME: training vs live per feature and output, and quality over time."""
    from predictor_core import ProfileMissing

    try:
        from predictor.monitor_report import render_report
    except ImportError as exc:  # matplotlib comes with the `train` extra
        raise click.ClickException(f"the report needs matplotlib (the `train` extra): {exc}") from exc

    async def work(monitor: ModelMonitor) -> tuple[Any, DriftReport | str, QualityReport]:
        start, end = _window(monitor, since, until)
        manifest = await monitor.manifest(name, version)
        drifted: DriftReport | str
        try:
            drifted = await monitor.drift(manifest.name, manifest.version, since=start, until=end)
        except ProfileMissing as exc:
            drifted = str(exc)
        judged = await monitor.quality(
            manifest.name, manifest.version, since=start, until=end, periods=periods
        )
        return manifest, drifted, judged

    manifest, drifted, judged = _with_monitor(database_url, work)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(manifest, drifted, judged), encoding="utf-8")
    click.echo(f"report of {manifest.name} {manifest.version} written to {out}")


commands: list[click.Command] = [monitor]
