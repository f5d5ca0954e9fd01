"""What every route factory needs: the use case, the limits, and the default model for documentation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from litestar import Request

from predictor_core import ModelManifest, ModelNotFound, PredictionService

__all__ = ["ApiContext", "ApiOptions", "model_name", "request_id"]

_MAX_REQUEST_ID = 128
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


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
    version: str = "0.1.0"


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


def model_name(name: str) -> str:
    """A model name from a URL, refused (404) unless plain.

    Model sources read names with separators as paths; a client must never make the server load a
    bundle from a directory of its choosing.
    """
    if not _PLAIN_NAME.fullmatch(name):
        raise ModelNotFound(f"no model {name[:80]!r}")
    return name
