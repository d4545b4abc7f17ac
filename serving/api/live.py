"""The API process's live state: it tails the event log into the ``LiveView``, publishes the updates
to the WebSocket ``Gateway`` and the value alerts people subscribed to (stored subscriptions, whose
webhook deliveries it queues for ``serving.api.alerts.WebhookDeliverer``), and computes the trading
figures of ``/metrics`` from the ledger.

The log is read with ``storage.live.next_event_rows``, from the newest id read. Entry ids are in commit order, on
Postgres too with several engine workers (``storage.live.LOG_WRITE_LOCK_KEY``): an entry not read yet always has an
id above the newest one read, and a gap in the ids (a rolled-back transaction's) is permanent, so it is passed at once.

When to read (issue 14, benchmarks/log_delivery_bench.py): on Postgres a trigger notifies ``LOG_CHANNEL`` at every
commit that adds entries (migration 0009), and each process LISTENs on one direct connection of its own (not through
PgBouncer in transaction mode): a notification only means "read by id now" (the log stays the truth), reads are at
least ``min_read_interval_s`` apart (the notifications in between are taken together) and happen at least every
``fallback_s`` anyway. While that connection is down (it is opened again with a growing wait) and always on SQLite
(no NOTIFY), the log is read every ``poll_s``. After every (re)LISTEN the log is read at once: the entries committed
while nobody listened were announced to nobody.

Replicas (``python -m serving.api --replicas N``): every API process tails the one log itself and numbers
each WebSocket message with the id of the log entry it carries, under a session derived from the log's
first entry (``log_session``), so a subscriber resumes on any replica (``serving.api.gateway``). Alert
subscriptions made or deleted through one replica reach the others from the database within
``REFRESH_S``. Every replica queues the webhook deliveries of the value bets it reads (queueing is
idempotent: one row per subscription and log entry), and only the replica holding the delivery lease
(``serving.api.alerts.DeliveryLease``) sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import select
from sqlalchemy.engine import Engine as DbEngine

from betting.policy import TradingPolicy
from features.names import normalize_name
from serving import control
from serving.api.alerts import WebhookConfig, WebhookDeliverer
from serving.api.gateway import EMPTY_LOG_SESSION, Gateway, GatewayConfig
from serving.api.views import LiveView, MatchView, Update
from storage import alerts as alert_store
from storage import live as store
from storage.models import LiveEvent

log = logging.getLogger(__name__)

CHUNK = 5_000
"""Log entries read per query."""
SNAPSHOT_MATCHES = 200
"""Matches in the snapshot of the ``*`` room (most recently updated first)."""
REFRESH_S = 2.0
"""Seconds between looks at the log's identity (a reset) and at the alert subscriptions other replicas made."""
LOG_CHANNEL = "courtside_live"
"""The Postgres channel notified at each commit of log entries (the trigger of migration 0009), payload the newest
id of the inserting statement."""
MIN_READ_INTERVAL_S = 0.025
"""Default least time from one read's start to the next when woken by notifications: a busy log then costs about a
poll every 25 ms, a quiet one is still read within milliseconds of a commit."""
LISTEN_RETRY_S = 1.0
"""Wait before opening the listening connection again after it failed; doubled at each failure in a row."""
LISTEN_RETRY_MAX_S = 30.0
LISTEN_CHECK_S = 30.0
"""The listening connection is checked with a query this often (one that died silently fails it; TCP keepalives
are the other guard). Notifications arriving meanwhile are kept by psycopg and handled after it."""
LISTEN_TIMEOUT_S = 10.0
"""Connecting (and LISTEN) or the check query taking longer than this is a failure."""
LISTEN_START_WAIT_S = 5.0
"""``start`` waits at most this long for the first LISTEN (before catching up) before going on polling."""


def log_session(entry_id: int, recorded_at: Any) -> str:
    """The session of an event log whose first entry is ``entry_id``, committed at ``recorded_at``: the same for
    every process reading that log; another after a reset (the first entry is another one, even where ids
    restart)."""
    moment = recorded_at.isoformat() if isinstance(recorded_at, datetime) else str(recorded_at)
    return hashlib.sha256(f"courtside-log|{int(entry_id)}|{moment}".encode()).hexdigest()[:12]


