"""The production storage profile (issue 14): one variable, ``COURTSIDE_DATABASE_URL=postgresql+psycopg://...``,
puts the application database, Dagster's instance (runs, event log, schedules) and MLflow's tracking store in that
Postgres database, each in its own schema; without it everything stays embedded SQLite, as before.

On a real PostgreSQL server: a Dagster instance made from the profile writes its run and events into Postgres
tables, the application's migrations land there too, and the MLflow server ``courtside up`` starts keeps its
experiments there."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
import yaml
from sqlalchemy import create_engine, make_url, text

from courtside import cli
from courtside.exposure import Ports, child_environment
from courtside.settings import PROJECT_ROOT, Settings
from courtside.supervisor import ProcessLauncher
from storage.db import DAGSTER_SCHEMA, MLFLOW_SCHEMA, Database, is_postgres, schema_url
from tests.services import ROOT, free_port

PROFILE_VARS = (
    "COURTSIDE_HOME",
    "COURTSIDE_DATA_DIR",
    "COURTSIDE_DATABASE_URL",
    "MLFLOW_TRACKING_URI",
    "DAGSTER_HOME",
    "DAGSTER_PG_URL",
    "COURTSIDE_MAX_CONCURRENT_RUNS",
    "COURTSIDE_EXECUTOR",
)


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No profile variable from the caller; whatever ``prepare_environment`` exports is undone after the test."""
    for var in PROFILE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COURTSIDE_HOME", str(tmp_path / "home"))
    return monkeypatch


def _tables(url: str, schema: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}
            )
            return {r[0] for r in rows}
    finally:
        engine.dispose()


def test_without_the_variable_everything_stays_embedded_sqlite(env, tmp_path):
    settings = cli.prepare_environment(Settings.from_env())
    home = tmp_path / "home"
    assert settings.database_url == f"sqlite:///{home / 'courtside.db'}"
    assert settings.mlflow_tracking_uri == f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    assert (settings.dagster_home / "dagster.yaml").read_bytes() == (PROJECT_ROOT / "dagster.yaml").read_bytes()
    assert "DAGSTER_PG_URL" not in os.environ and "COURTSIDE_MAX_CONCURRENT_RUNS" not in os.environ
    assert cli.storage_profile(os.environ) == {}
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        queue = instance.run_coordinator.get_run_queue_config()
        assert queue.max_concurrent_runs == 1 and len(queue.tag_concurrency_limits) == 3  # one run at a time


def test_the_profile_derives_one_schema_each_for_dagster_and_mlflow_from_the_one_url():
    url = "postgresql+psycopg://court%40side:p%40ss%3Aw%2Frd@db.internal:5433/courtside?sslmode=require"
    derived = cli.storage_profile({"COURTSIDE_DATABASE_URL": url})
    dagster, mlflow = make_url(derived["DAGSTER_PG_URL"]), make_url(derived["MLFLOW_TRACKING_URI"])
    for parsed, driver, schema in ((dagster, "psycopg2", DAGSTER_SCHEMA), (mlflow, "psycopg", MLFLOW_SCHEMA)):
        assert parsed.drivername == f"postgresql+{driver}"
        assert (parsed.username, parsed.password, parsed.host, parsed.port, parsed.database) == (
            "court@side",
            "p@ss:w/rd",
            "db.internal",
            5433,
            "courtside",
        )
        assert parsed.query == {"sslmode": "require", "options": f"-csearch_path={schema}"}
    # options already in the URL are kept; a variable already set is kept
    assert make_url(schema_url(url + "&options=-cstatement_timeout%3D5000", "x")).query["options"] == (
        "-cstatement_timeout=5000 -csearch_path=x"
    )
    explicit = {"COURTSIDE_DATABASE_URL": url, "MLFLOW_TRACKING_URI": "http://mlflow.internal:5000"}
    assert set(cli.storage_profile(explicit)) == {"DAGSTER_PG_URL"}
    assert cli.storage_profile({"COURTSIDE_DATABASE_URL": "sqlite:////tmp/x.db"}) == {}
    assert not is_postgres("http://mlflow.internal:5000") and not is_postgres(None) and is_postgres(url)


