"""The streaming engine: one asyncio process that follows the live feed point by point and trades.

    feed message (seq n) -> validation (bad -> quarantine) -> match state (exact scoring, impossible
    score -> quarantine) -> triggers -> /predict_live (BentoML, batched) -> value after commission
    -> fractional Kelly -> risk limits -> paper exchange -> ledger

Every step is appended to the durable event log. All effects of a batch of messages — log entries,
order states, feed cursors — are committed in one transaction (``storage.live.commit_step``).

Restart-safe: on start the engine reads its cursors, restores orders and settlements, replays
the feed up to the cursors *silently* (rebuilding match state without trading), then goes on.
Order references are derived from (match, feed, sequence number, selection, side), so replaying a
message that was acted on but not committed reproduces the same reference, and the exchange's
duplicate protection returns the existing order instead of placing a second bet.

Operator controls (pause, kill switch, risk limits) arrive through the database: the live API appends
them to ``operator_controls`` and the engine reads the newest one at start and every housekeeping
tick, so a kill switch pulled while the engine was down is in force from its first message. The
engine answers with a heartbeat in ``engine_status`` (controls version applied, figures).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine as DbEngine

from betting.clock import ManualClock
from betting.decision import decide
from betting.market import MarketBook, MarketStatus, RunnerBook
from betting.paper import PaperExchange, PaperExchangeConfig
from betting.records import EventKind, Order, OrderRequest, Settlement
from betting.risk import RiskBook, RiskLimits, check
from betting.staking import StakingConfig
from betting.value import ValueConfig, fair_probability
from features.matches import parse_outcome
from features.scoring import ScoringError
from feeds.live.client import FeedClient
from feeds.live.protocol import Envelope, MarketUpdate, MatchEvent
from serving.engine.match import FIRST, SECOND, ImpossibleScore, LiveMatch, reported_score
from serving.engine.prediction import PredictionUnavailable
from serving.engine.triggers import Trigger, TriggerConfig, fired
from storage import live as store

log = logging.getLogger(__name__)

Predict = Callable[[list[dict]], Awaitable[list[dict]]]


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine's behaviour depends on."""

    feed_url: str = "ws://127.0.0.1:8765"
    feeds: tuple[str, ...] = ("live",)
    bankroll: float = 1000.0
    max_batch: int = 256
    """Most messages processed (and committed) together when they queue up."""
    triggers: TriggerConfig = field(default_factory=TriggerConfig)
    value: ValueConfig = field(default_factory=ValueConfig)
    staking: StakingConfig = field(default_factory=StakingConfig)
    risk: RiskLimits = field(default_factory=RiskLimits)
    exchange: PaperExchangeConfig = field(default_factory=PaperExchangeConfig)
    session: str = "paper"
    """Names this trading session in the quarantine table."""
    housekeeping_s: float = 1.0
    """How often order requests from the control plane, new settlements and operator controls are picked up."""
    status_s: float = 5.0
    """How often the engine writes its heartbeat (``engine_status``)."""


