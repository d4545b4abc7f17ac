"""The supervisor over real processes and a real application database: a child that exits with code 1
and one killed with SIGKILL are logged, counted and restarted with backoff; a crash loop pauses betting
through the operator's controls with the reason; the status rows are written; the real streaming engine,
killed, is started again."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from courtside.supervisor import BACKOFF, RUNNING, STOPPED, ProcessLauncher, RestartPolicy, ServiceSpec, Supervisor
from storage import live as controls_store
from storage import supervision
from storage.db import make_engine, migrate
from tests.services import ROOT, free_port

FAST = RestartPolicy(
    initial_backoff_s=0.1, max_backoff_s=0.4, jitter=0.2, crash_loop_restarts=3, crash_loop_window_s=60.0, stable_s=30.0
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator:
    url = f"sqlite:///{tmp_path / 'courtside.db'}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def pause_betting(db) -> Callable[[ServiceSpec, str], None]:
    """What ``make up`` does on a crash loop."""
    return lambda spec, reason: controls_store.change_controls(db, changed_by="supervisor", paused=True, reason=reason)


def tick_until(sup: Supervisor, done: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out; statuses: {sup.statuses()}"
        sup.tick()
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_failing_child_is_restarted_counted_logged_and_its_crash_loop_pauses_betting(db, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="courtside.supervisor")
    launcher = ProcessLauncher(tmp_path / "logs", cwd=ROOT)
    sup = Supervisor(
        FAST,
        launcher,
        on_crash_loop=pause_betting(db),
        on_status=lambda rows: supervision.record_service_statuses(db, rows),
    )
    script = "import sys, time; print('engine going down', flush=True); time.sleep(0.2); sys.exit(1)"
    started = time.monotonic()
    sup.start(ServiceSpec("engine", (sys.executable, "-c", script), pauses_betting=True))
    try:
        tick_until(sup, lambda: controls_store.current_controls(db)["paused"])
        elapsed = time.monotonic() - started
        st = sup.services["engine"]
        assert st.crash_loop and st.crashes == 3 and st.restarts == 2
        # three runs of 0.2 s and two backoffs of ~0.1 and ~0.2 s: the restarts waited
        assert elapsed >= 3 * 0.2 + 0.08 + 0.16
        controls = controls_store.current_controls(db)
        reason = "engine crash loop: 3 restarts in 1 min (last exit: exit code 1)"
        assert controls["changed_by"] == "supervisor" and controls["reason"] == reason
        assert not controls["kill_switch"]
        row = supervision.service_statuses(db)[0]
        assert row["service"] == "engine" and row["crash_loop"] and row["crash_loop_reason"] == reason
        assert row["crashes"] == 3 and row["last_exit_code"] == 1 and row["last_exit"] == "exit code 1"
        assert row["state"] == BACKOFF and row["last_crash_at"] is not None
        # each crash is in the log with its exit code and the tail of the service's log
        crashes = [r.getMessage() for r in caplog.records if "crashed" in r.getMessage()]
        assert len(crashes) == 3 and all("exit code 1" in m and "engine going down" in m for m in crashes)
        # it keeps restarting (at the cap) instead of giving up, and the pause stays one change
        tick_until(sup, lambda: st.crashes >= 5)
        assert controls_store.current_controls(db)["version"] == controls["version"]
    finally:
        sup.stop_all(timeout_s=5)
    assert supervision.service_statuses(db)[0]["state"] == STOPPED


def test_a_child_killed_with_sigkill_is_restarted_and_stop_all_leaves_nothing_running(db, tmp_path):
    launcher = ProcessLauncher(tmp_path / "logs", cwd=ROOT)
    sup = Supervisor(FAST, launcher, on_status=lambda rows: supervision.record_service_statuses(db, rows))
    sup.start(
        ServiceSpec("feed-replay", (sys.executable, "-c", "import time; print('up', flush=True); time.sleep(120)"))
    )
    try:
        first = sup.services["feed-replay"].pid
        os.kill(first, signal.SIGKILL)
        tick_until(sup, lambda: sup.services["feed-replay"].restarts == 1)
        st = sup.services["feed-replay"]
        assert st.state == RUNNING and st.pid != first and alive(st.pid)
        assert st.last_exit_code == -signal.SIGKILL and st.last_exit == "killed by SIGKILL"
        row = supervision.service_statuses(db)[0]
        assert row["pid"] == st.pid and row["restarts"] == 1 and row["last_exit"] == "killed by SIGKILL"
        assert not row["crash_loop"]
        second = st.pid
    finally:
        sup.stop_all(timeout_s=5)
    assert not alive(second)
    assert controls_store.current_controls(db)["version"] == 0  # one crash pauses nothing


def test_the_real_engine_killed_under_the_supervisor_is_started_again(db, tmp_path):
    """``python -m serving.engine`` as ``make up`` starts it (nothing at its feed and prediction URLs: it waits
    for the prediction service, as it does at every start)."""
    url = db.url.render_as_string(hide_password=False)
    env = {"COURTSIDE_DATABASE_URL": url, "COURTSIDE_HOME": str(tmp_path)}
    spec = ServiceSpec(
        "engine",
        (
            sys.executable,
            "-m",
            "serving.engine",
            "--feed-url",
            f"ws://127.0.0.1:{free_port()}",
            "--prediction-url",
            f"http://127.0.0.1:{free_port()}",
        ),
        env=env,
        pauses_betting=True,
    )
    launcher = ProcessLauncher(tmp_path / "logs", cwd=ROOT)
    sup = Supervisor(
        FAST,
        launcher,
        on_crash_loop=pause_betting(db),
        on_status=lambda rows: supervision.record_service_statuses(db, rows),
    )
    log = tmp_path / "logs" / "engine.log"

    def waiting() -> int:
        return log.read_text().count("waiting for the prediction service") if log.exists() else 0

    sup.start(spec)
    try:
        time.sleep(1.0)  # killed while it starts up (importing): a crash like any other, and a faster test
        first = sup.services["engine"].pid
        os.kill(first, signal.SIGKILL)
        tick_until(sup, lambda: waiting() == 1, timeout_s=60)  # the second one is up
        st = sup.services["engine"]
        assert st.restarts == 1 and st.pid != first and st.last_exit == "killed by SIGKILL"
        assert supervision.service_statuses(db)[0]["pid"] == st.pid
        assert not controls_store.current_controls(db)["paused"]
    finally:
        sup.stop_all(timeout_s=10)
