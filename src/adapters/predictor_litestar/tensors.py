"""Open Inference Protocol tensors: JSON and binary (Triton's `binary_tensor_data` extension) codecs.

A request is a JSON header, optionally followed by raw little-endian tensors when the
`Inference-Header-Content-Length` header says where the JSON ends. Tensors become flat Python lists here
(values as sent: a JSON number stays an int or a float); judging them is the domain validator's job.
Each feature kind has one advertised datatype and a few accepted ones (`DATATYPES`).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import msgspec
import numpy as np
from litestar.exceptions import ClientException

from predictor_core import FeatureKind, FeatureSchema
from predictor_litestar.bodies import checked_request_id, decode

__all__ = [
    "DATATYPES",
    "InferInput",
    "InferOutput",
    "InferRequest",
    "InferResponse",
    "RequestedOutput",
    "encode_binary",
    "infer_example",
    "parse_request",
    "tensor_bytes",
]

DATATYPES = {
    FeatureKind.NUMBER: ("FP64", {"FP32", "FP64", "INT32", "INT64"}),
    FeatureKind.INTEGER: ("INT64", {"INT32", "INT64"}),
    FeatureKind.BOOLEAN: ("BOOL", {"BOOL"}),
    FeatureKind.CATEGORY: ("BYTES", {"BYTES"}),
}
"""Feature kind -> (the datatype advertised in model metadata, the datatypes accepted)."""

_NUMPY = {
    "BOOL": np.dtype("?"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_MAX_ELEMENTS = 10_000_000


class RequestedOutput(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    parameters: dict[str, Any] | None = None

    def keys_decoded(self) -> int:
        return 1 + _members(self.parameters)


class InferInput(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    shape: list[int]
    datatype: str
    data: Any = None
    """Row-major values, flat or nested; absent when the tensor is sent as binary data."""
    parameters: dict[str, Any] | None = None

    def keys_decoded(self) -> int:
        return 3 + (self.data is not None) + _members(self.parameters)


class InferRequest(msgspec.Struct, frozen=True, kw_only=True):
    inputs: list[InferInput]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestedOutput] | None = None

    def keys_decoded(self) -> int:
        """Object keys kept by the decoder, a lower bound of those sent (`predictor_litestar.jsonkeys`).

        Objects inside tensor data are not counted (they are never valid there).
        """
        count = 1 + (self.id is not None) + _members(self.parameters)
        count += sum(tensor.keys_decoded() for tensor in self.inputs)
        if self.outputs is not None:
            count += 1 + sum(output.keys_decoded() for output in self.outputs)
        return count


def _members(parameters: dict[str, Any] | None) -> int:
    """Keys of an optional `parameters` object, itself a member when present."""
    return 0 if parameters is None else 1 + len(parameters)


class InferOutput(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class InferResponse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    model_name: str
    model_version: str
    outputs: list[InferOutput]
    id: str | None = None


_REQUEST = msgspec.json.Decoder(InferRequest)


def parse_request(body: bytes, header_length: str | None) -> tuple[InferRequest, dict[str, list[Any]]]:
    """The request and each input's values as a flat list (NaN in binary float tensors becomes None).

    Raises:
        ClientException: 400 naming the input and what is wrong with it (or the `id`, a repeated key).
    """
    size = len(body)
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise ClientException("Inference-Header-Content-Length must be an integer") from None
        if not 0 < size <= len(body):
            raise ClientException(
                f"Inference-Header-Content-Length {size} is outside the body ({len(body)} bytes)"
            )
    request = decode(body[:size], _REQUEST)
    checked_request_id(request.id, name="id", loc=["id"])  # kept with the predictions: a varchar(128)
    binary = memoryview(body)[size:]
    values: dict[str, list[Any]] = {}
    offset = 0
    for tensor in request.inputs:
        count = _elements(tensor)
        binary_size = (tensor.parameters or {}).get("binary_data_size")
        if binary_size is not None:
            if not isinstance(binary_size, int) or binary_size < 0 or offset + binary_size > len(binary):
                raise ClientException(f"input {tensor.name!r}: binary_data_size does not fit the body")
            chunk = binary[offset : offset + binary_size]
            offset += binary_size
            flat = _from_binary(tensor, chunk, count)
        elif tensor.data is None:
            raise ClientException(f"input {tensor.name!r} has neither data nor binary_data_size")
        else:
            flat = _flatten(tensor.data, len(tensor.shape))
            if len(flat) != count:
                raise ClientException(
                    f"input {tensor.name!r}: shape {tensor.shape} needs {count} values, got {len(flat)}"
                )
        if tensor.name in values:
            raise ClientException(f"input {tensor.name!r} is sent twice")
        values[tensor.name] = flat
    if offset != len(binary):
        raise ClientException(f"{len(binary) - offset} bytes of binary data belong to no input")
    return request, values


def _elements(tensor: InferInput) -> int:
    if not tensor.shape or any(not isinstance(d, int) or d < 0 for d in tensor.shape):
        raise ClientException(f"input {tensor.name!r}: shape must be a list of non-negative integers")
    count = math.prod(tensor.shape)
    if count > _MAX_ELEMENTS:
        raise ClientException(f"input {tensor.name!r}: {count} elements is more than {_MAX_ELEMENTS}")
    return count


def _flatten(data: Any, depth: int) -> list[Any]:
    """Row-major values of a flat or nested JSON array, no deeper than the tensor's rank."""
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    for item in data:
        if isinstance(item, list):
            if depth <= 1:
                raise ClientException("tensor data is nested deeper than its shape")
            flat.extend(_flatten(item, depth - 1))
        else:
            flat.append(item)
    return flat


