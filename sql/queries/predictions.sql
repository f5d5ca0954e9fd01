-- Recorded predictions of one model in a time range, newest first (what `predictor db predictions` shows).
--     psql -v model=penguins -v since=2026-11-01 -v until=2026-12-01 -f sql/queries/predictions.sql "$DATABASE_URL"
-- The time filter uses the BRIN index on model_inputs.created_at.
SELECT i.prediction_id, i.created_at, v.name AS model, v.version, o.task,
       o.label, o.probability, o.value, o.latency_ms, i.request_id, i.features
FROM model_inputs i
JOIN model_outputs o USING (prediction_id)
JOIN model_versions v ON v.id = i.model_version_id
WHERE v.name = :'model'
  AND i.created_at >= :'since'::timestamptz AND i.created_at < :'until'::timestamptz
ORDER BY i.created_at DESC
LIMIT 100;
