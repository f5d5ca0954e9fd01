r"""`predictor export`, `predictor schema infer` and `predictor card`: a model file to a served bundle.

    predictor schema infer --data train.csv --target churned > schema.toml
    predictor export model.joblib --data train.csv --target churned --name churn --version 1.0.0 \\
        --schema schema.toml --test-data test.csv

Model files are joblib or pickle files (unpickling runs code from the file: only load files you trust)
or skops files (`pip install skops`), which load without running code, and only when every type they
hold is trusted by skops or is a class of scikit-learn, numpy or scipy.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from predictor.cli.common import domain_errors

__all__ = ["commands"]

F = TypeVar("F", bound=Callable[..., Any])
_TRUSTED_LIBRARIES = frozenset({"sklearn", "numpy", "scipy"})
"""Types a skops file may hold beyond skops' own defaults: classes of these libraries (numpy.dtype...)."""
_READERS = {".csv": "read_csv", ".parquet": "read_parquet", ".pq": "read_parquet"}
_STAGES = {
    "schema": "inferring and checking the schema",
    "conversion": "converting to ONNX",
    "parity": "checking parity with your pipeline on every row",
    "metrics": "measuring metrics",
    "writing": "writing the bundle",
    "card": "drawing the model card",
}


_existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("export")
@click.argument("model_file", type=_existing_file)
@click.option(
    "--data", "data_path", required=True, type=_existing_file, help="Training rows: .csv or .parquet."
)
@click.option("--target", required=True, help="The target column of the data files.")
@click.option("--name", required=True, help="The model's name, as callers will address it.")
@click.option("--version", "version", required=True, help="The model version, e.g. 1.0.0.")
@click.option(
    "--schema", "schema_path", type=_existing_file, help="schema.toml refining the inferred schema."
)
@click.option("--test-data", type=_existing_file, help="Held-out rows for the metrics (.csv or .parquet).")
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Measure metrics on this fraction of --data instead.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Bundle root; the bundle goes to OUT/NAME/VERSION "
    "[default: the first PREDICTOR_MODEL_DIRS root, else ./models].",
)
@click.option("--description", default="", help="What the model is, for the model card and the API.")
@click.option(
    "--positive-class", help="Binary models: the class the probability is about [default: the second]."
)
@click.option("--no-card", is_flag=True, help="Do not write the model card.")
@domain_errors
def export_command(
    model_file: Path,
    data_path: Path,
    target: str,
    name: str,
    version: str,
    schema_path: Path | None,
    test_data: Path | None,
    test_fraction: float | None,
    out: Path | None,
    description: str,
    positive_class: str | None,
    no_card: bool,
) -> None:
    """Export a fitted scikit-learn pipeline file as a verified bundle that `predictor serve` can load.

    The pipeline is used as fitted: the ONNX graph must reproduce its own predictions on every row
    of the data (the parity gate) before anything is written.
    """
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from predictor.export import export, print_report

    if test_data is not None and test_fraction is not None:
        raise click.UsageError("pass --test-data or --test-fraction, not both")
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task(f"loading {model_file.name}", total=None)
        pipeline = load_model_file(model_file, console)
        bar.update(task, description=f"reading {data_path.name}")
        X, y = read_table(data_path, target)
        test: Any = test_fraction
        if test_data is not None:
            bar.update(task, description=f"reading {test_data.name}")
            test = read_table(test_data, target)
        bundle = export(
            pipeline,
            X,
            y,
            name=name,
            version=version,
            out=out,
            schema=schema_path,
            positive_class=_label(positive_class, y),
            description=description,
            target=target,
            test=test,
            card=not no_card,
            report=False,
            on_step=lambda stage: bar.update(task, description=_STAGES.get(stage, stage)),
        )
    print_report(bundle, Console())


def _label(value: str | None, y: Any) -> Any:
    """A --positive-class given as text, in the type of the target's values (1 for an int target)."""
    if value is None:
        return None
    for known in set(y.tolist()):
        if str(known) == value:
            return known
    raise click.BadParameter(f"{value!r} is not a value of the target", param_hint="--positive-class")


