"""The Litestar application: the routers, the problem-details table, limits and OpenAPI, around the use cases.

Docs: Swagger UI at `/docs`, ReDoc at `/docs/redoc`, the OpenAPI 3.1 spec at `/docs/openapi.json`, all
working offline (see `predictor_litestar.docs`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from copy import deepcopy
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State

from predictor_core import AccessControl, ModelLifecycle, ModelMonitor, ModelRegistry, PredictionService
from predictor_litestar.access import ACCESS, guard, rate_limit_headers
from predictor_litestar.dependencies import dependencies
from predictor_litestar.docs import assets_router, openapi_config
from predictor_litestar.headers import cors_config, security_headers
from predictor_litestar.observability import Observability
from predictor_litestar.openapi import document_access, document_bodies
from predictor_litestar.options import ApiOptions
from predictor_litestar.problems import exception_handlers
from predictor_litestar.routes import ROUTERS

__all__ = ["create_app"]

Lifespan = Callable[[Litestar], AbstractAsyncContextManager[Any]]


def create_app(
    service: PredictionService,
    models: ModelRegistry,
    options: ApiOptions | None = None,
    *,
    lifecycle: ModelLifecycle | None = None,
    access: AccessControl | None = None,
    monitor: ModelMonitor | None = None,
    lifespan: Sequence[Lifespan] = (),
    observability: Observability | None = None,
) -> Litestar:
    """The HTTP API over the prediction use case and the model registry; loads no model itself.

    Args:
        service: predict, look up, feedback, readiness; already wired to its store.
        models: the model registry (catalogue, descriptions); the models it serves when the app is built
            document the examples.
        options: limits and facts for the HTTP layer.
        lifecycle: model aliases and their history; None when nothing is recorded.
        access: API keys, scopes and rate limits; None turns auth off (every route open, no key recorded).
        monitor: drift and live quality from the audit trail; None when nothing is recorded.
        lifespan: context managers run around the server's life (e.g. the wiring that opens the store).
        observability: request ids, the in-flight bound, `/metrics` and request logs; the same object
            should observe `service` (a fresh one, unbounded, when None).
    """
    options = options or ApiOptions()
    observability = observability or Observability()
    observability.track(models)
    app = Litestar(
        route_handlers=[
            *(ROUTERS if access is not None else _unguarded(ROUTERS)),
            assets_router(),
            observability.route(),
        ],
        dependencies=dependencies(service, models, options, lifecycle, access, monitor),
        state=State({ACCESS: access}),
        before_send=[rate_limit_headers, security_headers] if access is not None else [security_headers],
        cors_config=cors_config(options.cors_origins),
        exception_handlers=exception_handlers,
        request_max_body_size=options.max_body_bytes,
        lifespan=[*lifespan, observability.lifespan],
        debug=False,
        openapi_config=openapi_config(options),
    )
    document_bodies(app, models.resolve(), models.catalogue(), options)
    document_access(app)
    app.asgi_handler = observability.wrap(app.asgi_handler)  # outside routing: sees every request
    return app


def _unguarded(routers: Sequence[Router]) -> list[Router]:
    """Copies of `routers` without the access guard, for an app with auth off.

    The guard would let every call through there, at the price of Litestar's copy of the handler for
    each call.
    """
    copies = []
    for router in routers:
        copy = deepcopy(router)  # as Litestar's own registration does: the handlers follow their router
        copy.guards = [g for g in copy.guards if g is not guard]
        copies.append(copy)
    return copies
