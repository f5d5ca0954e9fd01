"""What a shadow version costs live traffic: `POST /models/bc/predict` under wrk with and without a shadow.

One server recording to PostgreSQL serves `bc` 1.0.0 as production; phases alternate off / on / off / on
(the shadow, `bc` 2.0.0, named and removed through the CLI between them) so that drift on this shared
machine hits both alike. Prints requests/s and p50/p99 of the live answers per phase, and the on/off
ratios; never a pass/fail. The server is pinned to CPU 1 and wrk to CPU 0, as in bench_http.py.

Usage: python benchmarks/bench_shadow.py [seconds per phase] [connections]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import msgspec
from bench_http import LUA, OURS, PYTHON, bench_database, free_port, server, wrk

from predictor_core import ModelManifest
from predictor_onnx import reference_root


def cli(env: dict[str, str], *args: str, check: bool = True) -> None:
    command = [PYTHON, "-c", "from predictor.cli import main; main()", *args]
    subprocess.run(command, env={**os.environ, **env}, check=check, capture_output=True)


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    work = Path(tempfile.mkdtemp(prefix="bench_shadow_"))
    source = reference_root() / "breast_cancer" / "1.0.0"
    manifest = ModelManifest.from_json((source / "manifest.json").read_bytes())
    lua = work / "post.lua"
    lua.write_text(LUA)
    body = work / "body.json"
    body.write_text(json.dumps({"features": manifest.schema.example()}))
    with bench_database(None) as database:
        env = {"DATABASE_URL": database, "PREDICTOR_MODEL_STORE": str(work / "store")}
        for version in ("1.0.0", "2.0.0"):
            target = work / "exports" / version
            shutil.copytree(source, target)
            changed = msgspec.structs.replace(manifest, name="bc", version=version)
            (target / "manifest.json").write_bytes(changed.to_json())
            cli(env, "models", "add", str(target))
        cli(env, "models", "promote", "bc", "1.0.0")
        os.environ.update(env)
        port = free_port()
        phases: list[tuple[str, dict[str, float]]] = []
        with server([PYTHON, "-c", OURS, str(port), database, "on", "inline"], port) as base:
            url = f"{base}/models/bc/predict"
            answer = httpx.post(url, content=body.read_bytes(), headers={"content-type": "application/json"})
            assert answer.json()["model_version"] == "1.0.0", answer.text
            wrk(url, body, connections, 2, lua)  # warm-up
            for shadow in (False, True, False, True):
                if shadow:
                    cli(env, "models", "promote", "bc", "2.0.0", "--alias", "shadow")
                else:  # before the first phase there is no shadow to remove
                    cli(env, "models", "unalias", "bc", "shadow", check=False)
                wrk(url, body, connections, 1, lua)  # the watcher applies the alias; both versions warm
                result = wrk(url, body, connections, seconds, lua)
                phases.append(("shadow" if shadow else "plain", result))
                print("shadow" if shadow else "plain ", result, flush=True)
    mean = {
        kind: {k: sum(r[k] for n, r in phases if n == kind) / 2 for k in ("rps", "p50_ms", "p99_ms")}
        for kind in ("plain", "shadow")
    }
    print(f"\nc={connections}, {seconds} s per phase, means of two phases each")
    for kind, m in mean.items():
        print(f"{kind:7} {m['rps']:8.0f} rps  p50 {m['p50_ms']:7.2f} ms  p99 {m['p99_ms']:7.2f} ms")
    on, off = mean["shadow"], mean["plain"]
    print(
        f"shadow/plain: rps {on['rps'] / off['rps']:.2f}x, p50 {on['p50_ms'] / off['p50_ms']:.2f}x, "
        f"p99 {on['p99_ms'] / off['p99_ms']:.2f}x"
    )
    print("non-200 per phase:", [r["non200"] + r["errors"] for _, r in phases])


if __name__ == "__main__":
    main()
