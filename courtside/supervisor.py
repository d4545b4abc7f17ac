"""Supervision of the long-running services ``make up`` starts (Dagster, MLflow, the prediction service, the
feed replay, the streaming engine, the live API, the Dagster proxy).

A service that exits — with any status: they are all meant to run until stopped — is a crash: it is
logged with its exit code or signal and the last lines of its log, counted, and started again after an
exponential backoff with jitter, capped. ``crash_loop_restarts`` crashes of one service within
``crash_loop_window_s`` is a crash loop: the service is flagged with the reason, and when it is one
betting depends on (``ServiceSpec.pauses_betting``: the engine, the prediction service) the supervisor
pauses betting through the operator's controls (``on_crash_loop``). It keeps restarting at the capped
backoff and never gives up, and it never resumes betting: an operator does (docs/OPERATIONS.md).

The core is pure and driven by ``tick()``: processes come from an injected ``Launcher``, time from an
injected monotonic clock, jitter from an injected ``random.Random``; the status of every service goes to
``on_status`` (``make up`` writes it to the ``service_status`` table the live API and dashboard read).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("courtside.supervisor")

RUNNING, BACKOFF, STOPPED = "running", "backoff", "stopped"


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a crashed service and what counts as a crash loop."""

    initial_backoff_s: float = 1.0
    """Wait before the first restart after a crash."""
    max_backoff_s: float = 60.0
    """The cap: waits double per consecutive crash up to this (and stay there in a crash loop)."""
    factor: float = 2.0
    jitter: float = 0.2
    """Each wait is multiplied by a uniform draw in [1 - jitter, 1 + jitter] (then capped), so services that
    crashed together do not restart in lockstep."""
    crash_loop_restarts: int = 5
    crash_loop_window_s: float = 600.0
    """``crash_loop_restarts`` crashes within this many seconds is a crash loop."""
    stable_s: float = 60.0
    """Running this long after a restart resets the backoff to ``initial_backoff_s``."""

    def backoff_s(self, consecutive: int, rng: random.Random) -> float:
        """The wait before restarting after the ``consecutive``-th crash in a row (1-based)."""
        base = self.initial_backoff_s * self.factor ** max(consecutive - 1, 0)
        return min(self.max_backoff_s, min(base, self.max_backoff_s) * rng.uniform(1 - self.jitter, 1 + self.jitter))


@dataclass(frozen=True)
class ServiceSpec:
    """One long-running service: its name, command and environment overrides."""

    name: str
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Set on top of the supervisor's environment (e.g. the read-only MLflow user of the prediction service)."""
    pauses_betting: bool = False
    """A crash loop of this service pauses betting (the engine; the prediction service it asks)."""


class Child(Protocol):
    """A running process (``subprocess.Popen`` satisfies it)."""

    pid: int

    def poll(self) -> int | None: ...


class Launcher(Protocol):
    """Starts and stops the processes of services."""

    def start(self, spec: ServiceSpec) -> Child: ...

    def terminate(self, child: Child) -> None: ...

    def reap(self, child: Child, timeout_s: float) -> None: ...

    def tail(self, spec: ServiceSpec, lines: int) -> str: ...


class ProcessLauncher:
    """Each service in its own process group (so stopping it stops its children), output appended to
    ``<log_dir>/<name>.log``."""

    def __init__(self, log_dir: Path, cwd: Path | None = None, base_env: Mapping[str, str] | None = None):
        self.log_dir = log_dir
        self.cwd = cwd
        self.base_env = base_env

    def log_path(self, spec: ServiceSpec) -> Path:
        return self.log_dir / f"{spec.name}.log"

    def start(self, spec: ServiceSpec) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**(os.environ if self.base_env is None else self.base_env), **spec.env}
        with self.log_path(spec).open("ab") as out:
            return subprocess.Popen(
                list(spec.command), cwd=self.cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def terminate(self, child: Child) -> None:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)

    def reap(self, child: Child, timeout_s: float) -> None:
        assert isinstance(child, subprocess.Popen)
        try:
            child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=10)

    def tail(self, spec: ServiceSpec, lines: int) -> str:
        path = self.log_path(spec)
        try:
            with path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 16_384))
                text = f.read().decode(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])


