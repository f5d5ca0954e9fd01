"""A real `predictor serve` process on a free loopback port, for the functional HTTP tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

SERVE = [sys.executable, "-c", "from predictor.cli import main; main()", "serve"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def plain_url(async_url: str) -> str:
    """psycopg's form of an asyncpg SQLAlchemy URL."""
    return make_url(async_url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def running_server(database_url: str, *args: str, timeout: float = 60.0) -> Iterator[str]:
    """Start `predictor serve` and yield its base URL once /health/live answers; stop it by its pid."""
    with server_process(database_url, *args, timeout=timeout) as (base, _):
        yield base


@contextlib.contextmanager
def server_process(
    database_url: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    log: Path | None = None,
    ready: str = "/health/live",
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`running_server` that also yields the process, with `env` added to a clean environment.

    Its output goes to `log` when given (for tests that read it), else to a temporary file; it is
    considered started once `ready` answers 200, and stopped with SIGTERM unless it has exited already.
    """
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREDICTOR_") and k != "DATABASE_URL"},
        **(env or {}),
    }
    # a file, not a pipe: a full pipe blocks the server
    output = log.open("w+") if log is not None else tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
    process = subprocess.Popen(
        [*SERVE, "--port", str(port), "--database-url", database_url, *args],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                output.seek(0)
                raise RuntimeError(f"server exited {process.returncode}: {output.read()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}{ready}", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start in time")
            time.sleep(0.2)
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        output.close()


def example(http: httpx.Client) -> dict:
    """A valid record of the default model, taken from the example the server documents."""
    spec = http.get("/docs/openapi.json").json()
    examples = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    return dict(next(iter(examples.values()))["value"]["features"])
