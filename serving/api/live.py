"""The API process's live state: it tails the event log into the ``LiveView``, publishes the updates
to the WebSocket ``Gateway`` and the value alerts people subscribed to (stored subscriptions, whose
webhook deliveries it queues for ``serving.api.alerts.WebhookDeliverer``), and computes the trading
figures of ``/metrics`` from the ledger.

The log is read with ``storage.live.event_rows`` every ``poll_s``. Ids are assigned when a row is
inserted, so on Postgres an entry with a smaller id can commit after a larger one: a gap in the ids
is waited for (``gap_grace_s``) before it is passed over as an id lost to a rolled-back transaction.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy.engine import Engine as DbEngine

from betting.policy import TradingPolicy
from features.names import normalize_name
from serving import control
from serving.api.alerts import WebhookConfig, WebhookDeliverer
from serving.api.gateway import Gateway, GatewayConfig
from serving.api.views import LiveView, MatchView, Update
from storage import alerts as alert_store
from storage import live as store

log = logging.getLogger(__name__)

CHUNK = 5_000
"""Log entries read per query."""
SNAPSHOT_MATCHES = 200
"""Matches in the snapshot of the ``*`` room (most recently updated first)."""


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
        try:
            await asyncio.to_thread(alert_store.add_subscription, self.db, **row, secret=secret, created_by=created_by)
        except BaseException:
            self.alerts.pop(alert.alert_id, None)
            self.cursors.pop(alert.alert_id, None)
            raise
        return alert, secret

    async def delete(self, alert_id: str) -> bool:
        known = self.alerts.pop(alert_id, None) is not None
        self.cursors.pop(alert_id, None)
        return await asyncio.to_thread(alert_store.delete_subscription, self.db, alert_id) or known

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
        gap_grace_s: float = 2.0,
        webhooks: WebhookConfig | None = None,
    ):
        self.db = db
        self.bankroll = bankroll
        self.poll_s = poll_s
        self.gap_grace_s = gap_grace_s
        self.view = LiveView()
        self.alerts = AlertBook(db)
        self.deliverer = WebhookDeliverer(db, webhooks)
        self.gateway = Gateway(gateway or GatewayConfig(), self.room_exists, self.snapshot)
        self.started_at = datetime.now(UTC)
        self.tail_errors = 0
        self.last_tail_error: str | None = None
        self._gap_since: float | None = None
        self._task: asyncio.Task | None = None
        self._metrics: tuple[int, float, dict[str, Any]] | None = None
        self._metrics_lock = asyncio.Lock()

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Catch up with the log silently (nobody is connected yet) -- except that the value bets after an alert
        subscription's cursor that match it are queued for its webhook (those that arrived while the API was
        down) -- then follow it."""
        await asyncio.to_thread(self.alerts.load)
        while True:
            rows = await asyncio.to_thread(self._read)
            if not rows:
                break
            for row in rows:
                for update in self.view.apply(row):
                    if update.type == "value_bet" and self.alerts.alerts:
                        self.alerts.matching(update.data, self.view.match(update.match_id or ""))
            await self.alerts.flush(self.view.last_id, force=True)
        await self.alerts.flush(self.view.last_id, force=True)
        log.info(
            "event log read up to entry %d: %d matches; %d alert subscriptions",
            self.view.last_id,
            len(self.view.matches),
            len(self.alerts.alerts),
        )
        self.gateway.start()
        self.deliverer.start()
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            try:  # what was read is recorded (a restart would queue it again anyway)
                await self.alerts.flush(self.view.last_id, force=True)
            except Exception as exc:  # noqa: BLE001 - stopping goes on
                log.warning("could not record the alert cursors at stop: %s", exc)
        await self.deliverer.stop()
        await self.gateway.stop()

    def _read(self) -> list[dict[str, Any]]:
        """The next entries after the view's, stopping at a gap younger than the grace period."""
        after = self.view.last_id
        rows = store.next_event_rows(self.db, after, CHUNK)
        expected, out = after + 1, []
        for row in rows:
            if row["id"] != expected:
                now = time.monotonic()
                if self._gap_since is None:
                    self._gap_since = now
                if now - self._gap_since < self.gap_grace_s:
                    break
            self._gap_since = None
            out.append(row)
            expected = row["id"] + 1
        return out

    async def _follow(self) -> None:
        next_reset_check = 0.0
        while True:
            try:
                rows = await asyncio.to_thread(self._read)
                for row in rows:
                    for update in self.view.apply(row):
                        self.publish(update)
                if await self.alerts.flush(self.view.last_id):
                    self.deliverer.notify()
                if time.monotonic() >= next_reset_check:
                    next_reset_check = time.monotonic() + 2.0
                    newest = await asyncio.to_thread(store.last_event_id, self.db)
                    if newest < self.view.last_id:
                        self._reset(newest)
                if len(rows) < CHUNK:
                    await asyncio.sleep(self.poll_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not end the live API
                self.tail_errors += 1
                self.last_tail_error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("reading the event log failed (%s); retrying", self.last_tail_error)
                await asyncio.sleep(min(5.0, self.poll_s * 10))

    def _reset(self, newest: int) -> None:
        log.warning("the event log was reset (newest entry %d < %d seen): rebuilding", newest, self.view.last_id)
        self.view = LiveView()
        self._metrics = None
        self.alerts.reset()
        self.gateway.reset("the event log was reset (a new paper-trading session): fetch the state again")

    def publish(self, update: Update) -> None:
        extra: list[str] = []
        if update.type == "value_bet" and self.alerts.alerts:  # and queued for the webhooks among them
            extra = self.alerts.rooms_for(update.data, self.view.match(update.match_id or ""))
        self.gateway.publish(update, extra)

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
