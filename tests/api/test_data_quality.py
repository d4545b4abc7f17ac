"""The data-quality status the dashboard shows is Dagster's latest ``gx_live_events`` evaluation: the
``live_data_checks`` job runs Great Expectations over the real event log into a Dagster instance, a
real ``dagster-webserver`` serves that instance, and the API reads the result over its GraphQL API."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg

from courtside.settings import PROJECT_ROOT, Settings
from orchestration.definitions import build_definitions
from storage import live as store
from storage.db import make_engine
from tests.api.services import api_server, get
from tests.services import free_port


def _webserver(home: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """``dagster-webserver`` over the instance in ``home`` (an empty workspace: the check results live
    in the instance's storage, no code location is needed to read them)."""
    workspace = home / "workspace.yaml"
    workspace.write_text("load_from: []\n")
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dagster-webserver"),
                "-w",
                str(workspace),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DAGSTER_HOME": str(home)},
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dagster-webserver did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.5)


def test_live_status_shows_the_latest_gx_check_of_the_live_log(log_copy, tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_bytes((PROJECT_ROOT / "dagster.yaml").read_bytes())
    settings = dataclasses.replace(Settings.from_env(), database_url=log_copy, home=tmp_path, dagster_home=home)
    defs = build_definitions(settings)

    def check() -> tuple[dg.ExecuteInProcessResult, dg.AssetCheckEvaluation]:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            run = defs.resolve_job_def("live_data_checks").execute_in_process(instance=instance)
            return run, run.get_asset_check_evaluations()[0]

    result, evaluation = check()
    assert evaluation.check_name == "gx_live_events" and evaluation.passed

    proc, dagster_url = _webserver(home, tmp_path / "dagster.log")
    try:
        with api_server(log_copy, tmp_path, env={"COURTSIDE_DAGSTER_URL": dagster_url}) as api:
            status = get(f"{api.url}/live/status")[1]
            # a defect planted in the log: a probability above 1
            db = make_engine(log_copy)
            last = store.event_rows(db, store.last_event_id(db) - 1, store.last_event_id(db))[0]
            store.append_events(
                db,
                [
                    store.EventEntry(
                        "PREDICTION", last["event_time"], {"probability": 1.7}, None, None, last["match_id"]
                    )
                ],
            )
            db.dispose()
            failed_run, failed = check()
            time.sleep(10.5)  # the API caches the status for 10 s
            after = get(f"{api.url}/live/status")[1]["data_quality"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert not failed.passed
    assert after["status"] == "failed" and after["run_id"] == failed_run.run_id
    assert "probability_in_0_1" in after["failed_expectations"] and "probability_in_0_1" in after["description"]
    quality = status["data_quality"]
    assert quality["status"] == "passed", quality
    assert quality["run_id"] == result.run_id and quality["check"] == "gx_live_events"
    assert quality["evaluated_rows"] == evaluation.metadata["evaluated_rows"].value > 0
    assert quality["expectations"] == evaluation.metadata["expectations"].value
    assert isinstance(quality["failed_expectations"], list) and quality["evaluated_at"]
    # the serving model: nothing listens at COURTSIDE_PREDICTION_URL here, and the status says so
    assert status["serving_model"]["status"] == "unknown" and "unreachable" in status["serving_model"]["reason"]
    assert status["inplay_model"]["name"]  # from the log's latest in-play prediction
