"""`predictor db ...`: create and upgrade the schema, import reference data, query the audit trail.

The database is `--database-url`, else DATABASE_URL or the settings file, else the SQLite file in the user's
data directory (the same one the server and the notebook facade use).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import msgspec

from predictor.cli.common import when
from predictor_core import PredictorError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _filters(command: F) -> F:
    """The model, version and time-range options shared by the query commands."""
    for option in reversed(
        [
            click.option("--model", help="Only this model."),
            click.option("--version", "model_version", help="Only this model version."),
            click.option("--since", help="From this UTC date/time (inclusive, ISO 8601)."),
            click.option("--until", help="Up to this UTC date/time (exclusive, ISO 8601)."),
        ]
    ):
        command = option(command)
    return command


database_url_option = click.option(
    "--database-url",
    envvar="DATABASE_URL",
    help="SQLAlchemy URL (postgresql://... or sqlite:///...); default: settings, then a SQLite file.",
)


def _resolve(database_url: str | None) -> str:
    from predictor.settings import Settings

    return Settings.load(database_url=database_url).resolved_database_url()


@contextmanager
def _domain_errors() -> Iterator[None]:
    """Domain errors (database down, schema missing...) end the command with their message, no traceback."""
    try:
        yield
    except PredictorError as exc:
        raise click.ClickException(str(exc)) from exc


def _run(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(engine)` on a fresh engine, disposed afterwards."""
    from predictor_sql import create_engine

    async def main() -> T:
        engine = create_engine(url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    with _domain_errors():
        return asyncio.run(main())


@click.group()
def db() -> None:
    """The audit trail: schema, reference data sets and queries over recorded predictions."""


@db.command()
@database_url_option
@click.option("--revision", default="head", show_default=True, help="Alembic revision to upgrade to.")
def upgrade(database_url: str | None, revision: str) -> None:
    """Create the schema, or upgrade it to this release's revision (idempotent)."""
    from predictor_sql import is_unavailable
    from predictor_sql import upgrade as run_upgrade

    url = _resolve(database_url)
    try:
        run_upgrade(url, revision)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        raise click.ClickException(f"cannot reach the database: {exc}") from exc
    click.echo(f"schema at revision {revision} in {_redact(url)}")


def _redact(url: str) -> str:
    from predictor_sql import redacted_url

    return redacted_url(url)


@db.command("import-dataset")
@click.argument("name")
@database_url_option
def import_dataset(name: str, database_url: str | None) -> None:
    """Load the training data of reference model NAME (breast_cancer, penguins, diabetes); idempotent."""
    from rich.progress import Progress

    from predictor_sql.datasets import import_rows

    try:
        from predictor_onnx.reference.datasets import load_dataset
    except ImportError as exc:
        raise click.ClickException(f"the reference data sets need the `train` extra: {exc}") from exc
    try:
        dataset = load_dataset(name)
    except KeyError as exc:
        raise click.BadParameter(str(exc.args[0]), param_hint="NAME") from None
    frame = dataset.frame.astype(object)
    features = frame.where(frame.notna(), None).to_dict(orient="records")
    rows = list(zip(features, dataset.target.tolist(), strict=True))
    url = _resolve(database_url)
    with Progress(transient=True) as progress:
        task = progress.add_task(f"importing {name}", total=len(rows))
        result = _run(
            url,
            lambda engine: import_rows(
                engine, name, dataset.target_name, rows, progress=lambda n: progress.advance(task, n)
            ),
        )
    state = "imported" if result.changed else "already up to date"
    click.echo(f"{name}: {result.rows} rows {state} in {_redact(url)}")


@db.command()
@database_url_option
@_filters
@click.option("--label", help="Only predictions of this class.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@click.option("--features/--no-features", default=False, help="Include the input features.")
def predictions(
    database_url: str | None,
    model: str | None,
    model_version: str | None,
    since: str | None,
    until: str | None,
    label: str | None,
    limit: int,
    fmt: str,
    features: bool,
) -> None:
    """Recorded predictions, newest first."""
    from predictor_sql import queries

    rows = _run(
        _resolve(database_url),
        lambda engine: queries.predictions(
            engine,
            model=model,
            version=model_version,
            since=when(since),
            until=when(until),
            label=label,
            limit=limit,
        ),
    )
    columns = [c for c in queries.PREDICTION_COLUMNS if features or c != "features"]
    _emit(rows, columns, fmt, title="predictions")


@db.command()
@database_url_option
@_filters
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def stats(
    database_url: str | None,
    model: str | None,
    model_version: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
) -> None:
    """Counts per model, version and label; latency percentiles; live accuracy from feedback."""
    from predictor_sql import queries

    result = _run(
        _resolve(database_url),
        lambda engine: queries.stats(
            engine, model=model, version=model_version, since=when(since), until=when(until)
        ),
    )
    if fmt == "json":
        document = {"counts": result.counts, "latency": result.latency, "accuracy": result.accuracy}
        click.echo(msgspec.json.encode(document).decode())
        return
    _emit(result.counts, ["model", "version", "label", "predictions"], "table", title="predictions per label")
    _emit(
        result.latency,
        ["model", "version", "predictions", "p50_ms", "p95_ms", "p99_ms"],
        "table",
        title="latency (validation + inference, ms)",
    )
    _emit(
        result.accuracy,
        ["model", "version", "with_feedback", "correct", "accuracy", "mae"],
        "table",
        title="live accuracy (latest feedback per prediction)",
    )


@db.command()
@click.argument("name")
@database_url_option
@click.option("--since", help="From this UTC date/time (inclusive, ISO 8601).")
@click.option("--until", help="Up to this UTC date/time (exclusive, ISO 8601).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def compare(name: str, database_url: str | None, since: str | None, until: str | None, fmt: str) -> None:
    """Live against shadow answers of model NAME: label agreement, |Δ| of scores, accuracy with feedback."""
    from predictor_sql import queries

    rows = _run(
        _resolve(database_url),
        lambda engine: queries.compare(engine, name, since=when(since), until=when(until)),
    )
    if not rows and fmt == "table":
        click.echo(
            f"no shadow answers recorded for {name!r} (name a challenger: predictor models promote "
            f"{name} VERSION --alias shadow)"
        )
        return
    _emit(rows, queries.COMPARE_COLUMNS, fmt, title=f"{name}: live vs shadow")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return msgspec.json.encode(value).decode()
    return str(value)


def _emit(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str, *, title: str) -> None:
    if fmt == "json":
        click.echo(msgspec.json.encode([{c: r.get(c) for c in columns} for r in rows]).decode())
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_text(r.get(c)) for c in columns] for r in rows)
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for column in columns:  # an id is never cut: other columns wrap to make room for it
            wide = column == "prediction_id"
            table.add_column(column, no_wrap=wide, min_width=36 if wide else None)
        for row in rows:
            table.add_row(*(_text(row.get(c)) for c in columns))
        Console().print(table)


commands: list[click.Command] = [db]
