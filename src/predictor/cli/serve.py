"""`predictor serve`: check everything once, then run the HTTP API on uvicorn (uvloop + httptools).

uvicorn over granian: with Litestar + onnxruntime on this 2-core class of machine the peer benchmark
measured 4,238 vs 2,787 req/s at concurrency 1 and a tie at 16 and 64 (shared/bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from typing import TYPE_CHECKING, Any

import click

from predictor_core import PredictorError

if TYPE_CHECKING:
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
    click.echo(
        f"predictor: model {settings.model!r}, database {where}, docs http://{settings.host}:{settings.port}/docs"
    )
    with settings.hand_over() as handover:  # every worker builds its app from exactly these settings
        os.environ.update(handover)
        uvicorn.run(
            "predictor.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            lifespan="on",
            loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
            http="httptools" if importlib.util.find_spec("httptools") else "h11",
            access_log=access_log,
            server_header=False,
            log_level="info",
        )


async def _preflight(wiring: Wiring) -> None:
    """Load the default model and open the database once, so a broken set-up fails before serving."""
    async with wiring.running():
        pass


commands: list[click.Command] = [serve]
