"""The ONNX runtime adapter: model bundles on disk, onnxruntime sessions, and (with the `train` extra)
export of scikit-learn pipelines through a parity gate (`predictor_onnx.export`)."""

from predictor_onnx.bundles import BundleDirectory, read_bundle
from predictor_onnx.reference import reference_root
from predictor_onnx.runtime import OnnxRuntime

__all__ = ["BundleDirectory", "OnnxRuntime", "read_bundle", "reference_root"]
