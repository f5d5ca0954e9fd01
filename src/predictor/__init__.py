"""predictor-core's entry points: `predict()` and `load_model()` for notebooks, the CLI, the server.

This package is the composition root: the only place that knows every adapter. Importing it builds
nothing; models load on first use.
"""

from predictor.export import export
from predictor.facade import Model, load_model, predict
from predictor_core import ValidationFailed

__all__ = ["Model", "ValidationFailed", "export", "load_model", "predict"]
