-- Least-privilege roles for the predictor-core audit trail. Run as a superuser (or the schema owner)
-- after sql/schema.sql or `predictor db upgrade`, in the predictor database:
--     psql -v ON_ERROR_STOP=1 -f sql/roles.sql "$DATABASE_URL"
-- The roles are NOLOGIN groups; give people and services their own login roles as members, e.g.
--     CREATE ROLE predictor_server LOGIN PASSWORD '...' IN ROLE predictor_app;
-- Idempotent: safe to run again after a migration added tables.
--
--  predictor_app     the server and notebooks: INSERT and SELECT predictions, never UPDATE or DELETE them
--                    (the audit trail is append-only); registers model versions; reads reference data.
--  predictor_reader  analysts and the query scripts: SELECT only.
--  (migrations and `predictor db import-dataset` run as the schema owner, not as either of these.)

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'predictor_app') THEN
        CREATE ROLE predictor_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'predictor_reader') THEN
        CREATE ROLE predictor_reader NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO predictor_app, predictor_reader;

-- Start from nothing on every table, then grant exactly what each role needs.
REVOKE ALL ON model_versions, model_inputs, model_outputs, prediction_feedback, shadow_outputs,
    model_aliases, model_alias_history, reference_datasets, dataset_rows, alembic_version
    FROM predictor_app, predictor_reader;

-- Append-only audit trail: INSERT and SELECT, no UPDATE, DELETE or TRUNCATE.
GRANT SELECT, INSERT ON model_versions, model_inputs, model_outputs, prediction_feedback, shadow_outputs
    TO predictor_app;
GRANT USAGE ON SEQUENCE model_versions_id_seq, prediction_feedback_id_seq TO predictor_app;
-- Aliases move (promote, rollback, shadow): the current pointer changes, every change is appended to
-- the history, which is never rewritten.
GRANT SELECT, INSERT, UPDATE, DELETE ON model_aliases TO predictor_app;
GRANT SELECT, INSERT ON model_alias_history TO predictor_app;
GRANT USAGE ON SEQUENCE model_alias_history_id_seq TO predictor_app;
-- Reference data and the schema revision (checked at start-up) are read-only for the application.
GRANT SELECT ON reference_datasets, dataset_rows, alembic_version TO predictor_app;

GRANT SELECT ON model_versions, model_inputs, model_outputs, prediction_feedback, shadow_outputs,
    model_aliases, model_alias_history, reference_datasets, dataset_rows, alembic_version TO predictor_reader;
