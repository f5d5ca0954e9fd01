"""`GET /predictions/{id}` (what was sent and answered) and `POST /predictions/{id}/feedback` (the truth)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.datastructures import CacheControlHeader
from litestar.params import FromPath

from predictor_core import PredictionNotFound, Scope
from predictor_litestar.access import SCOPE, caller_id
from predictor_litestar.bodies import FeedbackBody, FeedbackRecorded, RecordedPrediction, read_json
from predictor_litestar.dependencies import Service
from predictor_litestar.openapi import DENIALS, errors
from predictor_litestar.problems import BODY

__all__ = ["HANDLERS", "get_prediction", "post_feedback"]

_FEEDBACK = msgspec.json.Decoder(FeedbackBody)
_NO_STORE = CacheControlHeader(no_store=True)
"""Recorded inputs may be personal data: no browser or proxy keeps a copy."""


@get(
    "/predictions/{prediction_id:str}",
    summary="The recorded input and output of a prediction",
    description="The features exactly as validated and stored, and the answer that was returned.",
    tags=["predictions"],
    responses=errors(404, 503, *DENIALS),
    opt={SCOPE: Scope.READ},
    cache_control=_NO_STORE,
)
async def get_prediction(prediction_id: FromPath[str], service: Service) -> RecordedPrediction:
    return RecordedPrediction.of(await service.get_prediction(_parse(prediction_id)))


@post(
    "/predictions/{prediction_id:str}/feedback",
    summary="Record the ground truth of a prediction",
    description="Checked against the model's task: a class it knows, or a finite number for regression.",
    status_code=201,
    tags=["predictions"],
    responses=errors(400, 404, 413, 415, 422, 503, *DENIALS),
    opt={BODY: "actual", SCOPE: Scope.FEEDBACK},
    cache_control=_NO_STORE,
)
async def post_feedback(
    request: Request[Any, Any, Any], prediction_id: FromPath[str], service: Service
) -> FeedbackRecorded:
    key = _parse(prediction_id)
    body = await read_json(request, _FEEDBACK)
    recorded = await service.record_feedback(key, body.actual, key_id=caller_id(request))
    return FeedbackRecorded.of(recorded)


def _parse(prediction_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(prediction_id)
    except ValueError:
        raise PredictionNotFound(f"no prediction {prediction_id[:80]!r}: ids are UUIDs") from None


HANDLERS = [get_prediction, post_feedback]
