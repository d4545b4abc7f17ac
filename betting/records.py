"""The records of trading: order requests, orders, fills, settled bets, P&L, settlements, and the
event kinds of the engine's event log. All frozen; all with ``to_dict`` / ``from_dict``.

Sizes are the backer's stake (Betfair's convention, also for a lay order, whose liability is
``(price - 1) * size``); money is recorded to the penny (see ``betting.money``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from betting.codec import JsonRecord
from betting.money import round_money


class Side(StrEnum):
    """Back: the selection wins. Lay: the selection does not win."""

    BACK = "BACK"
    LAY = "LAY"

    @property
    def opposite(self) -> Side:
        """The side that hedges this one."""
        return Side.LAY if self is Side.BACK else Side.BACK


class Persistence(StrEnum):
    """What happens to the unmatched part of an order when the market suspends or turns in-play."""

    LAPSE = "LAPSE"
    """Cancelled by the exchange at suspension (and when the market turns in-play)."""
    PERSIST = "PERSIST"
    """Stays on the book through suspensions and the turn in-play."""


class OrderStatus(StrEnum):
    """Betfair's execution status; how an order ended is in its sizes (matched/cancelled/lapsed)."""

    PENDING = "PENDING"
    """Accepted but still in the in-play bet delay: not on the book yet."""
    EXECUTABLE = "EXECUTABLE"
    """On the book with an unmatched remainder."""
    EXECUTION_COMPLETE = "EXECUTION_COMPLETE"
    """Nothing left unmatched (matched, cancelled and/or lapsed)."""
    REJECTED = "REJECTED"
    """Refused by the exchange (see ``error_code``); never on the book."""


class ExchangeError(StrEnum):
    """Why an exchange refused an order."""

    INVALID_ODDS = "INVALID_ODDS"
    INVALID_BET_SIZE = "INVALID_BET_SIZE"
    INVALID_MIN_FILL_SIZE = "INVALID_MIN_FILL_SIZE"
    MARKET_NOT_FOUND = "MARKET_NOT_FOUND"
    RUNNER_NOT_FOUND = "RUNNER_NOT_FOUND"
    MARKET_SUSPENDED = "MARKET_SUSPENDED"
    MARKET_CLOSED = "MARKET_CLOSED"
    TRANSACTION_LIMIT = "TRANSACTION_LIMIT"
    """Not sent: the venue's transactions per hour would go over the limit set (``adapters.betfair``)."""


class LapseReason(StrEnum):
    """Why the exchange (not the customer) cancelled an unmatched size."""

    MARKET_SUSPENDED = "MARKET_SUSPENDED"
    """A LAPSE order's remainder at a suspension."""
    TURNED_IN_PLAY = "TURNED_IN_PLAY"
    """A LAPSE order's remainder when the market turned in-play."""
    SUSPENDED_DURING_DELAY = "SUSPENDED_DURING_DELAY"
    """The market suspended while the order was in its bet delay: it never reached the book."""
    MARKET_CLOSED = "MARKET_CLOSED"
    """The market closed or was settled with the order unmatched."""
    FILL_OR_KILL = "FILL_OR_KILL"
    """A fill-or-kill order could not fill its minimum, or its unfilled rest."""
    WORKER_LOST = "WORKER_LOST"
    """Paper trading with several engine workers: the worker whose paper book held the order died, and the
    book with it; the worker taking its match over keeps what had matched, the unmatched remainder is gone."""


class BetResult(StrEnum):
    """A settled bet from the bettor's side: a winning lay is WON."""

    WON = "WON"
    LOST = "LOST"
    VOID = "VOID"


class EventKind(StrEnum):
    """Kinds of entries in the engine's durable event log (one per step of the message flow)."""

    FEED_MESSAGE = "FEED_MESSAGE"
    QUARANTINED = "QUARANTINED"
    MARKET_UPDATE = "MARKET_UPDATE"
    MARKET_SUSPENDED = "MARKET_SUSPENDED"
    PREDICTION = "PREDICTION"
    OPPORTUNITY = "OPPORTUNITY"
    ORDER_REJECTED = "ORDER_REJECTED"
    ORDER_PLACED = "ORDER_PLACED"
    ORDER_FILLED = "ORDER_FILLED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    ORDER_LAPSED = "ORDER_LAPSED"
    MATCH_FINISHED = "MATCH_FINISHED"
    BET_SETTLED = "BET_SETTLED"
    MARKET_SETTLED = "MARKET_SETTLED"
    PREDICTION_FAILED = "PREDICTION_FAILED"
    MATCH_SUSPENDED = "MATCH_SUSPENDED"
    """A match's state can no longer be trusted: no trading on it until a later message resynchronises it."""
    MATCH_RESUMED = "MATCH_RESUMED"
    GAP_SKIPPED = "GAP_SKIPPED"
    """Feed messages that never arrived after the bounded re-requests, skipped."""
    ENGINE_INPUT = "ENGINE_INPUT"
    """Something from outside the feed the engine acted on (operator controls, control-plane order requests,
    the kill switch's cancellations), with the feed position it took effect at: a deterministic replay
    applies it at the same position."""
    RECOVERED = "RECOVERED"
    """The engine finished recovering after a start: how, from where, and whether the replay matched."""
    MATCH_TAKEN_OVER = "MATCH_TAKEN_OVER"
    """Several engine workers: this worker took the match over from one whose lease ran out (its orders adopted)."""


