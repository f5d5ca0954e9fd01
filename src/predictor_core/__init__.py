"""predictor-core's pure domain: feature schemas, validation, predictions, ports and the use case.

This package imports only the standard library, msgspec and numpy (a contract in the test suite
enforces it), so it can be reasoned about and tested without a database, a web server or ONNX.
"""

from predictor_core.bundle import (
    MANIFEST_FORMAT,
    FeatureStats,
    ModelManifest,
    OnnxSignature,
    TensorSpec,
    TrainingSummary,
)
from predictor_core.errors import (
    BundleError,
    ConfigurationError,
    InvalidFeedback,
    ModelNotFound,
    NotFound,
    PredictionNotFound,
    PredictorError,
    RuntimeUnavailable,
    SchemaError,
    StoreUnavailable,
    Unavailable,
    ValidationFailed,
)
from predictor_core.ids import new_prediction_id, new_prediction_ids
from predictor_core.ports import (
    ExecutionReport,
    Feedback,
    InferenceRuntime,
    ModelSource,
    PredictionRecord,
    PredictionStore,
    StoreHealth,
)
from predictor_core.predictions import (
    BinaryPrediction,
    ClassifierOutputs,
    Label,
    ModelIdentity,
    MulticlassPrediction,
    Prediction,
    RegressionPrediction,
    RegressorOutputs,
    Task,
    TaskOutputs,
)
from predictor_core.problems import Problem, ProblemCode
from predictor_core.rules import Rule
from predictor_core.schema import Feature, FeatureKind, FeatureSchema
from predictor_core.service import PredictionService, build_predictions, check_actual
from predictor_core.validation import ValidatedBatch, validate_columns, validate_record, validate_records

__all__ = [
    "MANIFEST_FORMAT",
    "BinaryPrediction",
    "BundleError",
    "ClassifierOutputs",
    "ConfigurationError",
    "ExecutionReport",
    "Feature",
    "FeatureKind",
    "FeatureSchema",
    "FeatureStats",
    "Feedback",
    "InferenceRuntime",
    "InvalidFeedback",
    "Label",
    "ModelIdentity",
    "ModelManifest",
    "ModelNotFound",
    "ModelSource",
    "MulticlassPrediction",
    "NotFound",
    "OnnxSignature",
    "Prediction",
    "PredictionNotFound",
    "PredictionRecord",
    "PredictionService",
    "PredictionStore",
    "PredictorError",
    "Problem",
    "ProblemCode",
    "RegressionPrediction",
    "RegressorOutputs",
    "Rule",
    "RuntimeUnavailable",
    "SchemaError",
    "StoreHealth",
    "StoreUnavailable",
    "Task",
    "TaskOutputs",
    "TensorSpec",
    "TrainingSummary",
    "Unavailable",
    "ValidatedBatch",
    "ValidationFailed",
    "build_predictions",
    "check_actual",
    "new_prediction_id",
    "new_prediction_ids",
    "validate_columns",
    "validate_record",
    "validate_records",
]
