"""The Litestar application: routes, the problem-details table, limits and OpenAPI, around one service.

Docs: Swagger UI at `/docs`, ReDoc at `/docs/redoc`, the OpenAPI 3.1 spec at `/docs/openapi.json`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin

from predictor_core import PredictionService
from predictor_litestar.context import ApiContext, ApiOptions
from predictor_litestar.problems import exception_handlers
from predictor_litestar.routes import health, models, predict, predictions, v2

__all__ = ["create_app"]

Lifespan = Callable[[Litestar], AbstractAsyncContextManager[Any]]


def create_app(
    service: PredictionService, options: ApiOptions | None = None, *, lifespan: Sequence[Lifespan] = ()
) -> Litestar:
    """The HTTP API for `service`; loads the default model now, so a broken bundle fails at start-up.

    Args:
        service: the prediction use case, already wired to its model source and store.
        options: limits and facts for the HTTP layer.
        lifespan: context managers run around the server's life (e.g. opening and closing the store).
    """
    options = options or ApiOptions()
    ctx = ApiContext(service=service, options=options, default=service.runtime().manifest)
    handlers = [
        *predict.routes(ctx),
        *predictions.routes(ctx),
        *models.routes(ctx),
        *health.routes(ctx),
        *v2.routes(ctx),
    ]
    return Litestar(
        route_handlers=handlers,
        exception_handlers=exception_handlers,
        request_max_body_size=options.max_body_bytes,
        lifespan=list(lifespan),
        debug=False,
        openapi_config=OpenAPIConfig(
            title=options.title,
            version=options.version,
            description="Predictions from tabular models served through ONNX, every one recorded.",
            path="/docs",
            render_plugins=[SwaggerRenderPlugin(path="/"), RedocRenderPlugin(path="/redoc")],
        ),
    )
