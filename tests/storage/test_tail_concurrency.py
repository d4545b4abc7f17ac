"""Readers that tail the live event log by id never skip an entry, with several writers on one PostgreSQL log
(issue 14).

Postgres takes an entry's id from a sequence at insert time, not at commit: without ``storage.live``'s write lock
(``LOG_WRITE_LOCK_KEY``) an entry with a smaller id can become visible after a larger one, and a reader whose cursor
has passed the larger id never reads the smaller one. The tests slow the writers' transactions down on the server
side, between taking their ids and committing, with a trigger the test creates on ``live_events`` (the application's
code runs unchanged): an entry whose payload has ``sleep`` sleeps that long, ``hold`` waits for an advisory lock the
test holds, ``fail`` raises, so its transaction rolls back after taking its ids (a permanent gap).

* ``test_every_reader_reads_every_committed_entry_once_in_order``: 4 writer threads commit steps (``commit_step``,
  ``append_events``, ``record_settlement``) with random delays and rollbacks while three readers tail the log with
  no grace period: the API's (``next_event_rows``), the sensor's (``last_event_id`` then ``new_log_entries``, the
  function the ``live_event_log`` sensor calls), and the checks batch's id ranges (``last_event_id`` then
  ``serving.control.events_frame`` over ``(after, newest]``). Each must read every committed entry exactly once, in
  id order. Run again without the lock (monkeypatched away), the same readers miss entries (about a hundred of
  ~440 for the tail): the race is real and this test sees it.
* ``test_an_entry_committing_after_a_newer_one``: the deterministic race — a transaction takes an id and stays open
  while a later one commits, the readers (and the real ``live_event_log`` sensor) look in between — run with the
  lock, where nobody misses it, and without it (the lock monkeypatched away), where every reader skips it for good
  and the finished match is never settled: the proof that the first test can fail.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from serving import control
from storage import live as store
from storage.db import make_engine, migrate

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

AT = datetime(2026, 12, 7, tzinfo=UTC)
HOLD_KEY = 4242
"""The advisory lock the test holds to keep a writer's transaction open (trigger: payload ``hold``)."""

_SLOW_COMMITS = """
CREATE FUNCTION courtside_test_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE p jsonb := NEW.payload::jsonb;
BEGIN
    IF p ? 'hold' THEN PERFORM pg_advisory_xact_lock_shared((p->>'hold')::bigint); END IF;
    IF p ? 'sleep' THEN PERFORM pg_sleep((p->>'sleep')::float8); END IF;
    IF p ? 'fail' THEN RAISE EXCEPTION 'test: rolled back after taking id %%', NEW.id; END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER courtside_test_slow_commit AFTER INSERT ON live_events
    FOR EACH ROW EXECUTE FUNCTION courtside_test_slow_commit();
"""
"""AFTER ... FOR EACH ROW: runs once the statement has inserted its rows (every id taken), before the commit
(``%%``: the driver sees a parameter marker in ``%``)."""


@pytest.fixture
def pg(postgres_database_url: str) -> Iterator[Engine]:
    """A migrated PostgreSQL database whose ``live_events`` inserts can be slowed down, held or failed."""
    migrate(postgres_database_url)
    engine = make_engine(postgres_database_url, pool_size=12, max_overflow=4)
    with engine.begin() as conn:
        conn.exec_driver_sql(_SLOW_COMMITS)
    yield engine
    engine.dispose()


