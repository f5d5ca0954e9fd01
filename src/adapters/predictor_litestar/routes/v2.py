"""Open Inference Protocol (KServe / Triton "v2") REST routes, so stock clients such as tritonclient work.

Each feature is one input tensor (numbers FP32/FP64/INT64, integers INT64, booleans BOOL, categories BYTES;
shape [N] or [N, 1]); an all-numeric model also takes one [N, F] tensor named `features`, in schema order.
Predictions go through the same service as `POST /predict`, so they are validated and recorded alike.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.exceptions import ClientException, HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from predictor_core import (
    FeatureKind,
    FeatureSchema,
    ModelManifest,
    Prediction,
    PredictionService,
    StoreUnavailable,
    Task,
    ValidationFailed,
)
from predictor_litestar.bodies import media_type
from predictor_litestar.context import ApiContext
from predictor_litestar.openapi import errors, json_body
from predictor_litestar.problems import located
from predictor_litestar.routes.health import Live, Ready
from predictor_litestar.tensors import (
    InferOutput,
    InferRequest,
    InferResponse,
    encode_binary,
    parse_request,
    tensor_bytes,
)

__all__ = ["routes"]

MATRIX_INPUT = "features"
_DATATYPES = {
    FeatureKind.NUMBER: ("FP64", {"FP32", "FP64", "INT32", "INT64"}),
    FeatureKind.INTEGER: ("INT64", {"INT32", "INT64"}),
    FeatureKind.BOOLEAN: ("BOOL", {"BOOL"}),
    FeatureKind.CATEGORY: ("BYTES", {"BYTES"}),
}
_INFER_ERRORS = errors(400, 404, 413, 415, 422, 503)


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


def routes(ctx: ApiContext) -> list[HTTPRouteHandler]:
    service = ctx.service
    example = _infer_example(ctx.default)
    infer_body = json_body(
        {"type": "object", "required": ["inputs"], "properties": {"inputs": {"type": "array"}}},
        {ctx.default.name: example},
        description="An OIP inference request (JSON form; the binary tensor extension is accepted too).",
    )

    @get("/v2", summary="OIP server metadata", tags=["open inference protocol"])
    async def server_metadata() -> ServerMetadata:
        return ServerMetadata(ctx.options.title, ctx.options.version, ["binary_tensor_data"])

    @get("/v2/health/live", summary="OIP liveness", tags=["open inference protocol"])
    async def v2_live() -> Live:
        return Live()

    @get(
        "/v2/health/ready",
        summary="OIP readiness (model loaded, database reachable)",
        tags=["open inference protocol"],
        responses=errors(503),
    )
    async def v2_ready() -> Ready:
        service.runtime()
        if service.store is not None and not (store := await service.store.health()).reachable:
            raise StoreUnavailable(f"database unreachable: {store.detail}", retry_after=5)
        return Ready()

    meta: dict[str, Any] = {"tags": ["open inference protocol"], "responses": errors(404, 503)}

    @get("/v2/models/{name:str}", summary="OIP model metadata", **meta)
    async def model_metadata(name: FromPath[str]) -> ModelMetadata:
        return _metadata(service, name, None)

    @get("/v2/models/{name:str}/versions/{version:str}", summary="OIP model version metadata", **meta)
    async def version_metadata(name: FromPath[str], version: FromPath[str]) -> ModelMetadata:
        return _metadata(service, name, version)

    @get("/v2/models/{name:str}/ready", summary="OIP model readiness", **meta)
    async def model_ready(name: FromPath[str]) -> ModelReady:
        service.runtime(name)
        return ModelReady(name, True)

    @get("/v2/models/{name:str}/versions/{version:str}/ready", summary="OIP model version readiness", **meta)
    async def version_ready(name: FromPath[str], version: FromPath[str]) -> ModelReady:
        service.runtime(name, version)
        return ModelReady(name, True)

    infer: dict[str, Any] = {
        "tags": ["open inference protocol"],
        "responses": _INFER_ERRORS,
        "status_code": 200,
        "operation_class": infer_body,
    }

    @post("/v2/models/{name:str}/infer", summary="OIP inference", **infer)
    async def model_infer(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[InferResponse]:
        """Same validation and recording as POST /predict; outputs as named in the model metadata."""
        return await _infer(service, request, name, None)

    @post(
        "/v2/models/{name:str}/versions/{version:str}/infer",
        summary="OIP inference with a model version",
        **infer,
    )
    async def version_infer(
        request: Request[Any, Any, Any], name: FromPath[str], version: FromPath[str]
    ) -> Response[InferResponse]:
        return await _infer(service, request, name, version)

    return [
        server_metadata,
        v2_live,
        v2_ready,
        model_metadata,
        version_metadata,
        model_ready,
        version_ready,
        model_infer,
        version_infer,
    ]


def _metadata(service: PredictionService, name: str, version: str | None) -> ModelMetadata:
    manifest = service.runtime(name, version).manifest
    versions = [m.version for m in service.models.list_models() if m.name == name]
    schema = manifest.schema
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
        versions=versions or [manifest.version],
        platform="onnxruntime_onnx",
        inputs=[TensorMetadata(f.name, _DATATYPES[f.kind][0], [-1]) for f in schema.features],
        outputs=[TensorMetadata(n, d, s) for n, d, s in _outputs(manifest)],
        parameters=parameters,
    )


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
        if tensor.datatype not in _DATATYPES[FeatureKind.NUMBER][1]:
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
        accepted = _DATATYPES[feature.kind][1]
        if tensor.datatype not in accepted:
            raise ClientException(
                f"input {tensor.name!r} ({feature.kind.value}) must be {' or '.join(sorted(accepted))}, "
                f"got {tensor.datatype}"
            )
    return values


async def _infer(
    service: PredictionService, request: Request[Any, Any, Any], name: str, version: str | None
) -> Response[InferResponse]:
    header_length = request.headers.get("inference-header-content-length")
    kind = media_type(request)
    if kind not in ("", "application/json", "application/octet-stream"):
        raise HTTPException(
            status_code=415, detail=f"expected application/json (or binary tensors), got {kind!r}"
        )
    if header_length is None and kind == "application/octet-stream":
        raise HTTPException(
            status_code=415, detail="binary tensors need the Inference-Header-Content-Length header"
        )
    manifest = service.runtime(name, version).manifest
    infer_request, values = parse_request(await request.body(), header_length)
    columns = _columns(manifest.schema, infer_request, values)
    try:
        predictions = await service.predict(
            columns, model=name, version=version, layout="columns", request_id=infer_request.id
        )
    except ValidationFailed as exc:
        raise located(exc, ("inputs",), single=False) from None
    return _response(manifest, infer_request, predictions)


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


def _infer_example(manifest: ModelManifest) -> dict[str, Any]:
    example = manifest.schema.example()
    return {
        "inputs": [
            {"name": f.name, "datatype": _DATATYPES[f.kind][0], "shape": [1], "data": [example.get(f.name)]}
            for f in manifest.schema.features
        ]
    }
