"""The ONNX runtime adapter: model bundles on disk and onnxruntime sessions.

Export of scikit-learn pipelines (`predictor_onnx.export`) needs the `train` extra; serving does not.
"""

from predictor_onnx.bundles import BundleDirectory, read_bundle
from predictor_onnx.reference import reference_root
from predictor_onnx.runtime import OnnxRuntime

__all__ = ["BundleDirectory", "OnnxRuntime", "read_bundle", "reference_root"]
