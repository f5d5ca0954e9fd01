"""The ONNX runtime adapter: model bundles on disk and onnxruntime sessions.

Export of scikit-learn pipelines (`predictor_onnx.export`) needs the `train` extra; serving does not.
"""

from predictor_onnx.bundles import BundleDirectory, install_bundle, is_bundle_path, read_bundle, read_manifest
from predictor_onnx.reference import reference_root
from predictor_onnx.runtime import OnnxRuntime

__all__ = [
    "BundleDirectory",
    "OnnxRuntime",
    "install_bundle",
    "is_bundle_path",
    "read_bundle",
    "read_manifest",
    "reference_root",
]
