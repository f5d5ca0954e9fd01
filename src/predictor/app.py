"""The ASGI entry of `predictor serve`: settings -> wiring -> Litestar app.

`uvicorn --factory predictor.app:create_app` works too. Every worker process builds its own app: from the
settings `predictor serve` handed over (one serialised value, `Settings.handed_over`), else from the
environment. A SQLite database (the zero set-up default) is migrated at start-up; a PostgreSQL one must be
migrated beforehand (`predictor db upgrade`): start-up fails with that advice when it is not, as upgrading
a shared production schema should be a deliberate step.
"""

from __future__ import annotations

from litestar import Litestar

from predictor.settings import Settings
from predictor.wiring import Wiring
from predictor_litestar import ApiOptions, Observability, configure_request_log
from predictor_litestar import create_app as create_http_app
from predictor_litestar.access import metrics_guard
from predictor_litestar.drift_metrics import DriftGauges

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> Litestar:
    """The HTTP app for `settings` (else those handed over by `predictor serve`, else the environment's).

    Raises:
        ConfigurationError, BundleError: the settings or the default model's bundle are unusable.
    """
    settings = settings or Settings.handed_over() or Settings.load()
    observability = Observability(
        max_in_flight=settings.max_in_flight or None,
        metrics_open=settings.metrics == "open",
        metrics_guard=metrics_guard,  # beyond loopback: a key with the `read` scope when auth is on
        request_log=configure_request_log(settings.request_log),
    )
    wiring = Wiring(settings, observer=observability)
    drift = DriftGauges(observability.metrics.registry)
    options = ApiOptions(
        max_batch=settings.max_batch,
        max_body_bytes=settings.max_body_bytes,
        cors_origins=settings.cors_origins,
    )
    return create_http_app(
        wiring.service,
        wiring.registry,
        options,
        lifecycle=wiring.lifecycle,
        access=wiring.access,
        monitor=wiring.monitor,
        lifespan=[wiring.lifespan, wiring.drift_watcher(drift.update, drift.keep)],
        observability=observability,
    )
