"""Request and response bodies (msgspec Structs) and the one strict way a request body is read.

Litestar's own body parsing converts leniently ("1.5" becomes 1.5), lets any Content-Type through and
answers 500 to deeply nested JSON; so handlers take the raw request and call `read_json`, which checks
the media type, lets Litestar enforce the size limit (413), and decodes strictly. Feature values stay
`Any`: they reach the domain validator exactly as the client sent them and are judged there.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.exceptions import ClientException, HTTPException

from predictor_core import (
    BinaryPrediction,
    Feedback,
    Label,
    MulticlassPrediction,
    Prediction,
    PredictionRecord,
    RegressionPrediction,
)

__all__ = [
    "BatchBody",
    "BatchPredictions",
    "FeaturesBody",
    "FeedbackBody",
    "FeedbackRecorded",
    "PredictionBody",
    "RecordedPrediction",
    "media_type",
    "prediction_body",
    "read_json",
]

T = TypeVar("T")


class FeaturesBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /predict`: one record, feature name -> value."""

    features: dict[str, Any]


class BatchBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /predict/batch`: records in order; each is judged by the validator, not here."""

    records: list[Any]


class FeedbackBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /predictions/{id}/feedback`: the ground truth (a class label, or a number for regression)."""

    actual: Any


class _Answer(msgspec.Struct, frozen=True, kw_only=True, tag_field="task"):
    prediction_id: uuid.UUID
    model_name: str
    model_version: str
    model_sha256: str


class BinaryAnswer(_Answer, frozen=True, kw_only=True, tag="binary"):
    label: Label
    probability: float
    """Probability of the model's positive class, whatever the label."""


class MulticlassAnswer(_Answer, frozen=True, kw_only=True, tag="multiclass"):
    label: Label
    probabilities: dict[str, float]


class RegressionAnswer(_Answer, frozen=True, kw_only=True, tag="regression"):
    value: float


PredictionBody = BinaryAnswer | MulticlassAnswer | RegressionAnswer


class BatchPredictions(msgspec.Struct, frozen=True):
    predictions: list[PredictionBody]


class RecordedPrediction(msgspec.Struct, frozen=True, kw_only=True):
    """What the audit trail holds for one prediction: the input as validated and the answer given."""

    prediction_id: uuid.UUID
    features: dict[str, Any]
    prediction: PredictionBody
    created_at: dt.datetime
    latency_ms: float
    request_id: str | None = None

    @classmethod
    def of(cls, record: PredictionRecord) -> RecordedPrediction:
        return cls(
            prediction_id=record.prediction_id,
            features=record.features,
            prediction=prediction_body(record.prediction),
            created_at=record.created_at,
            latency_ms=record.latency_ms,
            request_id=record.request_id,
        )


class FeedbackRecorded(msgspec.Struct, frozen=True, kw_only=True):
    prediction_id: uuid.UUID
    actual: Label | float
    received_at: dt.datetime

    @classmethod
    def of(cls, feedback: Feedback) -> FeedbackRecorded:
        return cls(
            prediction_id=feedback.prediction_id, actual=feedback.actual, received_at=feedback.received_at
        )


def prediction_body(p: Prediction) -> PredictionBody:
    """The flat answer clients read: model identity beside the task's fields."""
    assert p.prediction_id is not None
    m = p.model
    common: dict[str, Any] = {
        "prediction_id": p.prediction_id,
        "model_name": m.name,
        "model_version": m.version,
        "model_sha256": m.sha256,
    }
    if isinstance(p, BinaryPrediction):
        return BinaryAnswer(label=p.label, probability=p.probability, **common)
    if isinstance(p, MulticlassPrediction):
        return MulticlassAnswer(label=p.label, probabilities=p.probabilities, **common)
    assert isinstance(p, RegressionPrediction)
    return RegressionAnswer(value=p.value, **common)


@functools.cache
def _with_infinities(body_type: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(body_type, float_hook=float)


def media_type(request: Request[Any, Any, Any]) -> str:
    """The request's media type, lower-cased, without parameters ("" when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_json(request: Request[Any, Any, Any], decoder: msgspec.json.Decoder[T]) -> T:
    """Decode the body strictly into the decoder's type.

    Raises:
        HTTPException: 415 unless the body is `application/json`; 413 over the size limit (Litestar);
            400 for malformed JSON, a wrong body shape or nesting too deep to parse.
    """
    kind = media_type(request)
    if kind != "application/json":
        shown = f"{kind!r}" if kind else "no Content-Type"
        raise HTTPException(status_code=415, detail=f"expected Content-Type application/json, got {shown}")
    return decode(await request.body(), decoder)


def decode(body: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    """Strict decoding with every failure turned into a 400 that says where the body is wrong.

    A number beyond float range (1e400) is valid JSON: it is retried as infinity so that the domain
    validator, not the envelope, refuses it with its location and the `not_finite` code.
    """
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        if "Number out of range" in str(exc) and decoder.float_hook is None:
            retry: msgspec.json.Decoder[T] = _with_infinities(decoder.type)  # type: ignore[arg-type]
            return decode(body, retry)
        raise ClientException(f"wrong body shape: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ClientException(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise ClientException("malformed JSON: nested too deeply") from None
