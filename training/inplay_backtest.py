"""The in-play backtest: point-by-point history replayed through the live engine's trading core.

Point-by-point matches replayed against the SIMULATED in-play
market of ``feeds.live.market`` (no in-play price history exists in the data), with the live
engine's own trading code: each match goes through one ``betting.trading.TradingCore`` (triggers, prior,
value, staking, risk limits, the paper exchange with its 3 s bet delay, settlement at the match end)
under the engine's ``TradingPolicy``, synchronously, in the order of the messages the feed server
publishes for it. By default the scorer's points go to the core as they are and a market update reaches
it only when showing it can change something (``_FastReplay``); ``InplayBacktestConfig(messages=True)``
sends every message instead, as the engine receives them (the reference: a test holds both to identical
orders, counts and ledgers, and the default to the engine's own orders). The probability is a parameter
(:data:`InplayModel`); the default is the Markov chain with serve updates that ``/predict_live`` serves.
Two simulated markets (:data:`INPLAY_MARKETS`): the feed's own (priced one point late, with noise:
exploitable by construction, as the constant-serve chain, the simulator's own model, shows) and a fair one
(current score, no noise) where only information beyond the constant chain can win. Results measure the
machinery and the model *relative to a simulator*, never a real-money edge: every output says SIMULATED.

Its ledger is ``training.backtest``'s (markets, bets, counts; ``summarize`` and ``by_season`` read it). A replay
of many rows prepares the matches in a second process (``training.replay_worker``) while this one trades.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from betting.clock import ManualClock
from betting.decision import Decision
from betting.market import MarketBook, MarketStatus
from betting.paper import PaperExchange
from betting.policy import TradingPolicy
from betting.records import OrderStatus, Settlement
from betting.risk import RiskBook
from betting.settlement import MatchResult
from betting.trading import TradingCore
from features.live_match import BadMessage, LiveMatch
from features.markov.scalar import ServeTracker, live_win_probability
from features.scoring import Score, ScoringError
from feeds.live.books import feed_book, quoted_book
from feeds.live.market import LABELS, MarketModel, Quotes, SimulatedMarket
from feeds.live.protocol import MarketUpdate, MatchEvent, market_event_key
from feeds.live.replay import (
    PREMATCH_LEAD_SECONDS,
    REOPEN_SECONDS,
    closing_message,
    match_event,
    match_messages,
    points_of,
)
from training.backtest import Ledger, LedgerRecorder, utc_day

SIMULATED = "SIMULATED in-play market (feeds.live.market): not real prices"
"""The label every in-play output carries."""

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InplayState:
    """What an in-play model sees at one moment (the fields of a ``/predict_live`` state)."""

    match_id: str
    score: Score
    """Exact score (``score.fmt`` the match format); player 0 is the first player."""
    prematch_probability: float
    """The prior: P(first player wins) before the match, as the engine takes it."""
    won_on_serve: tuple[int, int]
    served: tuple[int, int]
    tournament: str
    season: int


InplayModel = Callable[[InplayState], float]
"""P(first player wins) from a state; a learned ``tennis-inplay`` model plugs in here."""


def markov_serve_updates(state: InplayState) -> float:
    """The Markov chain calibrated to the prior, serve probabilities updated by the match's points
    (what ``/predict_live`` serves as ``inplay-markov``)."""
    tracker = dataclasses.replace(
        ServeTracker.from_prematch(state.prematch_probability, state.score.fmt),
        won_a=state.won_on_serve[0],
        served_a=state.served[0],
        won_b=state.won_on_serve[1],
        served_b=state.served[1],
    )
    return live_win_probability(state.prematch_probability, state.score, tracker)


def markov_constant(state: InplayState) -> float:
    """The Markov chain calibrated to the prior with constant serve probabilities: the simulated
    market's own fair model, so whatever it earns comes from the simulator's lag and noise."""
    return live_win_probability(state.prematch_probability, state.score)


INPLAY_MODELS: dict[str, InplayModel] = {
    "markov-serve-updates": markov_serve_updates,
    "markov-constant": markov_constant,
}

INPLAY_MARKETS: dict[str, MarketModel] = {
    "simulated": MarketModel(),
    "simulated-fair": MarketModel(lag_points=0, noise_sd=0.0),
}
"""Simulated markets: the feed's own (prices one point late, with noise: both exploitable by any model
that knows the score, as the constant-serve chain shows) and a fair one (the constant-serve chain at
the current score, only the one-tick spread): there, only information beyond that chain can win."""


@dataclass(frozen=True)
class InplayBacktestConfig:
    """The in-play backtest: the live engine's trading policy and the simulated market's."""

    policy: TradingPolicy = TradingPolicy()
    """Bankroll, triggers, value, staking, risk limits and exchange (bet delay), as the engine runs them."""
    market: MarketModel = MarketModel()
    """How the simulated market departs from the fair price (lag, noise, spread)."""
    gap_seconds: float = 60.0
    """Matches are replayed one after another: the next starts this long after the previous ended
    (or at its own date, if later)."""
    messages: bool = False
    """Replay every feed message as the engine receives it (the reference: scores read back from each point's
    message and checked, every market update shown to the core). False: the same trading calls in the same
    order, with the scorer's points given to the core as they are and a market update shown only when it can
    change something — an order is live, a decision is due, the market opens or closes (``_FastReplay``); a
    test holds both to identical orders, ledgers and counts."""
    parallel_from: int = 200
    """Replays of this many rows or more prepare the matches (scores, simulated quotes, messages) in a second
    process while this one trades (0: never); the results are the same."""


@dataclass
class InplayBacktest:
    model: str
    ledger: Ledger
    matches: int
    """Matches replayed."""
    points: int
    predictions: int
    decisions: int
    orders: int
    seconds: float
    label: str = SIMULATED


def _result(row: dict, final: Score) -> MatchResult:
    """How the replayed match ended, for settlement: the score's winner, or — stopped early — a
    retirement after the completed sets, with the catalog's winner (the player who advanced)."""
    if final.winner is not None:
        return MatchResult(winner=LABELS[final.winner], outcome="completed", sets_completed=len(final.sets))
    w = row.get("winner")
    winner = LABELS[int(w) - 1] if w is not None and not pd.isna(w) and int(w) in (1, 2) else None
    return MatchResult(winner=winner, outcome="retired", sets_completed=len(final.sets))


