"""predictor-core's entry points: `predict()` and `load_model()` for notebooks, the CLI, the server.

This package is the composition root: the only place that knows every adapter (`predictor.wiring`).
Importing it builds nothing; models load on first use, and `close()` releases what was opened.
"""

from predictor.export import export
from predictor.facade import Model, close, load_model, predict
from predictor_core import ValidationFailed

__all__ = ["Model", "ValidationFailed", "close", "export", "load_model", "predict"]
