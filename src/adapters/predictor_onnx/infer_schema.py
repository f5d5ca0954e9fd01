"""A FeatureSchema from a training frame: kinds from dtypes, categories and nullability from the values.

Inference only states what the data shows; what it cannot know (descriptions, units, declared bounds,
cross-field rules) comes from the caller's refinements, which win over anything inferred.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from predictor_core import Feature, FeatureKind, FeatureSchema, Rule, SchemaError
from predictor_onnx.runtime import MISSING_CATEGORY

__all__ = ["MISSING_CATEGORY", "as_frame", "column_values", "infer_schema"]

_REFINABLE = frozenset(Feature.__struct_fields__)


def infer_schema(
    frame: pd.DataFrame,
    *,
    refine: Mapping[str, Mapping[str, Any]] | None = None,
    rules: Iterable[Rule] = (),
    examples: Iterable[Mapping[str, Any]] = (),
) -> FeatureSchema:
    """Infer one feature per column, in column order, then apply the caller's refinements.

    Args:
        frame: the training features (missing as NaN/None; `""` also counts as a missing category).
        refine: per feature, Feature fields to set (description, unit, minimum, maximum, categories...).
        rules: cross-field rules every record must satisfy.
        examples: real records for documentation; the caller checks they validate.

    Raises:
        SchemaError: a refinement names an unknown feature or field, or a column cannot be typed.
    """
    refine = dict(refine or {})
    unknown = sorted(set(refine) - set(map(str, frame.columns)))
    if unknown:
        raise SchemaError(f"refinements for unknown features: {', '.join(unknown)}")
    features = []
    for column in frame.columns:
        name = str(column)
        fields = {**_infer_feature(name, frame[column]), **refine.get(name, {})}
        bad = sorted(set(fields) - _REFINABLE)
        if bad:
            raise SchemaError(f"feature {name!r}: unknown fields {', '.join(bad)}")
        features.append(Feature(**fields))
    return FeatureSchema(features=tuple(features), rules=tuple(rules), examples=tuple(map(dict, examples)))


def _infer_feature(name: str, column: pd.Series) -> dict[str, Any]:
    dtype = column.dtype
    missing = bool(column.isna().any())
    if pd.api.types.is_bool_dtype(dtype):
        kind = FeatureKind.BOOLEAN
    elif pd.api.types.is_integer_dtype(dtype):
        kind = FeatureKind.INTEGER
    elif pd.api.types.is_float_dtype(dtype):
        kind = FeatureKind.NUMBER
    elif isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype) or _is_string(dtype):
        values = column[column.notna()]
        if not all(isinstance(v, str) for v in values):
            raise SchemaError(f"column {name!r} mixes strings with other values; clean it before export")
        missing = missing or bool((values == MISSING_CATEGORY).any())
        categories = sorted(set(values) - {MISSING_CATEGORY})
        return {
            "name": name,
            "kind": FeatureKind.CATEGORY,
            "categories": tuple(categories),
            "nullable": missing,
        }
    else:
        raise SchemaError(f"column {name!r} has dtype {dtype}, which maps to no feature kind")
    return {"name": name, "kind": kind, "nullable": missing}


def _is_string(dtype: Any) -> bool:
    return pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype)


def column_values(column: pd.Series) -> list[Any]:
    """Plain Python values with None for missing (NaN, pd.NA): what the core validates."""
    values = column.astype(object)
    return list(values.where(values.notna(), None).tolist())


def as_frame(data: Any, names: list[str]) -> pd.DataFrame:
    """The features as a DataFrame with these column names: a frame is kept, an array is wrapped.

    Raises:
        SchemaError: an array whose width differs from the number of names.
    """
    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True)
    array = np.asarray(data)
    if array.ndim != 2 or array.shape[1] != len(names):
        raise SchemaError(
            f"expected a 2-D array with {len(names)} columns ({', '.join(names)}), got {array.shape}"
        )
    if array.dtype == object:
        return pd.DataFrame({n: pd.Series(array[:, i], dtype=object) for i, n in enumerate(names)})
    return pd.DataFrame(array, columns=names)
