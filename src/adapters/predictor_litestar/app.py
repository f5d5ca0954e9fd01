"""The Litestar application: the routers, the problem-details table, limits and OpenAPI, around the use cases.

Docs: Swagger UI at `/docs`, ReDoc at `/docs/redoc`, the OpenAPI 3.1 spec at `/docs/openapi.json`, all
working offline (see `predictor_litestar.docs`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from litestar import Litestar

from predictor_core import ModelLifecycle, ModelRegistry, PredictionService
from predictor_litestar.dependencies import dependencies
from predictor_litestar.docs import assets_router, openapi_config
from predictor_litestar.openapi import document_bodies
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
    lifespan: Sequence[Lifespan] = (),
) -> Litestar:
    """The HTTP API over the prediction use case and the model registry; loads no model itself.

    Args:
        service: predict, look up, feedback, readiness; already wired to its store.
        models: the model registry (catalogue, descriptions); the models it serves when the app is built
            document the examples.
        options: limits and facts for the HTTP layer.
        lifecycle: model aliases and their history; None when nothing is recorded.
        lifespan: context managers run around the server's life (e.g. the wiring that opens the store).
    """
    options = options or ApiOptions()
    app = Litestar(
        route_handlers=[*ROUTERS, assets_router()],
        dependencies=dependencies(service, models, options, lifecycle),
        exception_handlers=exception_handlers,
        request_max_body_size=options.max_body_bytes,
        lifespan=list(lifespan),
        debug=False,
        openapi_config=openapi_config(options),
    )
    document_bodies(app, models.resolve(), models.catalogue(), options)
    return app
