"""The HTTP surfaces as Litestar Routers: `/` (predict, predictions, models, aliases, health) and `/v2` (OIP).

Handlers are module-level functions, one module per resource; they get the use cases by dependency
injection (`service`, `models`, `options`), so one guard or middleware on a router covers its routes.
Both routers carry the access guard (`predictor_litestar.access.guard`): each handler declares the scope it
needs in `opt` (a handler that declares none needs `admin`), the probes are public.
"""

from litestar import Router

from predictor_litestar.access import guard
from predictor_litestar.routes import aliases, health, models, monitoring, predict, predictions, v2

__all__ = ["ROUTERS"]

ROUTERS = [
    Router(
        "/",
        route_handlers=[
            *predict.HANDLERS,
            *predictions.HANDLERS,
            *models.HANDLERS,
            *aliases.HANDLERS,
            *monitoring.HANDLERS,
            *health.HANDLERS,
        ],
        guards=[guard],
    ),
    v2.router,
]
