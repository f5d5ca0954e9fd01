"""What the HTTP layer needs and the use cases do not know: limits, and facts shown to clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata

__all__ = ["ApiOptions"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiOptions:
    """Limits and facts of one HTTP app; injected into handlers as `options`."""

    max_batch: int = 1000
    """Most records in one batch request; more gets 413."""
    max_body_bytes: int = 1_048_576
    """Largest request body read; larger gets 413."""
    cors_origins: tuple[str, ...] = ()
    """Origins whose browser pages may call the API (CORS); empty: none, CORS is off."""
    title: str = "predictor-core"
    version: str = field(default_factory=lambda: metadata.version("predictor-core"))
    """Shown in the OpenAPI document: the installed release, never a copy of it."""
