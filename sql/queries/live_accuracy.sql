-- Live accuracy from reported ground truth: the latest feedback per prediction counts
-- (`predictor db stats`, third table). Classifiers get an accuracy, regressors a mean absolute error.
WITH latest AS (
    SELECT DISTINCT ON (prediction_id) prediction_id, actual_label, actual_value
    FROM prediction_feedback
    ORDER BY prediction_id, id DESC
)
SELECT v.name AS model, v.version, count(*) AS with_feedback,
       sum(CASE WHEN f.actual_label = o.label THEN 1 ELSE 0 END) AS correct,
       CASE WHEN o.task <> 'regression'
            THEN avg(CASE WHEN f.actual_label = o.label THEN 1.0 ELSE 0.0 END) END AS accuracy,
       avg(abs(f.actual_value - o.value)) AS mae
FROM latest f
JOIN model_inputs i USING (prediction_id)
JOIN model_outputs o USING (prediction_id)
JOIN model_versions v ON v.id = i.model_version_id
GROUP BY v.name, v.version, o.task
ORDER BY v.name, v.version;
