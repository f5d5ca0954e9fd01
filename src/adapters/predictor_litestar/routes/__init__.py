"""The HTTP surfaces as Litestar Routers: `/` (predict, predictions, models, health) and `/v2` (OIP).

Handlers are module-level functions, one module per resource; they get the use cases by dependency
injection (`service`, `models`, `options`), so one guard or middleware on a router covers its routes.
"""

from litestar import Router

from predictor_litestar.routes import health, models, predict, predictions, v2

__all__ = ["ROUTERS"]

ROUTERS = [
    Router(
        "/", route_handlers=[*predict.HANDLERS, *predictions.HANDLERS, *models.HANDLERS, *health.HANDLERS]
    ),
    v2.router,
]
