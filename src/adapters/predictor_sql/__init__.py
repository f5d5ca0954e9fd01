"""predictor_sql adapter."""
