-- First start of the Postgres container (docker-entrypoint-initdb.d, run as POSTGRES_USER in POSTGRES_DB): the
-- schemas of the production storage profile (storage.db, docs/SCALING.md) in the application database: Dagster's
-- run, event log and schedule storage, and MLflow's tracking and registry store (both have tables named `runs`).
-- `courtside worker` creates them too when missing; the Dagster webserver and daemon and the MLflow server do not.
CREATE SCHEMA IF NOT EXISTS dagster;
CREATE SCHEMA IF NOT EXISTS mlflow;