def entry_stamp(db: DbEngine, entry_id: int) -> Any:
    """``recorded_at`` of log entry ``entry_id`` (None when there is no such entry)."""
    with db.connect() as conn:
        return conn.execute(select(LiveEvent.recorded_at).where(LiveEvent.id == entry_id)).scalar()


def first_entry(db: DbEngine) -> tuple[int, Any] | None:
    """(id, recorded_at) of the log's first entry, None when the log is empty."""
    with db.connect() as conn:
        row = conn.execute(select(LiveEvent.id, LiveEvent.recorded_at).order_by(LiveEvent.id).limit(1)).first()
    return (int(row[0]), row[1]) if row is not None else None


@dataclass(frozen=True)
class Alert:
    """A subscription to value bets matching all its criteria, delivered to ``room`` (and to its webhook)."""

    alert_id: str
    match_ids: frozenset[str]
    players: frozenset[str]
    """Full names of players (as ``features.names.normalize_name`` writes them)."""
    min_edge: float
    created_at: datetime
    expires_at: datetime
    webhook_url: str | None = None

    @property
    def room(self) -> str:
        return f"alert:{self.alert_id}"

    def matches(self, bet: dict[str, Any], players: frozenset[str]) -> bool:
        """The value bet, of a match of ``players`` (normalised names), meets every criterion."""
        if self.match_ids and bet.get("match_id") not in self.match_ids:
            return False
        if float(bet.get("edge") or 0.0) < self.min_edge:
            return False
        return not self.players or not self.players.isdisjoint(players)


