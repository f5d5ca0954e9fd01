"""`POST /predict` and friends: one record or a batch, for the default or a chosen model version."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, post
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from predictor_core import ValidationFailed
from predictor_litestar.bodies import (
    BatchBody,
    BatchPredictions,
    FeaturesBody,
    PredictionBody,
    prediction_body,
    read_json,
)
from predictor_litestar.context import ApiContext, request_id
from predictor_litestar.openapi import errors, json_body
from predictor_litestar.problems import located

__all__ = ["routes"]

_FEATURES = msgspec.json.Decoder(FeaturesBody)
_BATCH = msgspec.json.Decoder(BatchBody)
_SINGLE_ERRORS = errors(400, 404, 413, 415, 422, 503)


def routes(ctx: ApiContext) -> list[HTTPRouteHandler]:
    service, options = ctx.service, ctx.options
    example = ctx.default.schema.example()
    record_schema = ctx.default.schema.json_schema()
    any_record: dict[str, Any] = {
        "type": "object",
        "description": "feature name -> value, as described by GET /models/{name}",
    }
    single_default = json_body(
        _wrap("features", record_schema), {"default model": {"features": example}}, description="One record."
    )
    single_named = json_body(
        _wrap("features", any_record),
        {ctx.default.name: {"features": example}},
        description="One record, with the features of the chosen model.",
    )
    batch_default = json_body(
        _wrap("records", _records(record_schema, options.max_batch)),
        {"two records": {"records": [example, example]}},
        description=f"Up to {options.max_batch} records, answered in order.",
    )
    batch_named = json_body(
        _wrap("records", _records(any_record, options.max_batch)),
        {ctx.default.name: {"records": [example, example]}},
        description=f"Up to {options.max_batch} records of the chosen model, answered in order.",
    )

    async def one(request: Request[Any, Any, Any], name: str | None, version: str | None) -> PredictionBody:
        body = await read_json(request, _FEATURES)
        try:
            [prediction] = await service.predict(
                [body.features], model=name, version=version, request_id=request_id(request)
            )
        except ValidationFailed as exc:
            raise located(exc, ("features",), single=True) from None
        return prediction_body(prediction)

    async def many(
        request: Request[Any, Any, Any], name: str | None, version: str | None
    ) -> BatchPredictions:
        body = await read_json(request, _BATCH)
        if len(body.records) > options.max_batch:
            raise HTTPException(
                status_code=413,
                detail=f"{len(body.records)} records in the batch; at most {options.max_batch} are accepted",
            )
        try:
            predictions = await service.predict(
                body.records, model=name, version=version, request_id=request_id(request)
            )
        except ValidationFailed as exc:
            raise located(exc, ("records",), single=False) from None
        return BatchPredictions([prediction_body(p) for p in predictions])

    common: dict[str, Any] = {"status_code": 200, "tags": ["predict"], "responses": _SINGLE_ERRORS}

    @post(
        "/predict",
        summary="Predict one record with the default model",
        operation_class=single_default,
        **common,
    )
    async def predict_default(request: Request[Any, Any, Any]) -> PredictionBody:
        """Validate the features, predict, record input and output, then answer."""
        return await one(request, None, None)

    @post(
        "/models/{name:str}/predict",
        summary="Predict one record with a chosen model",
        operation_class=single_named,
        **common,
    )
    async def predict_model(request: Request[Any, Any, Any], name: FromPath[str]) -> PredictionBody:
        return await one(request, name, None)

    @post(
        "/models/{name:str}/versions/{version:str}/predict",
        summary="Predict one record with a chosen model version",
        operation_class=single_named,
        **common,
    )
    async def predict_version(
        request: Request[Any, Any, Any], name: FromPath[str], version: FromPath[str]
    ) -> PredictionBody:
        return await one(request, name, version)

    @post(
        "/predict/batch",
        summary="Predict a batch with the default model (all or nothing)",
        operation_class=batch_default,
        **common,
    )
    async def batch_default_handler(request: Request[Any, Any, Any]) -> BatchPredictions:
        """If any record is invalid, nothing is predicted or recorded and every problem is listed."""
        return await many(request, None, None)

    @post(
        "/models/{name:str}/predict/batch",
        summary="Predict a batch with a chosen model (all or nothing)",
        operation_class=batch_named,
        **common,
    )
    async def batch_model(request: Request[Any, Any, Any], name: FromPath[str]) -> BatchPredictions:
        return await many(request, name, None)

    @post(
        "/models/{name:str}/versions/{version:str}/predict/batch",
        summary="Predict a batch with a chosen model version (all or nothing)",
        operation_class=batch_named,
        **common,
    )
    async def batch_version(
        request: Request[Any, Any, Any], name: FromPath[str], version: FromPath[str]
    ) -> BatchPredictions:
        return await many(request, name, version)

    return [
        predict_default,
        predict_model,
        predict_version,
        batch_default_handler,
        batch_model,
        batch_version,
    ]


def _wrap(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {key: schema}, "required": [key], "additionalProperties": False}


def _records(record: dict[str, Any], most: int) -> dict[str, Any]:
    return {"type": "array", "items": record, "minItems": 1, "maxItems": most}
