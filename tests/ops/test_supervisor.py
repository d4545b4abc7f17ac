"""The supervisor's rules on an injected clock and scripted processes: backoff with jitter and a cap,
counting, the crash-loop flag and the pause of betting it causes, retries, and the status it reports."""

from __future__ import annotations

import random
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from courtside.supervisor import BACKOFF, RUNNING, STOPPED, RestartPolicy, ServiceSpec, Supervisor, describe_exit


@dataclass
class FakeChild:
    pid: int
    code: int | None = None

    def poll(self) -> int | None:
        return self.code


@dataclass
class FakeLauncher:
    children: list[FakeChild] = field(default_factory=list)
    terminated: list[int] = field(default_factory=list)

    def start(self, spec: ServiceSpec) -> FakeChild:
        self.children.append(FakeChild(1000 + len(self.children)))
        return self.children[-1]

    def terminate(self, child: FakeChild) -> None:
        self.terminated.append(child.pid)
        child.code = -signal.SIGTERM

    def reap(self, child: FakeChild, timeout_s: float) -> None:
        pass

    def tail(self, spec: ServiceSpec, lines: int) -> str:
        return f"last words of {spec.name}"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def wall(self) -> datetime:
        return datetime(2026, 12, 6, tzinfo=UTC) + timedelta(seconds=self.t)


POLICY = RestartPolicy(
    initial_backoff_s=1.0,
    max_backoff_s=8.0,
    factor=2.0,
    jitter=0.2,
    crash_loop_restarts=5,
    crash_loop_window_s=600.0,
    stable_s=60.0,
)
ENGINE = ServiceSpec("engine", ("python", "-m", "serving.engine"), pauses_betting=True)


def supervisor(**kwargs) -> tuple[Supervisor, FakeLauncher, Clock, list, list]:
    launcher, clock, pauses, reports = FakeLauncher(), Clock(), [], []
    sup = Supervisor(
        kwargs.pop("policy", POLICY),
        launcher,
        clock=clock,
        wall=clock.wall,
        rng=random.Random(7),
        on_crash_loop=kwargs.pop("on_crash_loop", lambda spec, reason: pauses.append((spec.name, reason))),
        on_status=reports.append,
        **kwargs,
    )
    return sup, launcher, clock, pauses, reports


def crash(sup: Supervisor, launcher: FakeLauncher, clock: Clock, code: int = 1) -> float:
    """Make the running child exit with ``code``; return the wait the supervisor chose."""
    launcher.children[-1].code = code
    sup.tick()
    st = sup.services["engine"]
    assert st.state == BACKOFF
    return round(st.restart_due - clock.t, 9)


def restart(sup: Supervisor, clock: Clock) -> None:
    clock.t = sup.services["engine"].restart_due
    sup.tick()
    assert sup.services["engine"].state == RUNNING


def test_a_crash_is_counted_and_restarted_after_a_growing_jittered_capped_backoff():
    sup, launcher, clock, pauses, _ = supervisor(
        policy=RestartPolicy(initial_backoff_s=1.0, max_backoff_s=8.0, jitter=0.2, crash_loop_restarts=100)
    )
    sup.start(ENGINE)
    waits = []
    for _ in range(7):
        clock.t += 5
        waits.append(crash(sup, launcher, clock))
        before = len(launcher.children)
        clock.t += waits[-1] * 0.99
        sup.tick()
        assert len(launcher.children) == before, "restarted before its backoff was over"
        restart(sup, clock)
    for i, wait in enumerate(waits[:3]):  # 1, 2, 4 s, each +-20 %
        assert 0.8 * 2**i <= wait <= 1.2 * 2**i
    assert all(w <= 8.0 for w in waits) and waits[-1] >= 8.0 * 0.8  # capped
    assert len({round(w, 6) for w in waits[:3]}) == 3
    st = sup.services["engine"]
    assert st.crashes == 7 and st.restarts == 7 and st.last_exit_code == 1 and st.last_exit == "exit code 1"
    assert len(launcher.children) == 8 and st.pid == launcher.children[-1].pid
    assert pauses == []


