"""How fast a gateway replica has an event-log entry after a writer committed it: tailing by id, Postgres
LISTEN/NOTIFY as a wake-up, Redis pub/sub as a wake-up (issue 14; a benchmark, not a test).

    uv run --frozen python -m benchmarks.log_delivery_bench [--writers 1,2,4] [--readers 3] [--rate 300]
        [--steady-s 10] [--burst 1000] [--mechanisms tail,notify,redis] [--output F.json]
        [--database-url ADMIN_URL] [--redis-url URL]

Everything real, each in its own process, on this machine: a throwaway PostgreSQL (``scripts/test-postgres``, or the
server of ``--database-url``) and a throwaway Redis (``scripts/test-redis``, or ``--redis-url``); every case gets a
fresh, migrated database.

- **Writers** (1, 2, 4 processes, like several engine workers): the engine's own write path,
  ``storage.live.commit_step`` (log write lock ``LOG_WRITE_LOCK_KEY`` first, the entries, the feed cursor, one
  transaction) on an engine from ``storage.db.make_engine``, one step of ``--entries-per-step`` entries (a feed
  message and a prediction) per commit. Steady phase: Poisson arrivals at ``--rate`` entries/s in total for
  ``--steady-s``; then a burst: ``--burst`` entries committed back to back, as fast as the writers can.
- **Readers** (``--readers`` processes, the gateway replicas): a uvloop loop, as ``python -m serving.api`` runs,
  reading the log with the gateway's own reader, ``storage.live.next_event_rows(engine, last_id, CHUNK)`` in
  ``asyncio.to_thread`` (``serving.api.live.LiveService._read``), from the last id read. What wakes them:

  1. ``tail``: nothing -- ``LiveService._follow``'s loop: read, and when fewer than ``CHUNK`` rows came, sleep
     ``poll_s`` (the gateway's default, read from ``LiveService``: 0.1 s, also ``python -m serving.api``'s
     ``--poll-s`` default);
  2. ``notify``: Postgres LISTEN/NOTIFY. The writer is unchanged: a statement trigger on ``live_events``
     (``NOTIFY_TRIGGER``: migration 0009's, as shipped; the other cases drop it) calls
     ``pg_notify('courtside_live', max(new id))`` in the inserting transaction, so the notification is sent at its
     commit, atomically with it. Each reader LISTENs on a psycopg 3 ``AsyncConnection`` of its own
     (``conn.notifies()``); a notification sets an ``asyncio.Event``, and the reader then reads by id (the log
     stays the truth; the payload is only checked: it must increase, and once read up to a notification the reader
     must have that id);
  3. ``redis``: Redis pub/sub. The writer publishes on ``courtside_live`` after ``commit_step`` returned; each
     reader subscribes (``redis.asyncio``), a message sets the event, the reader reads by id.

  The woken readers also read when nothing woke them for ``--fallback-s`` (a safety net; entries found that way
  are counted: 0 means every entry came with a wake-up). After a (re)LISTEN / (re)SUBSCRIBE they read by id at
  once: what was committed while they were not listening had no wake-up for them. They read once per wake-up
  that arrives while no read runs (wake-ups during a read make one more read); ``--min-read-interval-s`` spaces
  the reads out (the wake-ups in between are taken together).
- **One forced drop** (``--no-drop`` leaves it out), in the middle of the steady phase: this process ends every
  connection of reader 1 (its Postgres backends with ``pg_terminate_backend``, its Redis connection with
  ``CLIENT KILL``). The tail reader's next query reconnects (``pool_pre_ping``); a woken reader sees its listening
  connection fail, waits ``--backoff-s`` (the gateway's retry wait after a failed read: ``min(5, 10 poll_s)``
  = 1 s), connects again, LISTENs / SUBSCRIBEs, then reads by id. A read under way when the connections ended
  fails and is tried again after that same wait, as in the gateway. Reported: the entries the drop delayed (not
  read by reader 1 when its connections ended, or committed before it was back: no wake-up reached it for
  those), which reads found them (one begun before it was back -- the retry of a failed read -- or its first read
  once back: none may be left for a later read), and their latency.

Figures, per case (mechanism x writers):

- **latency**: reader's clock when ``next_event_rows`` returned the entry minus the writer's clock when
  ``commit_step`` returned (both ``time.time()`` on this machine), for every (entry, reader) pair: p50, p99, max,
  for the steady phase (the entries the drop delayed at reader 1 left out: they are in the drop's figures) and
  the burst;
- **completeness**: each reader must read exactly the committed ids (read back from the table afterwards), each
  once, in increasing order: lost, duplicated, out of order (all must be 0);
- **cost**: CPU of the reader processes (% of one core, ``psutil``) while idle (no writes), steady, and in the
  burst (ms per reader); their queries per second; CPU of all PostgreSQL processes (postmaster, backends, and
  the backends that ended: the postmaster's reaped-children time) and of Redis; the writers' ``commit_step``
  time (the trigger's cost is in it) and Redis ``PUBLISH`` time.

The machine's load average is printed with each case; the JSON report goes to ``--output``
(default ``.courtside/reports/log_delivery.json``) and a markdown table to stdout. The throwaway server runs with
``fsync=off`` and ``synchronous_commit=off``: commits are cheaper than on a durable server, the delivery paths
are the same. The gateway's work after reading (the view, coalescing at ``rate_hz``, the WebSocket fan-out) is
not in these figures: ``benchmarks/fanout_bench.py`` measures it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import math
import multiprocessing as mp
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from storage import live as store
from storage.db import make_engine, migrate

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / ".courtside" / "reports" / "log_delivery.json"
MECHANISMS = ("tail", "notify", "redis")
_TRIGGER = importlib.import_module("storage.migrations.versions.0009_live_events_notify")
CHANNEL: str = _TRIGGER.CHANNEL
"""The Postgres NOTIFY channel (migration 0009's) and the Redis pub/sub channel."""
AT = datetime(2026, 12, 7, tzinfo=UTC)
FILLER = {"score": "6-4 3-2 30-15", "server": "p1", "odds": [1.83, 2.05], "book": {"back": 1.82, "lay": 1.84}}
"""Some of a real entry's payload, so that rows are not empty."""

NOTIFY_TRIGGER: str = _TRIGGER.NOTIFY_TRIGGER
"""The writer side of ``notify``, as shipped (migration 0009, which every migrated database has): every statement
that inserts log entries notifies ``courtside_live`` with the largest id it inserted, in its own transaction
(delivered at commit, never on rollback). The writers' code is not touched: ``commit_step``, ``record_settlement``
and any other log writer notify. The other mechanisms' cases drop it (``DROP_NOTIFY_TRIGGER``)."""
DROP_NOTIFY_TRIGGER: str = _TRIGGER.DROP_NOTIFY_TRIGGER


@dataclass(frozen=True)
class Case:
    """One run: a mechanism, its writers and readers, and the load."""

    mechanism: str
    writers: int
    readers: int = 3
    rate: float = 300.0
    """Entries a second, all writers together, in the steady phase."""
    steady_s: float = 10.0
    burst: int = 1000
    """Entries committed back to back after the steady phase."""
    idle_s: float = 3.0
    """No writes at first: what following the log costs when nothing happens."""
    gap_s: float = 1.0
    """Between the steady phase and the burst (the steady entries are read by then)."""
    entries_per_step: int = 2
    poll_s: float = 0.1
    """``tail``: the gateway's poll interval (``LiveService``'s default)."""
    chunk: int = 5_000
    """Rows per read (``serving.api.live.CHUNK``)."""
    fallback_s: float = 2.0
    """``notify``/``redis``: read anyway after this long without a wake-up."""
    backoff_s: float = 1.0
    """``notify``/``redis``: wait before connecting again after the listening connection failed."""
    min_read_interval_s: float = 0.0
    """``notify``/``redis``: at least this long from one read's start to the next (wake-ups in between are taken
    together); 0: a read for every wake-up that arrives while none runs."""
    drop: bool = True
    """End reader 1's connections once, in the middle of the steady phase."""
    seed: int = 0
    timeout_s: float = 120.0


def percentiles(values: Iterable[float]) -> dict[str, float] | None:
    """n, p50, p99, max (as ``serving.api.gateway.percentiles``: nearest rank), rounded to 0.01 ms."""
    v = sorted(values)
    if not v:
        return None
    return {
        "n": len(v),
        "p50": round(v[len(v) // 2], 2),
        "p99": round(v[int(0.99 * (len(v) - 1))], 2),
        "max": round(v[-1], 2),
    }


def _libpq_url(url: str) -> str:
    """A SQLAlchemy URL as psycopg's conninfo (``postgresql+psycopg://`` -> ``postgresql://``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class _Sync:
    """What the processes of one case share (created before they are forked)."""

    def __init__(self, ctx: Any):
        self.messages = ctx.Queue()
        self.go = ctx.Event()
        self.release = ctx.Event()
        self.start_at = ctx.Value("d", 0.0)
        self.final_id = ctx.Value("q", 0)


# --- a writer: the engine's commit_step ------------------------------------------------------------------------
def _writer_main(case: Case, index: int, db_url: str, redis_url: str | None, sync: _Sync) -> None:
    engine = make_engine(db_url, pool_size=1, max_overflow=0, connect_args={"application_name": f"bench-w{index}"})
    publisher: Any = None
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        if case.mechanism == "redis":
            import redis

            publisher = redis.Redis.from_url(redis_url or "", client_name=f"bench-w{index}")
            publisher.ping()
        sync.messages.put(("ready", "writer", index))
        if not sync.go.wait(60):
            return
        t0 = sync.start_at.value
        rng = random.Random(case.seed * 1000 + index)
        records: list[tuple[int, str, float, float, float]] = []
        """(step, phase, commit_step called, commit_step returned, published)"""

        def commit(n: int, phase: str) -> None:
            kinds = ("FEED_MESSAGE", "PREDICTION", "MARKET_UPDATE")
            events = [
                store.EventEntry(
                    kinds[j % len(kinds)],
                    AT,
                    {"w": index, "n": n, "j": j, "phase": phase, **FILLER},
                    "bench",
                    n,
                    f"match-{index}",
                )
                for j in range(case.entries_per_step)
            ]
            called = time.time()
            store.commit_step(engine, store.Step(events=events, cursors={(f"bench-{index}", "match"): (n, AT)}))
            committed = time.time()
            if publisher is not None:  # after the commit: a reader woken by it sees the rows
                publisher.publish(CHANNEL, f"{index}:{n}")
            records.append((n, phase, called, committed, time.time()))

        steady_start = t0 + case.idle_s
        steady_end = steady_start + case.steady_s
        per_writer = case.rate / case.entries_per_step / case.writers  # steps a second of this writer
        at = steady_start + rng.expovariate(per_writer)
        n = 0
        while at < steady_end:
            wait = at - time.time()
            if wait > 0:
                time.sleep(wait)
            commit(n, "steady")
            n += 1
            at += rng.expovariate(per_writer)
        steps = math.ceil(case.burst / case.entries_per_step)
        mine = steps // case.writers + (1 if index < steps % case.writers else 0)
        wait = steady_end + case.gap_s - time.time()
        if wait > 0:
            time.sleep(wait)
        for _ in range(mine):
            commit(n, "burst")
            n += 1
        sync.messages.put(("result", "writer", index, records))
    finally:
        engine.dispose()
        if publisher is not None:
            publisher.close()


# --- a reader: a replica following the log ---------------------------------------------------------------------
class _Follower:
    """One replica's reading of the log: ``next_event_rows`` from the last id read, woken as ``case.mechanism``
    says. Records the ids it read and when."""

    def __init__(self, case: Case, index: int, db_url: str, redis_url: str | None, start_id: int, sync: _Sync):
        self.case, self.index, self.db_url, self.redis_url, self.sync = case, index, db_url, redis_url, sync
        self.engine = make_engine(db_url, connect_args={"application_name": f"bench-r{index}"})
        self.cursor = start_id
        self.ids: list[int] = []
        self.seen: list[float] = []
        self.reads: list[tuple[float, float]] = []
        """(started, returned) of each query that returned."""
        self.empty_reads = 0
        self.errors: list[str] = []
        self.wakeups = 0
        self.fallback_rows = 0
        """Entries read after ``fallback_s`` without a wake-up (0: every entry came with one)."""
        self.drops: list[dict[str, Any]] = []
        """The listening connection failed: when, when it listened again, what the first read after found."""
        self.listening = asyncio.Event()
        self.wake = asyncio.Event()
        self.notified = 0
        """The largest id a notification named."""
        self.payload_disorder = 0
        """Notifications whose id was not above the previous one's on the same connection (ids are commit-ordered
        and notifications are delivered in commit order: must be 0)."""
        self.notified_unseen = 0
        """Reads, after a notification naming id k, that ended below k (a notification before its rows were
        visible: must be 0)."""
        self.deadline = time.time() + case.timeout_s

    # reading
    async def _drain(self) -> int:
        """Read until a read returns fewer than ``chunk`` rows (the gateway's loop reads again at once then too)."""
        got = 0
        while True:
            started = time.time()
            rows = await asyncio.to_thread(store.next_event_rows, self.engine, self.cursor, self.case.chunk)
            now = time.time()
            self.reads.append((started, now))
            if not rows:
                self.empty_reads += 1
            for row in rows:
                self.ids.append(int(row["id"]))
                self.seen.append(now)
                self.cursor = int(row["id"])
            got += len(rows)
            if len(rows) < self.case.chunk:
                return got

    def _finished(self) -> bool:
        final = self.sync.final_id.value
        return (final > 0 and self.cursor >= final) or time.time() > self.deadline

    async def run(self) -> dict[str, Any]:
        if self.case.mechanism == "tail":
            await self._drain()
            self.sync.messages.put(("ready", "reader", self.index))
            await self._tail()
        else:
            listen = self._listen_postgres if self.case.mechanism == "notify" else self._listen_redis
            listener = asyncio.get_running_loop().create_task(listen())
            await asyncio.wait_for(self.listening.wait(), 30)
            self.sync.messages.put(("ready", "reader", self.index))
            await self._woken()
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        self.engine.dispose()
        return {
            "ids": self.ids,
            "seen": self.seen,
            "reads": self.reads,
            "empty_reads": self.empty_reads,
            "errors": self.errors,
            "wakeups": self.wakeups,
            "fallback_rows": self.fallback_rows,
            "drops": self.drops,
            "payload_disorder": self.payload_disorder,
            "notified_unseen": self.notified_unseen,
            "timed_out": time.time() > self.deadline,
        }

    async def _tail(self) -> None:
        """``LiveService._follow``'s loop (without the view and the alerts): read, sleep ``poll_s`` unless a full
        chunk came; after a failed read wait ``min(5, 10 poll_s)``."""
        while not self._finished():
            try:
                got = await self._drain()
            except Exception as exc:  # noqa: BLE001 - as the gateway: a database hiccup does not end the tail
                self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                await asyncio.sleep(min(5.0, self.case.poll_s * 10))
                continue
            if got < self.case.chunk:
                await asyncio.sleep(self.case.poll_s)

    async def _woken(self) -> None:
        """Wait for a wake-up (or ``fallback_s``), then read by id; repeat."""
        while not self._finished():
            try:
                await asyncio.wait_for(self.wake.wait(), self.case.fallback_s)
                woke = True
            except TimeoutError:
                woke = False
            self.wake.clear()  # before reading: a wake-up during the read means another read
            target, self.notified = self.notified, 0
            try:
                got = await self._drain()
            except Exception as exc:  # noqa: BLE001 - the read engine reconnects; read again soon
                self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                self.notified = max(self.notified, target)
                await asyncio.sleep(min(5.0, self.case.poll_s * 10))
                self.wake.set()
                continue
            if not woke:
                self.fallback_rows += got
            if target and self.cursor < target:
                self.notified_unseen += 1
            if self.case.min_read_interval_s > 0:  # coalesce the wake-ups of the next few ms into one read
                await asyncio.sleep(max(0.0, self.reads[-1][0] + self.case.min_read_interval_s - time.time()))

    def _listened(self) -> None:
        """(Re)LISTEN / (re)SUBSCRIBE done: read by id now -- nothing woke this reader while it was away."""
        if self.drops and self.drops[-1]["back"] is None:
            self.drops[-1]["back"] = time.time()
        self.listening.set()
        self.wake.set()

    def _dropped(self, exc: BaseException) -> None:
        self.drops.append(
            {
                "failed": time.time(),
                "back": None,
                "error": f"{type(exc).__name__}: {exc}"[:200],
            }
        )

    async def _listen_postgres(self) -> None:
        import psycopg

        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    _libpq_url(self.db_url), autocommit=True, application_name=f"bench-r{self.index}-listen"
                )
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._listened()
                    last = 0
                    async for note in conn.notifies():
                        self.wakeups += 1
                        if note.payload.isdigit():
                            named = int(note.payload)
                            if named <= last:
                                self.payload_disorder += 1
                            last = named
                            self.notified = max(self.notified, named)
                        self.wake.set()
            except psycopg.OperationalError as exc:
                self._dropped(exc)
                await asyncio.sleep(self.case.backoff_s)

    async def _listen_redis(self) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        while True:
            # no silent retry: redis-py would otherwise reconnect and subscribe again by itself (its "subscribe"
            # confirmation then arrives again, which _listened also takes as "read by id now")
            client = aioredis.Redis.from_url(
                self.redis_url or "", client_name=f"bench-r{self.index}", retry=Retry(NoBackoff(), 0)
            )
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        self._listened()
                    elif message["type"] == "message":
                        self.wakeups += 1
                        self.wake.set()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self._dropped(exc)
                await asyncio.sleep(self.case.backoff_s)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()


def _reader_main(case: Case, index: int, db_url: str, redis_url: str | None, start_id: int, sync: _Sync) -> None:
    import uvloop  # as python -m serving.api

    follower = _Follower(case, index, db_url, redis_url, start_id, sync)
    result = uvloop.run(follower.run())
    sync.messages.put(("result", "reader", index, result))
    sync.release.wait(120)  # alive until the parent has taken its CPU time


# --- the parent: one case --------------------------------------------------------------------------------------
def _cpu(proc: psutil.Process | None, tree: bool = False) -> float | None:
    """CPU seconds of a process (with ``tree``: and of its children, living and reaped)."""
    if proc is None:
        return None
    try:
        t = proc.cpu_times()
        total = t.user + t.system
        if tree:
            total += t.children_user + t.children_system
            for child in proc.children():
                with contextlib.suppress(psutil.Error):
                    c = child.cpu_times()
                    total += c.user + c.system
        return total
    except psutil.Error:
        return None


def _postmaster(admin: Engine) -> psutil.Process | None:
    """The PostgreSQL server's main process, when it runs on this machine (the parent of this session's backend)."""
    try:
        with admin.connect() as conn:
            backend = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        return psutil.Process(backend).parent()
    except (psutil.Error, OSError):
        return None


def _redis_process(client: Any) -> psutil.Process | None:
    try:
        return psutil.Process(int(client.info("server")["process_id"]))
    except (psutil.Error, KeyError, ValueError):
        return None


@dataclass
class _Sample:
    at: float
    readers: list[float | None]
    writers: list[float | None]
    postgres: float | None
    redis: float | None


def run_case(case: Case, db_url: str, redis_url: str | None = None, log: Callable[[str], None] = print) -> dict:
    """Run one case on the migrated database ``db_url`` (entries already there are left alone: the readers start
    after the newest) and return its figures and checks."""
    if case.mechanism not in MECHANISMS:
        raise ValueError(f"mechanism must be one of {MECHANISMS}, not {case.mechanism!r}")
    if case.mechanism == "redis" and not redis_url:
        raise ValueError("the redis mechanism needs a Redis URL")
    admin = create_engine(db_url, poolclass=NullPool)  # no connection open when the children are forked
    redis_client: Any = None
    if redis_url:
        import redis

        redis_client = redis.Redis.from_url(redis_url)
    ctx = mp.get_context("fork")
    sync = _Sync(ctx)
    procs: list[Any] = []
    try:
        with admin.begin() as conn:
            start_id = int(conn.execute(text("SELECT coalesce(max(id), 0) FROM live_events")).scalar_one())
            conn.exec_driver_sql(DROP_NOTIFY_TRIGGER)
            if case.mechanism == "notify":
                conn.exec_driver_sql(NOTIFY_TRIGGER)
        postmaster = _postmaster(admin)
        redis_proc = _redis_process(redis_client) if redis_client is not None else None
        readers = [
            ctx.Process(target=_reader_main, args=(case, i, db_url, redis_url, start_id, sync), name=f"bench-r{i}")
            for i in range(case.readers)
        ]
        writers = [
            ctx.Process(target=_writer_main, args=(case, i, db_url, redis_url, sync), name=f"bench-w{i}")
            for i in range(case.writers)
        ]
        procs = readers + writers
        for p in procs:
            p.start()
        reader_ps = [psutil.Process(p.pid) for p in readers]
        writer_ps = [psutil.Process(p.pid) for p in writers]
        results: dict[tuple[str, int], Any] = {}

        def collect(kind: str, count: int, timeout_s: float) -> None:
            deadline = time.time() + timeout_s
            while sum(1 for k in results if k[0] == kind) < count:
                try:
                    msg = sync.messages.get(timeout=max(0.1, min(1.0, deadline - time.time())))
                except Exception:  # noqa: BLE001 - queue.Empty: look at the processes, then again
                    dead = [p.name for p in procs if p.exitcode not in (None, 0)]
                    if dead or time.time() > deadline:
                        raise RuntimeError(f"{kind}s did not report in time (failed: {dead})") from None
                    continue
                if msg[0] == "ready":
                    results[(f"ready-{msg[1]}", msg[2])] = True
                else:
                    results[(msg[1], msg[2])] = msg[3]

        collect("ready-reader", case.readers, 60)
        collect("ready-writer", case.writers, 60)

        def sample() -> _Sample:
            return _Sample(
                time.time(),
                [_cpu(p) for p in reader_ps],
                [_cpu(p) for p in writer_ps],
                _cpu(postmaster, tree=True),
                _cpu(redis_proc),
            )

        def sleep_until(moment: float) -> None:
            wait = moment - time.time()
            if wait > 0:
                time.sleep(wait)

        load_start = os.getloadavg()
        t0 = time.time() + 0.3
        sync.start_at.value = t0
        sync.go.set()
        sleep_until(t0)
        samples = {"idle": sample()}
        steady_start = t0 + case.idle_s
        sleep_until(steady_start)
        samples["steady"] = sample()
        kill: dict[str, Any] | None = None
        if case.drop:
            sleep_until(steady_start + case.steady_s / 2)
            kill = _drop_reader(admin, redis_client, 0, case.mechanism)
        sleep_until(steady_start + case.steady_s)
        samples["steady_end"] = sample()
        sleep_until(steady_start + case.steady_s + case.gap_s)
        samples["burst"] = sample()
        collect("writer", case.writers, case.timeout_s)
        with admin.begin() as conn:
            final = int(conn.execute(text("SELECT coalesce(max(id), 0) FROM live_events")).scalar_one())
            sync.final_id.value = final
            if case.mechanism == "notify":
                conn.exec_driver_sql(f"NOTIFY {CHANNEL}, 'stop'")
        if case.mechanism == "redis":
            redis_client.publish(CHANNEL, "stop")
        collect("reader", case.readers, case.timeout_s)
        samples["end"] = sample()
        sync.release.set()
        for p in procs:
            p.join(30)
        load_end = os.getloadavg()
        with admin.connect() as conn:
            truth = [
                (int(i), json.loads(p))
                for i, p in conn.execute(
                    text("SELECT id, payload FROM live_events WHERE id > :s ORDER BY id"), {"s": start_id}
                )
            ]
        figures = _figures(case, truth, results, samples, kill)
        figures["load_average"] = {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in load_end]}
        return figures
    finally:
        sync.go.set()
        sync.release.set()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
        with contextlib.suppress(Exception), admin.begin() as conn:
            conn.exec_driver_sql(DROP_NOTIFY_TRIGGER)
        admin.dispose()
        if redis_client is not None:
            redis_client.close()


def _drop_reader(admin: Engine, redis_client: Any, index: int, mechanism: str) -> dict[str, Any]:
    """End every connection of reader ``index``: its Postgres backends (read and LISTEN connections) and its Redis
    connection, from the server side."""
    names = [f"bench-r{index}", f"bench-r{index}-listen"]
    at = time.time()
    with admin.connect() as conn:
        ended = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = ANY(:names) AND datname = current_database()"
            ),
            {"names": names},
        ).scalar_one()
        conn.commit()
    killed_redis = 0
    if mechanism == "redis" and redis_client is not None:
        for client in redis_client.client_list():
            if client.get("name") == f"bench-r{index}":
                killed_redis += int(redis_client.client_kill_filter(_id=client["id"]))
    return {"at": at, "postgres_backends": int(ended), "redis_connections": killed_redis}


