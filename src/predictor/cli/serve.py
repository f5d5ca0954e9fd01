"""`predictor serve`: check everything once, then run the HTTP API on uvicorn (uvloop + httptools).

uvicorn over granian: with Litestar + onnxruntime on this 2-core class of machine the peer benchmark
measured 4,238 vs 2,787 req/s at concurrency 1 and a tie at 16 and 64 (shared/bench/RESULTS.md).

Stopping: SIGTERM drains (readiness 503 "draining", no new connections, the requests in flight finish
within `drain_timeout`, everything pending is committed: `Wiring.lifespan`), then the command exits 0
with its temporary files removed. With `--workers N` the workers count their metrics in a private
directory made here before they start (prometheus_client's multiprocess mode) and removed at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import math
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from predictor_core import PredictorError

if TYPE_CHECKING:
    from predictor.cli.transport import TransportLimits
    from predictor.settings import Settings
    from predictor.wiring import Wiring

__all__ = ["commands", "serve"]


@click.command()
@click.option("--host", default=None, help="Interface to bind [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to bind [default: 8000].")
@click.option("--workers", type=int, default=None, help="Worker processes [default: 1].")
@click.option(
    "--model",
    default=None,
    help="Default model: a name, NAME@VERSION (pinned) or a bundle directory [default: breast_cancer].",
)
@click.option(
    "--database-url",
    default=None,
    help="postgresql://... or sqlite:///... [default: SQLite in the user data dir].",
)
@click.option(
    "--device", type=click.Choice(["cpu", "cuda", "auto"]), default=None, help="Where onnxruntime runs."
)
@click.option(
    "--config", "config_file", type=click.Path(dir_okay=False), default=None, help="A TOML settings file."
)
@click.option("--access-log/--no-access-log", default=False, help="Log every request (costs throughput).")
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    model: str | None,
    database_url: str | None,
    device: str | None,
    config_file: str | None,
    access_log: bool,
) -> None:
    """Serve the HTTP API: docs at /docs, OpenAPI at /docs/openapi.json, Open Inference Protocol at /v2.

    Settings come from the options, then PREDICTOR_* / DATABASE_URL variables, then the --config file.
    Start-up fails with a one-line reason when the model or the database cannot be used.
    """
    import uvicorn

    from predictor.cli.transport import FD_RESERVE, http_protocol
    from predictor.settings import Settings
    from predictor.wiring import Wiring

    overrides: dict[str, Any] = {"host": host, "port": port, "workers": workers, "model": model}
    overrides |= {"database_url": database_url, "device": device}
    try:
        settings = Settings.load(file=config_file, **overrides)
        asyncio.run(_preflight(Wiring(settings)))
    except PredictorError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {' '.join(str(exc).split())}") from None
    where = settings.redacted_database_url() if settings.record else "recording off"
    keys = "API keys required" if settings.auth_required else "no API keys (loopback)"
    click.echo(
        f"predictor: model {settings.model!r}, database {where}, {keys}, "
        f"docs http://{settings.host}:{settings.port}/docs"
    )
    limits = transport_limits(settings)
    if limits.max_connections < settings.max_connections:
        click.echo(
            f"predictor: at most {limits.max_connections} connections per worker "
            f"(the open-file limit less {FD_RESERVE}), not {settings.max_connections}"
        )
    # every worker builds its app from exactly these settings, and counts metrics where the others do
    with settings.hand_over() as handover, metrics_directory(settings.workers):
        os.environ.update(handover)
        signal.signal(signal.SIGTERM, _stopped)  # uvicorn raises SIGTERM again once it has drained
        uvicorn.run(
            "predictor.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            lifespan="on",
            loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
            http=http_protocol(limits, httptools_available=importlib.util.find_spec("httptools") is not None),
            h11_max_incomplete_event_size=settings.max_header_bytes,  # the head bound of the h11 fallback
            timeout_keep_alive=settings.keep_alive_timeout,
            access_log=access_log,
            server_header=False,
            log_level="info",
            timeout_graceful_shutdown=math.ceil(settings.drain_timeout),
        )


def transport_limits(settings: Settings) -> TransportLimits:
    """The connection bounds of `settings`, the connection cap lowered to what the open-file limit allows."""
    from predictor.cli.transport import TransportLimits, connection_cap

    return TransportLimits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        max_connections=connection_cap(settings.max_connections),
    )


MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
_METRICS_PREFIX = "predictor-metrics-"


@contextlib.contextmanager
def metrics_directory(workers: int) -> Iterator[Path | None]:
    """With several workers, a new private directory for their metric files in `$PROMETHEUS_MULTIPROC_DIR`.

    It must be set before the workers import prometheus_client, and hold no file of an earlier run
    (prometheus/client_python's multiprocess docs): a fresh `mkdtemp` (mode 0700) is both; the ones
    that servers killed before removing theirs left behind are removed first. One worker counts in
    memory: the variable is unset, whatever the environment said.
    """
    os.environ.pop(MULTIPROC_DIR, None)
    if workers < 2:
        yield None
        return
    _remove_orphans(Path(tempfile.gettempdir()))
    directory = Path(tempfile.mkdtemp(prefix=f"{_METRICS_PREFIX}{os.getpid()}-"))
    os.environ[MULTIPROC_DIR] = str(directory)
    try:
        yield directory
    finally:
        os.environ.pop(MULTIPROC_DIR, None)
        shutil.rmtree(directory, ignore_errors=True)


def _remove_orphans(root: Path) -> None:
    """Remove the metric directories of `predictor serve` processes of this user that are gone."""
    for path in root.glob(f"{_METRICS_PREFIX}*-*"):
        pid = path.name.removeprefix(_METRICS_PREFIX).split("-", 1)[0]
        with contextlib.suppress(OSError, ValueError):
            if path.is_dir() and path.stat().st_uid == os.getuid() and not _alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stopped(signum: int, frame: Any) -> NoReturn:
    """SIGTERM after a graceful stop (or before serving started): leave through the cleanups, status 0."""
    raise SystemExit(0)


async def _preflight(wiring: Wiring) -> None:
    """Load the default model and open the database once, so a broken set-up fails before serving."""
    async with wiring.running():
        pass


commands: list[click.Command] = [serve]
