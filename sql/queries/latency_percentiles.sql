-- Validation + inference latency per model version, in milliseconds (`predictor db stats`, second table).
SELECT v.name AS model, v.version, count(*) AS predictions,
       percentile_cont(0.50) WITHIN GROUP (ORDER BY o.latency_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY o.latency_ms) AS p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY o.latency_ms) AS p99_ms
FROM model_inputs i
JOIN model_outputs o USING (prediction_id)
JOIN model_versions v ON v.id = i.model_version_id
GROUP BY v.name, v.version
ORDER BY v.name, v.version;
