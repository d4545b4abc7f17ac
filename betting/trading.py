"""The trading core: one match-by-match state machine that takes a feed message (a point, a price
update, a match end) and returns what to do — called synchronously by the backtests and by the
asyncio live engine alike, so both trade with the same code.

    match message -> match state (``features.live_match``: exact scoring, impossible -> BadMessage)
        -> triggers (``features.triggers``) -> [caller gets a probability] -> ``predicted``
    market book   -> risk book + exchange (``on_book``) -> ``trade`` on an open in-play book
    ``trade``     -> value after commission -> fractional Kelly (``betting.decision``) -> ``submit``
    ``submit``    -> operator pause, match suspension, risk limits (``betting.risk.check``) -> exchange
    match end     -> live orders cancelled -> the match's markets settled in the risk book

The core holds no clock, no I/O and no asyncio: the caller owns the clock the exchange reads, asks the
prediction service (or a model) when ``on_match`` returns triggers, and persists what the core emits
through two sinks — ``emit(kind, payload, match_id, ctx)`` for event-log entries and
``on_order(order, match_id, source)`` for order states. ``ctx`` is the caller's own reference of the
message being handled (the engine's feed envelope), passed through untouched.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from betting.clock import Clock
from betting.decision import Decision, decide, stake_rule
from betting.exchange import BaseExchange, OrderUpdate
from betting.market import MarketBook, MarketStatus
from betting.policy import TradingPolicy
from betting.prior import mid_probability, prior_probability
from betting.records import EventKind, Order, OrderRequest, OrderStatus, Settlement
from betting.risk import RiskBook, RiskCheck, RiskLimits, check
from betting.settlement import MatchResult, settle_market
from betting.shared_limits import SharedLimits
from features.live_match import FIRST, PLAY_SUSPENDED_STATUSES, SECOND, BadMessage, LiveMatch, MatchReport
from features.outcomes import parse_outcome
from features.scoring import Score
from features.triggers import Trigger, fired

log = logging.getLogger(__name__)

Emit = Callable[[EventKind | str, dict, str | None, Any], None]
"""An event-log sink: (kind, payload, match id, the caller's context of the message)."""
OrderSink = Callable[[Order, str, str], None]
"""An order-state sink: (order, match id, source — "inplay", "prematch" or "restored")."""
SettlementSink = Callable[[Settlement, str], None]
"""A settlement sink: (the market's settlement in the risk book, match id)."""
PLAY = "play"
"""The suspension "channel" of a match whose play stopped (``PLAY_SUSPENDED_STATUSES``): play resuming clears it."""
DecisionSink = Callable[[LiveMatch, Decision], None]
"""A decision sink: (the match, what ``decide`` gave), before the order goes to the risk checks."""


def _discard(*_args: Any) -> None:
    return None


@dataclass
class TradingCounts:
    """What the core did (the engine's ``EngineStats`` extends it)."""

    predictions: int = 0
    decisions: int = 0
    """Trading decisions made on an open in-play book (bet or no bet)."""
    opportunities: int = 0
    orders: int = 0
    rejected: int = 0
    suspensions: int = 0
    resumptions: int = 0
    resyncs: int = 0
    """Score jumps a feed of snapshots reported after skipping points (``LiveMatch.resync``)."""


class TradingCore:
    """Every match's state, the risk book and the exchange port, under one ``TradingPolicy``."""

    def __init__(
        self,
        policy: TradingPolicy,
        clock: Clock,
        exchange: BaseExchange,
        risk: RiskBook | None = None,
        emit: Emit = _discard,
        on_order: OrderSink = _discard,
        counts: TradingCounts | None = None,
        market_key: Callable[[str], str | None] = lambda _market_id: None,
        on_settlement: SettlementSink = _discard,
        logged: Collection[EventKind] | None = None,
        on_decision: DecisionSink = _discard,
    ):
        self.policy = policy
        self.limits: RiskLimits = policy.risk
        """The risk limits in force: the policy's, with the operator's overrides on top."""
        self.paused = False
        """The operator paused betting (orders rejected ``BETTING_PAUSED``; the kill switch is in ``limits``)."""
        self.clock = clock
        self.exchange = exchange
        self.risk = risk if risk is not None else RiskBook(policy.bankroll)
        self.emit = emit
        self.on_order = on_order
        self.counts = counts if counts is not None else TradingCounts()
        self.on_settlement = on_settlement
        self.logged = None if logged is None else frozenset(logged)
        """The kinds ``emit`` keeps (None: every kind); the payloads of the others are not built (a backtest)."""
        self.on_decision = on_decision
        self.refusals: Counter[str] = Counter()
        """Orders refused before the exchange, by reason (``_rejected``)."""
        self.market_key = market_key
        """The match a market id names by itself (the feed protocol's rule), for markets not seen yet."""
        self.matches: dict[str, LiveMatch] = {}
        self.market_of: dict[str, str] = {}
        """market id -> event key."""
        self.markets_of: dict[str, dict[str, None]] = {}
        """event key -> its market ids, in the order first seen."""
        self.prematch_books: dict[str, MarketBook] = {}
        self.inplay_books: dict[str, MarketBook] = {}
        """Latest market book of each match, by event key."""
        self.opening_books: dict[str, MarketBook] = {}
        """First open in-play book of each match (a prior when there are no pre-match odds)."""
        self.order_match: dict[str, tuple[str, str]] = {}
        """order reference -> (match id, source)."""
        self.suspended: dict[str, tuple[str, str]] = {}
        """event key -> (channel, reason) of matches not traded until a clean message of that channel."""
        self.settled: set[str] = set()
        """Markets whose result the risk book has."""
        self.models: dict[str, dict] = {}
        """event key -> the model (name, version, data version) of its latest prediction (a bet's lineage)."""
        self.checks: dict[str, list[dict]] = {}
        """order reference -> the risk checks of its placement, until its ORDER_PLACED entry carries them."""
        self.saved_predictions: dict[str, dict] = {}
        """A restart: the last committed prediction of each match, restored when recovery reaches its point."""
        self._recovered_books: dict[str, MarketBook] = {}
        self.results: dict[str, tuple[MatchResult, dict]] = {}
        """event key -> the result of a finished match and its MATCH_FINISHED payload (a worker that takes a
        finished match over settles the orders it adopts with it)."""
        self.shared: SharedLimits | None = None
        """Several engine workers: the limits that span matches are decided with every worker's figures, under
        one lock (``betting.shared_limits``); None: this core's risk book is the whole account."""

    def bankroll(self) -> float:
        """The bankroll stakes are sized on: the account's (every worker's realised P&L when several share it)."""
        return self.risk.bankroll if self.shared is None else self.shared.bankroll(self.risk)

    # --- orders -----------------------------------------------------------------------------------
    def match_of_market(self, market_id: str) -> str:
        return self.market_of.get(market_id) or self.market_key(market_id) or market_id

    def restore_orders(self, orders: Iterable[Order]) -> None:
        """A restart: the risk book takes the persisted orders (the exchange was given them)."""
        for order in orders:
            self.risk.record_order(order)
            self.order_match[order.customer_order_ref] = (self.match_of_market(order.market_id), "restored")

    def release_match(self, match_id: str) -> list[Order]:
        """Several engine workers: another worker took the match over and adopted its orders while this one was
        stalled; they leave this core's exchange and risk book without an update (nothing is logged or written of
        them here again). Returns them."""
        markets = set(self.markets_of.get(match_id, ()))
        for ref, (match, _) in self.order_match.items():  # restored orders of markets the feed has not shown yet
            order = self.risk.order(ref)
            if match == match_id and order is not None:
                markets.add(order.market_id)
        release = getattr(self.exchange, "release", None)
        gone = list(release(sorted(markets))) if release is not None else []
        for market_id in sorted(markets):
            self.risk.forget_market(market_id)
        for order in gone:
            self.order_match.pop(order.customer_order_ref, None)
            self.checks.pop(order.customer_order_ref, None)
        return gone

    def record(self, updates: Iterable[OrderUpdate], ctx: Any = None, strays: bool = True) -> None:
        """Order updates from the exchange: into the risk book, then to the sinks. An order that reaches the book
        (out of its bet delay) while its match's play is suspended is cancelled then."""
        for u in updates:
            order = u.order
            self.risk.record_order(order)
            ref = order.customer_order_ref
            match_id, source = self.order_match.get(ref) or (self.match_of_market(order.market_id), "inplay")
            self.on_order(order, match_id, source)
            if self._logs(u.kind):
                payload: dict[str, Any] = {"order": order.to_dict()}
                if u.fill is not None:
                    payload["fill"] = u.fill.to_dict()
                placing = u.kind in (EventKind.ORDER_PLACED, EventKind.ORDER_REJECTED)
                if placing:
                    payload["risk_checks"] = self.checks.pop(ref, [])
                self.emit(u.kind, payload, match_id, ctx if placing else None)
        if strays and self.suspended:
            self._cancel_stopped(ctx)

    def _cancel_stopped(self, ctx: Any) -> None:
        """Orders on the book of a match whose play is suspended (out of their bet delay since): cancelled."""
        refs = [
            o.customer_order_ref
            for key, (channel, _) in self.suspended.items()
            if channel == PLAY
            for market_id in self.markets_of.get(key, ())
            for o in self.exchange.orders(market_id)
            if o.status is OrderStatus.EXECUTABLE
        ]
        for ref in refs:
            self.exchange.cancel(ref)
        if refs:
            self.record(self.exchange.poll(), ctx, strays=False)

    def _logs(self, kind: EventKind) -> bool:
        return self.logged is None or kind in self.logged

    def poll(self, ctx: Any = None) -> None:
        """Orders whose bet delay ended or that matched since the last call."""
        self.record(self.exchange.poll(), ctx)

    # --- suspension -------------------------------------------------------------------------------
    def suspend(self, key: str, channel: str, reason: str, ctx: Any = None) -> bool:
        """No trading on the match until a clean message of ``channel``; True when newly suspended."""
        if key in self.suspended:
            return False
        self.suspended[key] = (channel, reason)
        self.counts.suspensions += 1
        if self._logs(EventKind.MATCH_SUSPENDED):
            self.emit(EventKind.MATCH_SUSPENDED, {"reason": reason[:2000], "channel": channel}, key, ctx)
        return True

    def clean(self, key: str, channel: str, ctx: Any = None) -> bool:
        """A message of ``channel`` applied cleanly: a match suspended by that channel trades again."""
        held = self.suspended.get(key)
        if held is None or held[0] != channel:
            return False
        del self.suspended[key]
        self.counts.resumptions += 1
        if self._logs(EventKind.MATCH_RESUMED):
            self.emit(EventKind.MATCH_RESUMED, {"after": held[1][:500], "channel": channel}, key, ctx)
        return True

    # --- market data ------------------------------------------------------------------------------
    def on_book(
        self, event_key: str, book: MarketBook, channel: str = "market", ctx: Any = None, recovering: bool = False
    ) -> None:
        """A market book of a match. Recovering (a restart rebuilding state): kept for ``resume_exchange``.
        Else the risk book and the exchange see it (then the caller logs it and calls ``after_book``)."""
        if book.market_id not in self.market_of:
            self.market_of[book.market_id] = event_key
            self.markets_of.setdefault(event_key, {})[book.market_id] = None
        (self.inplay_books if book.in_play else self.prematch_books)[event_key] = book
        if book.in_play and book.status is MarketStatus.OPEN:
            self.opening_books.setdefault(event_key, book)
        if recovering:
            self._recovered_books[book.market_id] = book
            self.clean(event_key, channel, ctx)
            return
        self.risk.record_market_book(book)
        self.record(self.exchange.on_market_book(book), ctx)

    def after_book(self, event_key: str, book: MarketBook, channel: str = "market", ctx: Any = None) -> bool:
        """After the caller logged the book: the match trades again if the market channel had suspended it,
        and a decision is made on an open in-play book. True when a decision (bet or no bet) was made."""
        self.clean(event_key, channel, ctx)
        m = self.matches.get(event_key)
        return m is not None and book.in_play and book.status is MarketStatus.OPEN and self.trade(m, ctx)

    def resume_exchange(self) -> None:
        """End of a restart's recovery: show the exchange every market as it was at the cursors, so orders
        restored in their bet delay meet the same book as before the restart (queue positions of resting
        orders are not persisted: they restart at the back of the visible queue, conservatively)."""
        for book in self._recovered_books.values():
            self.risk.record_market_book(book)
            self.record(self.exchange.on_market_book(book))
        self._recovered_books.clear()

    # --- match messages ---------------------------------------------------------------------------
    def on_match(
        self, event: MatchReport, feed: str = "live", channel: str = "match", ctx: Any = None, recovering: bool = False
    ) -> list[Trigger]:
        """A match message: the state follows it (``BadMessage`` when it cannot); returns the triggers it
        fired — the caller then gets a probability for ``state(match)`` and calls ``predicted``.
        Recovering: the state only, with the saved prediction restored at its point, no triggers."""
        key = event.event_key
        triggers_cfg = self.policy.triggers
        m = self.matches.get(key)
        if event.kind == "match_start":
            if m is not None:
                raise BadMessage(f"match {key} started already ({m.score.describe()}): a second start is ignored")
            m = LiveMatch.start(event, feed, triggers_cfg)
            self.matches[key] = m
            if recovering:
                self._restore_prediction(m)
            if self._logs(EventKind.FEED_MESSAGE):
                self.emit(
                    EventKind.FEED_MESSAGE,
                    {
                        "kind": "match_start",
                        "players": list(m.players),
                        "player_keys": list(m.player_keys),
                        "tournament": m.tournament,
                        "season": m.season,
                        "best_of": event.best_of,
                        "surface": m.surface,
                    },
                    key,
                    ctx,
                )
            return fired(None, m.score, 0, None, None, triggers_cfg)
        if m is None:
            raise BadMessage(f"{event.kind} for unknown match {key} (no match_start)")
        if event.kind == "match_end":
            self.finish(m, event, ctx, recovering)
            return []
        m.check_same_match(event)
        if event.kind == "status":  # the same score: only whether play is on changed
            self._play_status(m, event, ctx, recovering)
            if self._logs(EventKind.FEED_MESSAGE) and not recovering:
                said = {"kind": "status", "status": event.event_status, "score": m.score.describe()}
                self.emit(EventKind.FEED_MESSAGE, said, key, ctx)
            return []
        momentum_before = m.momentum_now(triggers_cfg)
        if event.kind == "resync":  # the feed skipped points: the state jumps to the reported score
            prev = m.resync(event)
            self.counts.resyncs += 1
        else:
            try:
                prev, _ = m.apply_point(event, triggers_cfg)
            except BadMessage:
                gap = m.follow_gap(event)
                if gap is None:
                    raise
                prev = gap
        self.clean(key, channel, ctx)
        self._play_status(m, event, ctx, recovering)
        if recovering:
            self._restore_prediction(m)
            return []
        if self._logs(EventKind.FEED_MESSAGE):
            said = {"kind": event.kind, "score": m.score.describe()}
            if event.kind == "resync":
                said["from"] = prev.describe()
            said |= {"sets": event.event_final_result, "game": event.event_game_result}
            self.emit(EventKind.FEED_MESSAGE, said, key, ctx)
        return self._fired(m, prev, momentum_before)

    def replayed_point(self, key: str, winner: int, score: Score) -> list[Trigger]:
        """A point of a backtest's replay, whose scores came from the exact scorer: the match state follows it
        (``LiveMatch.follow``: nothing to check, nothing logged) and the triggers it fired are returned, as
        ``on_match`` does for a feed's point message."""
        m = self.matches[key]
        momentum_before = m.momentum_now(self.policy.triggers)
        prev = m.follow(winner, score)
        return self._fired(m, prev, momentum_before)

    def _fired(self, m: LiveMatch, prev: Score, momentum_before: int | None) -> list[Trigger]:
        if m.event_key in self.suspended:
            return []  # suspended by the market channel: no prediction to trade on
        cfg = self.policy.triggers
        return fired(prev, m.score, m.points_since_prediction, momentum_before, m.momentum_now(cfg), cfg)

    def _restore_prediction(self, m: LiveMatch) -> None:
        saved = self.saved_predictions.get(m.event_key)
        if saved is not None and saved.get("points_played") == m.points_played:
            m.last_probability = float(saved["probability"])
            m.predicted_points = m.points_played
            m.points_since_prediction = 0
            self.models[m.event_key] = {
                "model": saved.get("model"),
                "version": saved.get("version"),
                "data_version": saved.get("data_version"),
            }

    def finish(self, m: LiveMatch, event: MatchReport, ctx: Any = None, recovering: bool = False) -> None:
        """A match end (``BadMessage`` when it does not agree with the match followed): live orders of its
        markets are cancelled and the markets settled in the risk book."""
        ending = m.end(event)
        m.finished = True
        outcome, sets_completed = parse_outcome(ending.score_text)
        markets = sorted(self.markets_of.get(m.event_key, ()))
        if not recovering:
            for market_id in markets:
                for order in self.exchange.orders(market_id):
                    if order.is_live:
                        self.exchange.cancel(order.customer_order_ref)
            self.poll()
        result = MatchResult(winner=ending.winner, outcome=outcome, sets_completed=sets_completed)
        self.settle_risk(markets, result)
        said = {
            "event_key": m.event_key,
            "winner": ending.winner,
            "outcome": outcome,
            "sets_completed": sets_completed,
            "score": ending.score_text,
            "markets": markets,
            "players": list(m.players),
            "player_keys": list(m.player_keys),
        }
        self.results[m.event_key] = (result, said)
        if self._logs(EventKind.MATCH_FINISHED):
            self.emit(EventKind.MATCH_FINISHED, dict(said), m.event_key, ctx)

    def _play_status(self, m: LiveMatch, event: MatchReport, ctx: Any, recovering: bool) -> None:
        """Play suspended ("Suspended", "Interrupted"): no trading on the match, its live orders cancelled, until
        a message says play is on again."""
        status = event.event_status.strip()
        if status not in PLAY_SUSPENDED_STATUSES:
            self.clean(m.event_key, PLAY, ctx)
            return
        held = self.suspended.get(m.event_key)
        if held is not None and held[0] != PLAY:  # play stopping outranks: the match now waits for play to resume
            del self.suspended[m.event_key]
        if not self.suspend(m.event_key, PLAY, f"play suspended: {status} at {m.score.describe()}", ctx):
            return
        if not recovering:
            for market_id in sorted(self.markets_of.get(m.event_key, ())):
                for order in self.exchange.orders(market_id):
                    if order.is_live:
                        self.exchange.cancel(order.customer_order_ref)
            self.poll(ctx)

    def forget(self, key: str) -> None:
        """Drop a finished match's state (a backtest's memory stays flat; the engine keeps its matches to
        refuse late messages about them)."""
        self.matches.pop(key, None)
        for book in (self.prematch_books, self.inplay_books, self.opening_books):
            book.pop(key, None)
        for market_id in self.markets_of.pop(key, ()):
            self.market_of.pop(market_id, None)

    def settle_risk(self, markets: list[str], result: MatchResult) -> None:
        """The finished match's markets leave the risk book with their result (what the control plane's
        ``settle_finished`` persists); a market the rules cannot settle stays open for the operator."""
        for market_id in markets:
            if market_id in self.settled or not self.exchange.orders(market_id):
                continue  # settled already, or nothing to settle (no order of this core's in it)
            try:
                s = settle_market(
                    market_id,
                    self.exchange.orders(market_id),
                    result,
                    commission=self.policy.exchange.commission,
                    bankroll=self.risk.bankroll,
                    settled_at=self.clock.now(),
                    config=self.policy.exchange.settlement,
                )
            except ValueError as exc:
                log.warning("market %s cannot be settled by the rules (%s): its exposure stays", market_id, exc)
                continue
            self.risk.record_settlement(s)
            self.settled.add(market_id)
            self.on_settlement(s, self.market_of.get(market_id, market_id))

    # --- predictions and decisions ----------------------------------------------------------------
    def state(self, m: LiveMatch) -> dict:
        """The prediction request of the match's current state (a ``/predict_live`` state)."""
        prior = self.prior(m)
        s = m.score
        return {
            "match_id": m.event_key,
            "best_of": m.fmt.best_of,
            "tournament": m.tournament,
            "season": m.season,
            "sets": [list(x.games) for x in s.sets],
            "games": list(s.games),
            "points": list(s.points),
            "server": s.server + 1,
            "prematch_probability": prior,
            "serve_stats": {
                "won_one": m.won_on_serve[0],
                "served_one": m.served[0],
                "won_two": m.won_on_serve[1],
                "served_two": m.served[1],
            },
        }

    def prior(self, m: LiveMatch) -> float:
        """P(first player wins) before the match, as the model is given it (``betting.prior``, in [0.001, 0.999])."""
        if m.prior is None:
            m.prior, m.prior_source = prior_probability(
                self.prematch_books.get(m.event_key), self.opening_books.get(m.event_key)
            )
        return min(max(m.prior, 0.001), 0.999)

    def predicted(
        self, m: LiveMatch, probability: float, triggers: list[Trigger], answer: dict | None = None, ctx: Any = None
    ) -> None:
        """The probability for the match's current score (``answer``: the service's whole answer)."""
        answer = answer or {}
        m.last_probability = probability
        m.predicted_points = m.points_played
        m.points_since_prediction = 0
        self.counts.predictions += 1
        self.models[m.event_key] = {
            "model": answer.get("model_name"),
            "version": answer.get("model_version"),
            "data_version": answer.get("data_version"),
        }
        if self._logs(EventKind.PREDICTION):
            self.emit(
                EventKind.PREDICTION,
                {
                    "probability": probability,
                    "prematch": answer.get("prematch_probability"),
                    "prior_source": m.prior_source,
                    "model": answer.get("model_name"),
                    "version": answer.get("model_version"),
                    "data_version": answer.get("data_version"),
                    "score": m.score.describe(),
                    "points_played": m.points_played,
                    "triggers": [str(t) for t in triggers],
                },
                m.event_key,
                ctx,
            )

    def decision_due(self, m: LiveMatch) -> bool:
        """Whether ``trade`` decides on an open in-play book now: the match's prediction is for its current score,
        no decision was made at this score yet, and the match is neither finished nor suspended."""
        return (
            not m.finished
            and m.last_probability is not None
            and m.predicted_points == m.points_played
            and m.traded_points != m.points_played
            and m.event_key not in self.suspended
        )

    def trade(self, m: LiveMatch, ctx: Any = None) -> bool:
        """Value detection on the open in-play market with the prediction for the current score; at most
        one decision per point. True when a decision (bet or no bet) was made."""
        book = self.inplay_books.get(m.event_key)
        probability = m.last_probability
        if book is None or book.status is not MarketStatus.OPEN or probability is None or not self.decision_due(m):
            return False
        m.traded_points = m.points_played
        self.counts.decisions += 1
        policy = self.policy
        decision = decide(
            m.event_key,
            book,
            probability,
            (FIRST, SECOND),
            self.bankroll(),
            policy.value,
            policy.staking,
            self.limits.max_stake,
            (m.points_played,),
        )
        self.on_decision(m, decision)
        if decision.opportunity is None:
            return True
        self.counts.opportunities += 1
        if self._logs(EventKind.OPPORTUNITY):
            self.emit(EventKind.OPPORTUNITY, self._lineage(m, book, decision), m.event_key, ctx)
        if decision.request is not None:
            self.submit(decision.request, m.event_key, "inplay", ctx)
        return True

    def _lineage(self, m: LiveMatch, book: MarketBook, decision: Decision) -> dict:
        """The OPPORTUNITY entry: the opportunity, and why — the prediction (model, version, data version, the
        market's margin-free view) and the stake rule; ``ref`` ties it to the order's entries (``GET /bets/{ref}``)."""
        opp, request, limits = decision.opportunity, decision.request, self.limits
        assert opp is not None
        first = mid_probability(book)
        size = request.size if request is not None else 0.0
        return {
            **opp.to_dict(),
            "ref": request.customer_order_ref if request is not None else None,
            "market_id": book.market_id,
            "size": size,
            "market_probability": None if first is None else (first if opp.selection == FIRST else 1.0 - first),
            **self.models.get(m.event_key, {}),
            "score": m.score.describe(),
            "points_played": m.points_played,
            "stake_rule": stake_rule(opp, self.bankroll(), self.policy.staking, limits.max_stake, size),
            "within_limits": limits.min_price <= opp.price <= limits.max_price and opp.edge >= limits.min_edge,
        }

    def submit(self, request: OrderRequest, match_id: str, source: str, ctx: Any = None) -> tuple[bool, str]:
        """An order through the operator's pause, the match's suspension and the risk limits to the
        exchange; (placed, why not)."""
        stop = None
        if self.paused and not self.limits.kill_switch:
            stop = ("BETTING_PAUSED", "betting paused by the operator")
        elif match_id in self.suspended:
            stop = ("MATCH_SUSPENDED", f"match suspended from trading: {self.suspended[match_id][1]}"[:500])
        if stop is not None:
            gate = [RiskCheck(stop[0], None, None, False, stop[1]).to_dict()]
            return self._rejected(request, match_id, source, *stop, ctx, gate)
        if self.shared is None:
            verdict = check(request, self.risk, self.clock.now(), self.limits)
        else:
            verdict = self.shared.reserve(request, match_id, self.clock.now(), self.risk, self.limits)
        logged = self._logs(EventKind.ORDER_PLACED) or self._logs(EventKind.ORDER_REJECTED)
        checks = [c.to_dict() for c in verdict.checks] if logged else []
        if not verdict.approved:
            return self._rejected(request, match_id, source, str(verdict.reason), verdict.message, ctx, checks)
        self.order_match[request.customer_order_ref] = (match_id, source)
        if checks:
            self.checks[request.customer_order_ref] = checks
        order = self.exchange.place(request)
        self.counts.orders += 1
        self.record(self.exchange.poll(), ctx)
        return order.status.value != "REJECTED", str(order.error_code or "")

    def _rejected(
        self,
        request: OrderRequest,
        match_id: str,
        source: str,
        reason: str,
        message: str,
        ctx: Any = None,
        checks: list[dict] | None = None,
    ) -> tuple[bool, str]:
        self.counts.rejected += 1
        self.refusals[reason] += 1
        if self._logs(EventKind.ORDER_REJECTED):
            self.emit(
                EventKind.ORDER_REJECTED,
                {
                    "request": request.to_dict(),
                    "reason": reason,
                    "message": message,
                    "source": source,
                    "risk_checks": checks or [],
                },
                match_id,
                ctx,
            )
        return False, message

    def resting_orders(self) -> list[str]:
        return [o.customer_order_ref for o in self.exchange.orders() if o.status.value == "EXECUTABLE"]

    def cancel(self, refs: list[str]) -> None:
        """Cancel the unmatched remainder of these orders (the kill switch)."""
        for ref in refs:
            self.exchange.cancel(ref)
        if refs:
            self.poll()
