"""What every route factory needs: the use case, the limits, and the default model for documentation."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from litestar import Request

from predictor_core import ModelManifest, PredictionService

__all__ = ["ApiContext", "ApiOptions", "request_id"]

_MAX_REQUEST_ID = 128


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiOptions:
    """Limits and facts the HTTP layer needs and the service does not know."""

    max_batch: int = 1000
    """Most records in one batch request; more gets 413."""
    max_body_bytes: int = 1_048_576
    """Largest request body read; larger gets 413."""
    database: str = ""
    """The database URL with its password hidden, shown on /health."""
    title: str = "predictor-core"
    version: str = field(default_factory=lambda: metadata.version("predictor-core"))
    """Shown in the OpenAPI document: the installed release, never a copy of it."""


@dataclass(frozen=True, slots=True)
class ApiContext:
    service: PredictionService
    options: ApiOptions
    default: ModelManifest
    """The default model's manifest: its schema gives the documentation its example bodies."""


def request_id(request: Request[Any, Any, Any]) -> str | None:
    """The caller's `X-Request-ID`, kept with the prediction for tracing (cut to 128 characters)."""
    value = request.headers.get("x-request-id")
    return value[:_MAX_REQUEST_ID] if value else None
