"""The live API's wake-up from the event log (issue 14): on Postgres a trigger notifies ``courtside_live`` at each
commit of log entries (migration 0009) and ``LiveService`` LISTENs on a connection of its own; a notification only
means "read by id now" -- the log stays the truth.

- On a real Postgres, a LiveService follows entries committed by concurrent writers (``storage.live.commit_step``)
  and reads each exactly once, in order, within milliseconds: with nothing else reading the log more often than
  every 2 s (``poll_s`` 5 s), only the wake-ups can explain it. Its reads are at least ``min_read_interval_s``
  apart.
- Its listening connection ended from the server side (``pg_terminate_backend``): it notices, polls meanwhile,
  listens again, and reads by id at once -- every entry committed while it was not listening is read then, none
  is lost or read twice.
- On SQLite (no NOTIFY) it polls every ``poll_s`` as before, and the migration adds nothing.
- A notification whose payload is not an id wakes it (never an error); one naming an entry already read does not.
"""

from __future__ import annotations

import asyncio
import importlib
import random
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from serving.api import live, prom
from serving.api.live import LOG_CHANNEL, LiveService
from storage import live as store
from storage.db import downgrade, make_engine, migrate

MIGRATION = importlib.import_module("storage.migrations.versions.0009_live_events_notify")
AT = datetime(2026, 12, 8, tzinfo=UTC)
LISTENER = "courtside-api-listen"
"""The listening connection's ``application_name``."""


class Probe(LiveService):
    """A LiveService that records, for every entry its reads returned, when the read returned, and when each read
    was begun (``_last_read``, as the follower set it: 0 for the catch-up reads of ``start``)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.got: list[tuple[int, tuple[str, int], float]] = []
        """(id, (writer, n), when the read returned) in reading order."""
        self.read_starts: list[float] = []
        self.lock = threading.Lock()

    def _read(self) -> list[dict[str, Any]]:
        started = self._last_read
        rows = super()._read()
        now = time.monotonic()
        with self.lock:
            self.read_starts.append(started)
            self.got.extend((int(r["id"]), (r["payload"]["w"], r["payload"]["n"]), now) for r in rows)
        return rows


class Writers:
    """Threads committing one-entry steps with ``storage.live.commit_step`` (the engines' write path), each
    recording when each commit returned."""

    def __init__(self, url: str, count: int, entries: int, gap_s: tuple[float, float], seed: int = 0):
        self.engine = make_engine(url)
        self.committed: dict[tuple[str, int], float] = {}
        self.errors: list[str] = []
        self.threads = [
            threading.Thread(target=self._write, args=(f"w{i}", entries, gap_s, random.Random(seed + i)), daemon=True)
            for i in range(count)
        ]

    def _write(self, tag: str, entries: int, gap_s: tuple[float, float], rng: random.Random) -> None:
        try:
            for n in range(entries):
                time.sleep(rng.uniform(*gap_s))
                entry = store.EventEntry("TEST_NOTE", AT, {"w": tag, "n": n}, "test", n, f"match-{tag}")
                store.commit_step(self.engine, store.Step(events=[entry], cursors={(f"test-{tag}", "m"): (n, AT)}))
                self.committed[(tag, n)] = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(f"{tag}: {type(exc).__name__}: {exc}")

    def start(self) -> None:
        for t in self.threads:
            t.start()

    async def join(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            await asyncio.to_thread(t.join, max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "writers did not finish"
        assert not self.errors, self.errors

    def dispose(self) -> None:
        self.engine.dispose()


async def until(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.01) -> float:
    """Wait until ``condition()``; the time it became true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(step)
    return time.monotonic()


def logged_ids(engine) -> list[int]:
    with engine.connect() as conn:
        return [int(i) for i in conn.execute(text("SELECT id FROM live_events ORDER BY id")).scalars()]


def check_exact(service: Probe, engine) -> None:
    """The service read every committed entry exactly once, in increasing id order."""
    read = [i for i, _, _ in service.got]
    assert read == logged_ids(engine), "entries lost, repeated or out of order"
    assert service.view.last_id == read[-1]


def listener_pids(engine) -> list[int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = :a"
                " AND pid <> pg_backend_pid()"
            ),
            {"a": LISTENER},
        )
        return [int(p) for p in rows.scalars()]


def has_trigger(engine) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text("SELECT count(*) FROM pg_trigger WHERE tgname = 'courtside_log_notify' AND NOT tgisinternal")
            ).scalar()
        )