def _from_binary(tensor: InferInput, chunk: memoryview, count: int) -> list[Any]:
    if tensor.datatype == "BYTES":
        items: list[Any] = []
        position = 0
        while position < len(chunk):
            if position + 4 > len(chunk):
                raise ClientException(f"input {tensor.name!r}: truncated BYTES element")
            (length,) = struct.unpack_from("<I", chunk, position)
            position += 4
            raw = bytes(chunk[position : position + length])
            position += length
            try:
                items.append(raw.decode())
            except UnicodeDecodeError:
                raise ClientException(
                    f"input {tensor.name!r}: BYTES element {len(items)} is not UTF-8"
                ) from None
        if len(items) != count:
            raise ClientException(
                f"input {tensor.name!r}: shape {tensor.shape} needs {count} values, got {len(items)}"
            )
        return items
    dtype = _NUMPY.get(tensor.datatype)
    if dtype is None:
        raise ClientException(
            f"input {tensor.name!r}: datatype {tensor.datatype!r} is not supported as binary data"
        )
    if len(chunk) != count * dtype.itemsize:
        raise ClientException(
            f"input {tensor.name!r}: {len(chunk)} bytes do not hold {count} {tensor.datatype} values"
        )
    array = np.frombuffer(chunk, dtype=dtype)
    values: list[Any] = array.tolist()
    if dtype.kind == "f":
        # binary tensors cannot carry null: NaN is how numpy and pandas say "missing"
        values = [None if v != v else v for v in values]
    return values


def encode_binary(header: InferResponse, tensors: list[bytes]) -> tuple[bytes, int]:
    """The response body (JSON header, then the raw tensors) and the header's length."""
    head = msgspec.json.encode(header)
    return head + b"".join(tensors), len(head)


def tensor_bytes(datatype: str, values: list[Any]) -> bytes:
    """Raw little-endian bytes of one output tensor (BYTES: 4-byte length before each element)."""
    if datatype == "BYTES":
        parts = []
        for v in values:
            raw = str(v).encode()
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    return np.asarray(values, dtype=_NUMPY[datatype]).tobytes()


def infer_example(schema: FeatureSchema) -> dict[str, Any]:
    """An inference request for the schema's example record: one [1] tensor per feature."""
    example = schema.example()
    return {
        "inputs": [
            {"name": f.name, "datatype": DATATYPES[f.kind][0], "shape": [1], "data": [example.get(f.name)]}
            for f in schema.features
        ]
    }