def describe_exit(code: int) -> str:
    """An exit status in words: ``exit code 1``, ``killed by SIGKILL``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}" + (" (a long-running service exited)" if code == 0 else "")


def _span(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


@dataclass
class ServiceState:
    """What the supervisor knows of one service."""

    spec: ServiceSpec
    child: Child | None = None
    state: str = STOPPED
    restarts: int = 0
    crashes: int = 0
    last_exit_code: int | None = None
    last_exit: str | None = None
    last_crash_at: datetime | None = None
    started_at: datetime | None = None
    next_restart_at: datetime | None = None
    crash_loop: bool = False
    crash_loop_reason: str | None = None
    consecutive: int = 0
    """Crashes since the service last ran ``stable_s``."""
    crash_times: deque[float] = field(default_factory=deque)
    """Monotonic times of the crashes inside the crash-loop window."""
    started_mono: float = 0.0
    restart_due: float = 0.0
    pause_pending: str | None = None
    """A pause of betting not yet recorded (the controls could not be written): retried every tick."""

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None and self.state == RUNNING else None

    def status(self) -> dict[str, Any]:
        """The row of ``service_status`` (``storage.supervision``)."""
        return {
            "service": self.spec.name,
            "state": self.state,
            "pid": self.pid,
            "restarts": self.restarts,
            "crashes": self.crashes,
            "last_exit_code": self.last_exit_code,
            "last_exit": self.last_exit,
            "last_crash_at": self.last_crash_at,
            "next_restart_at": self.next_restart_at,
            "crash_loop": self.crash_loop,
            "crash_loop_reason": self.crash_loop_reason,
            "started_at": self.started_at,
        }


class Supervisor:
    """Starts services, restarts them when they crash, flags crash loops and pauses betting on one."""

    def __init__(
        self,
        policy: RestartPolicy,
        launcher: Launcher,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
        on_crash_loop: Callable[[ServiceSpec, str], None] | None = None,
        on_status: Callable[[list[dict[str, Any]]], None] | None = None,
        status_every_s: float = 5.0,
        tail_lines: int = 20,
    ):
        self.policy = policy
        self.launcher = launcher
        self.clock = clock
        self.wall = wall
        self.rng = rng or random.Random()
        self.on_crash_loop = on_crash_loop
        self.on_status = on_status
        self.status_every_s = status_every_s
        self.tail_lines = tail_lines
        self.services: dict[str, ServiceState] = {}
        self._last_status = -1e18
        self._dirty = False

    # --- starting and stopping -----------------------------------------------------------------------
    def start(self, spec: ServiceSpec) -> ServiceState:
        """Start a service and supervise it from now on."""
        if spec.name in self.services:
            raise ValueError(f"service {spec.name!r} is already supervised")
        st = self.services[spec.name] = ServiceState(spec)
        self._launch(st)
        self._report(force=True)
        return st

    def start_all(self, specs: Sequence[ServiceSpec]) -> None:
        for spec in specs:
            self.start(spec)

    def _launch(self, st: ServiceState) -> None:
        st.child = self.launcher.start(st.spec)
        st.state, st.started_at, st.started_mono = RUNNING, self.wall(), self.clock()
        st.next_restart_at = None
        self._dirty = True
        log.info("started %s (pid %d)", st.spec.name, st.child.pid)

    def stop_all(self, timeout_s: float = 20.0) -> None:
        """Stop every service (SIGTERM to each process group, SIGKILL after ``timeout_s``); report them stopped."""
        running = [st for st in self.services.values() if st.state == RUNNING and st.child is not None]
        for st in running:
            self.launcher.terminate(st.child)
        for st in running:
            self.launcher.reap(st.child, timeout_s)
        for st in self.services.values():
            st.state, st.next_restart_at = STOPPED, None
        self._dirty = True
        self._report(force=True)

    # --- the loop ----------------------------------------------------------------------------------------
    def tick(self) -> None:
        """Notice crashes, restart what is due, keep the crash-loop flags and the status current."""
        now = self.clock()
        for st in self.services.values():
            self._prune(st, now)
            if st.state == RUNNING and st.child is not None:
                code = st.child.poll()
                if code is None:
                    if st.consecutive and now - st.started_mono >= self.policy.stable_s:
                        st.consecutive = 0  # it ran long enough: the next crash waits the shortest again
                else:
                    self._crashed(st, code, now)
            elif st.state == BACKOFF and now >= st.restart_due:
                st.restarts += 1
                try:
                    self._launch(st)
                except OSError as exc:  # the command cannot even start: count it like a crash
                    log.error("could not start %s: %s", st.spec.name, exc)
                    self._crashed(st, 127, now)
            if st.pause_pending:
                self._pause(st)
        self._report()

    def run(
        self,
        until: Callable[[], bool] = lambda: False,
        interval_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Tick until ``until()`` is true (by default forever: a crash never ends supervision)."""
        while not until():
            self.tick()
            sleep(interval_s)

    def _prune(self, st: ServiceState, now: float) -> None:
        window = self.policy.crash_loop_window_s
        while st.crash_times and now - st.crash_times[0] > window:
            st.crash_times.popleft()
        if st.crash_loop and len(st.crash_times) < self.policy.crash_loop_restarts and st.state == RUNNING:
            st.crash_loop, st.crash_loop_reason = False, None
            self._dirty = True
            log.warning(
                "%s: no longer in a crash loop (fewer than %d crashes in %s); betting stays paused until "
                "an operator resumes it",
                st.spec.name,
                self.policy.crash_loop_restarts,
                _span(window),
            )

    def _crashed(self, st: ServiceState, code: int, now: float) -> None:
        p = self.policy
        pid = st.child.pid if st.child is not None else None
        st.state, st.child = BACKOFF, None
        st.crashes += 1
        st.consecutive += 1
        st.last_exit_code, st.last_exit, st.last_crash_at = code, describe_exit(code), self.wall()
        st.crash_times.append(now)
        self._prune(st, now)
        if len(st.crash_times) >= p.crash_loop_restarts and not st.crash_loop:
            st.crash_loop = True
            st.crash_loop_reason = (
                f"{st.spec.name} crash loop: {len(st.crash_times)} restarts in "
                f"{_span(p.crash_loop_window_s)} (last exit: {st.last_exit})"
            )
            log.error("%s", st.crash_loop_reason)
            if st.spec.pauses_betting:
                st.pause_pending = st.crash_loop_reason
        delay = p.max_backoff_s if st.crash_loop else p.backoff_s(st.consecutive, self.rng)
        st.restart_due = now + delay
        st.next_restart_at = st.last_crash_at + timedelta(seconds=delay)
        self._dirty = True
        tail = self.launcher.tail(st.spec, self.tail_lines)
        log.warning(
            "%s (pid %s) crashed: %s; crash %d, restart in %.1f s%s\n--- last lines of its log ---\n%s",
            st.spec.name,
            pid,
            st.last_exit,
            st.crashes,
            delay,
            " (crash loop)" if st.crash_loop else "",
            tail,
        )

    def _pause(self, st: ServiceState) -> None:
        if self.on_crash_loop is None:
            st.pause_pending = None
            return
        try:
            self.on_crash_loop(st.spec, st.pause_pending)
        except Exception as exc:  # noqa: BLE001 - the database may be busy or down: retried next tick
            log.error("could not pause betting (%s): %s; retrying", st.pause_pending, exc)
            return
        log.error("betting paused: %s (an operator resumes it: POST /control/resume)", st.pause_pending)
        st.pause_pending = None

    def statuses(self) -> list[dict[str, Any]]:
        """The status of every supervised service."""
        return [st.status() for st in self.services.values()]

    def _report(self, force: bool = False) -> None:
        now = self.clock()
        if self.on_status is None or not (force or self._dirty or now - self._last_status >= self.status_every_s):
            return
        try:
            self.on_status(self.statuses())
        except Exception as exc:  # noqa: BLE001 - a status write must never stop supervision
            log.warning("could not record the services' status: %s", exc)
            return
        self._last_status, self._dirty = now, False
