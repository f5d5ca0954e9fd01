"""The feature schema: what a model accepts, declared once and shared by validation, docs and storage.

A schema round-trips through JSON unchanged (`FeatureSchema.from_json(s.to_json()) == s`) and renders
a JSON Schema (draft 2020-12, as OpenAPI 3.1 uses) with units, bounds, categories and rules.
"""

from __future__ import annotations

import enum
import math
from functools import cached_property
from typing import Any

import msgspec

from predictor_core.errors import SchemaError
from predictor_core.rules import Rule

__all__ = ["Feature", "FeatureKind", "FeatureSchema"]


class FeatureKind(enum.StrEnum):
    """The JSON type a feature takes; `number` accepts integers too, `integer` refuses fractions."""

    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    CATEGORY = "category"


class Feature(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One input column of the model."""

    name: str
    kind: FeatureKind
    description: str = ""
    unit: str | None = None
    """Unit of measure shown to users (mm, g, mg/dL...); None for dimensionless or categorical."""
    required: bool = True
    """The key must be present in every record (it may still be null when `nullable`)."""
    nullable: bool = False
    """Null is accepted and means missing: the model imputes it."""
    minimum: float | None = None
    """Inclusive lower bound, for number and integer features."""
    maximum: float | None = None
    """Inclusive upper bound, for number and integer features."""
    categories: tuple[str, ...] | None = None
    """The allowed values of a category feature, in the model's order."""

    def __post_init__(self) -> None:
        where = f"feature {self.name!r}"
        # Python callers may pass plain strings and lists; normalise so `is` checks and hashing work.
        try:
            msgspec.structs.force_setattr(self, "kind", FeatureKind(self.kind))
        except ValueError:
            raise SchemaError(
                f"{where}: kind must be one of {', '.join(k.value for k in FeatureKind)}"
            ) from None
        for attribute in ("minimum", "maximum"):  # floats, so JSON round trips stay byte-identical
            value = getattr(self, attribute)
            if isinstance(value, int) and not isinstance(value, bool):
                msgspec.structs.force_setattr(self, attribute, float(value))
        if self.categories is not None and not isinstance(self.categories, tuple):
            msgspec.structs.force_setattr(self, "categories", tuple(self.categories))
        if not self.name or not self.name.isidentifier():
            raise SchemaError(f"{where}: a name must be a Python-style identifier (letters, digits, _)")
        if not self.required and not self.nullable:
            raise SchemaError(f"{where}: an optional feature must be nullable (absent means missing)")
        numeric = self.kind in (FeatureKind.NUMBER, FeatureKind.INTEGER)
        if not numeric and (self.minimum is not None or self.maximum is not None):
            raise SchemaError(f"{where}: bounds only apply to number and integer features")
        for bound in (self.minimum, self.maximum):
            if bound is not None and not math.isfinite(bound):
                raise SchemaError(f"{where}: bounds must be finite numbers")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise SchemaError(f"{where}: minimum {self.minimum} is above maximum {self.maximum}")
        if self.kind is FeatureKind.CATEGORY:
            if not self.categories:
                raise SchemaError(f"{where}: a category feature needs its list of categories")
            if len(set(self.categories)) != len(self.categories):
                raise SchemaError(f"{where}: categories must be unique")
        elif self.categories is not None:
            raise SchemaError(f"{where}: only category features have categories")

    def json_schema(self) -> dict[str, Any]:
        """This feature as a JSON Schema property, with the unit folded into the description."""
        kind_type = {
            FeatureKind.NUMBER: "number",
            FeatureKind.INTEGER: "integer",
            FeatureKind.BOOLEAN: "boolean",
            FeatureKind.CATEGORY: "string",
        }[self.kind]
        prop: dict[str, Any] = {"type": [kind_type, "null"] if self.nullable else kind_type}
        text = self.description + (f" [{self.unit}]" if self.unit else "")
        if text:
            prop["description"] = text.strip()
        if self.minimum is not None:
            prop["minimum"] = self.minimum
        if self.maximum is not None:
            prop["maximum"] = self.maximum
        if self.categories is not None:
            prop["enum"] = [*self.categories, None] if self.nullable else list(self.categories)
        if self.unit:
            prop["x-unit"] = self.unit
        return prop

    def example(self) -> Any:
        """A valid value: the middle of the bounds, or the first category."""
        if self.kind is FeatureKind.CATEGORY:
            return self.categories[0] if self.categories else None
        if self.kind is FeatureKind.BOOLEAN:
            return False
        low = self.minimum if self.minimum is not None else 0.0
        high = self.maximum if self.maximum is not None else max(low, 0.0) + 1.0
        middle = (low + high) / 2
        return round(middle) if self.kind is FeatureKind.INTEGER else middle


class FeatureSchema(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, dict=True):
    """The ordered features a model reads, plus the cross-field rules every record must satisfy."""

    features: tuple[Feature, ...]
    rules: tuple[Rule, ...] = ()
    examples: tuple[dict[str, Any], ...] = ()
    """Real records that pass validation (the exporter takes them from the training data), used as
    documentation and as the example bodies of the HTTP API."""

    def __post_init__(self) -> None:
        for name in ("features", "rules", "examples"):
            if not isinstance(getattr(self, name), tuple):
                msgspec.structs.force_setattr(self, name, tuple(getattr(self, name)))
        if not self.features:
            raise SchemaError("a schema needs at least one feature")
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SchemaError(f"duplicate feature names: {', '.join(duplicates)}")
        known = set(names)
        rule_names = [r.name for r in self.rules]
        if len(set(rule_names)) != len(rule_names):
            raise SchemaError("rule names must be unique")
        for rule in self.rules:
            unknown = sorted(rule.features - known)
            if unknown:
                raise SchemaError(f"rule {rule.name!r} reads unknown features: {', '.join(unknown)}")
            kinds = {self.feature(n).kind for n in rule.features}
            if FeatureKind.CATEGORY in kinds:
                raise SchemaError(f"rule {rule.name!r}: rules compare numbers, not category features")

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Feature names in model order."""
        return tuple(f.name for f in self.features)

    @cached_property
    def _by_name(self) -> dict[str, Feature]:
        return {f.name: f for f in self.features}

    def feature(self, name: str) -> Feature:
        """The feature called `name`; KeyError if the model has none."""
        return self._by_name[name]

    @property
    def all_numeric(self) -> bool:
        """True when every feature can go into one float matrix (no category feature)."""
        return all(f.kind is not FeatureKind.CATEGORY for f in self.features)

    def to_json(self) -> bytes:
        """Serialise to JSON; `from_json` gives back an equal schema."""
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> FeatureSchema:
        """Load a schema from JSON, refusing unknown keys and ill-formed features or rules."""
        try:
            return msgspec.json.decode(data, type=cls)
        except msgspec.ValidationError as exc:
            raise SchemaError(f"invalid feature schema: {exc}") from exc

    def json_schema(self) -> dict[str, Any]:
        """A JSON Schema for one record, with the rules listed under `x-rules` for humans and tools."""
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {f.name: f.json_schema() for f in self.features},
            "required": [f.name for f in self.features if f.required],
            "additionalProperties": False,
        }
        if self.rules:
            schema["x-rules"] = [{"name": r.name, "expr": r.expr, "message": r.message} for r in self.rules]
        return schema

    def example(self) -> dict[str, Any]:
        """A record for documentation: the first declared example, else each feature's middle value.

        Midpoints can break a cross-field rule, which is why exported schemas declare real examples.
        """
        if self.examples:
            return dict(self.examples[0])
        return {f.name: f.example() for f in self.features}
