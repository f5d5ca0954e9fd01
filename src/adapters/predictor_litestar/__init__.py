"""predictor_litestar adapter."""
