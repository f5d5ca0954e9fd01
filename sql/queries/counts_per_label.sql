-- How many predictions of each label per model version (`predictor db stats`, first table).
SELECT v.name AS model, v.version, o.label, count(*) AS predictions
FROM model_inputs i
JOIN model_outputs o USING (prediction_id)
JOIN model_versions v ON v.id = i.model_version_id
GROUP BY v.name, v.version, o.label
ORDER BY v.name, v.version, o.label;
