"""Two checkouts' servers side by side, `POST /predict` timed in alternating rounds: ratios of B to A.

    python benchmarks/ab_http.py A B [--mode off|postgresql|sqlite] [--rounds 10] [--seconds 5]
                                     [--connections 64]
    nox -s bench -- benchmarks/ab_http.py /tmp/before .

A and B are checkouts of this project (`.` is this one; e.g. `git worktree add /tmp/before HEAD~1`). Both
servers run at once, pinned to the same core, with wrk on the other (`bench_http`'s settings). Each round
runs wrk once against each, in an order that alternates, and the report gives the median over rounds of
B's figure over A's in the same round: requests/s and the server's CPU time per request.

`bench_http.py --before` measures the two one after the other, minutes apart. On a shared machine whose
speed drifts by 2x within minutes, that drift went into the ratio: two runs of one change gave 1.67x and
0.93x. Rounds seconds apart, each compared with its neighbour, gave 1.14-1.18x for the same change (every
round above 1 in one run of ten), and an A/A run of one checkout gave 1.00-1.07x. A benchmark prints; it
never passes or fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_http as bh  # the benchmark beside this one: its servers, wrk and PostgreSQL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="the baseline checkout (`.` for this one)")
    parser.add_argument("b", help="the checkout compared with it")
    parser.add_argument("--mode", choices=[bh.OFF, bh.POSTGRES, bh.SQLITE], default=bh.OFF)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=5, help="one wrk run")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    machine = bh.Machine.detect()
    work = Path(tempfile.mkdtemp(prefix="ab_http_"))
    lua, body = work / "post.lua", work / "body.json"
    lua.write_text(bh.LUA)
    body.write_text(json.dumps({"features": bh.example_body(machine, work)["features"]}))
    figures: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    print(f"ab_http: A={args.a} B={args.b}, recording {args.mode}, c={args.connections}; logs in {work}")
    with ExitStack() as stack:
        admin = stack.enter_context(bh.postgres())[0] if args.mode == bh.POSTGRES else None
        servers = {}
        for key, checkout in (("A", args.a), ("B", args.b)):
            env = bh.checkout_env(None if checkout == "." else checkout, work / f"data-{key}", 0)
            command, env = stack.enter_context(bh.predictor_serve(args.mode, env, admin))
            servers[key] = stack.enter_context(
                bh.server(machine, command, env, "/health/live", work / f"{key}.log")
            )
        for base, _ in servers.values():
            bh.wrk(machine, base + "/predict", body, lua, 16, 2)  # warm-up
        for round_ in range(args.rounds):
            for key in ("A", "B") if round_ % 2 == 0 else ("B", "A"):
                base, pid = servers[key]
                cpu = bh.tree_cpu_seconds(pid)
                point = bh.wrk(machine, base + "/predict", body, lua, args.connections, args.seconds)
                cpu_ms = 1000 * (bh.tree_cpu_seconds(pid) - cpu) / max(point["requests"], 1)
                figures[key].append((point["rps"], cpu_ms))
                print(
                    f"  round {round_} {key}: {point['rps']:,.0f} req/s, {cpu_ms:.3f} ms CPU/req, "
                    f"p99 {point['p99_ms']:.1f} ms, {point['non2xx']} non-2xx{point['statuses']}, "
                    f"{point['socket_errors']} socket errors",
                    flush=True,
                )
    pairs = list(zip(figures["A"], figures["B"], strict=True))
    rps = [b[0] / a[0] for a, b in pairs]
    cpu = [b[1] / a[1] for a, b in pairs]
    print(
        f"B / A, median over {args.rounds} rounds: req/s {statistics.median(rps):.3f}x "
        f"({sum(r > 1 for r in rps)} rounds above 1), CPU per request {statistics.median(cpu):.3f}x"
    )
    print(f"  per round, req/s: {', '.join(f'{r:.2f}' for r in rps)}")


if __name__ == "__main__":
    main()
