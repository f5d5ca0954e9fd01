"""Request and response bodies (msgspec Structs) and the one strict way a request body is read.

Litestar's own body parsing converts leniently ("1.5" becomes 1.5), lets any Content-Type through and
answers 500 to deeply nested JSON; so handlers take the raw request and call `read_json`, which checks
the media type and the content coding (identity only: 415 otherwise), lets Litestar enforce the size
limit (413), and decodes strictly: an object that repeats a key is refused (400, naming the key and
where; see `predictor_litestar.jsonkeys`), where msgspec would silently keep its last value. Feature
values stay `Any`: they reach the domain validator exactly as the client sent them and are judged there.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
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
from predictor_litestar.jsonkeys import dict_keys, repeated_key
from predictor_litestar.problems import ProblemDetail
from predictor_litestar.tracing import MAX_REQUEST_ID, request_id_fault, timed

__all__ = [
    "MAX_REQUEST_ID",
    "AliasTarget",
    "BatchBody",
    "BatchPredictions",
    "FeaturesBody",
    "FeedbackBody",
    "FeedbackRecorded",
    "PredictionBody",
    "RecordedPrediction",
    "check_encoding",
    "checked_request_id",
    "decode",
    "header",
    "json_body",
    "media_type",
    "plain_json_length",
    "prediction_body",
    "read_json",
    "refusal",
]

T = TypeVar("T")

_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
"""A `\\uD800`-`\\uDFFF` escape that is not half of a surrogate pair: no Unicode character."""
_COMPRESSED = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}
"""Magic numbers of compressed data, for the message when such a body comes without Content-Encoding."""
_ACCEPT_IDENTITY = {"Accept-Encoding": "identity"}


class FeaturesBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /predict`: one record, feature name -> value."""

    features: dict[str, Any]

    def keys_decoded(self) -> int:
        """Object keys kept by the decoder (see `predictor_litestar.jsonkeys`)."""
        return 1 + len(self.features)


class BatchBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /predict/batch`: records in order; each is judged by the validator, not here."""

    records: list[Any]

    def keys_decoded(self) -> int:
        """Object keys kept by the decoder (see `predictor_litestar.jsonkeys`)."""
        return 1 + dict_keys(self.records)


class FeedbackBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /predictions/{id}/feedback`: the ground truth (a class label, or a number for regression)."""

    actual: Any


class AliasTarget(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`PUT /models/{name}/aliases/{alias}`: the version the alias is to name."""

    version: str


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
    key_id: str | None = None
    """The API key that asked (its public id); null when the call needed no key."""

    @classmethod
    def of(cls, record: PredictionRecord) -> RecordedPrediction:
        return cls(
            prediction_id=record.prediction_id,
            features=record.features,
            prediction=prediction_body(record.prediction),
            created_at=record.created_at,
            latency_ms=record.latency_ms,
            request_id=record.request_id,
            key_id=record.key_id,
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
    return header(request, b"content-type").split(";", 1)[0].strip().lower()


def header(request: Request[Any, Any, Any], name: bytes) -> str:
    """The first value of a header, read from the raw ASGI list ("" when absent).

    Litestar's `request.headers` builds a multidict of every header first: ~4 µs a request here.
    """
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def plain_json_length(headers: Any, limit: int | None) -> int | None:
    """The Content-Length of a request `read_json` would read as it is, or None when in any doubt.

    From the raw ASGI headers: one Content-Type whose media type is `application/json`, no content coding
    (or `identity`), and one Content-Length of digits within `limit`. A None sends the request the whole
    way (`predictor_litestar.direct`), where `read_json` and Litestar judge it.
    """
    kind = coding = length = None
    for name, value in headers:
        if name == b"content-length":
            if length is not None:
                return None
            length = value
        elif name == b"content-type":
            if kind is not None:
                return None
            kind = value
        elif name == b"content-encoding":
            coding = value
    if kind is None or length is None or not length.isdigit():
        return None
    if kind != b"application/json" and kind.split(b";", 1)[0].strip().lower() != b"application/json":
        return None
    if coding is not None and coding.strip().lower() not in (b"", b"identity"):
        return None
    size = int(length)
    return size if limit is None or size <= limit else None


async def read_json(request: Request[Any, Any, Any], decoder: msgspec.json.Decoder[T]) -> T:
    """Decode the body strictly into the decoder's type.

    Raises:
        HTTPException: 415 unless the body is uncompressed `application/json`; 413 over the size limit
            (Litestar); 400 for malformed JSON, a repeated key, a wrong body shape or nesting too deep.
    """
    body = await json_body(request)
    with timed("decode"):
        return decode(body, decoder)


async def json_body(request: Request[Any, Any, Any]) -> bytes:
    """The body's bytes, once it is known to be uncompressed `application/json` within the size limit.

    Raises:
        HTTPException: 415 for another media type or a content coding; 413 over the limit (Litestar).
    """
    check_encoding(request)
    kind = media_type(request)
    if kind != "application/json":
        shown = f"{kind!r}" if kind else "no Content-Type"
        raise HTTPException(status_code=415, detail=f"expected Content-Type application/json, got {shown}")
    return await request.body()


def decode(body: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    """Strict decoding with every failure turned into a 4xx that says where the body is wrong.

    A number beyond float range (1e400) is valid JSON: it is retried as infinity so that the domain
    validator, not the envelope, refuses it with its location and the `not_finite` code. An object that
    repeats a key is refused, naming the key and the object.
    """
    try:
        value = decoder.decode(body)
    except msgspec.ValidationError as exc:
        if "Number out of range" in str(exc) and decoder.float_hook is None:
            retry: msgspec.json.Decoder[T] = _with_infinities(decoder.type)  # type: ignore[arg-type]
            return decode(body, retry)
        raise ClientException(f"wrong body shape: {exc}") from None
    except msgspec.DecodeError as exc:
        raise _malformed(body, exc) from None
    except RecursionError:
        raise ClientException("malformed JSON: nested too deeply") from None
    try:
        repeated = repeated_key(body, value)
    except RecursionError:
        raise ClientException("malformed JSON: nested too deeply") from None
    if repeated is not None:
        path, key = repeated
        detail = (
            f"duplicate key {_quoted(key)} in the object at {_json_path(path)}: "
            "a key may appear only once in an object"
        )
        raise refusal(detail, loc=[*path, key], code="duplicate_key")
    return value


def check_encoding(request: Request[Any, Any, Any]) -> None:
    """Refuse a body sent with a content coding (gzip...): bodies are read as sent, never inflated.

    Raises:
        HTTPException: 415 with `Accept-Encoding: identity` (RFC 9110, 15.5.16).
    """
    coding = header(request, b"content-encoding").strip().lower()
    if coding not in ("", "identity"):
        raise HTTPException(
            status_code=415,
            detail=f"Content-Encoding {coding[:40]!r} is not accepted: send the body uncompressed",
            headers=_ACCEPT_IDENTITY,
        )


def checked_request_id(value: str | None, *, name: str, loc: list[int | str]) -> str | None:
    """A client's request id as kept with its predictions; empty means none.

    The rule is the one `Observability` applies to `X-Request-ID` (`tracing.request_id_fault`), so an id
    kept here is the one the request's log line shows and its answer carries.

    Raises:
        HTTPException: 400 naming `name` when it is longer than `MAX_REQUEST_ID` or holds a control
            character (NUL cannot be stored, and the others have no place in a log or a trace).
    """
    if not value:
        return None
    fault = request_id_fault(value)
    if fault is None:
        return value
    code, reason = fault
    detail = f"{name} {reason}"
    shown = f"{value[:40]}…" if code == "too_long" else None
    raise refusal(detail, loc=loc, code=code, value=shown)


def refusal(detail: str, *, loc: list[int | str], code: str, value: Any = None) -> HTTPException:
    """A 400 that also says where in the request, in the `errors` form of a 422 (`loc`, `code`, `msg`)."""
    return ClientException(detail=detail, extra=[ProblemDetail(loc=loc, code=code, msg=detail, value=value)])


def _malformed(body: bytes, exc: msgspec.DecodeError) -> HTTPException:
    """The clearest answer to a body msgspec cannot read: compressed data, a lone surrogate, or its word."""
    for magic, coding in _COMPRESSED.items():
        if body.startswith(magic):
            return HTTPException(
                status_code=415,
                detail=f"the body is {coding}-compressed: compressed bodies are not accepted, send it as is",
                headers=_ACCEPT_IDENTITY,
            )
    surrogate = _LONE_SURROGATE.search(body)
    if surrogate is not None:
        return ClientException(
            f"malformed JSON: the escape {surrogate.group().decode()} at byte {surrogate.start()} is half "
            "of a UTF-16 surrogate pair without its other half, which is no character; send the text "
            "as UTF-8, or escape a character beyond U+FFFF as a pair (\\ud83d\\ude00)"
        )
    return ClientException(f"malformed JSON: {exc}")


def _quoted(key: str) -> str:
    text = msgspec.json.encode(key).decode()
    return text if len(text) <= 82 else f'{text[:80]}…"'


def _json_path(path: list[int | str]) -> str:
    """`$.records[3]`: where an object is in the body, in the notation of msgspec's own messages."""
    parts = ["$"]
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part.isidentifier():
            parts.append(f".{part}")
        else:
            parts.append(f"[{_quoted(part)}]")
    return "".join(parts)
