"""predictor_onnx adapter."""
