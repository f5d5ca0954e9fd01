-- Full trace of one request: every record it sent, what was predicted, by which model file, and feedback.
--     psql -v request_id=abc123 -f sql/queries/trace_request.sql "$DATABASE_URL"
SELECT i.prediction_id, i.created_at, v.name AS model, v.version, v.sha256,
       i.features, o.label, o.probability, o.probabilities, o.value, o.latency_ms,
       (SELECT json_agg(json_build_object('actual', coalesce(f.actual_label, f.actual_value::text),
                                          'received_at', f.received_at) ORDER BY f.id)
        FROM prediction_feedback f WHERE f.prediction_id = i.prediction_id) AS feedback
FROM model_inputs i
JOIN model_outputs o USING (prediction_id)
JOIN model_versions v ON v.id = i.model_version_id
WHERE i.request_id = :'request_id'
ORDER BY i.prediction_id;