def test_n_crashes_in_the_window_is_a_crash_loop_that_pauses_betting_once_and_never_stops_restarting():
    sup, launcher, clock, pauses, reports = supervisor()
    sup.start(ENGINE)
    for i in range(4):
        crash(sup, launcher, clock, code=-signal.SIGKILL if i == 3 else 1)
        restart(sup, clock)
    assert not sup.services["engine"].crash_loop and pauses == []
    wait = crash(sup, launcher, clock, code=3)
    st = sup.services["engine"]
    assert st.crash_loop and wait == POLICY.max_backoff_s
    reason = "engine crash loop: 5 restarts in 10 min (last exit: exit code 3)"
    assert st.crash_loop_reason == reason and pauses == [("engine", reason)]
    for _ in range(10):  # it keeps restarting, at the cap, and pauses only once per crash loop
        restart(sup, clock)
        assert crash(sup, launcher, clock) == POLICY.max_backoff_s
    assert pauses == [("engine", reason)] and st.crashes == 15 and st.restarts == 14
    row = reports[-1][0]
    assert row["service"] == "engine" and row["state"] == BACKOFF and row["crash_loop"]
    assert row["crash_loop_reason"] == reason and row["crashes"] == 15 and row["last_exit_code"] == 1
    assert row["next_restart_at"] == row["last_crash_at"] + timedelta(seconds=POLICY.max_backoff_s)


def test_a_service_betting_does_not_depend_on_is_flagged_but_does_not_pause_betting():
    sup, launcher, clock, pauses, _ = supervisor()
    sup.start(ServiceSpec("feed-replay", ("python", "-m", "feeds.live")))
    st = sup.services["feed-replay"]
    for _ in range(5):
        launcher.children[-1].code = 1
        sup.tick()
        clock.t = st.restart_due
        sup.tick()
    assert st.crash_loop and st.crash_loop_reason.startswith("feed-replay crash loop: 5 restarts")
    assert pauses == []


def test_the_flag_clears_when_the_window_passes_and_a_new_crash_loop_pauses_again():
    sup, launcher, clock, pauses, _ = supervisor()
    sup.start(ENGINE)
    for _ in range(5):
        crash(sup, launcher, clock)
        restart(sup, clock)
    st = sup.services["engine"]
    assert st.crash_loop and len(pauses) == 1
    clock.t += 601
    sup.tick()
    assert not st.crash_loop and st.crash_loop_reason is None and st.state == RUNNING
    for _ in range(5):
        crash(sup, launcher, clock)
        restart(sup, clock)
    assert st.crash_loop and len(pauses) == 2


def test_running_stable_resets_the_backoff():
    sup, launcher, clock, _, _ = supervisor(
        policy=RestartPolicy(
            initial_backoff_s=1.0, max_backoff_s=60.0, jitter=0.0, crash_loop_restarts=100, stable_s=60
        )
    )
    sup.start(ENGINE)
    assert crash(sup, launcher, clock) == 1.0
    restart(sup, clock)
    assert crash(sup, launcher, clock) == 2.0
    restart(sup, clock)
    clock.t += 61
    sup.tick()
    assert crash(sup, launcher, clock) == 1.0


def test_a_pause_that_cannot_be_written_is_retried_until_it_is():
    attempts = []

    def flaky(spec: ServiceSpec, reason: str) -> None:
        attempts.append(reason)
        if len(attempts) < 3:
            raise RuntimeError("database is locked")

    sup, launcher, clock, _, _ = supervisor(on_crash_loop=flaky)
    sup.start(ENGINE)
    for _ in range(5):
        crash(sup, launcher, clock)
        restart(sup, clock)
    assert len(attempts) == 2 and sup.services["engine"].pause_pending
    sup.tick()
    assert len(attempts) == 3 and sup.services["engine"].pause_pending is None
    sup.tick()
    assert len(attempts) == 3


def test_a_status_write_that_fails_never_stops_supervision():
    launcher, clock = FakeLauncher(), Clock()

    def broken(rows):
        raise RuntimeError("no database")

    sup = Supervisor(POLICY, launcher, clock=clock, wall=clock.wall, on_status=broken)
    sup.start(ENGINE)
    launcher.children[-1].code = 1
    sup.tick()
    clock.t = sup.services["engine"].restart_due
    sup.tick()
    assert sup.services["engine"].state == RUNNING and sup.services["engine"].restarts == 1


def test_status_is_reported_on_change_and_as_a_heartbeat_and_stop_all_stops_everything():
    sup, launcher, clock, _, reports = supervisor(status_every_s=5.0)
    sup.start(ENGINE)
    sup.start(ServiceSpec("live-api", ("python", "-m", "serving.api")))
    n = len(reports)
    sup.tick()
    assert len(reports) == n  # nothing changed, heartbeat not due
    clock.t += 5
    sup.tick()
    assert len(reports) == n + 1
    assert {r["service"]: r["pid"] for r in reports[-1]} == {"engine": 1000, "live-api": 1001}
    sup.stop_all()
    assert sorted(launcher.terminated) == [1000, 1001]
    assert [r["state"] for r in reports[-1]] == [STOPPED, STOPPED] and all(r["pid"] is None for r in reports[-1])
    with pytest.raises(ValueError):
        sup.start(ENGINE)


def test_exit_statuses_in_words():
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(-15) == "killed by SIGTERM"
    assert describe_exit(0).startswith("exit code 0")
