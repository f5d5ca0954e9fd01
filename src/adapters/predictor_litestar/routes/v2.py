"""Open Inference Protocol (KServe / Triton "v2") REST routes, so stock clients such as tritonclient work.

Each feature is one input tensor (numbers FP32/FP64/INT64, integers INT64, booleans BOOL, categories BYTES;
shape [N] or [N, 1]); an all-numeric model also takes one [N, F] tensor named `features`, in schema order.
Predictions go through the same service as `POST /predict`, so they are validated and recorded alike.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.exceptions import ClientException, HTTPException

from predictor_core import (
    FeatureKind,
    FeatureSchema,
    ModelManifest,
    Prediction,
    RuntimeUnavailable,
    Scope,
    Task,
)
from predictor_litestar.access import SCOPE, caller_id, guard
from predictor_litestar.bodies import check_encoding, media_type
from predictor_litestar.dependencies import Models, Options, Service
from predictor_litestar.openapi import DENIALS, errors
from predictor_litestar.problems import BODY
from predictor_litestar.routes.health import PROBES
from predictor_litestar.routes.predict import model_reference
from predictor_litestar.tensors import (
    DATATYPES,
    InferOutput,
    InferRequest,
    InferResponse,
    encode_binary,
    parse_request,
    tensor_bytes,
)
from predictor_litestar.tracing import timed

__all__ = ["MATRIX_INPUT", "router"]

MATRIX_INPUT = "features"
MODEL_RETRY_AFTER_S = 30.0
_TAGS = ["open inference protocol"]
_META: dict[str, Any] = {"responses": errors(404, 503, *DENIALS), "opt": {SCOPE: Scope.READ}}


class ServerMetadata(msgspec.Struct, frozen=True):
    name: str
    version: str
    extensions: list[str]


class TensorMetadata(msgspec.Struct, frozen=True):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any]


class ModelReady(msgspec.Struct, frozen=True):
    name: str
    ready: bool


@get("/", summary="OIP server metadata", responses=errors(*DENIALS), opt={SCOPE: Scope.READ})
async def server_metadata(options: Options) -> ServerMetadata:
    return ServerMetadata(options.title, options.version, ["binary_tensor_data"])


@get(
    ["/models/{name:str}", "/models/{name:str}/versions/{version:str}"], summary="OIP model metadata", **_META
)
async def model_metadata(request: Request[Any, Any, Any], models: Models) -> ModelMetadata:
    """From the manifest alone: nothing is loaded to answer."""
    name, version = model_reference(request)
    described = models.describe(name, version, load=False)
    manifest, schema = described.manifest, described.manifest.schema
    parameters: dict[str, Any] = {"task": manifest.task.value, "feature_order": list(schema.names)}
    if schema.all_numeric:
        parameters["matrix_input"] = {
            "name": MATRIX_INPUT,
            "datatype": "FP64",
            "shape": [-1, len(schema.names)],
        }
    if manifest.classes is not None:
        parameters["classes"] = list(manifest.classes)
    return ModelMetadata(
        name=manifest.name,
        versions=list(described.versions),
        platform="onnxruntime_onnx",
        inputs=[TensorMetadata(f.name, DATATYPES[f.kind][0], [-1]) for f in schema.features],
        outputs=[TensorMetadata(n, d, s) for n, d, s in _outputs(manifest)],
        parameters=parameters,
    )


@get(
    ["/models/{name:str}/ready", "/models/{name:str}/versions/{version:str}/ready"],
    summary="OIP model readiness (loads the version if needed)",
    **_META,
)
async def model_ready(request: Request[Any, Any, Any], models: Models) -> ModelReady:
    name, version = model_reference(request)
    described = models.describe(name, version)
    if described.load_error is not None:
        raise RuntimeUnavailable(described.load_error, retry_after=MODEL_RETRY_AFTER_S)
    return ModelReady(described.manifest.name, True)


@post(
    ["/models/{name:str}/infer", "/models/{name:str}/versions/{version:str}/infer"],
    summary="OIP inference (for a model, or one of its versions)",
    description="Same validation and recording as POST /predict; outputs as named in the model metadata.",
    responses=errors(400, 404, 413, 415, 422, 503, *DENIALS),
    status_code=200,
    opt={BODY: "inputs", SCOPE: Scope.PREDICT},
)
async def model_infer(
    request: Request[Any, Any, Any], service: Service, models: Models, options: Options
) -> Response[InferResponse]:
    header_length = request.headers.get("inference-header-content-length")
    check_encoding(request)
    kind = media_type(request)
    if kind not in ("", "application/json", "application/octet-stream"):
        raise HTTPException(
            status_code=415, detail=f"expected application/json (or binary tensors), got {kind!r}"
        )
    if header_length is None and kind == "application/octet-stream":
        raise HTTPException(
            status_code=415, detail="binary tensors need the Inference-Header-Content-Length header"
        )
    name, version = model_reference(request)
    manifest = models.resolve(name, version)  # once: the columns are shaped for the version that predicts
    body = await request.body()
    with timed("decode"):
        infer_request, values = parse_request(body, header_length)
        columns = _columns(manifest.schema, infer_request, values)
    rows = max(map(len, columns.values()), default=0)
    if rows > options.max_batch:  # as for POST /predict/batch: the work of one request stays bounded
        raise HTTPException(
            status_code=413, detail=f"{rows} records in the request; at most {options.max_batch} are accepted"
        )
    predictions = await service.predict(
        columns,
        model=manifest.name,
        version=manifest.version,
        layout="columns",
        request_id=infer_request.id,
        shadow=version is None,  # a bare name is served by its alias: its shadow scores it too
        key_id=caller_id(request),
    )
    return _response(manifest, infer_request, predictions)


router = Router(
    "/v2",
    route_handlers=[server_metadata, *PROBES, model_metadata, model_ready, model_infer],
    tags=_TAGS,
    guards=[guard],
)
"""The Open Inference Protocol surface; the health probes are the same handlers as `/health/...`."""


def _outputs(manifest: ModelManifest) -> list[tuple[str, str, list[int]]]:
    """Output tensors by task, plus `prediction_id` (one per record) for lookups and feedback."""
    ids = ("prediction_id", "BYTES", [-1])
    if manifest.task is Task.REGRESSION:
        return [("value", "FP64", [-1]), ids]
    classes = manifest.classes or ()
    label = ("label", "INT64" if all(isinstance(c, int) for c in classes) else "BYTES", [-1])
    if manifest.task is Task.BINARY:
        return [label, ("probability", "FP64", [-1]), ids]
    return [label, ("probabilities", "FP64", [-1, len(classes)]), ids]


def _columns(
    schema: FeatureSchema, request: InferRequest, values: dict[str, list[Any]]
) -> dict[str, list[Any]]:
    """Per-feature columns from per-feature tensors, or from one [N, F] matrix for all-numeric models."""
    names = schema.names
    if list(values) == [MATRIX_INPUT] and MATRIX_INPUT not in names:
        [tensor] = request.inputs
        if not schema.all_numeric:
            raise ClientException(
                f"input {MATRIX_INPUT!r}: this model has category features; send one input per feature"
            )
        if len(tensor.shape) != 2 or tensor.shape[1] != len(names):
            raise ClientException(
                f"input {MATRIX_INPUT!r} must have shape [N, {len(names)}], got {tensor.shape}"
            )
        if tensor.datatype not in DATATYPES[FeatureKind.NUMBER][1]:
            raise ClientException(
                f"input {MATRIX_INPUT!r} must be FP32, FP64 or INT64, got {tensor.datatype}"
            )
        flat, width = values[MATRIX_INPUT], len(names)
        return {name: flat[j::width] for j, name in enumerate(names)}
    for tensor in request.inputs:
        if tensor.name not in names:
            continue  # the validator names unknown features
        feature = schema.feature(tensor.name)
        if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise ClientException(f"input {tensor.name!r} must have shape [N] or [N, 1], got {tensor.shape}")
        accepted = DATATYPES[feature.kind][1]
        if tensor.datatype not in accepted:
            raise ClientException(
                f"input {tensor.name!r} ({feature.kind.value}) must be {' or '.join(sorted(accepted))}, "
                f"got {tensor.datatype}"
            )
    return values


def _response(
    manifest: ModelManifest, request: InferRequest, predictions: list[Prediction]
) -> Response[InferResponse]:
    available = {n: (d, s) for n, d, s in _outputs(manifest)}
    binary_all = bool((request.parameters or {}).get("binary_data_output", False))
    wanted = [
        (o.name, bool((o.parameters or {}).get("binary_data", binary_all))) for o in request.outputs or []
    ]
    if not wanted:
        wanted = [(n, binary_all) for n in available]
    outputs, blobs = [], []
    for out_name, binary in wanted:
        if out_name not in available:
            raise ClientException(f"unknown output {out_name!r}; this model has {', '.join(available)}")
        datatype, shape = available[out_name]
        data = _output_values(manifest, out_name, predictions)
        shape = [len(predictions), *shape[1:]]
        if binary:
            blob = tensor_bytes(datatype, data)
            blobs.append(blob)
            outputs.append(
                InferOutput(
                    name=out_name, shape=shape, datatype=datatype, parameters={"binary_data_size": len(blob)}
                )
            )
        else:
            outputs.append(InferOutput(name=out_name, shape=shape, datatype=datatype, data=data))
    header = InferResponse(
        model_name=manifest.name, model_version=manifest.version, outputs=outputs, id=request.id
    )
    if not blobs:
        return Response(header, status_code=200)
    body, length = encode_binary(header, blobs)
    return Response(
        body,  # type: ignore[arg-type]
        status_code=200,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(length)},
    )


def _output_values(manifest: ModelManifest, name: str, predictions: list[Prediction]) -> list[Any]:
    if name == "prediction_id":
        return [str(p.prediction_id) for p in predictions]
    if name == "probabilities":
        keys = [str(c) for c in manifest.classes or ()]
        return [p.probabilities[k] for p in predictions for k in keys]  # type: ignore[union-attr]
    return [getattr(p, name) for p in predictions]
