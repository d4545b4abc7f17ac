"""The live API shows the supervisor's view: ``services`` in ``/health`` and ``/live/status`` (a real
``python -m serving.api`` over a database the supervisor wrote), with the crash-loop pause when it is the
controls in force; and the states of that view (no supervisor, reporting, silent, stopped)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from serving.api.status import supervised_services
from storage import live as controls_store
from storage import supervision
from storage.db import make_engine, migrate
from tests.api.services import api_server, get

REASON = "engine crash loop: 5 restarts in 10 min (last exit: killed by SIGKILL)"


def status_row(service: str, **values) -> dict:
    return {
        "service": service,
        "state": "running",
        "pid": 4242,
        "restarts": 0,
        "crashes": 0,
        "last_exit_code": None,
        "last_exit": None,
        "last_crash_at": None,
        "next_restart_at": None,
        "crash_loop": False,
        "crash_loop_reason": None,
        "started_at": datetime.now(UTC),
        **values,
    }


def test_health_and_live_status_answer_the_services_and_the_crash_loop_pause(tmp_path):
    url = f"sqlite:///{tmp_path / 'courtside.db'}"
    migrate(url)
    db = make_engine(url)
    with api_server(url, tmp_path) as api:
        for path in ("/health", "/live/status"):
            services = get(api.url + path)[1]["services"]
            assert services["supervisor"] == "none" and services["items"] == [] and services["betting_paused"] is None
        crashed = datetime.now(UTC)
        supervision.record_service_statuses(
            db,
            [
                status_row(
                    "engine",
                    state="backoff",
                    pid=None,
                    restarts=4,
                    crashes=5,
                    last_exit_code=-9,
                    last_exit="killed by SIGKILL",
                    last_crash_at=crashed,
                    crash_loop=True,
                    crash_loop_reason=REASON,
                ),
                status_row("live-api"),
            ],
        )
        controls_store.change_controls(db, changed_by="supervisor", paused=True, reason=REASON)
        for path in ("/health", "/live/status"):
            status, body, _ = get(api.url + path)
            assert status == 200
            services = body["services"]
            assert services["supervisor"] == "reporting" and services["crash_loop"] == ["engine"]
            assert services["betting_paused"]["reason"] == REASON
            engine, live_api = services["items"]
            assert engine["service"] == "engine" and engine["state"] == "backoff" and engine["restarts"] == 4
            assert engine["last_exit"] == "killed by SIGKILL" and engine["last_exit_code"] == -9
            assert engine["crash_loop"] and engine["crash_loop_reason"] == REASON and engine["pid"] is None
            assert datetime.fromisoformat(engine["last_crash_at"]) == crashed
            assert live_api["state"] == "running" and live_api["pid"] == 4242
        # an operator resumes: the pause is no longer in force, the history stays in the services
        controls_store.change_controls(db, changed_by="operator", paused=False, reason="fixed the engine")
        services = get(api.url + "/live/status")[1]["services"]
        assert services["betting_paused"] is None and services["crash_loop"] == ["engine"]
    db.dispose()


def test_the_view_says_when_the_supervisor_went_silent_or_stopped(tmp_path):
    url = f"sqlite:///{tmp_path / 'courtside.db'}"
    migrate(url)
    db = make_engine(url)
    at = datetime(2026, 12, 6, 12, tzinfo=UTC)
    supervision.record_service_statuses(db, [status_row("engine")], at=at)
    assert supervised_services(db, now=at + timedelta(seconds=10))["supervisor"] == "reporting"
    assert supervised_services(db, now=at + timedelta(seconds=31))["supervisor"] == "silent"
    supervision.record_service_statuses(db, [status_row("engine", state="stopped", pid=None)], at=at)
    assert supervised_services(db, now=at)["supervisor"] == "stopped"
    controls_store.change_controls(db, changed_by="operator", paused=True, reason="maintenance")
    assert supervised_services(db)["betting_paused"] is None  # an operator's pause is not the supervisor's
    supervision.reset_service_statuses(db)
    assert supervised_services(db)["supervisor"] == "none"
    db.dispose()