@dataclass
class EngineStats:
    messages: int = 0
    recovered: int = 0
    quarantined: int = 0
    predictions: int = 0
    prediction_failures: int = 0
    opportunities: int = 0
    orders: int = 0
    rejected: int = 0
    decision_ms: list[float] = field(default_factory=list)
    """Feed message received -> trading decision made (order submitted, or no bet), per triggered message."""

    def decision_summary(self, last: int = 5000) -> dict[str, float | int] | None:
        """Median, p99 and max of the last ``last`` decision latencies (ms); None before the first."""
        lat = sorted(self.decision_ms[-last:])
        if not lat:
            return None
        return {"n": len(lat), "p50_ms": round(lat[len(lat) // 2], 3),
                "p99_ms": round(lat[int(0.99 * (len(lat) - 1))], 3), "max_ms": round(lat[-1], 3)}


def feed_book(update: MarketUpdate, at: datetime) -> MarketBook:
    """The order book of a feed's market update (top of book per runner)."""
    runners = tuple(RunnerBook.top_of_book(r.selection, r.back_price, r.back_size, r.lay_price, r.lay_size,
                                           r.traded_volume) for r in update.runners)
    return MarketBook(market_id=update.market_id, publish_time=at, status=MarketStatus(update.status),
                      in_play=update.in_play, runners=runners)


def mid_probability(book: MarketBook) -> float | None:
    """Margin-free P(first player) from the best back prices of both runners."""
    a, b = book.runner(FIRST), book.runner(SECOND)
    if not a or not b or a.best_back is None or b.best_back is None:
        return None
    return fair_probability(a.best_back, b.best_back)


def prior_probability(prematch: MarketBook | None, opening: MarketBook | None) -> tuple[float, str]:
    """The pre-match probability a live match is calibrated to, and where it came from: the pre-match
    closing book, else the opening in-play market, else 0.5 (both margin-free)."""
    if prematch is not None and (p := mid_probability(prematch)) is not None:
        return p, "pre-match closing odds, margin removed"
    if opening is not None and (p := mid_probability(opening)) is not None:
        return p, "opening in-play market, margin removed"
    return 0.5, "no price: 0.5"


class TradingEngine:
    """The data plane. Feed it envelopes with ``process``; ``run`` follows the feed server."""

    def __init__(self, config: EngineConfig, db: DbEngine, predict: Predict):
        self.cfg = config
        self.db = db
        self.predict = predict
        self.stats = EngineStats()
        self.clock = ManualClock(datetime(1970, 1, 1, tzinfo=UTC))
        restored = [Order.from_dict(o) for o in store.orders(db)]
        self.exchange = PaperExchange(self.clock, config.exchange, balance=config.bankroll, orders=restored)
        self.risk = RiskBook(config.bankroll)
        for order in restored:
            self.risk.record_order(order)
        self.settled: set[str] = set()
        self._apply_settlements()
        self.cursors = store.cursors(db)
        self.recover_upto = {k: seq for k, (seq, _) in self.cursors.items()}
        self.epochs = {feed: epoch for (feed, _), (_, epoch) in self.cursors.items()}
        self.matches: dict[str, LiveMatch] = {}
        self.saved_predictions = store.latest_payloads(db, str(EventKind.PREDICTION))
        """The last committed prediction of each match: restored when recovery reaches its point."""
        self.market_of: dict[str, str] = {}
        """market id -> event key."""
        self.prematch_books: dict[str, MarketBook] = {}
        self.inplay_books: dict[str, MarketBook] = {}
        """Latest market book of each match, by event key."""
        self._recovered_books: dict[str, MarketBook] = {}
        self.opening_books: dict[str, MarketBook] = {}
        """First open in-play book of each match (a prior when there are no pre-match odds)."""
        self.order_match: dict[str, tuple[str, str]] = {
            o.customer_order_ref: (self._match_of_market(o.market_id), "restored") for o in restored}
        self._step = store.Step()
        self._decisions: list[float] = []
        """Receive times of market messages that led to a trading decision in the current batch."""
        self._pending: asyncio.Queue[store.Step] = asyncio.Queue()
        self._writer: asyncio.Task | None = None
        self.base_risk = config.risk
        """The configured limits; the operator's overrides apply on top of them."""
        self.paused = False
        self.controls_version = 0
        self.controls_error: str | None = None
        self.started_at = datetime.now(UTC)
        self._next_status = 0.0
        self.apply_controls()

    # --- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _match_of_market(market_id: str) -> str:
        return market_id.split("-", 1)[1] if "-" in market_id else market_id

    def _now_for(self, env: Envelope) -> datetime:
        epoch = self.epochs.get(env.feed)
        if epoch is None:
            epoch = self.epochs[env.feed] = datetime.now(UTC) - timedelta(seconds=env.event_time)
        at = epoch + timedelta(seconds=env.event_time)
        if at > self.clock.now():
            self.clock.set(at)
        return self.clock.now()

    def _log(self, kind: EventKind | str, payload: dict, match_id: str | None = None, env: Envelope | None = None):
        self._step.events.append(store.EventEntry(str(kind), self.clock.now(), payload,
                                                  env.feed if env else None, env.seq if env else None, match_id))

    def _record_updates(self, updates) -> None:
        for u in updates:
            order = u.order
            self.risk.record_order(order)
            match_id, source = self.order_match.get(order.customer_order_ref,
                                                    (self._match_of_market(order.market_id), "inplay"))
            self._step.orders[order.customer_order_ref] = store.OrderState(
                order.customer_order_ref, match_id, source, order.to_dict())
            payload = {"order": order.to_dict()}
            if u.fill is not None:
                payload["fill"] = u.fill.to_dict()
            self._log(u.kind, payload, match_id)

    def quarantine(self, raw: str, reason: str, seq: int | None, feed: str, channel: str) -> None:
        """A message that failed validation (or an impossible score): keep it with the reason."""
        self.stats.quarantined += 1
        self._step.quarantined.append({"source": f"live:{feed}", "location": f"{feed}/{channel}", "line": seq,
                                       "record": raw[:20_000], "reason": reason, "batch_id": self.cfg.session})
        self._step.events.append(store.EventEntry(str(EventKind.QUARANTINED), self.clock.now(),
                                                  {"reason": reason, "channel": channel}, feed, seq, None))

    # --- message handling -----------------------------------------------------------------------
    def _on_market(self, env: Envelope, update: MarketUpdate, recovering: bool, received: float) -> None:
        at = self.clock.now()
        book = feed_book(update, at)
        self.market_of[update.market_id] = update.event_key
        (self.inplay_books if update.in_play else self.prematch_books)[update.event_key] = book
        if recovering:
            self._recovered_books[update.market_id] = book
        if update.in_play and update.status == "OPEN":
            self.opening_books.setdefault(update.event_key, book)
        if recovering:
            return
        self.risk.record_market_book(book)
        self._record_updates(self.exchange.on_market_book(book))
        kind = EventKind.MARKET_SUSPENDED if update.status == "SUSPENDED" else EventKind.MARKET_UPDATE
        prices = {r.selection: [r.back_price, r.lay_price] for r in update.runners}
        sizes = {r.selection: [r.back_size, r.lay_size] for r in update.runners}
        self._log(kind, {"market_id": update.market_id, "status": update.status, "in_play": update.in_play,
                         "simulated": update.simulated, "source": update.source, "prices": prices,
                         "sizes": sizes, "point_number": update.point_number}, update.event_key, env)
        m = self.matches.get(update.event_key)
        if m is not None and update.in_play and update.status == "OPEN" and self._trade(m, env):
            self._decisions.append(received)

    def _on_match(self, env: Envelope, event: MatchEvent, recovering: bool) -> list[Trigger]:
        key = event.event_key
        if event.kind == "match_start":
            m = LiveMatch.start(event, env.feed, self.cfg.triggers)
            self.matches[key] = m
            if recovering:
                self._restore_prediction(m)
            if not recovering:
                self._log(EventKind.FEED_MESSAGE, {"kind": "match_start", "players": list(m.players),
                                                   "player_keys": list(m.player_keys), "tournament": m.tournament,
                                                   "season": m.season, "best_of": event.best_of,
                                                   "surface": m.surface}, key, env)
            return fired(None, m.score, 0, None, None, self.cfg.triggers)
        m = self.matches.get(key)
        if m is None:
            if not recovering:
                self.quarantine(env.model_dump_json(), f"{event.kind} for unknown match {key} (no match_start)",
                                env.seq, env.feed, env.channel)
            return []
        if event.kind == "match_end":
            self._finish(m, event, env, recovering)
            return []
        momentum_before = m.momentum_now(self.cfg.triggers)
        try:
            prev, _ = m.apply_point(event, self.cfg.triggers)
        except ImpossibleScore as exc:
            prev = self._follow_gap(m, event)
            if prev is None:
                if not recovering:
                    self.quarantine(env.model_dump_json(), f"impossible score: {exc}", env.seq, env.feed,
                                    env.channel)
                return []
        if recovering:
            self._restore_prediction(m)
            return []
        self._log(EventKind.FEED_MESSAGE, {"kind": "point", "score": m.score.describe(),
                                           "sets": event.event_final_result, "game": event.event_game_result},
                  key, env)
        return fired(prev, m.score, m.points_since_prediction, momentum_before, m.momentum_now(self.cfg.triggers),
                     self.cfg.triggers)

    @staticmethod
    def _follow_gap(m: LiveMatch, event: MatchEvent):
        """After an impossible score the state stays put and the reported score is remembered; when
        the next message follows from that reported score (the feed skipped points, it did not
        lie), the state jumps to it and goes on. Returns the previous score, or None."""
        if m.pending is not None:
            saved, m.score = m.score, m.pending
            try:
                prev, _ = m.apply_point(event, TriggerConfig())
                m.pending = None
                return prev
            except ImpossibleScore:
                m.score = saved
        try:
            m.pending = reported_score(event, m.fmt)
        except (ScoringError, KeyError, ValueError):
            m.pending = None
        return None

    def _resume_exchange(self) -> None:
        """End of recovery: show the exchange the market as it was at the cursor, so orders restored
        in their bet delay meet the same book as before the restart (queue positions of resting
        orders are not persisted: they restart at the back of the visible queue, conservatively)."""
        for book in self._recovered_books.values():
            self.risk.record_market_book(book)
            self._record_updates(self.exchange.on_market_book(book))
        self._recovered_books.clear()

    def _restore_prediction(self, m: LiveMatch) -> None:
        saved = self.saved_predictions.get(m.event_key)
        if saved is not None and saved.get("points_played") == m.points_played:
            m.last_probability = float(saved["probability"])
            m.predicted_points = m.points_played
            m.points_since_prediction = 0

    def _finish(self, m: LiveMatch, event: MatchEvent, env: Envelope, recovering: bool) -> None:
        m.finished = True
        winner = event.event_winner
        sets = " ".join(f"{s.score_first}-{s.score_second}" for s in event.scores)
        score_text = sets + (" RET" if event.event_status == "Retired" else "")
        outcome, sets_completed = parse_outcome(score_text)
        if recovering:
            return
        for order in self.exchange.orders():
            if self.market_of.get(order.market_id) == m.event_key and order.is_live:
                self.exchange.cancel(order.customer_order_ref)
        self._record_updates(self.exchange.poll())
        markets = sorted(mid for mid, k in self.market_of.items() if k == m.event_key)
        self._log(EventKind.MATCH_FINISHED, {"event_key": m.event_key, "winner": winner, "outcome": outcome,
                                             "sets_completed": sets_completed, "score": score_text,
                                             "markets": markets, "players": list(m.players),
                                             "player_keys": list(m.player_keys)}, m.event_key, env)

    # --- predictions and decisions ----------------------------------------------------------------
    def _state(self, m: LiveMatch) -> dict:
        if m.prior is None:
            m.prior, m.prior_source = prior_probability(self.prematch_books.get(m.event_key),
                                                        self.opening_books.get(m.event_key))
        s = m.score
        return {"match_id": m.event_key, "best_of": m.fmt.best_of, "tournament": m.tournament, "season": m.season,
                "sets": [list(x.games) for x in s.sets], "games": list(s.games), "points": list(s.points),
                "server": s.server + 1, "prematch_probability": min(max(m.prior, 0.001), 0.999),
                "serve_stats": {"won_one": m.won_on_serve[0], "served_one": m.served[0],
                                "won_two": m.won_on_serve[1], "served_two": m.served[1]}}

    def _predicted(self, m: LiveMatch, prediction: dict, env: Envelope, triggers: list[Trigger]) -> None:
        p = float(prediction["probability"])
        m.last_probability = p
        m.predicted_points = m.points_played
        m.points_since_prediction = 0
        self.stats.predictions += 1
        self._log(EventKind.PREDICTION, {"probability": p, "prematch": prediction["prematch_probability"],
                                         "prior_source": m.prior_source, "model": prediction["model_name"],
                                         "version": prediction["model_version"], "score": m.score.describe(),
                                         "points_played": m.points_played,
                                         "triggers": [str(t) for t in triggers]}, m.event_key, env)

    def _trade(self, m: LiveMatch, env: Envelope) -> bool:
        """Value detection on the open in-play market with the prediction for the current score;
        at most one decision per point. True when a decision (bet or no bet) was made."""
        book = self.inplay_books.get(m.event_key)
        if (book is None or book.status is not MarketStatus.OPEN or m.finished or m.last_probability is None
                or m.predicted_points != m.points_played or m.traded_points == m.points_played):
            return False
        m.traded_points = m.points_played
        decision = decide(m.event_key, book, m.last_probability, (FIRST, SECOND), self.risk.bankroll,
                          self.cfg.value, self.cfg.staking, self.cfg.risk.max_stake, (m.points_played,))
        if decision.opportunity is None:
            return True
        self.stats.opportunities += 1
        self._log(EventKind.OPPORTUNITY, decision.opportunity.to_dict(), m.event_key, env)
        if decision.request is not None:
            self._submit(decision.request, m.event_key, "inplay")
        return True

    def _submit(self, request: OrderRequest, match_id: str, source: str) -> tuple[bool, str]:
        if self.paused and not self.cfg.risk.kill_switch:
            self.stats.rejected += 1
            message = "betting paused by the operator"
            self._log(EventKind.ORDER_REJECTED, {"request": request.to_dict(), "reason": "BETTING_PAUSED",
                                                 "message": message, "source": source}, match_id)
            return False, message
        decision = check(request, self.risk, self.clock.now(), self.cfg.risk)
        if not decision.approved:
            self.stats.rejected += 1
            self._log(EventKind.ORDER_REJECTED, {"request": request.to_dict(), "reason": str(decision.reason),
                                                 "message": decision.message, "source": source}, match_id)
            return False, decision.message
        self.order_match[request.customer_order_ref] = (match_id, source)
        order = self.exchange.place(request)
        self.stats.orders += 1
        self._record_updates(self.exchange.poll())
        return order.status.value != "REJECTED", str(order.error_code or "")

    async def process(self, batch: list[tuple[float, Envelope]]) -> None:
        """Handle a batch of feed messages (received at the given monotonic times) and commit."""
        wanted: dict[str, tuple[float, Envelope, list[Trigger]]] = {}
        for received, env in batch:
            key = (env.feed, env.channel)
            recovering = env.seq <= self.recover_upto.get(key, 0)
            self._now_for(env)
            self.stats.messages += 1
            if recovering:
                self.stats.recovered += 1
            if env.channel == "market":
                self._on_market(env, env.data, recovering, received)
            else:
                triggers = self._on_match(env, env.data, recovering)
                if triggers and not recovering:
                    wanted[env.data.event_key] = (received, env, triggers)
            if not recovering:
                self._step.cursors[key] = (env.seq, self.epochs[env.feed])
            elif env.seq == self.recover_upto[key] and env.channel == "market":
                self._resume_exchange()
        if wanted:
            items = [(self.matches[k], r, e, t) for k, (r, e, t) in wanted.items() if k in self.matches]
            try:
                answers = await self.predict([self._state(m) for m, *_ in items])
            except PredictionUnavailable as exc:
                self.stats.prediction_failures += 1
                self._log("PREDICTION_FAILED", {"error": str(exc), "matches": [m.event_key for m, *_ in items]})
                answers = []
            for (m, received, env, triggers), answer in zip(items, answers, strict=False):
                self._predicted(m, answer, env, triggers)
                self._trade(m, env)
                self.stats.decision_ms.append((time.perf_counter() - received) * 1000)
        self._record_updates(self.exchange.poll())
        done = time.perf_counter()
        self.stats.decision_ms.extend((done - r) * 1000 for r in self._decisions)
        self._decisions.clear()
        await self.commit()

    async def commit(self, wait: bool = False) -> None:
        """Hand the batch's effects to the writer (one transaction each, in order); ``wait`` for it."""
        step, self._step = self._step, store.Step()
        if step.events or step.orders or step.cursors or step.requests_done or step.quarantined:
            if self._writer is None or self._writer.done():
                self._writer = asyncio.create_task(self._write_loop())
            await self._pending.put(step)
        if wait:
            await self._pending.join()

    async def _write_loop(self) -> None:
        # Commits run in a thread so the event loop keeps receiving and deciding meanwhile; one
        # writer keeps them in order. A crash loses at most the batches not yet written, and the
        # cursors (written with them) make the engine replay exactly those.
        while True:
            step = await self._pending.get()
            try:
                await asyncio.to_thread(store.commit_step, self.db, step)
                for key, value in step.cursors.items():
                    self.cursors[key] = value
            finally:
                self._pending.task_done()

    # --- control-plane hand-offs ------------------------------------------------------------------
    def _apply_settlements(self) -> None:
        for s in store.settlements(self.db, after=sorted(self.settled)):
            settlement = Settlement.from_dict(s)
            self.risk.record_settlement(settlement)
            self.settled.add(settlement.market_id)

    def submit_requests(self) -> int:
        """Risk-check and place the pre-match orders the control plane queued."""
        done = 0
        for ref, match_id, payload in store.new_order_requests(self.db):
            request = OrderRequest.from_dict(payload)
            ok, why = self._submit(request, match_id, "prematch")
            self._step.requests_done[ref] = ("submitted" if ok else "rejected", why or None)
            done += 1
        return done

    # --- operator controls ----------------------------------------------------------------------
    def apply_controls(self) -> bool:
        """Put the operator's controls in force (newest ``operator_controls`` row); True when they changed.

        Risk-limit overrides the engine cannot apply (a manual edit of the table) pause betting:
        failing safe beats trading on limits nobody asked for."""
        controls = store.current_controls(self.db)
        if controls["version"] == self.controls_version:
            return False
        kill = self.base_risk.kill_switch or bool(controls["kill_switch"])
        paused = bool(controls["paused"])
        try:
            limits = dataclasses.replace(self.base_risk, **controls["risk_limits"], kill_switch=kill)
            self.controls_error = None
        except (TypeError, ValueError) as exc:
            limits = dataclasses.replace(self.cfg.risk, kill_switch=kill)
            paused = True
            self.controls_error = f"risk limits of controls v{controls['version']} not applied ({exc}): paused"
            log.error(self.controls_error)
        self.cfg = dataclasses.replace(self.cfg, risk=limits)
        self.paused = paused
        self.controls_version = controls["version"]
        log.warning("operator controls v%d in force: paused=%s kill_switch=%s risk overrides=%s",
                    self.controls_version, paused, kill, controls["risk_limits"])
        return True

    def _cancel_live_orders(self) -> int:
        """Kill switch: cancel the unmatched remainder of every order on the book."""
        resting = [o.customer_order_ref for o in self.exchange.orders() if o.status.value == "EXECUTABLE"]
        for ref in resting:
            self.exchange.cancel(ref)
        if resting:
            self._record_updates(self.exchange.poll())
        return len(resting)

    def status(self) -> dict:
        """The heartbeat's payload: controls in force, counters, decision latency."""
        s = self.stats
        return {"pid": os.getpid(), "started_at": self.started_at.isoformat(), "paused": self.paused,
                "kill_switch": self.cfg.risk.kill_switch, "controls_error": self.controls_error,
                "risk_limits": dataclasses.asdict(self.cfg.risk), "bankroll": self.risk.bankroll,
                "live_orders": self.risk.live_order_count(), "messages": s.messages, "recovered": s.recovered,
                "quarantined": s.quarantined, "predictions": s.predictions,
                "prediction_failures": s.prediction_failures, "opportunities": s.opportunities, "orders": s.orders,
                "rejected": s.rejected, "decision_latency": s.decision_summary(),
                "feed_time": self.clock.now().isoformat()}

    def report_status(self) -> None:
        """Write the heartbeat (``engine_status``)."""
        store.record_engine_status(self.db, self.cfg.session, self.controls_version, self.status())

    async def housekeeping(self) -> None:
        """Pick up settlements, operator controls and order requests from the control plane; heartbeat."""
        self._apply_settlements()
        self.apply_controls()
        cancelled = self._cancel_live_orders() if self.cfg.risk.kill_switch else 0
        if self.submit_requests() or cancelled:
            await self.commit()
        if time.monotonic() >= self._next_status:
            await asyncio.to_thread(self.report_status)
            self._next_status = time.monotonic() + self.cfg.status_s

    # --- following the feed -----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Follow every configured feed until ``stop`` is set."""
        queue: asyncio.Queue[tuple[float, Envelope]] = asyncio.Queue()

        def deliver_for(feed: str, channel: str):
            async def deliver(env: Envelope) -> None:
                await queue.put((time.perf_counter(), env))
            return deliver

        def reject_for(feed: str, channel: str):
            async def reject(raw: str, reason: str, seq: int | None) -> None:
                self.quarantine(raw, reason, seq, feed, channel)
            return reject

        clients = [FeedClient(self.cfg.feed_url, feed, channel, deliver_for(feed, channel), reject_for(feed, channel),
                              last_seq=0) for feed in self.cfg.feeds for channel in ("match", "market")]
        tasks = [asyncio.create_task(c.run(stop)) for c in clients]
        self.clients = clients
        next_housekeeping = 0.0
        try:
            while not stop.is_set():
                try:
                    first = await asyncio.wait_for(queue.get(), timeout=self.cfg.housekeeping_s)
                    batch = [first]
                    while len(batch) < self.cfg.max_batch and not queue.empty():
                        batch.append(queue.get_nowait())
                    await self.process(batch)
                except TimeoutError:
                    await self.commit()  # quarantined messages without a batch
                if time.monotonic() >= next_housekeeping:
                    await self.housekeeping()
                    next_housekeeping = time.monotonic() + self.cfg.housekeeping_s
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.commit(wait=True)
            if self._writer is not None:
                self._writer.cancel()
