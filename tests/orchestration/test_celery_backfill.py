"""Dagster on Celery (issue 14): the executor is chosen by ``COURTSIDE_EXECUTOR`` (the two step processes of one
machine by default), every job's runs carry the tags the run queue limits, and a backfill of the partitioned
season features runs through real Celery workers.

The slow test: a throwaway Redis (``scripts/test-redis``, or ``COURTSIDE_TEST_REDIS_URL``) as broker, the Dagster
instance and the application database in a fresh PostgreSQL database (the production storage profile), two
``courtside worker`` processes, and ``courtside backfill --from 1968 --to 1969`` with ``COURTSIDE_EXECUTOR=celery``:
the ingest, the clean tables and both tours' seasons 1968-1969 (2 partitions of each season asset) run as Celery
tasks on the two workers, and the materializations are in the Postgres instance."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest
from sqlalchemy import create_engine, text

from courtside import cli
from courtside.settings import Settings
from orchestration.defs.operations.jobs import JOB_TAG, WAREHOUSE_TAG
from orchestration.defs.shared.execution import (
    CELERY_QUEUE,
    REDIS_VISIBILITY_TIMEOUT_S,
    celery_settings,
    executor_from_env,
    pipeline_executor,
)
from tests.real_data import data_dir
from tests.services import ROOT

PROFILE_VARS = (
    "COURTSIDE_HOME",
    "COURTSIDE_DATA_DIR",
    "COURTSIDE_DATABASE_URL",
    "MLFLOW_TRACKING_URI",
    "DAGSTER_HOME",
    "DAGSTER_PG_URL",
    "COURTSIDE_MAX_CONCURRENT_RUNS",
    "COURTSIDE_EXECUTOR",
    "COURTSIDE_CELERY_BROKER",
    "COURTSIDE_CELERY_BACKEND",
    "COURTSIDE_CELERY_WORKERS",
)
WORKERS = ("celery-test-1", "celery-test-2")


def test_the_executor_is_the_machines_two_step_processes_unless_celery_is_chosen():
    assert executor_from_env({}) is pipeline_executor
    assert executor_from_env({"COURTSIDE_EXECUTOR": "multiprocess"}) is pipeline_executor
    celery = executor_from_env({"COURTSIDE_EXECUTOR": "celery", "COURTSIDE_CELERY_BROKER": "redis://h:1/0"})
    assert celery.name == "courtside_celery_executor"
    with pytest.raises(ValueError, match="COURTSIDE_EXECUTOR='dask'"):
        executor_from_env({"COURTSIDE_EXECUTOR": "dask"})
    settings = celery_settings({"COURTSIDE_CELERY_BROKER": "redis://:secret@broker.internal:6379/2"})
    assert settings["broker_url"] == settings["result_backend"] == "redis://:secret@broker.internal:6379/2"
    assert settings["worker_prefetch_multiplier"] == 1 and settings["worker_max_tasks_per_child"] == 1
    assert settings["broker_transport_options"]["visibility_timeout"] == REDIS_VISIBILITY_TIMEOUT_S


def test_every_jobs_runs_carry_the_tags_the_run_queue_limits():
    from orchestration.definitions import defs

    batch = {"courtside_pipeline", "retrain_prematch", "season_update"}
    live = {"prematch_value", "settle_live", "live_data_checks"}
    for name in batch | live:
        tags = defs.resolve_job_def(name).run_tags
        assert tags[JOB_TAG] == name
        assert (tags.get(WAREHOUSE_TAG) == "write") == (name in batch), (name, tags)


def test_the_run_queue_keeps_one_batch_job_at_a_time_and_lets_the_live_jobs_run_beside_it():
    """The limits of dagster.yaml (as the daemon applies them: Dagster's own counter) on the jobs' real run tags."""
    import yaml
    from dagster._utils.tags import TagConcurrencyLimitsCounter

    from orchestration.definitions import defs

    limits = yaml.safe_load((ROOT / "dagster.yaml").read_text())["run_coordinator"]["config"]["tag_concurrency_limits"]

    def run(job: str, **tags: str) -> dg.DagsterRun:
        return dg.DagsterRun(job_name=job, tags={**defs.resolve_job_def(job).run_tags, **tags})

    in_progress = [run("courtside_pipeline"), run("settle_live")]
    counter = TagConcurrencyLimitsCounter(limits, in_progress)
    assert counter.is_blocked(run("retrain_prematch"))  # another batch job: the warehouse is being written
    assert counter.is_blocked(run("season_update"))
    assert counter.is_blocked(run("settle_live"))  # one run of a job at a time
    assert not counter.is_blocked(run("live_data_checks"))  # the live jobs run beside the batch job
    assert not counter.is_blocked(run("prematch_value"))
    backfill = TagConcurrencyLimitsCounter(limits, [run("settle_live", **{"dagster/backfill": "abc"})])
    assert backfill.is_blocked(run("live_data_checks", **{"dagster/backfill": "def"}))  # backfill runs: one at a time


def test_worker_command_and_the_workers_make_up_starts(tmp_path, monkeypatch):
    for var in PROFILE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COURTSIDE_HOME", str(tmp_path))
    monkeypatch.setenv("COURTSIDE_CELERY_BROKER", "redis://:secret@127.0.0.1:6390/0")
    settings = Settings.from_env()
    assert cli.worker_specs(settings) == []  # the default `make up`: no worker
    command, env = cli.celery_worker_command(settings, "w", concurrency=3)
    assert command[1:4] == ["-A", "dagster_celery.app", "worker"]
    flags = dict(zip(command[4::2], command[5::2], strict=False))
    assert flags["--include"] == "orchestration.preload" and flags["--queues"] == CELERY_QUEUE
    assert flags["--concurrency"] == "3" and flags["--max-tasks-per-child"] == "1" and flags["--hostname"] == "w@%h"
    config = settings.dagster_home / "celery" / "dagster_celery_config.py"
    assert str(config.parent) == env["PYTHONPATH"].split(os.pathsep)[0]
    assert "secret" not in config.read_text()  # the broker's URL stays in the environment
    monkeypatch.setenv("COURTSIDE_EXECUTOR", "celery")
    specs = cli.worker_specs(settings)
    assert [s.name for s in specs] == ["celery-worker-1", "celery-worker-2"]
    assert specs[0].command[1:4] == ("-m", "courtside.cli", "worker")
    monkeypatch.setenv("COURTSIDE_CELERY_WORKERS", "3")
    assert len(cli.worker_specs(settings)) == 3


# --- through real Celery workers ---


def _wait_for_workers(broker: str, procs: dict[str, subprocess.Popen], timeout_s: float) -> set[str]:
    from celery import Celery

    app = Celery("probe", broker=broker, backend=broker)
    ready: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while not set(procs) <= ready:
        for reply in app.control.ping(timeout=1.0) or []:
            ready |= {host.split("@", 1)[0] for host in reply}
        for name, proc in procs.items():
            assert proc.poll() is None, f"worker {name} exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"workers not ready after {timeout_s:.0f} s: {sorted(ready)}"
    return ready


@pytest.mark.slow
@pytest.mark.postgres
def test_a_backfill_of_two_seasons_runs_on_two_celery_workers_into_the_postgres_instance(
    tmp_path, monkeypatch, postgres_database_url, redis_url
):
    env = {k: v for k, v in os.environ.items() if k not in PROFILE_VARS}
    env.update(
        COURTSIDE_HOME=str(tmp_path / "home"),
        COURTSIDE_DATA_DIR=str(data_dir()),
        COURTSIDE_DATABASE_URL=postgres_database_url,
        COURTSIDE_EXECUTOR="celery",
        COURTSIDE_CELERY_BROKER=redis_url,
        OMP_WAIT_POLICY="PASSIVE",
    )
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name in WORKERS:
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "courtside.cli", "worker", "--name", name, "--loglevel", "WARNING"],
                cwd=ROOT,
                env=env,
                stdout=(tmp_path / f"{name}.log").open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped below by its id, pool included
            )
        _wait_for_workers(redis_url, procs, timeout_s=300)
        backfill = subprocess.run(
            [sys.executable, "-m", "courtside.cli", "backfill", "--tour", "both", "--from", "1968", "--to", "1969"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert backfill.returncode == 0, backfill.stdout[-3000:] + backfill.stderr[-5000:]
        assert "seasons 1968-1969 of ATP, WTA succeeded" in backfill.stdout
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    # the run, its steps and its materializations, read back from the Postgres instance of the same profile
    for var in PROFILE_VARS:
        monkeypatch.delenv(var, raising=False)
    for var in ("COURTSIDE_HOME", "COURTSIDE_DATA_DIR", "COURTSIDE_DATABASE_URL"):
        monkeypatch.setenv(var, env[var])
    cli.prepare_environment(Settings.from_env())
    seasons = {dg.AssetKey("atp_season_features"), dg.AssetKey("wta_season_features")}
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        (run,) = instance.get_runs()
        assert run.job_name == "season_update" and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["courtside/job"] == "season_update"
        for key in seasons:
            assert instance.get_materialized_partitions(key) == {"1968", "1969"}, key
        ran_on = {}
        for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            event = record.dagster_event
            if event and event.event_specific_data and "Celery worker" in event.event_specific_data.metadata:
                ran_on[event.step_key] = event.event_specific_data.metadata["Celery worker"].value.split("@")[0]
        stats = {s.step_key for s in instance.get_run_step_stats(run.run_id)}
    assert {"atp_season_features", "wta_season_features", "matches", "wta_matches"} <= stats
    assert set(ran_on) == stats, (sorted(ran_on), sorted(stats))  # every step ran in a Celery worker ...
    assert set(ran_on.values()) == set(WORKERS), ran_on  # ... and both workers took some
    engine = create_engine(postgres_database_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(
                text(
                    "SELECT asset_key, partition FROM dagster.event_logs "
                    "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND partition IS NOT NULL AND run_id = :r"
                ),
                {"r": run.run_id},
            ).all()
            quarantined = conn.execute(text("SELECT count(*) FROM public.quarantine")).scalar_one()
    finally:
        engine.dispose()
    assert sorted(stored) == sorted(
        (f'["{tour}_season_features"]', year) for tour in ("atp", "wta") for year in ("1968", "1969")
    )
    assert quarantined > 0  # the ingest's set-aside rows: the application database is that Postgres too
    store = tmp_path / "home" / "warehouse" / "seasons"
    assert all(
        (store / tour / "features" / f"{year}.parquet").exists() for tour in ("atp", "wta") for year in (1968, 1969)
    )
