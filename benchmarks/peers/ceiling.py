"""The bare-Litestar ceiling: `POST /predict` reads the request body and answers a constant.

No validation, no model, no database: what one Litestar worker on uvicorn can answer at best, the
ceiling `benchmarks/bench_http.py` divides our server's throughput by. Run it as
`uvicorn ceiling:app --app-dir benchmarks/peers`.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, post

ANSWER = {"label": "benign", "probability": 1.0}


@post("/predict", status_code=200)
async def predict(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Read the whole body (as every real endpoint must), then answer the constant."""
    await request.body()
    return ANSWER


app = Litestar(route_handlers=[predict], openapi_config=None)
