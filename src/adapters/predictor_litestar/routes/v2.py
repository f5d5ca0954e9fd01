"""Open Inference Protocol (KServe / Triton v2) REST routes (being written)."""

from __future__ import annotations

from litestar.handlers import HTTPRouteHandler

from predictor_litestar.context import ApiContext


def routes(ctx: ApiContext) -> list[HTTPRouteHandler]:
    return []