class AlertBook:
    """The alert subscriptions, stored in the database (``storage.alerts``: they survive restarts until they
    expire or are deleted) and kept in memory for the hot path (``matching``).

    A subscription with a webhook has a cursor, the newest log entry considered for it (a socket-only one
    needs none: nothing is sent to a room nobody could be in). The value bets after it that match are
    queued as deliveries; queued deliveries and cursors are written together (``flush``): a cursor never
    passes an alert that was not queued, and queueing the same (alert, entry) twice is a no-op, so
    re-reading the log after a restart neither loses nor repeats an alert."""

    def __init__(
        self,
        db: DbEngine,
        ttl: timedelta = timedelta(hours=24),
        max_alerts: int = 10_000,
        cursor_every_s: float = 2.0,
    ):
        self.db = db
        self.ttl = ttl
        self.max_alerts = max_alerts
        self.cursor_every_s = cursor_every_s
        """Seconds between writes of cursors that moved with no delivery to queue."""
        self.alerts: dict[str, Alert] = {}
        self.cursors: dict[str, int] = {}
        """alert id -> last_event_id as written to the database (-1: to write)."""
        self.queued: list[dict[str, Any]] = []
        """Deliveries not written yet."""
        self._next_cursor_write = 0.0
        self._adding: set[str] = set()
        """Subscriptions being stored by this process (not in the database yet)."""
        self._deleted: set[str] = set()
        """Subscriptions this process deleted (a refresh that read them before must not bring them back)."""

    def load(self) -> None:
        """Read the subscriptions that have not expired (at start)."""
        for row in alert_store.live_subscriptions(self.db):
            self.alerts[row["alert_id"]] = self._alert(row)
            self.cursors[row["alert_id"]] = row["last_event_id"]

    @staticmethod
    def _alert(row: dict[str, Any]) -> Alert:
        c = row["criteria"]
        return Alert(
            row["alert_id"],
            frozenset(c.get("match_ids") or ()),
            frozenset(normalize_name(p) for p in c.get("players") or ()),
            float(c.get("min_edge") or 0.0),
            row["created_at"],
            row["expires_at"],
            row["webhook_url"],
        )

    async def add(
        self,
        match_ids: list[str],
        players: list[str],
        min_edge: float,
        webhook_url: str | None,
        created_by: str,
        after_id: int,
    ) -> tuple[Alert, str | None]:
        """Subscribe to the value bets after log entry ``after_id``: (the alert, its webhook secret or None)."""
        self.expire()
        if len(self.alerts) >= self.max_alerts:
            raise OverflowError(f"{self.max_alerts} alert subscriptions already: try again later")
        now = datetime.now(UTC)
        row: dict[str, Any] = {
            "alert_id": secrets.token_hex(16),
            "criteria": {"match_ids": match_ids, "players": players, "min_edge": min_edge},
            "webhook_url": webhook_url,
            "last_event_id": after_id,
            "created_at": now,
            "expires_at": now + self.ttl,
        }
        secret = secrets.token_hex(32) if webhook_url else None
        alert = self._alert(row)
        # in memory first (no await in between): the value bets read from now on are matched against it
        self.alerts[alert.alert_id], self.cursors[alert.alert_id] = alert, after_id
        self._adding.add(alert.alert_id)
        try:
            await asyncio.to_thread(alert_store.add_subscription, self.db, **row, secret=secret, created_by=created_by)
        except BaseException:
            self.alerts.pop(alert.alert_id, None)
            self.cursors.pop(alert.alert_id, None)
            raise
        finally:
            self._adding.discard(alert.alert_id)
        return alert, secret

    async def delete(self, alert_id: str) -> bool:
        known = self.alerts.pop(alert_id, None) is not None
        self.cursors.pop(alert_id, None)
        self._deleted.add(alert_id)
        return await asyncio.to_thread(alert_store.delete_subscription, self.db, alert_id) or known

    async def refresh(self) -> list[Alert]:
        """Learn the subscriptions other API processes (replicas) made or deleted since: the new ones (matched from
        now on; their cursors as stored)."""
        settled = set(self.alerts) - self._adding  # before the read: one added meanwhile is not in it yet
        rows = await asyncio.to_thread(alert_store.live_subscriptions, self.db)
        stored = {r["alert_id"]: r for r in rows}
        for key in settled - stored.keys():
            if key not in self._adding:
                self.alerts.pop(key, None)
                self.cursors.pop(key, None)
        self._deleted &= stored.keys()
        new = []
        for key, row in stored.items():
            if key not in self.alerts and key not in self._deleted:
                alert = self.alerts[key] = self._alert(row)
                self.cursors[key] = row["last_event_id"]
                new.append(alert)
        return new

    def expire(self) -> None:
        now = datetime.now(UTC)
        for key in [k for k, a in self.alerts.items() if a.expires_at <= now]:
            del self.alerts[key]
            self.cursors.pop(key, None)

    @property
    def webhooks(self) -> set[str]:
        """Ids of the subscriptions with a webhook: only their cursors matter (and are written)."""
        return {k for k, a in self.alerts.items() if a.webhook_url}

    def exists(self, room: str) -> bool:
        return room.startswith("alert:") and room[6:] in self.alerts

    def matching(self, bet: dict[str, Any], match: MatchView | None) -> list[Alert]:
        """The subscriptions the value bet meets; queues it for the webhooks among them that have not seen it."""
        players = frozenset(normalize_name(n) for n in match.players) if match else frozenset()
        now = datetime.now(UTC)
        hits = [a for a in self.alerts.values() if a.expires_at > now and a.matches(bet, players)]
        event_id = int(bet["id"])
        for a in hits:
            if a.webhook_url and event_id > self.cursors.get(a.alert_id, 0):
                self.queued.append({"alert_id": a.alert_id, "event_id": event_id, "payload": bet})
        return hits

    def rooms_for(self, bet: dict[str, Any], match: MatchView | None) -> list[str]:
        return [a.room for a in self.matching(bet, match)]

    def reset(self) -> None:
        """The log was reset (``storage.live.reset_live`` deleted the deliveries and zeroed the cursors)."""
        self.queued = []
        self.cursors = dict.fromkeys(self.alerts, -1)

    async def flush(self, upto: int, force: bool = False) -> bool:
        """Write the queued deliveries and move every cursor to ``upto`` (one transaction): at once when
        deliveries are queued (or ``force``), else at most every ``cursor_every_s``. True when deliveries
        were written."""
        if not self.queued and not force and time.monotonic() < self._next_cursor_write:
            return False
        self.expire()
        webhooks = self.webhooks
        moved = {a: upto for a, at in self.cursors.items() if at != upto and a in webhooks}
        if not self.queued and not moved:
            self._next_cursor_write = time.monotonic() + self.cursor_every_s
            return False
        queued, self.queued = self.queued, []
        deliveries = [{**d, "payload": to_jsonable_python(d["payload"])} for d in queued]
        try:
            await asyncio.to_thread(alert_store.enqueue, self.db, deliveries, moved)
        except BaseException:
            self.queued = queued + self.queued
            raise
        for a, at in moved.items():
            if a in self.cursors:
                self.cursors[a] = at
        self._next_cursor_write = time.monotonic() + self.cursor_every_s
        return bool(deliveries)


