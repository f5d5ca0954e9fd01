"""predict() against a bare InferenceSession.run and scikit-learn, per reference model, as ratios of one run.

    .venv/bin/python benchmarks/bench_predict.py [--repeat 2000] [--models breast_cancer penguins diabetes]

For each model: the median latency of one record and the median time of 1,000 records through
(a) a bare `InferenceSession.run` on prepared arrays with the same session options, (b) `predict()`
(validation, inference, typed predictions) from dicts, and from a DataFrame for the batch, and
(c) the scikit-learn pipeline's `predict_proba` / `predict` on a DataFrame. Then validation alone of the
1,000-row DataFrame (the facade's columns, `validate_columns`) against the model alone (`OnnxRuntime.infer`)
on the same validated batch.

Where predict() fetches a classifier's class index rather than its label (the graph picks its label by
it: `predictor_onnx.class_index`), a line also gives the ratios to a bare run fetching the same outputs.

Targets (issue #9, for breast_cancer): 1 dict within 3x of the bare run, 1,000 dicts within 5x, a 1,000-row
DataFrame within 2x, and validating the 1,000 x 30 DataFrame cheaper than the model (ratio below 1).

The ways compared are timed interleaved: in each round, a few calls of each in turn (the order rotating),
and a ratio is the median over rounds of the two ways' times in that round. A shared machine's speed
drifts by 2x within a minute; timed one after the other, the bare run's median alone moved from 190 to
356 µs between runs and took the ratios with it. Times shown are the medians over rounds.
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

Ways = dict[str, Callable[[], object]]


def interleaved(ways: Ways, *, rounds: int, calls: int = 5) -> dict[str, list[float]]:
    """Seconds per call of each way, one figure per round; the ways take turns within every round."""
    names = list(ways)
    for func in ways.values():  # warm-up
        for _ in range(calls):
            func()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            func = ways[name]
            started = time.perf_counter()
            for _ in range(calls):
                func()
            times[name].append((time.perf_counter() - started) / calls)
    return times


def ratio(times: dict[str, list[float]], way: str, base: str) -> float:
    """The median over rounds of `way`'s time over `base`'s time in the same round."""
    return statistics.median(a / b for a, b in zip(times[way], times[base], strict=True))


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
    runtime = _wiring(model._settings, record=False).registry.runtime(name, manifest.version)
    # what predict() fetches: a classifier's class index instead of its label, where the graph picks
    # the label by it (predictor_onnx.class_index); the bare run fetches every output as the file has it
    fetched = runtime._outputs if runtime._classes is not None else None  # type: ignore[attr-defined]
    for n in (1, 1000):
        feeds = build_feeds(manifest.schema, manifest.onnx.inputs, {k: v[:n] for k, v in columns.items()}, n)
        rows, sub = (records[0] if n == 1 else records[:n]), data.iloc[:n]
        skframe = frame.iloc[:n]
        rounds, calls = max(20, repeat // 50), 50 if n == 1 else 5  # rounds long enough to be timed warm
        times = interleaved(
            {
                "bare": lambda feeds=feeds: session.run(None, feeds),
                "dict": lambda rows=rows: model.predict(rows),
                "df": lambda sub=sub: model.predict(sub),
                "sklearn": lambda skframe=skframe: sk(skframe),
            },
            rounds=rounds,
            calls=calls,
        )
        shown = {name: statistics.median(seconds) * 1e6 for name, seconds in times.items()}
        print(
            f"{n:>5d} rec {shown['bare']:8.1f}µs {shown['dict']:12.1f}µs {shown['df']:10.1f}µs"
            f" {shown['sklearn']:8.0f}µs"
            f"   dict {ratio(times, 'dict', 'bare'):5.2f}x  df {ratio(times, 'df', 'bare'):5.2f}x"
            f"  sklearn {ratio(times, 'sklearn', 'bare'):6.1f}x"
        )
        if fetched is not None:  # timed apart: a fifth way in the turns above moves the bare run's time
            index = interleaved(
                {
                    "bare": lambda feeds=feeds: session.run(None, feeds),
                    "index": lambda feeds=feeds: runtime._session.run(fetched, feeds),  # type: ignore[attr-defined]
                },
                rounds=rounds,
                calls=calls,
            )
            less = ratio(index, "index", "bare")
            dict_, df = ratio(times, "dict", "bare") / less, ratio(times, "df", "bare") / less
            print(
                f"{'':8s} a bare run fetching the class index as predict() does: {less:.2f}x the bare run;"
                f" so dict {dict_:5.2f}x  df {df:5.2f}x that"
            )
    given = _columns(frame, manifest.schema)
    checked: ValidatedBatch = validate_columns(manifest.schema, given)
    times = interleaved(
        {
            "validation": lambda: validate_columns(manifest.schema, given),
            "model": lambda: runtime.infer(checked),
        },
        rounds=max(20, repeat // 50),
    )
    shown = {name: statistics.median(seconds) * 1e6 for name, seconds in times.items()}
    print(
        f"1,000-row DataFrame: validation alone {shown['validation']:.1f}µs,"
        f" model alone {shown['model']:.1f}µs"
        f"   validation / model {ratio(times, 'validation', 'model'):.2f}x (target < 1)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, default=2000, help="sets the rounds of interleaved calls: repeat / 50"
    )
    parser.add_argument("--models", nargs="+", default=["breast_cancer", "penguins", "diabetes"])
    args = parser.parse_args()
    for name in args.models:
        bench(name, args.repeat)


if __name__ == "__main__":
    main()