def inplay_state(core: TradingCore, m: LiveMatch) -> InplayState:
    """What the model sees of the match now (the fields of a ``/predict_live`` state)."""
    return InplayState(
        m.event_key,
        m.score,
        core.prior(m),
        (m.won_on_serve[0], m.won_on_serve[1]),
        (m.served[0], m.served[1]),
        m.tournament,
        m.season,
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Where a replay's clock starts."""


class _InplayReplay:
    """Matches one after another on one event-time clock through one ``TradingCore`` — the live engine's
    trading code, called synchronously with the messages the feed server publishes for the match
    (``feeds.live.replay.match_messages``), in the feed's own order (time, then market before match,
    as ``feeds.live.ordering``), the exchange polled after each message as the deterministic engine does."""

    def __init__(self, model: InplayModel, config: InplayBacktestConfig, name: str = "model"):
        self.model = model
        self.name = name
        self.cfg = config
        policy = config.policy
        self.clock = ManualClock(_EPOCH)
        self.exchange = PaperExchange(self.clock, policy.exchange, balance=policy.bankroll)
        self.core = TradingCore(
            policy,
            self.clock,
            self.exchange,
            on_decision=self._decided,
            market_key=market_event_key,
            on_settlement=self._settled,
            logged=(),  # nothing is logged: what the ledger needs comes from the orders and the counts
        )
        self.recorder = LedgerRecorder()
        self.skipped: Counter = Counter()
        """Matches skipped and messages quarantined, by reason."""
        self.points = self.matches = 0
        self._row: dict = {}
        self._opportunities: dict[str, tuple[float, float]] = {}

    @property
    def risk(self) -> RiskBook:
        return self.core.risk

    @property
    def counts(self) -> Counter:
        """What did not trade, by reason: matches skipped (``skipped: ...``), messages quarantined, orders the
        core refused (``risk: ...``: the risk limits, a suspension) and orders the exchange rejected
        (``exchange: ...``)."""
        counts = Counter(self.skipped)
        for reason, n in self.core.refusals.items():
            counts[f"risk: {reason}"] += n
        for order in self.exchange.orders():
            if order.status is OrderStatus.REJECTED:
                counts[f"exchange: {order.error_code}"] += 1
        return counts

    def _decided(self, _m: LiveMatch, decision: Decision) -> None:
        """An order decided: its opportunity's edge and model probability, for the ledger's bets."""
        if decision.request is not None and decision.opportunity is not None:
            opportunity = decision.opportunity
            self._opportunities[decision.request.customer_order_ref] = (opportunity.edge, opportunity.model_probability)

    def _settled(self, settlement: Settlement, match_id: str) -> None:
        row = self._row
        self.recorder.settled(settlement, match_id, int(row["season"]), str(row["source"]), self._opportunities)

    def _match_message(
        self, key: str, channel: str, event: Any, ahead: dict[int, tuple[InplayState, float]] | None = None
    ) -> None:
        """A match message through the core; on its triggers the model's probability, then a decision."""
        core = self.core
        try:
            triggers = core.on_match(event)
        except BadMessage as exc:  # what the engine quarantines (and suspends the match for)
            self.skipped["quarantined: the match state refused a message"] += 1
            if exc.suspend:
                core.suspend(key, channel, str(exc))
            return
        if not triggers:
            return
        m = core.matches[key]
        core.predicted(m, self._probability(m, ahead), triggers)
        core.trade(m)

    def _state(self, m: LiveMatch) -> InplayState:
        return inplay_state(self.core, m)

    def _probability(self, m: LiveMatch, ahead: dict[int, tuple[InplayState, float]] | None) -> float:
        """The model's probability for the match's state now: the one worked out ahead for this point
        (``predicted_ahead``) when it was for this very state, else the model's answer now."""
        state = self._state(m)
        if ahead is not None:
            early = ahead.get(m.points_played)
            if early is not None and early[0] == state:
                return early[1]
        return self.model(state)

    def replay(self, row: dict, prepared: _Prepared | str) -> None:
        """One match through the core: its feed messages (``prepare_match``), or why it is skipped."""
        if isinstance(prepared, str):
            self.skipped[prepared] += 1
            return
        key = prepared.key
        self.matches += 1
        self.points += prepared.points
        self._row = row
        core = self.core
        for at, channel, payload in prepared.schedule:
            if at > self.clock.now():
                self.clock.set(at)
            if channel == "market":
                book = feed_book(payload, self.clock.now())
                core.on_book(key, book)
                core.after_book(key, book)
            else:
                self._match_message(key, channel, payload)
            core.poll()
        core.forget(key)
        self._opportunities.clear()


class _FastReplay(_InplayReplay):
    """``_InplayReplay`` without the messages: the scorer's points go to the core as they are
    (``TradingCore.replayed_point``) and a simulated market update reaches the core only when showing it can
    change something — the paper exchange has an order live (or the core's match is suspended), a decision
    is due on an open book, the market opens or closes. A book left out would only have been kept: the
    exchange changes no order on it and the next book shown replaces it, the risk book knows the market's
    runners from its first book, and no decision is made on it. The clock, the exchange's polls and the
    trading calls are those of the message replay, in the same order."""

    def _to(self, start: datetime, at: float) -> None:
        """The clock to ``at`` seconds after ``start``, as the message replay sets it (never backwards)."""
        moment = start + timedelta(seconds=at)
        if moment > self.clock.now():
            self.clock.set(moment)

    def _show(self, key: str, book: MarketBook) -> None:
        self.core.on_book(key, book)
        self.core.after_book(key, book)

    def replay(self, row: dict, prepared: _Points | _Prepared | str) -> None:
        if not isinstance(prepared, _Points):  # skipped, or its messages to replay (``prepare_points``)
            super().replay(row, prepared)
            return
        key, start, scores, winners = prepared.key, prepared.start, prepared.scores, prepared.winners
        ahead = prepared.ahead.get(self.name)
        self.matches += 1
        self.points += prepared.points
        self._row = row
        core, exchange, market_id = self.core, self.exchange, prepared.market_id
        m = None
        in_play_open = False  # the in-play market as the last update left it
        hidden: tuple[float, MarketStatus, Any] | None = None  # the last update not shown to the core
        for at, event, n in prepared.events:
            if event is _Event.POINT:
                triggers = core.replayed_point(key, winners[n - 1], scores[n - 1])
                if triggers:
                    self._predict(core.matches[key], triggers, prepared, at, in_play_open, hidden, ahead)
                    hidden = None if in_play_open else hidden
            elif event is _Event.SUSPEND or event is _Event.REOPEN:
                quotes = None if event is _Event.SUSPEND else prepared.quotes[n - 1]
                status = (
                    MarketStatus.SUSPENDED
                    if event is _Event.SUSPEND
                    else MarketStatus.CLOSED
                    if quotes is None
                    else MarketStatus.OPEN
                )
                in_play_open = status is MarketStatus.OPEN
                if (
                    status is MarketStatus.CLOSED
                    or not exchange.idle
                    or key in core.suspended
                    or (in_play_open and m is not None and core.decision_due(m))
                ):
                    self._to(start, at)
                    self._show(key, quoted_book(market_id, self.clock.now(), status, quotes))
                    hidden = None
                else:
                    hidden = (at, status, quotes)
            elif event is _Event.OPENING:
                self._to(start, at)
                self._show(key, prepared.market_book(event, self.clock.now()))
                in_play_open = True
            elif event is _Event.START or event is _Event.END:
                self._to(start, at)
                self._match_message(
                    key, "match", prepared.start_message if event is _Event.START else prepared.end_message, ahead
                )
                m = core.matches.get(key)
            else:  # the pre-match market: its real closing odds, open then closed
                self._to(start, at)
                self._show(key, prepared.market_book(event, self.clock.now()))
            if not exchange.idle:
                self._to(start, at)
                core.poll()
        self._to(start, prepared.events[-1][0])  # the last message's time, as the message replay leaves the clock
        core.forget(key)
        self._opportunities.clear()

    def _predict(
        self,
        m: LiveMatch,
        triggers: list,
        prepared: _Points,
        at: float,
        in_play_open: bool,
        hidden: tuple[float, MarketStatus, Any] | None,
        ahead: dict[int, tuple[InplayState, float]] | None,
    ) -> None:
        """The model's probability for the point's state, then a decision if the market is open (the message
        replay's ``_match_message`` after a clean point)."""
        core = self.core
        core.predicted(m, self._probability(m, ahead), triggers)
        if not in_play_open:
            return  # the message replay's ``trade`` finds the market suspended
        start = prepared.start
        self._to(start, at)
        if hidden is not None:  # the open book the market shows now, not shown yet
            h_at, status, quotes = hidden
            core.on_book(m.event_key, quoted_book(prepared.market_id, start + timedelta(seconds=h_at), status, quotes))
        core.trade(m)


@dataclass(frozen=True)
class _Prepared:
    """One match ready to replay: its feed messages in the feed's order."""

    key: str
    points: int
    schedule: list[tuple[datetime, str, Any]]


class _Event(IntEnum):
    """What happens at one moment of a match in the fast replay (one feed message each, ``match_messages``)."""

    PREMATCH_OPEN = 0
    PREMATCH_CLOSED = 1
    START = 2
    OPENING = 3
    SUSPEND = 4
    POINT = 5
    REOPEN = 6
    END = 7


_OPENING_BOOKS = frozenset({_Event.PREMATCH_OPEN, _Event.PREMATCH_CLOSED, _Event.OPENING})
"""The moments whose books ``_Points.market_book`` builds."""

_MARKET_EVENTS = frozenset(
    {_Event.PREMATCH_OPEN, _Event.PREMATCH_CLOSED, _Event.OPENING, _Event.SUSPEND, _Event.REOPEN}
)


@dataclass(frozen=True)
class _Points:
    """One match ready for the fast replay: the scorer's points, and the feed's moments in the feed's order."""

    key: str
    start: datetime
    scores: list[Score]
    winners: list[int]
    events: list[tuple[float, _Event, int]]
    """(seconds from ``start``, what, point number), sorted as ``match_schedule`` sorts the messages."""
    start_message: MatchEvent
    end_message: MatchEvent
    prematch: MarketUpdate | None
    market_id: str
    opening: Quotes
    quotes: list[Quotes | None]
    """The simulated market's quotes after each point (None: closed), made once for every model replayed."""
    ahead: dict[str, dict[int, tuple[InplayState, float]]] = field(default_factory=dict)
    """By model: the states the match's triggers ask a probability for, by points played, with the model's
    answer, worked out ahead by the preparing process (``predicted_ahead``); the replay uses one only for the
    very same state."""

    @property
    def points(self) -> int:
        return len(self.scores)

    def market_book(self, event: _Event, moment: datetime) -> MarketBook:
        """The book of the pre-match market (its real closing odds, open then closed) or of the in-play market's
        opening, as the feed's message at ``moment`` gives it."""
        if event is _Event.OPENING:
            return quoted_book(self.market_id, moment, MarketStatus.OPEN, self.opening)
        assert self.prematch is not None and event in (_Event.PREMATCH_OPEN, _Event.PREMATCH_CLOSED)
        update = self.prematch
        if event is _Event.PREMATCH_CLOSED:
            update = update.model_copy(update={"status": "CLOSED"})
        return feed_book(update, moment)


def _checked_points(row: dict, seen: set[str]) -> tuple[list[Score], list[int], list[float]] | str:
    """The row's points (``points_of``), or why the match is skipped (the reasons of both replays)."""
    key = str(row["event_key"])
    try:
        points = points_of(row)
    except (ScoringError, ValueError, TypeError) as exc:
        return f"skipped: point data rejected ({type(exc).__name__})"
    scores = points[0]
    if not scores:
        return "skipped: no points"
    if _result(row, scores[-1]).winner is None:
        return "skipped: retired without a known winner"
    if key in seen:
        return "skipped: match key replayed already"
    return points


def _refused(key: str, exc: ValueError) -> str:
    log.warning("in-play backtest: match %s skipped, a feed message was rejected: %s", key, exc)
    return f"skipped: feed message rejected ({type(exc).__name__})"


def prepare_match(row: dict, after: datetime, config: InplayBacktestConfig, seen: set[str]) -> _Prepared | str:
    """The match's feed messages, play starting after ``after`` (``match_schedule``), or why it is skipped;
    its key joins ``seen`` (a key seen already is skipped: the engine refuses a second start of a match)."""
    key = str(row["event_key"])
    points = _checked_points(row, seen)
    if isinstance(points, str):
        return points
    scores, _, times = points
    try:
        schedule = match_schedule(row, after, config, (scores, times))
    except ValueError as exc:  # a message the feed's protocol refuses (pydantic's ValidationError is one)
        return _refused(key, exc)
    seen.add(key)
    return _Prepared(key, len(scores), schedule)


def prepare_points(
    row: dict, after: datetime, config: InplayBacktestConfig, seen: set[str]
) -> _Points | _Prepared | str:
    """``prepare_match`` for the fast replay: the points and the moments of the feed's messages, only the
    match's own messages built (its start and end, the closing odds: what the feed's protocol could refuse
    of a row; the point messages are the scorer's scores written out), and the simulated market's quotes, made
    here by the same ``SimulatedMarket`` as the feed's, once for every model replayed. A row whose times put its
    points out of order gets its messages (``prepare_match``)."""
    key = str(row["event_key"])
    points = _checked_points(row, seen)
    if isinstance(points, str):
        return points
    scores, winners, times = points
    try:
        first = Score.start(scores[0].fmt, int(row["first_server"]) - 1 if row["source"] == "slam" else 0)
        start_message = match_event(row, first, "match_start", None, 0.0)
        end_message = match_event(row, scores[-1], "match_end", None, times[-1])
        prematch = closing_message(row)
        market = SimulatedMarket(key, float(row["prematch_p1"]), first, config.market)
        market.suspend(0)  # the suspended market's message, validated once a match as the feed does
    except ValueError as exc:
        return _refused(key, exc)
    opening = market.opening_quotes()
    quotes = [market.quotes_after(score) for score in scores]
    # the moments of ``match_messages`` (start_at 0.0), with its arithmetic, sorted as ``match_schedule`` sorts
    events: list[tuple[float, _Event, int]] = []
    if prematch is not None:
        events += [(0.0 - PREMATCH_LEAD_SECONDS, _Event.PREMATCH_OPEN, 0), (0.0 - 0.002, _Event.PREMATCH_CLOSED, 0)]
    events += [(0.0, _Event.START, 0), (0.0, _Event.OPENING, 0)]
    for n, t in enumerate(times, start=1):
        at = 0.0 + t
        events += [(at - 0.001, _Event.SUSPEND, n), (at, _Event.POINT, n), (at + REOPEN_SECONDS, _Event.REOPEN, n)]
    events.append((0.0 + times[-1] + 0.01, _Event.END, 0))
    events.sort(key=lambda e: (e[0], e[1] not in _MARKET_EVENTS))
    if [n for _, event, n in events if event is _Event.POINT] != list(range(1, len(scores) + 1)):
        # the row's times put points out of order: the feed sends them so, and the engine reads each point's
        # score from its message — a replay of the messages follows what it makes of them
        return prepare_match(row, after, config, seen)
    seen.add(key)
    return _Points(
        key,
        _start(row, after, config),
        scores,
        winners,
        events,
        start_message,
        end_message,
        prematch,
        market.market_id,
        opening,
        quotes,
    )


def _start(row: dict, after: datetime, config: InplayBacktestConfig) -> datetime:
    """When play starts: ``config.gap_seconds`` after ``after`` (the previous match's end) or at the match's
    own date (with the closing odds a minute before), whichever is later."""
    day = utc_day(pd.Timestamp(row["event_date"]))
    return max(day + timedelta(seconds=PREMATCH_LEAD_SECONDS), after + timedelta(seconds=config.gap_seconds))


def match_schedule(
    row: dict,
    after: datetime,
    config: InplayBacktestConfig,
    scored: tuple[list[Score], list[float]] | None = None,
) -> list[tuple[datetime, str, Any]]:
    """The feed messages of one match as (time, channel, message), in the feed's own order (time, then market
    before match, as ``feeds.live.ordering``): play starts ``config.gap_seconds`` after ``after`` (the previous
    match's end) or at its own date, the real closing odds a minute before. ``scored``: the row's ``scores_of``
    when the caller has it already."""
    start = _start(row, after, config)
    messages = sorted(
        match_messages(row, 0.0, config.market, scored=scored), key=lambda s: (s.at, s.channel != "market")
    )
    return [(start + timedelta(seconds=m.at), m.channel, m.payload) for m in messages]


def replay_inplay(rows: pd.DataFrame, model: InplayModel, config: InplayBacktestConfig) -> _InplayReplay:
    """Replay the rows in order through one trading core; the replay keeps its core and exchange (orders)."""
    replays, _ = replay_inplay_models(rows, {"model": model}, config)
    return replays["model"]


_Ready = _Points | _Prepared | str
"""A match prepared for the replay (``prepare_points`` / ``prepare_match``), or why it is skipped."""


def _ended(prepared: _Ready, after: datetime) -> datetime:
    """Where the replay's clock stands after ``prepared``: its last moment (every replay sets the clock to the
    match end and to the closed market, the last two moments), or ``after`` for a skipped match."""
    if isinstance(prepared, _Points):
        return max(after, prepared.start + timedelta(seconds=prepared.events[-1][0]))
    if isinstance(prepared, _Prepared):
        return max(after, prepared.schedule[-1][0]) if prepared.schedule else after
    return after


def predicted_ahead(prepared: _Points, models: Mapping[str, InplayModel], config: InplayBacktestConfig) -> None:
    """Each model's probabilities for the states the match's triggers will ask for (``_Points.ahead``), worked
    out by the trading core's own rules (``on_match``, ``replayed_point``, ``predicted``) on the match's books and
    points. What the core asks depends on the points only — the triggers, the prior and the serve counts, not
    on anything traded — and the replay checks each state anyway."""
    for name, model in models.items():
        clock = ManualClock(prepared.start)
        exchange = PaperExchange(clock, config.policy.exchange, balance=config.policy.bankroll)
        core = TradingCore(config.policy, clock, exchange, market_key=market_event_key, logged=())
        key, found = prepared.key, {}
        for at, event, n in prepared.events:
            if event in _OPENING_BOOKS:  # the books the prior is taken from
                core.on_book(key, prepared.market_book(event, prepared.start + timedelta(seconds=at)))
            elif event is _Event.START or event is _Event.POINT:
                if event is _Event.START:
                    try:
                        triggers = core.on_match(prepared.start_message)
                    except BadMessage:
                        return  # the replay finds the same, and asks nothing
                else:
                    triggers = core.replayed_point(key, prepared.winners[n - 1], prepared.scores[n - 1])
                if triggers:
                    m = core.matches[key]
                    state = inplay_state(core, m)
                    probability = model(state)
                    found[m.points_played] = (state, probability)
                    core.predicted(m, probability, triggers)
        prepared.ahead[name] = found


def prepared_matches(
    rows: Iterable[dict],
    config: InplayBacktestConfig,
    after: datetime = _EPOCH,
    models: Mapping[str, InplayModel] | None = None,
) -> Iterable[tuple[dict, _Ready, float]]:
    """Each row prepared in order, play starting after the previous match ended: (row, prepared, seconds taken).
    The preparation depends on the row, the market and the start only, not on what is traded. ``models``: their
    probabilities worked out ahead too (``predicted_ahead``)."""
    prepare = prepare_match if config.messages else prepare_points
    seen: set[str] = set()
    for row in rows:
        started = time.perf_counter()
        prepared = prepare(row, after, config, seen)
        if models and isinstance(prepared, _Points):
            predicted_ahead(prepared, models, config)
        after = _ended(prepared, after)
        yield row, prepared, time.perf_counter() - started


PREPARE_CHUNK = 64
"""Matches the preparing process sends at a time."""


def _prepared_in_parallel(
    rows: list[dict], config: InplayBacktestConfig, models: Mapping[str, InplayModel]
) -> Iterable[tuple[dict, _Ready, float]]:
    """``prepared_matches`` computed in a second process (``training.replay_worker``) while this one replays: the
    two CPU halves of the backtest on two cores. The rows come back in order, prepared by the same code, with
    the models' probabilities worked out ahead (models that cannot be pickled are asked by the replay), so
    the replay is the same. A plain child process (no ``multiprocessing``): nothing of the caller's main module
    is imported again, whatever script or Dagster step calls this."""
    sendable = {}
    for name, model in models.items():
        if getattr(model, "__module__", None) == "__main__" or type(model).__module__ == "__main__":
            continue  # defined in the caller's script, which the other process does not run: asked here
        try:
            pickle.dumps(model)
        except Exception:  # noqa: BLE001 - e.g. a closure, a native handle: the replay asks it itself
            continue
        sendable[name] = model
    env = dict(os.environ)
    # whatever this process imports, the other finds (a model's module included)
    path = [str(Path(__file__).resolve().parents[1]), *(p for p in sys.path if p and Path(p).exists())]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.replay_worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        try:
            pickle.dump((rows, config, sendable, PREPARE_CHUNK), proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.close()
        except BrokenPipeError:
            raise RuntimeError(f"the in-play replay's preparing process ended early (exit {proc.wait()})") from None
        while True:
            try:
                chunk = pickle.load(proc.stdout)
            except EOFError:
                raise RuntimeError(f"the in-play replay's preparing process ended early (exit {proc.wait()})") from None
            if chunk is None:
                break
            if isinstance(chunk, BaseException):
                raise chunk
            yield from chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def replay_inplay_models(
    rows: pd.DataFrame, models: Mapping[str, InplayModel], config: InplayBacktestConfig
) -> tuple[dict[str, _InplayReplay], dict[str, float]]:
    """Each model through its own trading core on the same rows and market, match by match, each match's feed
    messages built once for all (they depend on the row, the market and the start — the same for every
    model: the matches follow one another on the same clock whatever is traded). With
    ``config.parallel_from`` rows or more, a second process prepares the matches while this one replays.
    Returns the replays and each model's seconds: the preparation (what it would have cost alone; in
    parallel, the time spent waiting for it) plus its own replay."""
    kind = _InplayReplay if config.messages else _FastReplay
    replays = {name: kind(model, config, name) for name, model in models.items()}
    seconds = dict.fromkeys(replays, 0.0)
    if not replays:
        return replays, seconds
    records = rows.to_dict("records")
    parallel = 0 < config.parallel_from <= len(records)
    matches = _prepared_in_parallel(records, config, models) if parallel else prepared_matches(records, config)
    clock = next(iter(replays.values())).clock  # every replay's clock is at the same time between matches
    after = clock.now()
    waited = time.perf_counter()
    for row, prepared, made in matches:
        made = time.perf_counter() - waited if parallel else made
        for name, replay in replays.items():
            started = time.perf_counter()
            replay.replay(row, prepared)
            seconds[name] += made + time.perf_counter() - started
        after = _ended(prepared, after)
        if clock.now() != after:
            raise RuntimeError(f"in-play replay: the clock is at {clock.now()} after {row['event_key']}, not {after}")
        waited = time.perf_counter()
    return replays, seconds


def inplay_rows(
    catalog: pd.DataFrame, sources: Sequence[str] = ("pbp", "slam"), limit: int | None = None
) -> pd.DataFrame:
    """The catalog matches of ``sources`` in date order; ``limit`` keeps that many, evenly spaced
    (all when None)."""
    rows = catalog[catalog["source"].isin(list(sources))].sort_values(["event_date", "event_key"], kind="mergesort")
    if limit is not None and limit < len(rows):
        rows = rows.iloc[np.linspace(0, len(rows) - 1, max(limit, 0)).round().astype(int)]
    return rows


def run_inplay(
    catalog: pd.DataFrame,
    model: InplayModel = markov_serve_updates,
    name: str = "markov-serve-updates",
    config: InplayBacktestConfig = InplayBacktestConfig(),
    limit: int | None = None,
    sources: Sequence[str] = ("pbp", "slam"),
) -> InplayBacktest:
    """Replay catalog matches (``feeds.live.catalog`` columns) in date order against the SIMULATED
    in-play market (:func:`inplay_rows`)."""
    return run_inplay_models(catalog, {name: model}, config, limit, sources)[name]


def run_inplay_models(
    catalog: pd.DataFrame,
    models: Mapping[str, InplayModel],
    config: InplayBacktestConfig = InplayBacktestConfig(),
    limit: int | None = None,
    sources: Sequence[str] = ("pbp", "slam"),
) -> dict[str, InplayBacktest]:
    """``run_inplay`` of several models on the same market, the feed messages built once
    (:func:`replay_inplay_models`)."""
    replays, seconds = replay_inplay_models(inplay_rows(catalog, sources, limit), models, config)
    return {name: backtest_result(replay, config, seconds[name]) for name, replay in replays.items()}


def backtest_result(
    replay: _InplayReplay, config: InplayBacktestConfig, seconds: float, label: str = SIMULATED
) -> InplayBacktest:
    """What a replay did, as the backtest reports it: its ledger (bets, markets, counts) and figures."""
    counts = replay.core.counts
    return InplayBacktest(
        replay.name,
        replay.recorder.ledger(config.policy.bankroll, replay.counts),
        replay.matches,
        replay.points,
        counts.predictions,
        counts.decisions,
        counts.orders,
        seconds,
        label,
    )
