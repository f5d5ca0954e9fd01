-- The imported training rows of a reference data set, as columns (`predictor db import-dataset NAME` first).
--     psql -v dataset=penguins -f sql/queries/training_data.sql "$DATABASE_URL"
SELECT r.row_number, d.target_name, r.target, r.features
FROM dataset_rows r
JOIN reference_datasets d ON d.id = r.dataset_id
WHERE d.name = :'dataset'
ORDER BY r.row_number
LIMIT 20;
