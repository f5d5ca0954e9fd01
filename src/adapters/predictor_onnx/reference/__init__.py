"""The reference models: their training recipes and the bundles built from them, shipped as package data."""

from __future__ import annotations

from pathlib import Path

__all__ = ["reference_root"]


def reference_root() -> Path:
    """The directory holding the shipped bundles (`<name>/<version>/{model.onnx,manifest.json}`)."""
    return Path(__file__).parent / "bundles"