def customer_order_ref(*parts: object) -> str:
    """A deterministic client reference (32 hex chars, Betfair's limit) for one trading decision.

    Derive it from what identifies the decision (match id, feed sequence number, selection, side),
    never from a counter or the clock: after a crash the engine replays the same message, makes the
    same decision, gets the same reference, and the exchange returns the existing order.
    """
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class OrderRequest(JsonRecord):
    """A limit order the engine wants to send (checked by ``risk.check`` before it leaves)."""

    customer_order_ref: str
    """Unique client reference; resubmitting it returns the existing order (duplicate protection)."""
    market_id: str
    selection: str
    side: Side
    price: float
    """Limit price; must be on the ladder."""
    size: float
    """Backer's stake, to the penny."""
    persistence: Persistence = Persistence.LAPSE
    fill_or_kill: bool = False
    """Match now (at most ``size``) and lapse the rest; never rest on the book."""
    min_fill_size: float | None = None
    """With ``fill_or_kill``: the least acceptable fill (None = the whole size)."""
    edge: float | None = None
    """Edge after commission that motivated the order (risk context; exchanges ignore it)."""
    confidence: float | None = None
    """Model confidence behind the order (risk context; exchanges ignore it)."""


@dataclass(frozen=True)
class Order(JsonRecord):
    """The exchange's view of one order at one moment (a new snapshot replaces the old one)."""

    customer_order_ref: str
    bet_id: str | None
    """Exchange id; None when rejected."""
    market_id: str
    selection: str
    side: Side
    price: float
    size: float
    persistence: Persistence
    status: OrderStatus
    placed_at: datetime
    """When the request reached the exchange (event time)."""
    updated_at: datetime
    fill_or_kill: bool = False
    min_fill_size: float | None = None
    bet_delay_seconds: float = 0.0
    """In-play delay applied: the order reaches the book at ``placed_at`` + this."""
    size_matched: float = 0.0
    average_price_matched: float | None = None
    size_cancelled: float = 0.0
    """Unmatched size cancelled by the customer."""
    size_lapsed: float = 0.0
    """Unmatched size cancelled by the exchange (see ``lapse_reason``)."""
    error_code: ExchangeError | None = None
    lapse_reason: LapseReason | None = None
    settled: bool = False
    """The market of this order has been settled (its matched part is in a ``Settlement``)."""

    def evolve(self, **changes: Any) -> Order:
        """This order with ``changes``: what ``dataclasses.replace`` gives (an unknown field is a TypeError),
        without running ``__init__`` field by field again — ``Order`` validates nothing there, and the paper
        exchange makes a new snapshot at every order event (the backtests' hottest allocation)."""
        if not changes.keys() <= _ORDER_FIELDS:
            raise TypeError(f"Order has no field(s) {sorted(changes.keys() - _ORDER_FIELDS)}")
        new = object.__new__(Order)
        state = new.__dict__
        state.update(self.__dict__)
        state.update(changes)
        return new

    @property
    def is_live(self) -> bool:
        """Still able to match (in the bet delay or on the book)."""
        return self.status in (OrderStatus.PENDING, OrderStatus.EXECUTABLE)

    @property
    def size_remaining(self) -> float:
        """Unmatched size still able to match (0 once the order is complete or rejected)."""
        if not self.is_live:
            return 0.0
        return round_money(self.size - self.size_matched - self.size_cancelled - self.size_lapsed)

    @classmethod
    def from_request(cls, request: OrderRequest, **fields: Any) -> Order:
        """An order snapshot carrying the request's terms (the remaining fields as given)."""
        return cls(
            customer_order_ref=request.customer_order_ref,
            market_id=request.market_id,
            selection=request.selection,
            side=request.side,
            price=request.price,
            size=request.size,
            persistence=request.persistence,
            fill_or_kill=request.fill_or_kill,
            min_fill_size=request.min_fill_size,
            **fields,
        )

    def same_terms(self, request: OrderRequest) -> bool:
        """True when the request asks for exactly this order (a genuine resubmission)."""
        return (
            self.market_id == request.market_id
            and self.selection == request.selection
            and self.side == request.side
            and self.price == request.price
            and self.size == request.size
            and self.persistence == request.persistence
            and self.fill_or_kill == request.fill_or_kill
            and self.min_fill_size == request.min_fill_size
        )


_ORDER_FIELDS = frozenset(f.name for f in fields(Order))


@dataclass(frozen=True)
class Fill(JsonRecord):
    """One match of an order at one price."""

    fill_id: str
    customer_order_ref: str
    bet_id: str
    market_id: str
    selection: str
    side: Side
    price: float
    size: float
    matched_at: datetime
    crossed: bool
    """True: matched on arrival against visible prices; False: a resting order reached by traded volume."""


@dataclass(frozen=True)
class Bet(JsonRecord):
    """The matched part of one order, settled."""

    customer_order_ref: str
    bet_id: str
    market_id: str
    selection: str
    side: Side
    size_matched: float
    average_price_matched: float
    result: BetResult
    profit: float
    """Before commission (commission is charged per market, on net winnings)."""


@dataclass(frozen=True)
class PnL(JsonRecord):
    """Profit and loss of one market, and what it did to the bankroll."""

    market_id: str
    gross_profit: float
    """Sum of the bets' profits."""
    commission: float
    """Rate x gross profit when the market is won overall, else 0."""
    net_profit: float
    bankroll_before: float
    bankroll_after: float
    settled_at: datetime


@dataclass(frozen=True)
class Settlement(JsonRecord):
    """How a market was settled: the match outcome, every bet, and the market's P&L."""

    market_id: str
    outcome: str
    """``features.matches`` outcome: completed, retired, defaulted, walkover, unfinished, unknown."""
    sets_completed: int
    winner: str | None
    """The selection that advanced; None when the market is void."""
    void: bool
    bets: tuple[Bet, ...]
    pnl: PnL


@dataclass(frozen=True)
class LedgerEvent(JsonRecord):
    """One entry of the event log: what happened, when (event time), and its record as a dict."""

    kind: EventKind
    at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