class LiveService:
    """Log tailer + view + gateway + alerts of one API process."""

    def __init__(
        self,
        db: DbEngine,
        bankroll: float,
        gateway: GatewayConfig | None = None,
        poll_s: float = 0.1,
        webhooks: WebhookConfig | None = None,
        min_read_interval_s: float = MIN_READ_INTERVAL_S,
        fallback_s: float = REFRESH_S,
    ):
        self.db = db
        self.bankroll = bankroll
        self.poll_s = poll_s
        """Seconds between reads while nothing wakes this process: SQLite, or the Postgres listener down."""
        self.min_read_interval_s = min_read_interval_s
        """Least seconds from one read's start to the next when woken by notifications."""
        self.fallback_s = fallback_s
        """Seconds after which the log is read anyway while listening (a notification can be missed only by a
        listener that died silently; it is also read at least every ``REFRESH_S``)."""
        self.view = LiveView()
        self.alerts = AlertBook(db)
        self.deliverer = WebhookDeliverer(db, webhooks)
        self.gateway = Gateway(gateway or GatewayConfig(), self.room_exists, self.snapshot)
        self.started_at = datetime.now(UTC)
        self.tail_errors = 0
        self.last_tail_error: str | None = None
        self._first: tuple[int, Any] | None = None
        """(id, recorded_at) of the log's first entry as this process read it (None: nothing read yet)."""
        self._task: asyncio.Task | None = None
        self._metrics: tuple[int, float, dict[str, Any]] | None = None
        self._metrics_lock = asyncio.Lock()
        self.wake = asyncio.Event()
        """Set by the listener: read now (a notification, or the listener (re)started or failed)."""
        self.listening = False
        """The listener is LISTENing (Postgres): reads wait for ``wake``. False: poll every ``poll_s``."""
        self.notifications = 0
        self.listen_failures = 0
        self.last_listen_error: str | None = None
        self._listener: asyncio.Task | None = None
        self._listen_tried = asyncio.Event()
        self._last_read = 0.0

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Catch up with the log silently (nobody is connected yet) -- except that the value bets after an alert
        subscription's cursor that match it are queued for its webhook (those that arrived while the API was
        down) -- then follow it. Each room's newest update in what was caught up with is its floor in the gateway
        (a subscriber resuming from before it is told of a gap here).

        On Postgres the listener starts first: LISTEN is in place before the catch-up's last read, so an entry
        committed after that read wakes the follower."""
        if self.db.dialect.name == "postgresql":
            self._listener = asyncio.get_running_loop().create_task(self._listen())
            with contextlib.suppress(TimeoutError):  # not listening yet: polled until it is
                async with asyncio.timeout(LISTEN_START_WAIT_S):
                    await self._listen_tried.wait()
        await asyncio.to_thread(self.alerts.load)
        floors: dict[str, int] = {}
        while True:
            rows = await asyncio.to_thread(self._read)
            if not rows:
                break
            self._note_first(rows[0])
            for row in rows:
                for update in self.view.apply(row):
                    rooms = update.rooms
                    if update.type == "value_bet" and self.alerts.alerts:
                        hits = self.alerts.matching(update.data, self.view.match(update.match_id or ""))
                        rooms = (*rooms, *(a.room for a in hits))
                    for room in rooms:
                        floors[room] = self.view.last_id
            await self.alerts.flush(self.view.last_id, force=True)
        await self.alerts.flush(self.view.last_id, force=True)
        self.gateway.follow(self.session, floors)
        log.info(
            "event log read up to entry %d (session %s): %d matches; %d alert subscriptions",
            self.view.last_id,
            self.session,
            len(self.view.matches),
            len(self.alerts.alerts),
        )
        self.gateway.start()
        self.deliverer.start()
        self._task = asyncio.get_running_loop().create_task(self._follow())

    @property
    def session(self) -> str:
        """The log's session (``log_session`` of its first entry as read here)."""
        return log_session(*self._first) if self._first is not None else EMPTY_LOG_SESSION

    def _note_first(self, row: dict[str, Any]) -> None:
        if self._first is None:  # the first entry of the log (the view starts from its beginning)
            self._first = (int(row["id"]), row["recorded_at"])
            self.gateway.session = self.session

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            try:  # what was read is recorded (a restart would queue it again anyway)
                await self.alerts.flush(self.view.last_id, force=True)
            except Exception as exc:  # noqa: BLE001 - stopping goes on
                log.warning("could not record the alert cursors at stop: %s", exc)
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        await self.deliverer.stop()
        await self.gateway.stop()

    def _read(self) -> list[dict[str, Any]]:
        """The next entries after the view's (ids are in commit order: nothing can appear below them later)."""
        return store.next_event_rows(self.db, self.view.last_id, CHUNK)

    async def _follow(self) -> None:
        next_check = time.monotonic() + REFRESH_S
        while True:
            try:
                self._last_read = time.monotonic()
                rows = await asyncio.to_thread(self._read)
                if rows:
                    self._note_first(rows[0])
                for row in rows:
                    for update in self.view.apply(row):
                        self.publish(update)
                if await self.alerts.flush(self.view.last_id):
                    self.deliverer.notify()
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + REFRESH_S
                    await self._check_log()
                    self._learn(await self.alerts.refresh())
                if len(rows) < CHUNK:
                    await self._idle(next_check)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not end the live API
                self.tail_errors += 1
                self.last_tail_error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("reading the event log failed (%s); retrying", self.last_tail_error)
                await asyncio.sleep(min(5.0, self.poll_s * 10))

    async def _idle(self, check_at: float) -> None:
        """Wait until the next read: a wake-up, or ``fallback_s`` while listening (``poll_s`` while not), and at the
        latest ``check_at`` (the next look at the log's identity and the alerts); reads at least
        ``min_read_interval_s`` apart. ``wake`` is cleared just before the read: a wake-up during it means one more
        read (the notified entry may have committed after the read's snapshot)."""
        timeout = self.fallback_s if self.listening else self.poll_s
        timeout = max(0.0, min(timeout, check_at - time.monotonic()))
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation (stop()) that comes as the
        # event is set, and the loop would go on for ever
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.wake.wait()
        spacing = self._last_read + self.min_read_interval_s - time.monotonic()
        if spacing > 0:  # the wake-ups of the next few ms are taken together, by one read
            await asyncio.sleep(spacing)
        self.wake.clear()

    @property
    def listener_up(self) -> bool | None:
        """Whether this process is woken by the log's notifications: None on SQLite (it always polls)."""
        return self.listening if self.db.dialect.name == "postgresql" else None

    def _listen_conninfo(self) -> str:
        """The database URL for psycopg (libpq): ``postgresql+psycopg://`` -> ``postgresql://``."""
        return self.db.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def _listen(self) -> None:
        """LISTEN on ``LOG_CHANNEL`` on a connection of its own (autocommit: it never holds the notification queue
        back) and set ``wake`` at each notification. On any failure: poll (``listening`` False), wait (from
        ``LISTEN_RETRY_S``, doubled while it keeps failing), connect and LISTEN again, then read by id at once.
        Quiet: at most one warning every ``LISTEN_RETRY_MAX_S``."""
        import psycopg

        retry_s = LISTEN_RETRY_S
        warned_at: float | None = None
        while True:
            conn: psycopg.AsyncConnection | None = None
            up_at: float | None = None
            try:
                async with asyncio.timeout(LISTEN_TIMEOUT_S):
                    conn = await psycopg.AsyncConnection.connect(
                        self._listen_conninfo(),
                        autocommit=True,
                        application_name="courtside-api-listen",
                        connect_timeout=int(LISTEN_TIMEOUT_S),
                        keepalives=1,
                        keepalives_idle=30,
                        keepalives_interval=10,
                        keepalives_count=3,
                    )
                    await conn.execute(f"LISTEN {LOG_CHANNEL}")
                up_at = time.monotonic()
                if warned_at is not None:
                    log.info("listening to the event log's notifications again")
                    warned_at = None
                self.listening = True
                self._listen_tried.set()
                self.wake.set()  # read by id now: what committed while nobody listened was announced to nobody
                while True:
                    async for note in conn.notifies(timeout=LISTEN_CHECK_S):
                        self._notified(note.payload)
                    async with asyncio.timeout(LISTEN_TIMEOUT_S):  # is the connection still alive?
                        await conn.execute("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the listener must never end: the log is polled meanwhile
                self.listen_failures += 1
                self.last_listen_error = f"{type(exc).__name__}: {exc}"[:300]
                now = time.monotonic()
                if up_at is not None and now - up_at >= LISTEN_RETRY_MAX_S:
                    retry_s = LISTEN_RETRY_S  # it had been listening a while: a new failure, not the same one
                if warned_at is None or now - warned_at >= LISTEN_RETRY_MAX_S:
                    warned_at = now
                    log.warning(
                        "not listening to the event log's notifications (%s): polling it every %.2f s; again in %.0f s",
                        self.last_listen_error,
                        self.poll_s,
                        retry_s,
                    )
                else:
                    log.debug("listening to the event log failed again: %s", self.last_listen_error)
            finally:
                self.listening = False
                self.wake.set()  # the follower goes back to polling at once
                self._listen_tried.set()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(retry_s)
            retry_s = min(LISTEN_RETRY_MAX_S, retry_s * 2)

    def _notified(self, payload: str) -> None:
        """A notification: wake the follower, unless it names an entry read already (a commit's notification often
        arrives after the read that found its rows). A payload that is not an id wakes it (never an error)."""
        self.notifications += 1
        try:
            named = int(payload)
        except (TypeError, ValueError):
            named = None
        if named is None or named > self.view.last_id:
            self.wake.set()

    async def _check_log(self) -> None:
        """A reset of the log: its newest entry is older than the view's, or its first entry is gone (ids go on
        from the old sequence on Postgres, and restart on SQLite: the first entry's commit time tells)."""
        newest = await asyncio.to_thread(store.last_event_id, self.db)
        if newest < self.view.last_id:
            return await self._reset(newest)
        if self._first is not None:
            stamp = await asyncio.to_thread(entry_stamp, self.db, self._first[0])
            if stamp is None or log_session(self._first[0], stamp) != self.session:
                await self._reset(newest)

    async def _reset(self, newest: int) -> None:
        log.warning("the event log was reset (newest entry %d, %d seen): rebuilding", newest, self.view.last_id)
        first = await asyncio.to_thread(first_entry, self.db)
        self.view = LiveView()
        self._metrics = None
        self._first = None
        self.alerts.reset()
        self.gateway.reset(
            "the event log was reset (a new paper-trading session): fetch the state again",
            log_session(*first) if first is not None else EMPTY_LOG_SESSION,
        )

    def _learn(self, alerts: list[Alert]) -> None:
        """Subscriptions another replica made: routed from now on (a resume from before now is a gap here), and the
        value bets this process read after their stored cursors queued for their webhooks (so that no cursor this
        process writes passes a value bet nobody queued)."""
        for alert in alerts:
            self.gateway.open_room(alert.room, self.view.last_id)
            if not alert.webhook_url:
                continue
            for m in self.view.matches.values():
                for bet in m.value_bets:
                    if int(bet["id"]) > self.alerts.cursors.get(alert.alert_id, 0):
                        players = frozenset(normalize_name(n) for n in m.players)
                        if alert.matches(bet, players):
                            self.alerts.queued.append(
                                {"alert_id": alert.alert_id, "event_id": bet["id"], "payload": bet}
                            )

    def publish(self, update: Update) -> None:
        extra: list[str] = []
        if update.type == "value_bet" and self.alerts.alerts:  # and queued for the webhooks among them
            extra = self.alerts.rooms_for(update.data, self.view.match(update.match_id or ""))
        self.gateway.publish(update, extra, seq=self.view.last_id)

    # --- rooms ----------------------------------------------------------------------------------
    def room_exists(self, room: str) -> bool:
        return room in ("*", "ledger") or room in self.view.matches or self.alerts.exists(room)

    def snapshot(self, room: str) -> list[dict[str, Any]]:
        """Current state as messages, for a subscriber that starts (or cannot resume)."""
        now = time.time()

        def message(type_: str, m: MatchView, data: dict[str, Any]) -> dict[str, Any]:
            return {"type": type_, "match_id": m.match_id, "ts": m.updated_at, "sent": now, "data": data}

        def of_match(m: MatchView) -> list[dict[str, Any]]:
            out = [
                message("game_event", m, {"event": "snapshot", **m.summary()}),
                message("odds_update", m, {"market_id": None, **m.odds()}),
            ]
            if m.predictions:
                out.append(message("prediction_update", m, {"phase": "inplay", **m.predictions[-1]}))
            return out

        if room == "*":
            recent = sorted(self.view.matches.values(), key=lambda m: m.updated_at or self.started_at, reverse=True)[
                :SNAPSHOT_MATCHES
            ]
            return [msg for m in recent for msg in of_match(m)]
        if room == "ledger":
            return [
                {
                    "type": "bankroll_update",
                    "match_id": None,
                    "ts": self.view.last_event_time,
                    "sent": now,
                    "data": {"snapshot": True, **self.bankroll_now()},
                }
            ]
        m = self.view.match(room)
        return of_match(m) if m is not None else []

    def bankroll_now(self) -> dict[str, Any]:
        curve = self.view.bankroll_curve
        net = round(sum(float(p["net_profit"] or 0.0) for p in curve), 2)
        return {
            "start": self.bankroll,
            "bankroll": round(self.bankroll + net, 2),
            "net_profit": net,
            "settled_markets": len(curve),
        }

    # --- trading figures --------------------------------------------------------------------------
    async def trading_metrics(self, min_interval_s: float = 2.0) -> dict[str, Any]:
        """Bets, stake, P&L, ROI, hit rate, drawdown of the session (recomputed when the log moved)."""
        async with self._metrics_lock:
            cached = self._metrics
            if cached is not None and (cached[0] == self.view.last_id or time.monotonic() - cached[1] < min_interval_s):
                return cached[2]
            figures = await asyncio.to_thread(self._trading_metrics)
            self._metrics = (self.view.last_id, time.monotonic(), figures)
            return figures

    def _trading_metrics(self) -> dict[str, Any]:
        pnl = control.live_pnl(self.db, TradingPolicy(bankroll=self.bankroll)).summary
        results = [b["result"] for s in store.settlements(self.db) for b in s.get("bets", [])]
        won, lost = results.count("WON"), results.count("LOST")
        total, open_bets = (
            store.order_page(self.db, state="all", limit=1)[0],
            store.order_page(self.db, state="open", limit=1)[0],
        )
        return {
            **pnl,
            "orders": total,
            "open_bets": open_bets,
            "bets_won": won,
            "bets_lost": lost,
            "bets_void": results.count("VOID"),
            "hit_rate": round(won / (won + lost), 4) if won + lost else None,
            "rejected_by_reason": dict(self.view.rejections),
        }
