"""The API process's live state: it tails the event log into the ``LiveView``, publishes the updates
to the WebSocket ``Gateway`` and the value alerts people subscribed to, and computes the trading
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

from sqlalchemy.engine import Engine as DbEngine

from betting.policy import TradingPolicy
from serving import control
from serving.api.gateway import Gateway, GatewayConfig
from serving.api.views import LiveView, MatchView, Update
from storage import live as store

log = logging.getLogger(__name__)

CHUNK = 5_000
"""Log entries read per query."""
SNAPSHOT_MATCHES = 200
"""Matches in the snapshot of the ``*`` room (most recently updated first)."""


@dataclass(frozen=True)
class Alert:
    """A subscription to value bets matching all its criteria, delivered to ``room``."""

    alert_id: str
    match_ids: frozenset[str]
    players: tuple[str, ...]
    """Case-folded name fragments."""
    min_edge: float
    created_at: datetime
    expires_at: datetime

    @property
    def room(self) -> str:
        return f"alert:{self.alert_id}"

    def matches(self, bet: dict[str, Any], match: MatchView | None) -> bool:
        """The value bet meets every criterion."""
        if self.match_ids and bet.get("match_id") not in self.match_ids:
            return False
        if float(bet.get("edge") or 0.0) < self.min_edge:
            return False
        if self.players:
            names = [n.casefold() for n in (match.players if match else [])]
            return any(p in n for p in self.players for n in names)
        return True


class AlertBook:
    """Alert subscriptions in memory (they expire; a restart forgets them: subscribe again)."""

    def __init__(self, ttl: timedelta = timedelta(hours=24), max_alerts: int = 10_000):
        self.ttl = ttl
        self.max_alerts = max_alerts
        self.alerts: dict[str, Alert] = {}

    def add(self, match_ids: list[str], players: list[str], min_edge: float) -> Alert:
        self.expire()
        if len(self.alerts) >= self.max_alerts:
            raise OverflowError(f"{self.max_alerts} alert subscriptions already: try again later")
        now = datetime.now(UTC)
        alert = Alert(
            secrets.token_hex(8),
            frozenset(match_ids),
            tuple(p.casefold() for p in players),
            min_edge,
            now,
            now + self.ttl,
        )
        self.alerts[alert.alert_id] = alert
        return alert

    def expire(self) -> None:
        now = datetime.now(UTC)
        for key in [k for k, a in self.alerts.items() if a.expires_at <= now]:
            del self.alerts[key]

    def exists(self, room: str) -> bool:
        return room.startswith("alert:") and room[6:] in self.alerts

    def rooms_for(self, bet: dict[str, Any], match: MatchView | None) -> list[str]:
        return [a.room for a in self.alerts.values() if a.matches(bet, match)]


class LiveService:
    """Log tailer + view + gateway + alerts of one API process."""

    def __init__(
        self,
        db: DbEngine,
        bankroll: float,
        gateway: GatewayConfig | None = None,
        poll_s: float = 0.1,
        gap_grace_s: float = 2.0,
    ):
        self.db = db
        self.bankroll = bankroll
        self.poll_s = poll_s
        self.gap_grace_s = gap_grace_s
        self.view = LiveView()
        self.alerts = AlertBook()
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
        """Catch up with the log silently (nobody is subscribed yet), then follow it."""
        while True:
            rows = await asyncio.to_thread(self._read)
            if not rows:
                break
            for row in rows:
                self.view.apply(row)
        log.info("event log read up to entry %d: %d matches", self.view.last_id, len(self.view.matches))
        self.gateway.start()
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.gateway.stop()

    def _read(self) -> list[dict[str, Any]]:
        """The next entries after the view's, stopping at a gap younger than the grace period."""
        after = self.view.last_id
        rows = store.event_rows(self.db, after, after + CHUNK)
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
        self.gateway.reset("the event log was reset (a new paper-trading session): fetch the state again")

    def publish(self, update: Update) -> None:
        extra = ()
        if update.type == "value_bet" and self.alerts.alerts:
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