def load_model_file(path: Path, console: Any) -> Any:
    """A fitted estimator from a joblib/pickle file (with a warning) or a skops file (trusted types only).

    Raises:
        click.ClickException: the file cannot be read, or a skops file holds types not trusted by default.
    """
    if path.suffix.lower() == ".skops":
        try:
            import skops.io as sio
        except ImportError as exc:
            raise click.ClickException("reading .skops files needs skops: pip install skops") from exc
        untrusted = _untrusted(sio, path)
        library = [t for t in untrusted if t.split(".")[0] in _TRUSTED_LIBRARIES]
        unknown = sorted(set(untrusted) - set(library))
        if unknown:
            raise click.ClickException(
                f"skops will not load {path.name}: it holds types from outside scikit-learn, numpy and scipy "
                f"({', '.join(unknown)}). Check them, then load the file yourself with "
                "skops.io.load(path, trusted=[...]) and call predictor.export"
            )
        try:
            return sio.load(path, trusted=library)
        except Exception as exc:  # skops raises its own errors for files it cannot read
            raise click.ClickException(f"cannot load {path}: {exc}") from exc
    console.print(
        f"[yellow]warning[/yellow]: unpickling {path.name} runs code from the file; only export files you "
        "trust (skops files load without running code)"
    )
    try:
        import joblib

        return joblib.load(path)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise click.ClickException(f"cannot load {path}: {exc}") from exc
    except (ModuleNotFoundError, AttributeError) as exc:
        raise click.ClickException(
            f"cannot load {path}: {exc} (it was saved with a library or class this environment lacks)"
        ) from exc


def _untrusted(sio: Any, path: Path) -> list[str]:
    try:
        return list(sio.get_untrusted_types(file=path))
    except Exception:  # the file may not be a skops file at all
        return []


def read_table(path: Path, target: str | None) -> tuple[Any, Any]:
    """Features and target from a .csv or .parquet file.

    Raises:
        click.ClickException: an unknown suffix, an unreadable file, a missing target column, or Parquet
            without pyarrow (naming the extra to install).
    """
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise click.ClickException(f"cannot read {path.name}: use .csv or .parquet")
    try:
        frame = getattr(pd, _READERS[suffix])(path)
    except ImportError as exc:
        raise click.ClickException(
            f"reading {path.name} needs pyarrow: pip install 'predictor-core[train]' (or pyarrow alone)"
        ) from exc
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from exc
    if target is None:
        return frame, None
    if target not in frame.columns:
        raise click.ClickException(
            f"{path.name} has no column {target!r}; columns: {', '.join(map(str, frame.columns))}"
        )
    return frame.drop(columns=[target]), frame[target]


@click.group("schema")
def schema_group() -> None:
    """Feature schemas: infer a starting schema.toml from training data."""


@schema_group.command("infer")
@click.option(
    "--data", "data_path", required=True, type=_existing_file, help="Training rows: .csv or .parquet."
)
@click.option("--target", help="The target column, left out of the features.")
@domain_errors
def schema_infer(data_path: Path, target: str | None) -> None:
    """Write a starting schema.toml to standard output: kinds, nullability, categories, observed ranges."""
    from predictor.schema_file import render_schema_file
    from predictor_onnx.export import training_summary
    from predictor_onnx.infer_schema import infer_schema

    X, _ = read_table(data_path, target)
    schema = infer_schema(X)
    stats = training_summary(schema, X, [], None).features
    click.echo(render_schema_file(schema, stats, source=data_path.name), nl=False)


@click.command("card")
@click.argument("model")
@click.option("--version", "version", help="Model version (default: the newest).")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the card to.",
)
@click.option(
    "--data",
    "data_path",
    type=_existing_file,
    help="Rows with their target to draw the performance plots from.",
)
@click.option("--target", help="The target column of --data.")
@domain_errors
def card(model: str, version: str | None, out: Path, data_path: Path | None, target: str | None) -> None:
    """Write the model card of a bundle (a model name or a bundle directory): Markdown and PNG plots.

    Metrics, schema, parity and training summary come from the manifest. Performance plots (ROC,
    precision-recall, confusion, calibration; predicted vs actual, residuals) need rows with their
    true target: pass --data and --target, and the bundle itself scores them.
    """
    from predictor.card import write_card
    from predictor.settings import Settings
    from predictor.wiring import Wiring
    from predictor_core import validate_columns
    from predictor_onnx import is_bundle_path
    from predictor_onnx.infer_schema import column_values

    if (data_path is None) != (target is None):
        raise click.UsageError("--data and --target go together")
    # a bundle directory is the default model of its own settings, pinned to its version
    named = None if is_bundle_path(model) else model
    settings = Settings.load(record=False) if named else Settings.load(record=False, model=model)
    registry = Wiring(settings).registry
    manifest = registry.resolve(named, version)
    y_true = outputs = None
    source = ""
    if data_path is not None:
        X, y = read_table(data_path, target)
        missing = [n for n in manifest.schema.names if n not in X.columns]
        if missing:
            raise click.ClickException(f"{data_path.name} lacks the model's features {', '.join(missing)}")
        batch = validate_columns(manifest.schema, {n: column_values(X[n]) for n in manifest.schema.names})
        outputs = registry.runtime(manifest.name, manifest.version).infer(batch)
        y_true = y.tolist()
        source = f"{len(y_true)} rows of {data_path.name}"
    written = write_card(manifest, out, y_true=y_true, outputs=outputs, data_source=source)
    click.echo(f"model card written to {written / 'README.md'}")


commands: list[click.Command] = [export_command, schema_group, card]
