"""The fast decode path of `POST /predict/batch`: a body read straight into the schema's typed records.

A batch of 1,000 records of 30 numbers is a ~750 kB body. Decoded the ordinary way (`BatchBody`: a dict,
30 key strings and 30 floats per record) it cost more than validating, predicting and answering it, and
the validator then encoded the dicts again to read their floats. When every feature of the version the
request names is a number that is never null, the body is first decoded into that schema's record Struct
(`predictor_core.validation.record_type`): msgspec matches each key to a field in C and makes no dict
and no key string, and the core reads the Structs' floats as one matrix.

This path only ever accepts. A body it does not decode whole (a null, a string, a bool, a missing or
unknown key, a number out of float range, an empty batch, malformed JSON) or one that repeats a key is
decoded again by `predictor_litestar.bodies.decode`, which answers it exactly as before; so is any
request whose model reference does not resolve. Values reach the core's validator as sent (an int stays
an int), and it judges them as it judges the same dicts.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from predictor_core import PredictionService, PredictorError
from predictor_core.validation import DecodedRecord, record_type
from predictor_litestar.jsonkeys import repeated_key

__all__ = ["dense_records"]


def dense_records(
    body: bytes, service: PredictionService, model: str | None, version: str | None
) -> list[DecodedRecord] | None:
    """The records of a batch body as the named version's typed records, or None for the ordinary path."""
    try:
        schema = service.manifest(model, version).schema
    except PredictorError:  # the ordinary path decodes first, then reports the reference, as it always did
        return None
    record = record_type(schema)
    if record is None:
        return None
    try:
        decoded = _decoder(record).decode(body)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    records: list[DecodedRecord] = decoded.records
    if not records or repeated_key(body, decoded) is not None:
        return None
    return records


@functools.lru_cache(maxsize=64)
def _decoder(record: type[DecodedRecord]) -> msgspec.json.Decoder[Any]:
    """The decoder of a batch body of these records, made once per schema (its record type)."""
    width = len(record.__struct_fields__)

    def keys_decoded(self: Any) -> int:
        """Object keys kept by the decoder (see `predictor_litestar.jsonkeys`): every field of each record."""
        return 1 + width * len(self.records)

    body = msgspec.defstruct(
        "DenseBatchBody",
        [("records", list[record])],  # type: ignore[valid-type]
        forbid_unknown_fields=True,
        frozen=True,
        namespace={"keys_decoded": keys_decoded},
    )
    return msgspec.json.Decoder(body)
