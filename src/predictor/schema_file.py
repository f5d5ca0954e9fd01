"""schema.toml: what a data scientist knows about the features that the data cannot show.

The exporter infers kinds, categories and nullability from the training rows; the file refines them
per feature (bounds, units, descriptions, categories, nullability) and adds cross-field rules::

    [features.age]
    description = "age at the start of the contract"
    unit = "years"
    minimum = 18
    maximum = 100

    [features.plan]
    categories = ["basic", "premium"]   # the allowed values, in the model's order

    [[rules]]
    name = "discount_below_price"
    expr = "discount <= price"
    message = "a discount cannot exceed the price"

`predictor schema infer` writes a starting file with what was inferred and the observed ranges.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from predictor_core import FeatureKind, FeatureSchema, Rule, SchemaError
from predictor_core.bundle import FeatureStats

__all__ = ["SchemaFile", "read_schema_file", "render_schema_file", "schema_refinements"]


class FeatureRefinement(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    kind: FeatureKind | None = None
    description: str | None = None
    unit: str | None = None
    required: bool | None = None
    nullable: bool | None = None
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] | None = None


class SchemaFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The parsed file: per-feature refinements and rules."""

    features: dict[str, FeatureRefinement] = {}
    rules: tuple[Rule, ...] = ()

    @property
    def refine(self) -> dict[str, dict[str, Any]]:
        """Per feature, the Feature fields to set (what the exporter's `refine` takes)."""
        return {name: _fields(r) for name, r in self.features.items()}


def _fields(refinement: FeatureRefinement) -> dict[str, Any]:
    return {k: v for k, v in msgspec.structs.asdict(refinement).items() if v is not None}


def read_schema_file(path: Path | str) -> SchemaFile:
    """Parse schema.toml.

    Raises:
        SchemaError: unreadable TOML, an unknown key or a wrong type (located), or an invalid rule.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SchemaError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SchemaError(f"{path} is not valid TOML: {exc}") from exc
    try:
        return schema_refinements(data)
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc}") from exc


def schema_refinements(data: Mapping[str, Any] | SchemaFile) -> SchemaFile:
    """The same refinements from a mapping shaped like the file (`{"features": {...}, "rules": [...]}`).

    Raises:
        SchemaError: an unknown key or a wrong type, located (`$.features.age.units`).
    """
    if isinstance(data, SchemaFile):
        return data
    try:
        return msgspec.convert(dict(data), SchemaFile, strict=False)
    except msgspec.ValidationError as exc:
        raise SchemaError(f"invalid schema refinements: {exc}") from exc


def render_schema_file(schema: FeatureSchema, stats: Mapping[str, FeatureStats], *, source: str) -> str:
    """A starting schema.toml: inferred kinds, nullability and categories, observed ranges as comments."""
    lines = [
        f"# Feature schema inferred from {source} by `predictor schema infer`.",
        "# Refine it (bounds, units, descriptions, categories, rules), then pass it to",
        "# `predictor export ... --schema schema.toml`. Every key is optional: what is left out is inferred.",
        "",
    ]
    for feature in schema.features:
        lines.append(f"[features.{feature.name}]")
        lines.append(f"kind = {_toml(feature.kind.value)}")
        lines.append(f"nullable = {_toml(feature.nullable)}")
        lines.append('description = ""')
        observed = stats.get(feature.name)
        if feature.kind in (FeatureKind.NUMBER, FeatureKind.INTEGER):
            lines.append('# unit = ""')
            if observed is not None and observed.min is not None:
                lines.append(f"# observed {observed.min:g} .. {observed.max:g}; declare what is possible:")
            lines.append("# minimum = ")
            lines.append("# maximum = ")
        if feature.categories is not None:
            lines.append(f"categories = {_toml(list(feature.categories))}")
        if observed is not None and observed.missing:
            lines.append(f"# {observed.missing} of {observed.count + observed.missing} rows are missing")
        lines.append("")
    lines += [
        "# Cross-field rules: every record must satisfy them; the message is what a caller is told.",
        "# [[rules]]",
        '# name = "end_after_start"',
        '# expr = "end >= start"',
        '# message = "the end cannot come before the start"',
        "",
    ]
    return "\n".join(lines)


def _toml(value: Any) -> str:
    """A TOML literal: booleans, numbers, and strings or lists of strings (JSON strings are TOML strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)
