"""`POST /predict` and friends: one record or a batch, for the default model, a chosen model or a version."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, post
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware

from predictor_core import PredictionService, Scope
from predictor_litestar.access import SCOPE, caller_id
from predictor_litestar.bodies import (
    BatchBody,
    BatchPredictions,
    FeaturesBody,
    PredictionBody,
    checked_request_id,
    decode,
    header,
    json_body,
    prediction_body,
    read_json,
)
from predictor_litestar.dense import dense_records
from predictor_litestar.dependencies import Options, Service
from predictor_litestar.direct import DirectPredict
from predictor_litestar.openapi import DENIALS, errors
from predictor_litestar.problems import BODY
from predictor_litestar.tracing import timed

__all__ = ["HANDLERS", "answer_one", "model_reference", "predict_batch", "predict_one"]

_FEATURES = msgspec.json.Decoder(FeaturesBody)
_BATCH = msgspec.json.Decoder(BatchBody)
_COMMON: dict[str, Any] = {
    "status_code": 200,
    "tags": ["predict"],
    "responses": errors(400, 404, 409, 413, 415, 422, 503, *DENIALS),
}


def model_reference(request: Request[Any, Any, Any]) -> tuple[str | None, str | None]:
    """The model name and version named in the path; None where the path names none (the default)."""
    params = request.path_params
    return params.get("name"), params.get("version")


def _request_id(request: Request[Any, Any, Any]) -> str | None:
    """The caller's `X-Request-ID`, kept with the prediction for tracing (None when it sent none).

    The same rule as the request's log line and its answer (`tracing.request_id_fault`): an id kept here
    is the one they show.

    Raises:
        HTTPException: 400 when it is over 128 characters or holds a control character (NUL...).
    """
    value = header(request, b"x-request-id")
    return checked_request_id(value, name="X-Request-ID", loc=["headers", "X-Request-ID"])


async def answer_one(
    request: Request[Any, Any, Any], service: PredictionService, body: FeaturesBody
) -> PredictionBody:
    """The one record predicted (and recorded) for the model the path names."""
    name, version = model_reference(request)
    [prediction] = await service.predict(
        [body.features],
        model=name,
        version=version,
        request_id=_request_id(request),
        key_id=caller_id(request),
    )
    return prediction_body(prediction)


@post(
    ["/predict", "/models/{name:str}/predict", "/models/{name:str}/versions/{version:str}/predict"],
    summary="Predict one record (the default model, a chosen model, or one of its versions)",
    description="Validate the features, predict, record input and output, then answer.",
    opt={BODY: "features", SCOPE: Scope.PREDICT},
    middleware=[DefineMiddleware(DirectPredict, body=FeaturesBody, answer=answer_one)],
    **_COMMON,
)
async def predict_one(request: Request[Any, Any, Any], service: Service) -> PredictionBody:
    """Reached only by requests `DirectPredict` hands on (it serves the ordinary ones the same way)."""
    return await answer_one(request, service, await read_json(request, _FEATURES))


@post(
    [
        "/predict/batch",
        "/models/{name:str}/predict/batch",
        "/models/{name:str}/versions/{version:str}/predict/batch",
    ],
    summary="Predict a batch, all or nothing (the default model, a chosen model, or one of its versions)",
    description="If any record is invalid, nothing is predicted or recorded and every problem is listed.",
    opt={BODY: "records", SCOPE: Scope.PREDICT},
    **_COMMON,
)
async def predict_batch(
    request: Request[Any, Any, Any], service: Service, options: Options
) -> BatchPredictions:
    body = await json_body(request)
    name, version = model_reference(request)
    with timed("decode"):
        records: list[Any] | None = dense_records(body, service, name, version)
        if records is None:
            records = decode(body, _BATCH).records
    if len(records) > options.max_batch:
        raise HTTPException(
            status_code=413,
            detail=f"{len(records)} records in the batch; at most {options.max_batch} are accepted",
        )
    predictions = await service.predict(
        records,
        model=name,
        version=version,
        request_id=_request_id(request),
        key_id=caller_id(request),
    )
    return BatchPredictions([prediction_body(p) for p in predictions])


HANDLERS = [predict_one, predict_batch]
