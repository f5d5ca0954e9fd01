"""The reference datasets, loaded from installed packages (no download), with model-ready column names.

Each frame's columns are exactly the model's feature names, in order; missing values are NaN for
numbers and None for categories. The persistence adapter loads these into PostgreSQL, so keep the shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["DATASETS", "ReferenceDataset", "load_dataset"]

DATASETS = ("breast_cancer", "penguins", "diabetes")

DIABETES_COLUMNS = {
    "age": "age",
    "sex": "sex",
    "bmi": "bmi",
    "bp": "bp",
    "s1": "tc",
    "s2": "ldl",
    "s3": "hdl",
    "s4": "tch",
    "s5": "ltg",
    "s6": "glu",
}
"""scikit-learn's diabetes columns -> readable names (s1..s6 are blood serum measurements)."""


@dataclass(frozen=True, slots=True)
class ReferenceDataset:
    name: str
    frame: pd.DataFrame
    """Features only, columns named and ordered as the model reads them."""
    target: pd.Series
    target_name: str


def load_dataset(name: str) -> ReferenceDataset:
    """One of `DATASETS`; KeyError names the known ones."""
    loaders = {"breast_cancer": _breast_cancer, "penguins": _penguins, "diabetes": _diabetes}
    if name not in loaders:
        raise KeyError(f"no reference dataset {name!r}; known: {', '.join(DATASETS)}")
    return loaders[name]()


def _breast_cancer() -> ReferenceDataset:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.rename(columns=_snake_case)
    # Labels as words: "malignant" reads better than 0 in a prediction and in the audit trail.
    target = bunch.target.map(dict(enumerate(bunch.target_names))).astype(object).rename("diagnosis")
    return ReferenceDataset("breast_cancer", frame, target, "diagnosis")


def _penguins() -> ReferenceDataset:
    from palmerpenguins import load_penguins

    raw = load_penguins()
    numbers = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    frame = raw[numbers].astype("float64")
    for column in ("island", "sex"):
        values = raw[column].astype(object)
        frame[column] = values.where(values.notna(), None)
    return ReferenceDataset("penguins", frame, raw["species"].astype(object).rename("species"), "species")


def _diabetes() -> ReferenceDataset:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(as_frame=True, scaled=False)
    frame = bunch.data.rename(columns=DIABETES_COLUMNS)
    # Age in whole years and sex as a code are integers in the source; keep them so in the schema.
    frame = frame.astype({"age": "int64", "sex": "int64"})
    return ReferenceDataset("diabetes", frame, bunch.target.rename("progression"), "progression")


def _snake_case(column: str) -> str:
    return column.replace(" ", "_")
