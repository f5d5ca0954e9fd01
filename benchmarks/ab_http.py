"""Two checkouts' servers side by side, `POST /predict` timed in alternating rounds: ratios of B to A.

    python benchmarks/ab_http.py A B [--mode off|postgresql|sqlite] [--mode-b off|postgresql|sqlite]
                                     [--rounds 10] [--seconds 5] [--connections 64]
    nox -s bench -- benchmarks/ab_http.py /tmp/before .
    python benchmarks/ab_http.py . . --mode off --mode-b postgresql    (what recording costs, #9's ratio)

A and B are checkouts of this project (`.` is this one; e.g. `git worktree add /tmp/before HEAD~1`). Both
servers run at once, pinned to the same core, with wrk on the other (`bench_http`'s settings). Each round
runs wrk once against each, in an order that alternates, and the report gives the median over rounds of
B's figure over A's in the same round: requests/s and the server's CPU time per request.

`bench_http.py --before` measures the two one after the other, minutes apart. On a shared machine whose
speed drifts by 2x within minutes, that drift went into the ratio: two runs of one change gave 1.67x and
0.93x. Rounds seconds apart, each compared with its neighbour, gave 1.14-1.18x for the same change (every
round above 1 in one run of ten). A/A runs of one checkout gave 1.00-1.07x (2026-12-06) and 1.009-1.128x
(four runs, 2026-12-07): a ratio within about 10 % of 1 is no measured difference. A benchmark prints; it
never passes or fails.

`--mode-b` gives B another recording mode than A (by default the same): one checkout against itself
with recording off and on measures issue #9's recorded / off ratio the same way, round by round. The
sequential `bench_http.py` gave that ratio as 0.79x and 0.69x in two runs of one commit ten minutes
apart, its recording-off row costing 0.239 and 0.218 ms of CPU a request.
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
    parser.add_argument("--mode-b", choices=[bh.OFF, bh.POSTGRES, bh.SQLITE], help="B's mode (--mode)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=5, help="one wrk run")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    machine = bh.Machine.detect()
    work = Path(tempfile.mkdtemp(prefix="ab_http_"))
    lua, body = work / "post.lua", work / "body.json"
    lua.write_text(bh.LUA)
    body.write_text(json.dumps({"features": bh.example_body(machine, work)["features"]}))
    modes = {"A": args.mode, "B": args.mode_b or args.mode}
    print(
        f"ab_http: A={args.a} (recording {modes['A']}) B={args.b} (recording {modes['B']}), "
        f"c={args.connections}; logs in {work}"
    )
    with ExitStack() as stack:
        admin = stack.enter_context(bh.postgres())[0] if bh.POSTGRES in modes.values() else None
        sides: dict[str, tuple[str | None, str, dict[str, str]]] = {
            key: (None if checkout == "." else checkout, modes[key], {})
            for key, checkout in (("A", args.a), ("B", args.b))
        }
        servers = bh.side_by_side(stack, machine, work, admin, sides, body, lua, 2)
        figures = bh.rounds(
            machine, servers, body, lua, args.rounds, args.seconds, args.connections, log=_print
        )
    rps = bh.round_ratios(figures, "B", "A")
    cpu = bh.round_ratios(figures, "B", "A", column=1)
    print(
        f"B / A, median over {args.rounds} rounds: req/s {statistics.median(rps):.3f}x "
        f"({sum(r > 1 for r in rps)} rounds above 1), CPU per request {statistics.median(cpu):.3f}x"
    )
    print(f"  per round, req/s: {', '.join(f'{r:.2f}' for r in rps)}")


def _print(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    main()