def test_both_instance_files_have_the_same_run_queue_and_settings():
    default = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    postgres = yaml.safe_load((PROJECT_ROOT / cli.POSTGRES_INSTANCE_YAML).read_text())
    assert "storage" not in default
    assert postgres.pop("storage") == {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
    queue, pg_queue = default["run_coordinator"]["config"], postgres["run_coordinator"]["config"]
    assert queue.pop("max_concurrent_runs") == 1
    assert pg_queue.pop("max_concurrent_runs") == {"env": "COURTSIDE_MAX_CONCURRENT_RUNS"}
    assert default == postgres
    limits = {(lim["key"], json.dumps(lim.get("value"))): lim["limit"] for lim in queue["tag_concurrency_limits"]}
    assert limits == {
        ("courtside/job", '{"applyLimitPerUniqueValue": true}'): 1,
        ("courtside/warehouse", '"write"'): 1,
        ("dagster/backfill", "null"): 1,
    }


@pytest.mark.postgres
def test_one_variable_puts_the_application_database_and_dagsters_runs_and_events_in_postgres(
    env, postgres_database_url
):
    env.setenv("COURTSIDE_DATABASE_URL", postgres_database_url)
    settings = cli.prepare_environment(Settings.from_env())
    assert (settings.dagster_home / "dagster.yaml").read_bytes() == (
        PROJECT_ROOT / cli.POSTGRES_INSTANCE_YAML
    ).read_bytes()
    assert os.environ["DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")
    assert os.environ["MLFLOW_TRACKING_URI"] == settings.mlflow_tracking_uri
    assert is_postgres(settings.mlflow_tracking_uri) and os.environ["COURTSIDE_MAX_CONCURRENT_RUNS"] == "1"

    db = Database(settings.database_url)  # the application database: its migrations in the default schema
    db.migrate()
    db.dispose()
    assert {"courtside_alembic_version", "quarantine", "live_events"} <= _tables(postgres_database_url, "public")

    @dg.asset
    def profile_probe() -> int:
        return 1

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        queue = instance.run_coordinator.get_run_queue_config()
        assert queue.max_concurrent_runs == 1 and len(queue.tag_concurrency_limits) == 3
        result = dg.materialize([profile_probe], instance=instance)
        assert result.success
        run_id = result.run_id
    engine = create_engine(postgres_database_url)
    try:
        with engine.connect() as conn:
            runs = conn.execute(text("SELECT status FROM dagster.runs WHERE run_id = :r"), {"r": run_id}).all()
            events = conn.execute(
                text("SELECT dagster_event_type FROM dagster.event_logs WHERE run_id = :r"), {"r": run_id}
            ).all()
    finally:
        engine.dispose()
    assert runs == [("SUCCESS",)]
    kinds = {e[0] for e in events}
    expected = {dg.DagsterEventType.RUN_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.RUN_SUCCESS}
    assert {e.value for e in expected} | {"ASSET_MATERIALIZATION"} <= kinds, kinds  # RUN_START is "PIPELINE_START"
    assert {"runs", "event_logs", "instigators", "alembic_version"} <= _tables(postgres_database_url, DAGSTER_SCHEMA)
    assert "runs" not in _tables(postgres_database_url, "public")  # nothing of Dagster's among the app's tables


@pytest.mark.postgres
@pytest.mark.slow
def test_the_mlflow_server_courtside_up_starts_keeps_its_store_in_postgres(env, postgres_database_url):
    env.setenv("COURTSIDE_DATABASE_URL", postgres_database_url)
    settings = cli.prepare_environment(Settings.from_env())
    ports = Ports(dagster=free_port(), mlflow=free_port())
    spec = next(s for s in cli.control_plane_specs(settings, ports) if s.name == "mlflow")
    store = spec.command[spec.command.index("--backend-store-uri") + 1]
    assert store == settings.mlflow_tracking_uri and make_url(store).drivername == "postgresql+psycopg"
    assert spec.command[spec.command.index("--host") + 1] == "127.0.0.1"
    launcher = ProcessLauncher(settings.home / "logs", cwd=ROOT, base_env=child_environment())
    proc = launcher.start(spec)
    url = f"http://127.0.0.1:{ports.mlflow}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                log = Path(settings.home / "logs" / "mlflow.log")
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow server did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.5)
        request = urllib.request.Request(
            f"{url}/api/2.0/mlflow/experiments/create",
            data=json.dumps({"name": "stored-in-postgres"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as resp:
            experiment_id = json.load(resp)["experiment_id"]
    finally:
        launcher.terminate(proc)
        launcher.reap(proc, 20)
    engine = create_engine(postgres_database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT experiment_id, name FROM mlflow.experiments ORDER BY experiment_id")).all()
    finally:
        engine.dispose()
    assert (int(experiment_id), "stored-in-postgres") in [(int(i), n) for i, n in rows]
    assert "experiments" not in _tables(postgres_database_url, "public")