def latencies(service: Probe, writers: Writers, keys: Any = None) -> list[float]:
    """Seconds from each commit returning to the read that returned its entry."""
    read_at = {key: at for _, key, at in service.got}
    return [read_at[k] - writers.committed[k] for k in (writers.committed if keys is None else keys)]


def test_the_channel_is_the_migrations() -> None:
    assert LOG_CHANNEL == MIGRATION.CHANNEL


@pytest.mark.postgres
def test_migration_creates_and_drops_the_trigger(postgres_database_url: str) -> None:
    migrate(postgres_database_url)
    engine = make_engine(postgres_database_url)
    try:
        assert has_trigger(engine)
        downgrade(postgres_database_url, "0008")
        assert not has_trigger(engine)
        migrate(postgres_database_url)
        assert has_trigger(engine)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_replica_reads_each_entry_once_in_order_when_notified(postgres_database_url: str) -> None:
    url = postgres_database_url
    migrate(url)
    engine = make_engine(url)
    figures: dict[str, Any] = {}

    async def run() -> None:
        # nothing but the wake-ups reads the log more often than every REFRESH_S (2 s): without them an entry
        # would wait about 1 s on average
        service = Probe(engine, 1000.0, poll_s=5.0)
        await service.start()
        writers = Writers(url, count=2, entries=25, gap_s=(0.02, 0.12))
        try:
            assert service.listening and service.listener_up is True
            assert len(listener_pids(engine)) == 1
            started = time.monotonic()
            writers.start()
            await writers.join()
            writing_s = time.monotonic() - started
            newest = store.last_event_id(engine)
            await until(lambda: service.view.last_id >= newest, 10, "the last entry read")
            check_exact(service, engine)
            lat = sorted(latencies(service, writers))
            starts = [s for s in service.read_starts if s >= started]
            gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
            figures.update(
                entries=len(lat),
                median_ms=round(1000 * statistics.median(lat), 1),
                p90_ms=round(1000 * lat[int(0.9 * len(lat))], 1),
                max_ms=round(1000 * lat[-1], 1),
                reads=len(starts),
                writing_s=round(writing_s, 2),
                min_read_gap_ms=round(1000 * min(gaps), 1),
                notifications=service.notifications,
            )
            print(f"\nwoken replica on Postgres: {figures}")
            assert len(lat) == 50
            assert statistics.median(lat) < 0.3, figures  # polled every 2 s: ~1 s
            assert sum(x < 0.5 for x in lat) >= 0.8 * len(lat), figures
            assert service.notifications >= 1
            # reads at least min_read_interval_s apart (25 ms)
            assert min(gaps) >= service.min_read_interval_s - 0.001, figures
        finally:
            await service.stop()
            writers.dispose()
        assert not service.listening
        await until(lambda: not listener_pids(engine), 5, "the listening connection closed by stop()", 0.05)

    try:
        asyncio.run(run())
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_listener_killed_reads_every_entry_once_listening_again(
    postgres_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres_database_url
    migrate(url)
    engine = make_engine(url)
    # only wake-ups (and the re-read after LISTEN again) can read the log within 5 s
    monkeypatch.setattr(live, "REFRESH_S", 30.0)

    async def run() -> None:
        service = Probe(engine, 1000.0, poll_s=5.0, fallback_s=30.0)
        await service.start()
        writers = Writers(url, count=2, entries=60, gap_s=(0.02, 0.08))
        try:
            assert service.listening
            (pid,) = listener_pids(engine)
            writers.start()
            await asyncio.sleep(1.0)
            with engine.connect() as conn:
                assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
            down = await until(lambda: not service.listening, 5, "the listener noticing the drop")
            up = await until(lambda: service.listening, 10, "the listener back")
            await writers.join()
            newest = store.last_event_id(engine)
            await until(lambda: service.view.last_id >= newest, 10, "the last entry read")
            check_exact(service, engine)
            assert service.listen_failures >= 1 and service.last_listen_error
            assert listener_pids(engine) not in ([], [pid])
            while_down = [k for k, at in writers.committed.items() if down <= at <= up]
            assert while_down, "no entry was committed while the listener was down"
            late = latencies(service, writers, while_down)
            read_at = {key: at for _, key, at in service.got}
            # read by the read at LISTEN again (poll_s is 5 s, REFRESH_S 30 s: nothing else could have)
            assert max(read_at[k] for k in while_down) <= up + 1.0, (up - down, late)
            after = [k for k, at in writers.committed.items() if at > up + 0.1]
            lat_after = latencies(service, writers, after)
            print(
                f"\nlistener killed: down for {up - down:.2f} s, {len(while_down)} entries committed meanwhile "
                f"(max {1000 * max(late):.0f} ms to read); {len(after)} entries after it, median "
                f"{1000 * statistics.median(lat_after):.1f} ms"
            )
            assert statistics.median(lat_after) < 0.3
        finally:
            await service.stop()
            writers.dispose()

    try:
        asyncio.run(run())
    finally:
        engine.dispose()


class Unreachable(Probe):
    """A LiveService whose listening connection can never be opened (the log itself is reachable)."""

    def _listen_conninfo(self) -> str:
        return "postgresql://nobody@127.0.0.1:1/nothing"


@pytest.mark.postgres
def test_postgres_replica_polls_while_it_cannot_listen(postgres_database_url: str) -> None:
    url = postgres_database_url
    migrate(url)
    engine = make_engine(url)

    async def run() -> None:
        began = time.monotonic()
        service = Unreachable(engine, 1000.0)
        await service.start()
        writers = Writers(url, count=2, entries=10, gap_s=(0.01, 0.05))
        try:
            assert time.monotonic() - began < 3.0  # start() did not wait LISTEN_START_WAIT_S for it
            assert service.listener_up is False and service.listen_failures >= 1
            assert service.last_listen_error
            writers.start()
            await writers.join()
            newest = store.last_event_id(engine)
            await until(lambda: service.view.last_id >= newest, 10, "the last entry read")
            check_exact(service, engine)
            assert statistics.median(latencies(service, writers)) < 0.5  # polled every 0.1 s
        finally:
            await service.stop()
            writers.dispose()
        assert service._listener is None

    try:
        asyncio.run(run())
    finally:
        engine.dispose()


def test_sqlite_replica_polls_as_before(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    migrate(url)
    engine = make_engine(url)
    with engine.connect() as conn:  # the migration adds nothing on SQLite
        assert not conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all()

    async def run() -> None:
        service = Probe(engine, 1000.0)
        await service.start()
        writers = Writers(url, count=2, entries=15, gap_s=(0.01, 0.05))
        try:
            assert service.listener_up is None and not service.listening and service._listener is None
            started = time.monotonic()
            writers.start()
            await writers.join()
            newest = store.last_event_id(engine)
            await until(lambda: service.view.last_id >= newest, 10, "the last entry read")
            check_exact(service, engine)
            assert service.notifications == 0
            # polled every poll_s (0.1 s): a read or so per poll
            elapsed = time.monotonic() - started
            reads = sum(s >= started for s in service.read_starts)
            assert 0.3 * elapsed / service.poll_s <= reads <= elapsed / service.poll_s + 3
        finally:
            await service.stop()
            writers.dispose()

    try:
        asyncio.run(run())
    finally:
        engine.dispose()


def test_a_bad_notification_wakes_and_one_already_read_does_not(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        service = LiveService(engine, 1000.0)
        service.view.last_id = 10
        for payload, wakes in (("garbage", True), ("", True), ("5", False), ("10", False), ("11", True), ("-", True)):
            service.wake.clear()
            service._notified(payload)
            assert service.wake.is_set() is wakes, payload
        assert service.notifications == 6
    finally:
        engine.dispose()


def test_prometheus_says_whether_the_listener_is_up() -> None:
    gateway = {
        k: 0
        for k in (
            "clients",
            "subscriptions",
            "rooms",
            "connections_total",
            "messages",
            "frames_written",
            "dropped_slow",
        )
    }
    base: dict[str, Any] = {
        "gateway": {**gateway, "replica": "a"},
        "read_up_to": 0,
        "newest": 0,
        "tail_errors": 0,
        "webhooks": {},
    }

    def scrape(figures: dict[str, Any]) -> str:
        return prom.exposition(lambda: figures).decode()

    assert 'courtside_api_log_listener_up{replica="a"} 1.0' in scrape({**base, "log_listener": True})
    assert 'courtside_api_log_listener_up{replica="a"} 0.0' in scrape({**base, "log_listener": False})
    for figures in (base, {**base, "log_listener": None}):  # SQLite: no series
        assert "courtside_api_log_listener_up{" not in scrape(figures)
