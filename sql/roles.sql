-- Least-privilege roles for the predictor-core audit trail. Run as a superuser (or the schema owner)
-- after sql/schema.sql or `predictor db upgrade`, in the predictor database:
--     psql -v ON_ERROR_STOP=1 -f sql/roles.sql "$DATABASE_URL"
-- The roles are NOLOGIN groups; give people and services their own login roles as members, e.g.
--     CREATE ROLE predictor_server LOGIN PASSWORD '...' IN ROLE predictor_app;
-- Idempotent: safe to run again after a migration added tables.
--
--  predictor_app     the server and notebooks: INSERT and SELECT predictions, never UPDATE or DELETE them
--                    (the audit trail is append-only); registers model versions; reads reference data;
--                    reads API keys to check them, but cannot create, change or revoke one.
--  predictor_admin   whoever runs `predictor keys create | list | revoke`: creates API keys and revokes
--                    them (an UPDATE of revoked_at, the one column it may change); never deletes one.
--  predictor_reader  analysts and the query scripts: SELECT only (API keys too: ids, scopes and hashes
--                    of 256-bit secrets, which cannot be turned back into keys).
--  (migrations and `predictor db import-dataset` run as the schema owner, not as any of these.)

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'predictor_app') THEN
        CREATE ROLE predictor_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'predictor_reader') THEN
        CREATE ROLE predictor_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'predictor_admin') THEN
        CREATE ROLE predictor_admin NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO predictor_app, predictor_reader, predictor_admin;

-- Start from nothing on every table, then grant exactly what each role needs.
REVOKE ALL ON model_versions, model_inputs, model_outputs, prediction_feedback, shadow_outputs,
    model_aliases, model_alias_history, reference_datasets, dataset_rows, alembic_version, api_keys
    FROM predictor_app, predictor_reader, predictor_admin;

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
-- API keys: the server checks them and never writes them, so a compromised server cannot mint a key.
GRANT SELECT ON api_keys TO predictor_app;
-- Key management: create, list and revoke (revoked_at only: a hash, a scope or a limit never changes).
-- The CLI checks the schema revision first, hence alembic_version.
GRANT SELECT, INSERT ON api_keys TO predictor_admin;
GRANT UPDATE (revoked_at) ON api_keys TO predictor_admin;
GRANT SELECT ON alembic_version TO predictor_admin;

GRANT SELECT ON model_versions, model_inputs, model_outputs, prediction_feedback, shadow_outputs,
    model_aliases, model_alias_history, reference_datasets, dataset_rows, alembic_version, api_keys
    TO predictor_reader;