@pytest.fixture(params=["locked", "unlocked"])
def lock(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """``storage.live`` as shipped, or with its log write lock taken away (what the lock prevents)."""
    if request.param == "unlocked":
        monkeypatch.setattr(store, "_serialise_log_writers", lambda conn: None)
    return request.param == "locked"


def _ids(engine: Engine, sql: str = "SELECT id FROM live_events ORDER BY id") -> list[int]:
    with engine.connect() as conn:
        return [i for (i,) in conn.execute(text(sql))]


# --- readers, as the API, the sensor and the checks batch read ---------------------------------------
class Tail:
    """The API's reader (``LiveService._read`` without its gap grace): ``next_event_rows`` after the last id read."""

    def __init__(self, engine: Engine, chunk: int = 7):
        self.engine, self.chunk, self.after, self.seen = engine, chunk, 0, []

    def read(self) -> int:
        rows = store.next_event_rows(self.engine, self.after, self.chunk)
        for r in rows:
            assert r["id"] > self.after, "out of id order"
            self.seen.append(r["id"])
            self.after = r["id"]
        return len(rows)


class SensorCursor:
    """The ``live_event_log`` sensor's cursor for one job: ``last_event_id`` first, then ``new_log_entries`` of
    (cursor, newest], then the cursor moves to newest."""

    def __init__(self, engine: Engine, kinds: list[str], wanted: Callable[[dict], bool], page: int = 5):
        from orchestration.defs.operations.sensors import new_log_entries

        self.engine, self.kinds, self.wanted, self.page = engine, kinds, wanted, page
        self.new_log_entries = new_log_entries
        self.after, self.seen = 0, []

    def read(self) -> int:
        newest = store.last_event_id(self.engine)
        if self.after >= newest:
            return 0
        hits = self.new_log_entries(self.engine, self.after, newest, self.kinds, self.wanted, self.page)
        assert all(self.after < i <= newest for i in hits) and hits == sorted(hits)
        self.seen.extend(hits)
        self.after = newest
        return len(hits)


class Ranges:
    """The sensor's live-checks batches: (after, ``last_event_id()``] read by ``control.events_frame`` (the
    ``live_event_batch`` asset), then after = that newest id."""

    def __init__(self, engine: Engine):
        self.engine, self.after, self.seen = engine, 0, []

    def read(self) -> int:
        newest = store.last_event_id(self.engine)
        if newest <= self.after:
            return 0
        ids = control.events_frame(self.engine, self.after, newest)["id"].tolist()
        self.seen.extend(ids)
        self.after = newest
        return len(ids)


# --- 1. many writers, random delays and rollbacks --------------------------------------------------
WRITERS, STEPS = 4, 60
SENSOR_KINDS = ["MATCH_FINISHED", "MARKET_SETTLED"]


def _writer(engine: Engine, w: int, committed: list[tuple], failed: list[tuple], errors: list[BaseException]) -> None:
    rng = random.Random(w)
    try:
        for n in range(STEPS):
            delay = {"sleep": round(rng.uniform(0.0, 0.012), 4)}
            fail = {"fail": True} if rng.random() < 0.1 else {}
            keys: list[tuple]
            try:
                if w == 0 and n % 6 == 5:  # a settlement: its own transaction, one entry
                    keys = [(w, n, 0)]
                    payload = {"w": w, "n": n, "j": 0, **delay, **fail, "pnl": {}}
                    assert store.record_settlement(engine, f"m-{w}-{n}", f"match-{w}", payload, AT, [])
                else:
                    kinds = ["FEED_MESSAGE", "PREDICTION", "MATCH_FINISHED"]
                    events = [
                        store.EventEntry(
                            rng.choice(kinds), AT, {"w": w, "n": n, "j": j, **(delay if j == 0 else {}), **fail}
                        )
                        for j in range(rng.randint(1, 3))
                    ]
                    keys = [(w, n, j) for j in range(len(events))]
                    if n % 2:
                        store.append_events(engine, events)
                    else:  # a whole step: entries, an order-free cursor move, in one transaction
                        store.commit_step(engine, store.Step(events=events, cursors={(f"feed-{w}", "match"): (n, AT)}))
            except DBAPIError as exc:
                assert fail and "rolled back after taking id" in str(exc), exc
                failed.extend(keys)
                continue
            assert not fail
            committed.extend(keys)
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def _concurrent_run(engine: Engine) -> tuple[list[int], dict[int, dict], Tail, SensorCursor, Ranges, dict]:
    committed: list[tuple] = []
    failed: list[tuple] = []
    errors: list[BaseException] = []
    tail = Tail(engine)
    sensor = SensorCursor(engine, SENSOR_KINDS, lambda p: p.get("n", 0) % 3 != 1)
    ranges = Ranges(engine)
    done = threading.Event()
    reads = dict.fromkeys(("tail", "sensor", "ranges"), 0)

    def follow(name: str, read: Callable[[], int]) -> None:
        try:
            while True:
                finished = done.is_set()  # every writer had ended before this read began
                got = read()
                reads[name] += 1
                if finished and not got:
                    return
                if not got:
                    time.sleep(0.0005)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    readers = [
        threading.Thread(target=follow, args=(name, reader.read))
        for name, reader in (("tail", tail), ("sensor", sensor), ("ranges", ranges))
    ]
    writers = [threading.Thread(target=_writer, args=(engine, w, committed, failed, errors)) for w in range(WRITERS)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(timeout=120)
    done.set()
    for t in readers:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in readers + writers), "a reader or writer hung"
    assert not errors, errors

    with engine.connect() as conn:
        truth = {
            i: {**p, "kind": k} for i, k, p in conn.execute(text("SELECT id, kind, payload::jsonb FROM live_events"))
        }
    ids = sorted(truth)
    keys = {i: (p["w"], p["n"], p["j"]) for i, p in truth.items()}
    assert sorted(keys.values()) == sorted(committed), "the log holds exactly the committed entries"
    assert failed and not set(failed) & set(keys.values())
    return ids, truth, tail, sensor, ranges, reads


def test_every_reader_reads_every_committed_entry_once_in_order(pg: Engine, lock: bool) -> None:
    started = time.monotonic()
    ids, truth, tail, sensor, ranges, reads = _concurrent_run(pg)
    elapsed = time.monotonic() - started

    gaps = [(a, b) for a, b in zip(ids, ids[1:], strict=False) if b != a + 1]
    assert gaps, "rolled-back transactions leave permanent gaps, which the readers must pass"
    wanted = [i for i in ids if truth[i]["kind"] in SENSOR_KINDS and truth[i]["n"] % 3 != 1]
    missed = {
        "tail": len(set(ids) - set(tail.seen)),
        "sensor": len(set(wanted) - set(sensor.seen)),
        "ranges": len(set(ids) - set(ranges.seen)),
    }
    print(
        f"\n{'with' if lock else 'WITHOUT'} the log lock: {len(ids)} entries committed by {WRITERS} writers in "
        f"{elapsed:.1f} s, {len(gaps)} gaps; reads: {reads}; entries missed: {missed}"
    )
    for reader in (tail, sensor, ranges):  # never twice, never out of id order, with or without the lock
        assert reader.seen == sorted(set(reader.seen))
    if lock:
        assert tail.seen == ids  # the API's tail: every committed entry, once, in id order
        assert sensor.seen == wanted  # the sensor's: every entry of its kinds that it wants
        assert ranges.seen == ids  # the checks batches: the ranges (after, newest] cover the log without a hole
    else:  # entries committing after newer ones were passed over (about a hundred of ~440 for the tail, typically)
        assert missed["tail"] and missed["ranges"]


# --- 2. the race, step by step ----------------------------------------------------------------------
def _wait_for(engine: Engine, sql: str, what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with engine.connect() as conn:
            if conn.execute(text(sql)).scalar():
                return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _waiting_on(key: int) -> str:
    """SQL: a session waits for advisory lock ``key`` (a bigint key shows as classid = high, objid = low 32 bits)."""
    return (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        f"AND classid = {key >> 32} AND objid = {key & 0xFFFFFFFF} AND objsubid = 1"
    )


def test_an_entry_committing_after_a_newer_one(pg: Engine, lock: bool, tmp_path: Path) -> None:
    import dagster as dg

    from orchestration.defs.operations.jobs import settlement_job
    from orchestration.defs.operations.sensors import live_event_log
    from orchestration.defs.shared.resources import CourtsideResource

    # ids are handed out one at a time, in the order asked: a per-session sequence cache would break the lock's rule
    assert _ids(pg, "SELECT cache_size FROM pg_sequences WHERE sequencename = 'live_events_id_seq'") == [1]
    url = pg.url.render_as_string(hide_password=False)
    courtside = CourtsideResource(data_dir=str(tmp_path), database_url=url, reports_dir=str(tmp_path))
    tail, sensor, ranges = Tail(pg), SensorCursor(pg, ["MATCH_FINISHED"], lambda p: True), Ranges(pg)

    with dg.DagsterInstance.ephemeral() as instance:

        def tick(cursor: str | None) -> tuple[bool, str]:
            """One tick of the real streaming sensor: (a settlement run requested, the new cursor)."""
            result = live_event_log(
                dg.build_sensor_context(instance=instance, cursor=cursor, resources={"courtside": courtside})
            )
            return any(r.job_name == settlement_job.name for r in result.run_requests), result.cursor

        store.append_events(pg, [store.EventEntry("FEED_MESSAGE", AT, {"i": 0}, "live", 0, "m")])
        for reader in (tail, sensor, ranges):
            reader.read()
        settle, cursor = tick(None)
        assert not settle

        def write(entry: store.EventEntry) -> threading.Thread:
            t = threading.Thread(target=store.append_events, args=(pg, [entry]))
            t.start()
            return t

        holder = pg.connect()
        try:
            holder.exec_driver_sql(f"SELECT pg_advisory_lock({HOLD_KEY})")
            # A: the match finishes; its transaction takes an id, then stays open (waits for the held lock)
            a = write(store.EventEntry("MATCH_FINISHED", AT, {"hold": HOLD_KEY}, "live", 1, "m"))
            _wait_for(pg, _waiting_on(HOLD_KEY), "the first writer to hold its id")
            # B: a later entry, asked for after A's
            b = write(store.EventEntry("FEED_MESSAGE", AT, {"i": 2}, "live", 2, "m"))
            if lock:  # B waits for A to end before it takes an id
                _wait_for(pg, _waiting_on(store.LOG_WRITE_LOCK_KEY), "the second writer to wait for the log lock")
                assert b.is_alive()
            else:  # B takes the next id and commits while A is still open
                b.join(timeout=15)
                assert not b.is_alive()
            # the readers look now, A's id still uncommitted
            read_between = [reader.read() for reader in (tail, sensor, ranges)]
            settle_between, cursor = tick(cursor)
        finally:
            holder.exec_driver_sql(f"SELECT pg_advisory_unlock({HOLD_KEY})")
            holder.close()
        for t in (a, b):
            t.join(timeout=15)
            assert not t.is_alive()
        for reader in (tail, sensor, ranges):
            reader.read()
        settle_after, cursor = tick(cursor)

    everything = _ids(pg)
    (finished,) = _ids(pg, "SELECT id FROM live_events WHERE kind = 'MATCH_FINISHED'")
    (later,) = _ids(pg, "SELECT id FROM live_events WHERE payload::jsonb ->> 'i' = '2'")
    assert not settle_between
    if lock:
        assert finished < later  # ids in commit order: A's id, then B's
        assert read_between == [0, 0, 0]  # nothing committed meanwhile: nothing to read
        assert tail.seen == ranges.seen == everything
        assert sensor.seen == [finished]
        assert settle_after  # the finished match is settled
    else:
        assert finished < later  # A took its id first, but committed after B
        assert read_between == [1, 0, 1]  # B read; each cursor moved past A's id
        for reader in (tail, ranges):
            assert finished not in reader.seen and reader.seen == [i for i in everything if i != finished]
        assert sensor.seen == []
        assert not settle_after  # the sensor passed the MATCH_FINISHED entry: the match is never settled
