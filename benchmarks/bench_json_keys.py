"""What refusing repeated JSON keys costs valid traffic, and what a flood of unknown keys costs now.

Usage: python benchmarks/bench_json_keys.py

Bodies of the breast_cancer model (30 number features): one record and 1,000 records, compact
(msgspec's layout) and spaced (Python's `json.dumps`). For each: the strict decode alone (what the HTTP
adapter did before), the decode with the repeated-key check (`predictor_litestar.bodies.decode`), the
check alone, and the standard library's parse that only runs when the cheap bounds disagree. Then the
hostile body of issue 14: one record with 100,000 unknown keys (about 1 MB), decoded and validated, and
the size of the 422 problem it gets. Medians in µs, one process, no server.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

import msgspec

from predictor_core import ModelManifest, ValidationFailed, validate_records
from predictor_litestar.bodies import BatchBody, FeaturesBody, decode
from predictor_litestar.jsonkeys import _locate, repeated_key
from predictor_litestar.problems import ProblemBody, ProblemDetail
from predictor_onnx import BundleDirectory, reference_root
from predictor_onnx.reference.datasets import load_dataset


def best_us(fn: Callable[[], object], *, runs: int) -> float:
    """The fastest of `runs` calls: on a shared machine the minimum is the cost, the rest is noise."""
    best = math.inf
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e6


def interleaved(fns: list[Callable[[], object]], *, rounds: int, runs: int) -> list[float]:
    """The best time of each function, measured in alternating rounds so drift hits them all alike."""
    best = [math.inf] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], best_us(fn, runs=runs))
    return best


def _manifest(name: str) -> ModelManifest:
    return next(m for m in BundleDirectory([reference_root()]).list_models() if m.name == name)


def main() -> None:
    schema = _manifest("breast_cancer").schema
    rows = load_dataset("breast_cancer").frame.to_dict("records")
    records = [{name: row[name] for name in schema.names} for row in rows]
    one, batch = {"features": records[0]}, {"records": [records[i % len(records)] for i in range(1000)]}
    cases = [
        ("1 record, compact", msgspec.json.encode(one), msgspec.json.Decoder(FeaturesBody)),
        ("1 record, spaced", json.dumps(one).encode(), msgspec.json.Decoder(FeaturesBody)),
        ("1,000 records, compact", msgspec.json.encode(batch), msgspec.json.Decoder(BatchBody)),
        ("1,000 records, spaced", json.dumps(batch).encode(), msgspec.json.Decoder(BatchBody)),
    ]
    print(f"{'body':<24} {'bytes':>8} {'decode':>9} {'+check':>9} {'check':>8} {'overhead':>9} {'stdlib':>9}")
    for label, body, decoder in cases:
        value = decoder.decode(body)
        runs = 200 if len(body) < 10_000 else 5
        before, after, check = interleaved(
            [
                lambda b=body, d=decoder: d.decode(b),
                lambda b=body, d=decoder: decode(b, d),
                lambda b=body, v=value: repeated_key(b, v),
            ],
            rounds=15,
            runs=runs,
        )
        slow = best_us(lambda b=body: _locate(b), runs=runs)
        print(
            f"{label:<24} {len(body):>8} {before:>8.1f}µ {after:>8.1f}µ {check:>7.1f}µ "
            f"{(after - before) / before:>8.1%} {slow:>8.1f}µ"
        )

    flood = {**records[0], **{f"{i:x}": 0 for i in range(100_000)}}
    body = msgspec.json.encode({"features": flood})
    decoder = msgspec.json.Decoder(FeaturesBody)

    def hostile() -> bytes:
        try:
            validate_records(schema, [decode(body, decoder).features])
        except ValidationFailed as failure:
            errors = [
                ProblemDetail(loc=["features", *p.loc[1:]], code=p.code, msg=p.msg) for p in failure.problems
            ]
            answer = ProblemBody(title="Invalid features", status=422, detail="", errors=errors)
            return msgspec.json.encode(answer)
        raise AssertionError("the flood was accepted")

    answer = hostile()
    print(
        f"\n100,000 unknown keys ({len(body):,} bytes): decoded, validated and answered in "
        f"{best_us(hostile, runs=10) / 1000:.1f} ms (best of 10), a {len(answer):,}-byte problem"
    )


if __name__ == "__main__":
    main()
