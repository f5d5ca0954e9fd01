"""`GET /predictions/{id}` (what was sent and answered) and `POST /predictions/{id}/feedback` (the truth)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from predictor_core import PredictionNotFound, PredictionService
from predictor_litestar.bodies import FeedbackBody, FeedbackRecorded, RecordedPrediction, read_json
from predictor_litestar.context import ApiContext
from predictor_litestar.openapi import errors, json_body

__all__ = ["routes"]

_FEEDBACK = msgspec.json.Decoder(FeedbackBody)


def routes(ctx: ApiContext) -> list[HTTPRouteHandler]:
    service = ctx.service
    classes = ctx.default.classes
    actual_example = classes[0] if classes else 1.0
    feedback_body = json_body(
        {
            "type": "object",
            "properties": {
                "actual": {
                    "description": "A class the model knows (classifiers), or a finite number (regression)",
                    "type": ["string", "integer", "number"],
                }
            },
            "required": ["actual"],
            "additionalProperties": False,
        },
        {ctx.default.name: {"actual": actual_example}},
        description="The ground truth observed later for this prediction.",
    )

    @get(
        "/predictions/{prediction_id:str}",
        summary="The recorded input and output of a prediction",
        tags=["predictions"],
        responses=errors(404, 503),
    )
    async def get_prediction(prediction_id: FromPath[str]) -> RecordedPrediction:
        """The features exactly as validated and stored, and the answer that was returned."""
        record = await _require(service).get_prediction(_parse(prediction_id))
        return RecordedPrediction.of(record)

    @post(
        "/predictions/{prediction_id:str}/feedback",
        summary="Record the ground truth of a prediction",
        status_code=201,
        tags=["predictions"],
        responses=errors(400, 404, 413, 415, 422, 503),
        operation_class=feedback_body,
    )
    async def post_feedback(
        request: Request[Any, Any, Any], prediction_id: FromPath[str]
    ) -> FeedbackRecorded:
        """Checked against the model's task: a class it knows, or a finite number for regression."""
        key = _parse(prediction_id)
        body = await read_json(request, _FEEDBACK)
        return FeedbackRecorded.of(await _require(service).record_feedback(key, body.actual))

    return [get_prediction, post_feedback]


def _parse(prediction_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(prediction_id)
    except ValueError:
        raise PredictionNotFound(f"no prediction {prediction_id[:80]!r}: ids are UUIDs") from None


def _require(service: PredictionService) -> PredictionService:
    if not service.recording:
        raise PredictionNotFound("this server runs with recording off, so no prediction is kept")
    return service
