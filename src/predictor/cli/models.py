"""`predictor train` (the reference bundles) and `predictor predict` (every record of a file)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

from predictor.cli.common import domain_errors
from predictor_core import PredictorError

F = TypeVar("F", bound=Callable[..., Any])

_READERS = {".csv": "read_csv", ".parquet": "read_parquet"}


@click.command()
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Rebuild every reference model.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Bundle root to write to (default: the package's own reference bundles).",
)
@domain_errors
def train(names: tuple[str, ...], all_: bool, out: Path | None) -> None:
    """Retrain reference models (breast_cancer, penguins, diabetes) and export them through the parity gate.

    Deterministic: same data split and seeds, so the same predictions (and, with the same library
    versions, the same model.onnx hash).
    """
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from predictor_onnx import read_bundle, reference_root
    from predictor_onnx.reference.recipes import RECIPES, build

    if all_ == bool(names):
        raise click.UsageError("name the models to train, or pass --all (not both)")
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        raise click.UsageError(f"no reference model {', '.join(unknown)}; known: {', '.join(RECIPES)}")
    root = out or reference_root()
    chosen = list(RECIPES) if all_ else list(names)
    console = Console(stderr=True)
    table = Table("model", "version", "metrics", "parity max |Δ|", "sha256", "hash vs before")
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("training", total=len(chosen))
        for name in chosen:
            bar.update(task, description=f"training, exporting and checking parity: {name}")
            before = _sha256_or_none(read_bundle, root / name / RECIPES[name].version)
            manifest, _ = read_bundle(build(name, root))
            metrics = {k: v for k, v in manifest.metrics.items() if k != "parity_max_abs_diff"}
            table.add_row(
                name,
                manifest.version,
                ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()),
                f"{manifest.metrics['parity_max_abs_diff']:.2g}",
                manifest.sha256[:12],
                "new" if before is None else "same" if before == manifest.sha256 else "changed",
            )
            bar.advance(task)
    console.print(table)
    console.print(f"bundles written under {root}")


def _sha256_or_none(read: Callable[[Path], Any], path: Path) -> str | None:
    try:
        return str(read(path)[0].sha256)
    except PredictorError:
        return None


@click.command("predict")
@click.option("--model", "model", help="Model name or bundle path (default: the configured default model).")
@click.option("--version", "version", help="Model version (default: the newest).")
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Records to predict: .csv, .parquet, or .json (one object or a list of objects).",
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write (.csv, .parquet or .json); default: standard output.",
)
@click.option("--record", is_flag=True, help="Also record inputs and predictions in the database.")
@domain_errors
def predict_command(
    model: str | None, version: str | None, input_path: Path, output_path: Path | None, record: bool
) -> None:
    """Predict every record of a file; tables come back as the input plus prediction columns."""
    import pandas as pd

    from predictor.facade import predict

    suffix = input_path.suffix.lower()
    if suffix == ".json":
        try:
            data = msgspec.json.decode(input_path.read_bytes())
        except msgspec.DecodeError as exc:
            raise click.ClickException(f"{input_path} is not valid JSON: {exc}") from exc
        predictions = predict(data, model=model, version=version, record=record)
        _write_json(predictions, output_path)
        return
    if suffix not in _READERS:
        raise click.ClickException(f"cannot read {input_path.name}: use .csv, .parquet or .json")
    try:
        frame = getattr(pd, _READERS[suffix])(input_path)
    except (ValueError, ImportError, OSError) as exc:
        raise click.ClickException(f"cannot read {input_path}: {exc}") from exc
    predictions = predict(frame, model=model, version=version, record=record)
    clashes = {c: f"{c}_predicted" for c in predictions.columns if c in frame.columns}
    result = pd.concat([frame, predictions.rename(columns=clashes)], axis=1)
    if output_path is None:
        result.to_csv(sys.stdout, index=False)
    elif output_path.suffix.lower() == ".parquet":
        result.to_parquet(output_path, index=False)
    elif output_path.suffix.lower() == ".json":
        result.to_json(output_path, orient="records", indent=2)
    else:
        result.to_csv(output_path, index=False)


def _write_json(predictions: Any, output_path: Path | None) -> None:
    data = msgspec.json.format(msgspec.json.encode(predictions), indent=2) + b"\n"
    if output_path is None:
        sys.stdout.buffer.write(data)
    else:
        output_path.write_bytes(data)


commands: list[click.Command] = [train, predict_command]