def _figures(
    case: Case,
    truth: list[tuple[int, dict[str, Any]]],
    results: dict[tuple[str, int], Any],
    samples: dict[str, _Sample],
    kill: dict[str, Any] | None,
) -> dict[str, Any]:
    commits: dict[tuple[int, int], tuple[str, float, float, float]] = {}
    for w in range(case.writers):
        for n, phase, called, committed, published in results[("writer", w)]:
            commits[(w, n)] = (phase, called, committed, published)
    ids = [i for i, _ in truth]
    key = {i: (int(p["w"]), int(p["n"])) for i, p in truth}
    committed_at = {i: commits[key[i]][2] for i in ids}
    phase_of = {i: commits[key[i]][0] for i in ids}
    unknown = [i for i in ids if key[i] not in commits]
    per_reader: list[dict[str, Any]] = []
    latency: dict[str, list[float]] = {"steady": [], "burst": []}
    drop_figures: dict[str, Any] | None = None
    for r in range(case.readers):
        res = results[("reader", r)]
        read_ids: list[int] = res["ids"]
        unique = set(read_ids)
        checks = {
            "read": len(read_ids),
            "lost": len(set(ids) - unique),
            "duplicates": len(read_ids) - len(unique),
            "out_of_order": sum(1 for a, b in zip(read_ids, read_ids[1:], strict=False) if b <= a),
            "foreign": len(unique - set(ids)),
            "exact": read_ids == ids,
        }
        delayed: set[int] = set()
        if r == 0 and kill is not None:
            at = kill["at"]
            if case.mechanism == "tail":  # back with the first query begun after the drop (it reconnects)
                back = next((a for a, _ in res["reads"] if a > at), None)
            else:  # back once LISTENing / SUBSCRIBEd again
                back = next((d["back"] for d in res["drops"] if d["back"] is not None), None)
            until = back if back is not None else at
            seen_at = dict(zip(read_ids, res["seen"], strict=False))
            # what the drop delayed: entries reader 1 had not read when its connections were ended, committed before
            # it was back
            delayed = {i for i in ids if committed_at[i] <= until and seen_at.get(i, math.inf) >= at}
            began = {returned: started for started, returned in res["reads"]}
            # the first query begun once back: its snapshot has every entry committed before
            first = next((b for a, b in res["reads"] if back is not None and a >= back), None)
            early = sum(1 for i in delayed if i in seen_at and began.get(seen_at[i], math.inf) < until)
            by_first = sum(1 for i in delayed if first is not None and seen_at.get(i) == first)
            drop_figures = {
                "killed": kill,
                "back_after_s": None if back is None else round(back - at, 3),
                "drops_seen": len(res["drops"]),
                "drops": res["drops"],
                "committed_while_away": sum(1 for i in ids if at <= committed_at[i] <= until),
                "delayed": len(delayed),
                "read_by_reads_begun_before_back": early,
                "read_by_first_read_once_back": by_first,
                "none_left_after_first_read_once_back": back is not None and early + by_first == len(delayed),
                "latency_ms": percentiles((seen_at[i] - committed_at[i]) * 1000 for i in delayed if i in seen_at),
            }
        for i, seen in zip(read_ids, res["seen"], strict=False):
            if i in committed_at and i not in delayed:
                latency[phase_of[i]].append((seen - committed_at[i]) * 1000)
        reads = res["reads"]
        window = {
            "idle": (samples["idle"].at, samples["steady"].at),
            "steady": (samples["steady"].at, samples["steady_end"].at),
        }
        per_reader.append(
            {
                **checks,
                "reads_per_s": {
                    name: round(sum(1 for _, t in reads if a <= t < b) / (b - a), 1) for name, (a, b) in window.items()
                },
                "queries": len(reads),
                "empty_reads": res["empty_reads"],
                "wakeups": res["wakeups"],
                "fallback_rows": res["fallback_rows"],
                "errors": res["errors"],
                "drops": len(res["drops"]),
                "payload_disorder": res["payload_disorder"],
                "notified_unseen": res["notified_unseen"],
                "timed_out": res["timed_out"],
            }
        )

    def share(a: str, b: str, pick: Callable[[_Sample], list[float | None]]) -> list[float | None]:
        wall = samples[b].at - samples[a].at
        return [
            None if x is None or y is None else round((y - x) / wall * 100, 2)
            for x, y in zip(pick(samples[a]), pick(samples[b]), strict=True)
        ]

    def mean(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return round(sum(known) / len(known), 2) if known else None

    cpu: dict[str, Any] = {}
    for name, (a, b) in {
        "idle": ("idle", "steady"),
        "steady": ("steady", "steady_end"),
        "burst": ("burst", "end"),
    }.items():
        readers_pct = share(a, b, lambda s: s.readers)
        cpu[name] = {
            "wall_s": round(samples[b].at - samples[a].at, 3),
            "readers_pct": readers_pct,
            "reader_pct_mean": mean(readers_pct),
            "reader_ms_mean": None
            if mean(readers_pct) is None
            else round((mean(readers_pct) or 0.0) * (samples[b].at - samples[a].at) * 10, 1),
            "postgres_pct": (share(a, b, lambda s: [s.postgres]) or [None])[0],
            "redis_pct": (share(a, b, lambda s: [s.redis]) or [None])[0],
            "writers_pct": share(a, b, lambda s: s.writers) if name != "burst" else None,
        }
    steps = {p: [c for c in commits.values() if c[0] == p] for p in ("steady", "burst")}
    burst_ids = [i for i in ids if phase_of[i] == "burst"]
    all_read: float | None = None
    if burst_ids:
        last_commit = max(committed_at[i] for i in burst_ids)
        in_burst = set(burst_ids)
        last_seen = [
            max(
                (
                    t
                    for i, t in zip(results[("reader", r)]["ids"], results[("reader", r)]["seen"], strict=False)
                    if i in in_burst
                ),
                default=0.0,
            )
            for r in range(case.readers)
        ]
        all_read = round((max(last_seen) - last_commit) * 1000, 2)
    return {
        "mechanism": case.mechanism,
        "writers": case.writers,
        "readers": case.readers,
        "case": asdict(case),
        "entries": len(ids),
        "entries_by_phase": {p: sum(1 for i in ids if phase_of[i] == p) for p in ("steady", "burst")},
        "steps": {p: len(v) for p, v in steps.items()},
        "unmatched_entries": len(unknown),
        "latency_ms": {p: percentiles(v) for p, v in latency.items()},
        "burst": {
            "write_s": round(max(c[2] for c in steps["burst"]) - min(c[1] for c in steps["burst"]), 3)
            if steps["burst"]
            else None,
            "last_commit_to_all_read_ms": all_read,
        },
        "writer_commit_ms": {p: percentiles((c[2] - c[1]) * 1000 for c in v) for p, v in steps.items()},
        "writer_publish_ms": percentiles((c[3] - c[2]) * 1000 for c in steps["steady"])
        if case.mechanism == "redis"
        else None,
        "readers_detail": per_reader,
        "lost": sum(r["lost"] for r in per_reader),
        "duplicates": sum(r["duplicates"] for r in per_reader),
        "out_of_order": sum(r["out_of_order"] for r in per_reader),
        "all_exact": all(r["exact"] for r in per_reader) and not unknown,
        "drop": drop_figures,
        "cpu": cpu,
    }


# --- the table -------------------------------------------------------------------------------------------------
def _f(v: Any, digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _label(case: dict[str, Any]) -> str:
    gap = case["case"].get("min_read_interval_s") or 0.0
    return case["mechanism"] + (f" (reads >= {gap * 1000:.0f} ms apart)" if gap and case["mechanism"] != "tail" else "")


def table(cases: list[dict[str, Any]]) -> str:
    lines = [
        "| mechanism | writers | entries | steady p50 / p99 / max ms | burst p50 / p99 / max ms | burst: last "
        "commit -> all read ms | lost / dup / out of order | drop of reader 1: back after; entries delayed (unread at "
        "the drop or committed until back): read by reads begun before + by the first read once back; their max ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        s, b = c["latency_ms"]["steady"] or {}, c["latency_ms"]["burst"] or {}
        d = c.get("drop")
        if d is None:
            drop = "—"
        else:
            drop = (
                f"{_f(d['back_after_s'], 2)} s; {d['delayed']}: {d['read_by_reads_begun_before_back']} + "
                f"{d['read_by_first_read_once_back']}; max {_f((d['latency_ms'] or {}).get('max'))} ms"
            )
        lines.append(
            f"| {_label(c)} | {c['writers']} | {c['entries']} x {c['readers']} | "
            f"{_f(s.get('p50'))} / {_f(s.get('p99'))} / {_f(s.get('max'))} | "
            f"{_f(b.get('p50'))} / {_f(b.get('p99'))} / {_f(b.get('max'))} | "
            f"{_f(c['burst']['last_commit_to_all_read_ms'])} | "
            f"{c['lost']} / {c['duplicates']} / {c['out_of_order']} | {drop} |"
        )
    lines += [
        "",
        "| mechanism | writers | reader CPU % idle / steady | reader CPU ms burst | queries/s per reader idle / "
        "steady | Postgres CPU % idle / steady | Redis CPU % steady | commit_step p50 / p99 ms (steady) | "
        "wake-ups per reader | entries found by the fallback read |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        cpu = c["cpu"]
        rd = c["readers_detail"]
        qi = sum(r["reads_per_s"]["idle"] for r in rd) / len(rd)
        qs = sum(r["reads_per_s"]["steady"] for r in rd) / len(rd)
        wc = c["writer_commit_ms"]["steady"] or {}
        pub = c.get("writer_publish_ms")
        lines.append(
            f"| {_label(c)} | {c['writers']} | {_f(cpu['idle']['reader_pct_mean'])} / "
            f"{_f(cpu['steady']['reader_pct_mean'])} | {_f(cpu['burst']['reader_ms_mean'], 0)} | {qi:.1f} / {qs:.1f} | "
            f"{_f(cpu['idle']['postgres_pct'])} / {_f(cpu['steady']['postgres_pct'])} | "
            f"{_f(cpu['steady']['redis_pct']) if c['mechanism'] == 'redis' else '—'} | "
            f"{_f(wc.get('p50'), 2)} / {_f(wc.get('p99'), 2)}"
            + (f" (+ PUBLISH p50 {_f(pub.get('p50'), 2)})" if pub else "")
            + f" | {sum(r['wakeups'] for r in rd) // len(rd) if c['mechanism'] != 'tail' else '—'} | "
            f"{sum(r['fallback_rows'] for r in rd) if c['mechanism'] != 'tail' else '—'} |"
        )
    return "\n".join(lines)


# --- main: servers, databases, the cases ------------------------------------------------------------------------
def _script(name: str, *args: str) -> str:
    done = subprocess.run([str(ROOT / "scripts" / name), *args], capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"scripts/{name} {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def _fresh_database(admin_url: str, name: str) -> str:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    migrate(url)
    return url


def _gateway_defaults() -> tuple[float, int]:
    """The gateway's poll interval and rows per read, from its code (``LiveService``'s default, ``CHUNK``)."""
    import inspect

    from serving.api.live import CHUNK, LiveService

    return float(inspect.signature(LiveService).parameters["poll_s"].default), int(CHUNK)


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", default="1,2,4", help="writer processes per case, comma-separated")
    parser.add_argument("--readers", type=int, default=3, help="reader (replica) processes")
    parser.add_argument("--mechanisms", default=",".join(MECHANISMS))
    parser.add_argument("--rate", type=float, default=300.0, help="entries/s of all writers in the steady phase")
    parser.add_argument("--steady-s", type=float, default=10.0)
    parser.add_argument("--burst", type=int, default=1000, help="entries committed back to back")
    parser.add_argument("--idle-s", type=float, default=3.0)
    parser.add_argument("--entries-per-step", type=int, default=2)
    parser.add_argument("--poll-s", type=float, help="tail's poll interval (default: the gateway's)")
    parser.add_argument("--fallback-s", type=float, default=2.0)
    parser.add_argument("--backoff-s", type=float, default=1.0)
    parser.add_argument(
        "--min-read-interval-s", type=float, default=0.0, help="notify/redis: at least this long between reads"
    )
    parser.add_argument("--no-drop", action="store_true", help="no forced drop of reader 1's connections")
    parser.add_argument("--database-url", help="admin URL of a PostgreSQL server (default: a throwaway one)")
    parser.add_argument("--redis-url", help="a Redis server (default: a throwaway one)")
    parser.add_argument("--output", default=str(REPORT))
    args = parser.parse_args(argv)

    mechanisms = [m for m in args.mechanisms.split(",") if m]
    if set(mechanisms) - set(MECHANISMS):
        parser.error(f"--mechanisms: a subset of {','.join(MECHANISMS)}")
    writer_counts = [int(w) for w in args.writers.split(",") if w]
    poll_s, chunk = _gateway_defaults()
    if args.poll_s is not None:
        poll_s = args.poll_s
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    load_start = os.getloadavg()
    commit = _commit()
    print(
        f"log delivery bench at {commit}, {started}, {os.cpu_count()} cores, load average "
        f"{' '.join(f'{x:.2f}' for x in load_start)}; tail poll {poll_s} s, {chunk} rows a read",
        flush=True,
    )
    pg_dir = redis_dir = None
    t_start = time.perf_counter()
    try:
        admin_url = args.database_url
        if admin_url is None:
            # a folder of its own: as root the server runs as `postgres`, who may not enter other folders
            pg_dir = Path(tempfile.mkdtemp(prefix="courtside-logbench-pg-"))
            admin_url = _script("test-postgres", "start", str(pg_dir))
        redis_url = args.redis_url
        if redis_url is None and "redis" in mechanisms:
            redis_dir = Path(tempfile.mkdtemp(prefix="courtside-logbench-redis-"))
            redis_url = _script("test-redis", "start", str(redis_dir))
        cases: list[dict[str, Any]] = []
        base = Case(
            mechanism="tail",
            writers=1,
            readers=args.readers,
            rate=args.rate,
            steady_s=args.steady_s,
            burst=args.burst,
            idle_s=args.idle_s,
            entries_per_step=args.entries_per_step,
            poll_s=poll_s,
            chunk=chunk,
            fallback_s=args.fallback_s,
            backoff_s=args.backoff_s,
            min_read_interval_s=args.min_read_interval_s,
            drop=not args.no_drop,
        )
        for k, writers in enumerate(writer_counts):
            # the order of the mechanisms turns from one writer count to the next: a drift in load spreads out
            order = mechanisms[k % len(mechanisms) :] + mechanisms[: k % len(mechanisms)]
            for mechanism in order:
                case = replace(base, mechanism=mechanism, writers=writers, seed=k)
                url = _fresh_database(admin_url, f"logbench_{mechanism}_{writers}")
                figures = run_case(case, url, redis_url)
                figures["database"] = make_url(url).database
                cases.append(figures)
                s, b = figures["latency_ms"]["steady"] or {}, figures["latency_ms"]["burst"] or {}
                print(
                    f"  {mechanism:<6} {writers} writer(s): {figures['entries']} entries, steady p50 {_f(s.get('p50'))}"
                    f" p99 {_f(s.get('p99'))} max {_f(s.get('max'))} ms; burst p50 {_f(b.get('p50'))} p99 "
                    f"{_f(b.get('p99'))} ms; lost {figures['lost']}, duplicates {figures['duplicates']}, out of "
                    f"order {figures['out_of_order']}; load {figures['load_average']['end'][0]:.2f}",
                    flush=True,
                )
        order_ok = all(c["all_exact"] for c in cases)
        text_table = table(sorted(cases, key=lambda c: (MECHANISMS.index(c["mechanism"]), c["writers"])))
        load_end = os.getloadavg()
        print(
            f"\nCommit -> reader has the entry, {args.readers} readers, {args.rate:.0f} entries/s steady "
            f"({args.steady_s:.0f} s), burst {args.burst}; load average {load_start[0]:.2f} -> {load_end[0]:.2f}; "
            f"every reader read every committed id once, in order: {'yes' if order_ok else 'NO'}; "
            f"{time.perf_counter() - t_start:.0f} s\n"
        )
        print(text_table)
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {
                    "started": started,
                    "commit": commit,
                    "command": " ".join(["python -m benchmarks.log_delivery_bench", *(argv or sys.argv[1:])]),
                    "cores": os.cpu_count(),
                    "platform": platform.platform(),
                    "load_average": {"start": load_start, "end": load_end},
                    "poll_s": poll_s,
                    "chunk": chunk,
                    "every_reader_exact": order_ok,
                    "cases": cases,
                    "table": text_table,
                },
                indent=1,
            )
        )
        print(f"\nfigures: {out}")
        return 0 if order_ok else 1
    finally:
        for script, folder in (("test-redis", redis_dir), ("test-postgres", pg_dir)):
            if folder is not None and folder.exists():
                subprocess.run([str(ROOT / "scripts" / script), "stop", str(folder)], capture_output=True, timeout=120)
                shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
