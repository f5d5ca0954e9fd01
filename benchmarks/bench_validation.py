"""Validation cost against inference cost, same batches, same process (issue #2's hot-path budget).

For each reference model: records per second of `validate_records` for 1 and 1,000 records, and the
ratio validation time / `OnnxRuntime.infer` time on the very same validated batch. Below 1.0 means
validating costs less than running the model. Also times the thorough path (every value walked), which
only invalid input pays.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from predictor_core import validate_records
from predictor_core.validation import _plan
from predictor_onnx import BundleDirectory, reference_root
from predictor_onnx.reference.datasets import load_dataset


def median_seconds(fn: Callable[[], object], *, budget: float = 0.5, min_runs: int = 5) -> float:
    runs: list[float] = []
    deadline = time.perf_counter() + budget
    while len(runs) < min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def records_of(name: str, size: int) -> list[dict[str, object]]:
    frame = load_dataset(name).frame
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [rows[i % len(rows)] for i in range(size)]


def main() -> None:
    source = BundleDirectory([reference_root()])
    table = Table(title="validation vs inference (median of repeated runs, one process)")
    for column in (
        "model",
        "records",
        "validate rec/s",
        "infer rec/s",
        "validate / infer",
        "thorough / fast",
    ):
        table.add_column(column, justify="right")
    for name in ("breast_cancer", "penguins", "diabetes"):
        runtime = source.load(name, "1.0.0")
        schema = runtime.manifest.schema
        for size in (1, 1000):
            records = records_of(name, size)
            batch = validate_records(schema, records)
            validate = median_seconds(lambda s=schema, r=records: validate_records(s, r))
            infer = median_seconds(lambda b=batch, r=runtime: r.infer(b))
            plan = _plan(schema)
            thorough = median_seconds(lambda r=records, p=plan: p.thorough(r, allow_unknown=False))
            table.add_row(
                name,
                str(size),
                f"{size / validate:,.0f}",
                f"{size / infer:,.0f}",
                f"{validate / infer:.2f}x",
                f"{thorough / validate:.1f}x",
            )
    Console().print(table)


if __name__ == "__main__":
    main()
