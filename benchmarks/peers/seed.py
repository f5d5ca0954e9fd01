"""The seed-style service: FastAPI + a pydantic model of 30 named floats + a joblib scikit-learn pipeline.

What the project replaced, kept as the yardstick of `benchmarks/bench_http.py`: a plain `def` handler
(FastAPI runs it in its thread pool) that validates the flat JSON body with pydantic and calls the
pipeline's `predict_proba` on one row. By default the pipeline is the breast_cancer reference recipe's
(scaler + logistic regression, our bundle's training split): the same model on both sides, so the ratio
is the serving stack's. `forest` is the peer harness's seed model instead (scaler + a 100-tree random
forest of depth 8, /work/shared/bench/train_export.py), the one issue #9's "50x the seed" was measured
against: its predict_proba alone costs milliseconds. Either is fitted on a plain array, as a seed script
would, so predicting from an array raises no feature-name warning.

    python benchmarks/peers/seed.py train MODEL.joblib [reference|forest]   # fit and joblib.dump
    SEED_MODEL=MODEL.joblib uvicorn seed:create_app --factory --app-dir benchmarks/peers
"""

# No `from __future__ import annotations`: FastAPI must see the handler's pydantic class itself, which is
# built at run time from the feature names saved with the model.
import os
import sys
from typing import Any

import joblib
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, create_model

MODEL = "breast_cancer"


class Prediction(BaseModel):
    label: str
    probability: float


def train(path: str, kind: str = "reference") -> None:
    """Fit the `kind` pipeline on the reference training split and save it with its feature names."""
    from predictor_onnx.reference.recipes import RECIPES, split

    X_train, y_train, _, _ = split(MODEL)
    if kind == "forest":
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        forest = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0)
        pipeline = Pipeline([("scaler", StandardScaler()), ("rf", forest)])
    elif kind == "reference":
        pipeline = RECIPES[MODEL].make_pipeline()
    else:
        raise ValueError(f"no seed pipeline {kind!r}: reference or forest")
    pipeline.fit(X_train.to_numpy(), y_train.to_numpy())
    joblib.dump({"pipeline": pipeline, "features": list(X_train.columns)}, path)


def create_app() -> FastAPI:
    """The service for the model saved at `$SEED_MODEL`."""
    saved = joblib.load(os.environ["SEED_MODEL"])
    pipeline, names = saved["pipeline"], saved["features"]
    # the same as writing `class Features(BaseModel): mean_radius: float ...` by hand, 30 times
    features_model: Any = create_model("Features", **dict.fromkeys(names, (float, ...)))
    app = FastAPI()

    @app.post("/predict", response_model=Prediction)
    def predict(features: features_model) -> Prediction:  # type: ignore[valid-type]
        row = np.array([[getattr(features, name) for name in names]], dtype=np.float64)
        proba = pipeline.predict_proba(row)[0]
        best = int(proba.argmax())
        return Prediction(label=str(pipeline.classes_[best]), probability=float(proba[best]))

    return app


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[1] != "train":
        sys.exit("usage: python seed.py train MODEL.joblib [reference|forest]")
    train(*sys.argv[2:])
