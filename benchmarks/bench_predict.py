"""predict() against a bare InferenceSession.run and scikit-learn, per reference model, as ratios of one run.

    .venv/bin/python benchmarks/bench_predict.py [--repeat 2000] [--models breast_cancer penguins diabetes]

For each model: the median latency of one record and the median time of 1,000 records through
(a) a bare `InferenceSession.run` on prepared arrays with the same session options, (b) `predict()`
(validation, inference, typed predictions) from dicts, and from a DataFrame for the batch, and
(c) the scikit-learn pipeline's `predict_proba` / `predict` on a DataFrame. Then validation alone of the
1,000-row DataFrame (the facade's columns, `validate_columns`) against the model alone (`OnnxRuntime.infer`)
on the same validated batch.

Targets (issue #9, for breast_cancer): 1 dict within 3x of the bare run, 1,000 dicts within 5x, a 1,000-row
DataFrame within 2x, and validating the 1,000 x 30 DataFrame cheaper than the model (ratio below 1).
Timings are noisy on a shared machine: compare ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import onnxruntime as ort

from predictor.facade import _columns, _wiring, load_model
from predictor_core import ValidatedBatch, validate_columns
from predictor_onnx import read_bundle, reference_root
from predictor_onnx.infer_schema import column_values
from predictor_onnx.reference.datasets import load_dataset
from predictor_onnx.reference.recipes import fit_pipeline
from predictor_onnx.runtime import build_feeds, session_options


def median_seconds(func: Callable[[], object], repeat: int) -> float:
    for _ in range(max(3, repeat // 20)):
        func()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench(name: str, repeat: int) -> None:
    manifest, model_bytes = read_bundle(reference_root() / name / "1.0.0")
    data = load_dataset(name).frame.sample(1000, replace=True, random_state=0).reset_index(drop=True)
    records = [
        dict(zip(data.columns, values, strict=True))
        for values in zip(*map(column_values, map(data.get, data.columns)), strict=True)
    ]
    frame = data
    batch = validate_columns(manifest.schema, {c: column_values(data[c]) for c in data.columns})
    columns = dict(batch.columns)
    session = ort.InferenceSession(model_bytes, session_options(), providers=["CPUExecutionProvider"])
    model = load_model(name)
    pipeline = fit_pipeline(name)
    sk = pipeline.predict if manifest.task == "regression" else pipeline.predict_proba
    print(f"\n{name} ({manifest.task}); session: {model.execution.providers[0]}, 1 intra-op thread")
    print(
        f"{'':8s} {'bare run':>10s} {'predict(dict)':>14s} {'predict(df)':>12s} {'sklearn':>10s}"
        "   ratios to bare"
    )
    for n in (1, 1000):
        feeds = build_feeds(manifest.schema, manifest.onnx.inputs, {k: v[:n] for k, v in columns.items()}, n)
        rows, sub = (records[0] if n == 1 else records[:n]), data.iloc[:n]
        skframe = frame.iloc[:n]
        reps = repeat if n == 1 else max(20, repeat // 20)
        bare = median_seconds(lambda feeds=feeds: session.run(None, feeds), reps)
        via_dicts = median_seconds(lambda rows=rows: model.predict(rows), reps)
        via_frame = median_seconds(lambda sub=sub: model.predict(sub), reps)
        sklearn = median_seconds(lambda skframe=skframe: sk(skframe), max(5, reps // 10))
        print(
            f"{n:>5d} rec {bare * 1e6:8.1f}µs {via_dicts * 1e6:12.1f}µs {via_frame * 1e6:10.1f}µs"
            f" {sklearn * 1e6:8.0f}µs"
            f"   dict {via_dicts / bare:5.2f}x  df {via_frame / bare:5.2f}x  sklearn {sklearn / bare:6.1f}x"
        )
    runtime = _wiring(model._settings, record=False).registry.runtime(name, manifest.version)
    given = _columns(frame, manifest.schema)
    checked: ValidatedBatch = validate_columns(manifest.schema, given)
    reps = max(20, repeat // 20)
    validating = median_seconds(lambda: validate_columns(manifest.schema, given), reps)
    inferring = median_seconds(lambda: runtime.infer(checked), reps)
    print(
        f"1,000-row DataFrame: validation alone {validating * 1e6:.1f}µs, model alone {inferring * 1e6:.1f}µs"
        f"   validation / model {validating / inferring:.2f}x (target < 1)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000, help="timed calls for one record (batches: /20)")
    parser.add_argument("--models", nargs="+", default=["breast_cancer", "penguins", "diabetes"])
    args = parser.parse_args()
    for name in args.models:
        bench(name, args.repeat)


if __name__ == "__main__":
    main()
