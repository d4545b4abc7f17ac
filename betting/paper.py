"""``PaperExchange``: a simulated Betfair exchange behind the ``BaseExchange`` port.

Rules modelled (EXCHANGE.md):

- *Validation*: the price must be on the ladder (INVALID_ODDS); the size a positive penny amount of
  at least ``min_stake``, or smaller when the payout (size x price) reaches ``min_payout``
  (INVALID_BET_SIZE); the market must be known and OPEN, the runner in it.
- *Bet delay*: in-play orders wait ``in_play_delay_seconds`` of *clock* time (PENDING) before they
  reach the book; they are matched against the book as it stands when the delay ends (the last
  update received before that moment). Time only comes from the injected clock: in a replay the
  driver moves the clock to each message's event time, and due orders are processed on the next
  ``on_market_book`` or ``poll``. An order in its delay cannot be cancelled (on Betfair, placement
  only returns after the delay).
- *Suspension*: orders are rejected while SUSPENDED; at a suspension the unmatched remainders of
  LAPSE orders are cancelled (lapsed), PERSIST orders stay, and orders still in their bet delay
  lapse (they never reach the book). LAPSE remainders also lapse when a market turns in-play.
  CLOSED (and settlement) lapses every unmatched remainder.
- *Crossing*: an order that crosses walks the visible opposite prices up to its limit, matching
  at each visible price (partial fills are normal); what it takes is removed from the visible book
  until the next update replaces it (the feed does not know about us).
- *Queue*: the unmatched rest of a crossing order rests at its limit price behind the size already
  there (the visible same-side volume at that price, plus our own earlier orders at that price).
  ``MarketBook.traded_volume`` is cumulative per price; the exchange diffs consecutive books, and
  volume traded at the order's price or better first consumes the queue ahead, then fills the
  order (at its limit price). When the visible volume at the price drops below the queue ahead,
  the queue shrinks to it (those ahead must have cancelled). Resting orders fill only this way.
- *Fill-or-kill*: matches at once what it can up to its size if that reaches ``min_fill_size``
  (the whole size when not given), lapses the rest; never rests.
- *Duplicate protection*: placing a reference already used returns the existing order. The
  exchange can be rebuilt from persisted orders (``orders=``); resting orders then rejoin the back
  of their queue at the next market update (conservative), pending ones keep their delay.
- *Settlement*: ``betting.settlement`` with the configured commission on net market winnings; the
  paper account balance is updated.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypedDict, Unpack

from betting.clock import Clock, require_aware
from betting.exchange import BaseExchange, OrderUpdate, UnknownOrder
from betting.ladder import canonical_price, is_valid_price
from betting.market import MarketBook, MarketStatus
from betting.matching import advance_queue, fillable, take, traded_through
from betting.money import EPSILON, is_penny_amount, round_money
from betting.records import (
    EventKind,
    ExchangeError,
    Fill,
    LapseReason,
    Order,
    OrderRequest,
    OrderStatus,
    Persistence,
    Settlement,
    Side,
)
from betting.settlement import MatchResult, SettlementConfig, settle_market


class _OrderChanges(TypedDict, total=False):
    """The fields of an ``Order`` the paper exchange changes after placing it (``PaperExchange._update``)."""

    status: OrderStatus
    size_matched: float
    average_price_matched: float | None
    size_cancelled: float
    size_lapsed: float
    lapse_reason: LapseReason | None
    settled: bool


@dataclass(frozen=True)
class PaperExchangeConfig:
    """Venue rules of the paper exchange (Betfair defaults for GBP tennis markets)."""

    commission: float = 0.05
    """Commission on net winnings per market at settlement."""
    min_stake: float = 1.00
    """Minimum order size."""
    min_payout: float | None = 10.0
    """A size below ``min_stake`` is still accepted when size x price reaches this (None = never)."""
    in_play_delay_seconds: float = 3.0
    """Bet delay of in-play orders (tennis: 1-5 s), in clock seconds."""
    pre_play_delay_seconds: float = 0.0
    """Bet delay before the market turns in-play (0 on Betfair)."""
    traded_volume_counts_both_sides: bool = False
    """True when the feed's traded volume counts each match twice (backer's and layer's side, as some
    Betfair tools assume); it is then halved before it moves queues."""
    settlement: SettlementConfig = field(default_factory=SettlementConfig)
    """Void rules of settlement."""


@dataclass
class _MarketState:
    book: MarketBook
    to_back: dict[str, list[list[float]]]
    """Visible layers' offers per runner (best first), minus what our orders took from this book."""
    to_lay: dict[str, list[list[float]]]
    traded: dict[str, dict[float, float]]
    """Cumulative traded volume per runner and price, as of ``book``."""

    @classmethod
    def of(cls, book: MarketBook) -> _MarketState:
        return cls(
            book=book,
            to_back={r.selection: [[lv.price, lv.size] for lv in r.available_to_back] for r in book.runners},
            to_lay={r.selection: [[lv.price, lv.size] for lv in r.available_to_lay] for r in book.runners},
            traded={r.selection: {lv.price: lv.size for lv in r.traded_volume} for r in book.runners},
        )

    def taker_levels(self, side: Side, selection: str) -> list[list[float]]:
        """Offers an arriving order of ``side`` can match (a back takes the layers' offers)."""
        return (self.to_back if side is Side.BACK else self.to_lay).setdefault(selection, [])

    def queue_volume(self, side: Side, selection: str, price: float) -> float:
        """Visible size waiting at ``price`` on the same side as a resting order of ``side``."""
        runner = self.book.runner(selection)
        if runner is None:
            return 0.0
        levels = runner.available_to_lay if side is Side.BACK else runner.available_to_back
        return sum(lv.size for lv in levels if lv.price == price)


@dataclass
class _Resting:
    seq: int
    ahead: float | None
    """Size ahead in the queue; None = not known yet (rebuilt order), set at the next market update."""


class PaperExchange(BaseExchange):
    """A simulated Betfair exchange driven by market updates and an injected clock."""

    def __init__(
        self,
        clock: Clock,
        config: PaperExchangeConfig | None = None,
        *,
        balance: float = 0.0,
        orders: Iterable[Order] = (),
    ) -> None:
        self._clock = clock
        self.config = config or PaperExchangeConfig()
        self._balance = round_money(balance)
        self._orders: dict[str, Order] = {}
        self._by_market: dict[str, dict[str, None]] = {}
        """market id -> references of its orders, in placement order (reads stay per market however many
        markets a long session or a backtest has seen)."""
        self._markets: dict[str, _MarketState] = {}
        self._pending: dict[str, datetime] = {}
        self._resting: dict[str, _Resting] = {}
        self._settled_markets: set[str] = set()
        self._outbox: list[OrderUpdate] = []
        self._seq = 0
        self._next_bet = 1
        for order in sorted(orders, key=lambda o: o.placed_at):
            self._restore(order)

    # --- restart ----------------------------------------------------------------------------
    def _restore(self, order: Order) -> None:
        ref = order.customer_order_ref
        self._add(order)
        if order.bet_id is not None and (m := re.fullmatch(r"P(\d+)", order.bet_id)):
            self._next_bet = max(self._next_bet, int(m.group(1)) + 1)
        if order.settled:
            self._settled_markets.add(order.market_id)
        elif order.status is OrderStatus.PENDING:
            self._pending[ref] = order.placed_at + timedelta(seconds=order.bet_delay_seconds)
        elif order.status is OrderStatus.EXECUTABLE:
            self._seq += 1
            self._resting[ref] = _Resting(seq=self._seq, ahead=None)

    def adopt(self, orders: Iterable[Order]) -> None:
        """Orders another engine worker placed, on a match this one took over after that worker died. Its paper
        book died with it, so what had matched is kept and an unmatched remainder lapses (``WORKER_LOST``): a
        remainder can never come back to life with more exposure than the dead worker last published. The
        lapses come out of the next ``poll``. Orders already known are left as they are."""
        now = self._clock.now()
        for order in sorted(orders, key=lambda o: o.placed_at):
            ref = order.customer_order_ref
            if ref in self._orders:
                continue
            self._restore(order)
            if order.is_live:
                self._lapse(ref, LapseReason.WORKER_LOST, now)

    def release(self, market_ids: Iterable[str]) -> list[Order]:
        """Orders of markets another engine worker trades now (it took their match over while this one was
        stalled or cut off, and adopted them): forgotten here, without an update - they are the other worker's.
        Returns them."""
        gone: list[Order] = []
        for market_id in market_ids:
            for ref in self._by_market.pop(market_id, {}):
                gone.append(self._orders.pop(ref))
                self._pending.pop(ref, None)
                self._resting.pop(ref, None)
        refs = {o.customer_order_ref for o in gone}
        self._outbox = [u for u in self._outbox if u.order.customer_order_ref not in refs]
        return gone

    # --- reading ----------------------------------------------------------------------------
    @property
    def balance(self) -> float:
        """Paper account balance: starting balance plus settled net P&L."""
        return self._balance

    def order(self, customer_order_ref: str) -> Order | None:
        """The current state of an order (None if never placed)."""
        return self._orders.get(customer_order_ref)

    def orders(self, market_id: str | None = None) -> tuple[Order, ...]:
        """Every order, of one market or all, in placement order."""
        if market_id is None:
            return tuple(self._orders.values())
        return tuple(self._orders[ref] for ref in self._by_market.get(market_id, ()))

    def _add(self, order: Order) -> None:
        self._orders[order.customer_order_ref] = order
        self._by_market.setdefault(order.market_id, {})[order.customer_order_ref] = None

    @property
    def idle(self) -> bool:
        """No order in its bet delay or resting and no update waiting: a market update would only be kept
        (``on_market_book`` changes no order) and ``poll`` would return nothing."""
        return not (self._pending or self._resting or self._outbox)

    def market_book(self, market_id: str) -> MarketBook | None:
        """The last market update received for the market."""
        state = self._markets.get(market_id)
        return state.book if state else None

    def queue_ahead(self, customer_order_ref: str) -> float | None:
        """Size ahead of a resting order in its queue (None when not resting or not yet known)."""
        resting = self._resting.get(customer_order_ref)
        return resting.ahead if resting else None

    # --- orders -----------------------------------------------------------------------------
    def place(self, request: OrderRequest) -> Order:
        """Send a limit order; a reference already used returns the existing order (no second bet)."""
        existing = self._orders.get(request.customer_order_ref)
        if existing is not None:
            return existing
        now = require_aware(self._clock.now())
        error = self._validate(request)
        if error is not None:
            rejected = Order.from_request(
                request, bet_id=None, status=OrderStatus.REJECTED, placed_at=now, updated_at=now, error_code=error
            )
            self._add(rejected)
            self._emit(EventKind.ORDER_REJECTED, rejected, now)
            return rejected
        state = self._markets[request.market_id]
        delay = self.config.in_play_delay_seconds if state.book.in_play else self.config.pre_play_delay_seconds
        order = Order.from_request(
            dataclasses.replace(request, price=canonical_price(request.price)),
            bet_id=f"P{self._next_bet:09d}",
            status=OrderStatus.PENDING,
            placed_at=now,
            updated_at=now,
            bet_delay_seconds=delay,
        )
        self._next_bet += 1
        self._add(order)
        self._emit(EventKind.ORDER_PLACED, order, now)
        if delay > 0.0:
            self._pending[order.customer_order_ref] = now + timedelta(seconds=delay)
        else:
            self._activate(order.customer_order_ref, now)
        return self._orders[order.customer_order_ref]

    def _validate(self, request: OrderRequest) -> ExchangeError | None:
        if not is_valid_price(request.price):
            return ExchangeError.INVALID_ODDS
        size = request.size
        if not (size > 0.0 and is_penny_amount(size)):
            return ExchangeError.INVALID_BET_SIZE
        if size < self.config.min_stake - EPSILON:
            payout_ok = self.config.min_payout is not None and size * request.price >= self.config.min_payout - EPSILON
            if not payout_ok:
                return ExchangeError.INVALID_BET_SIZE
        if request.min_fill_size is not None:
            m = request.min_fill_size
            if not request.fill_or_kill or not (0.0 < m <= size + EPSILON and is_penny_amount(m)):
                return ExchangeError.INVALID_MIN_FILL_SIZE
        if request.market_id in self._settled_markets:
            return ExchangeError.MARKET_CLOSED
        state = self._markets.get(request.market_id)
        if state is None:
            return ExchangeError.MARKET_NOT_FOUND
        if state.book.status is MarketStatus.CLOSED:
            return ExchangeError.MARKET_CLOSED
        if state.book.status is MarketStatus.SUSPENDED:
            return ExchangeError.MARKET_SUSPENDED
        if state.book.runner(request.selection) is None:
            return ExchangeError.RUNNER_NOT_FOUND
        return None

    def cancel(self, customer_order_ref: str) -> Order:
        """Cancel the unmatched remainder of a resting order (a pending or finished order is returned as is)."""
        order = self._orders.get(customer_order_ref)
        if order is None:
            raise UnknownOrder(customer_order_ref)
        if order.status is not OrderStatus.EXECUTABLE:
            return order
        now = self._clock.now()
        remaining = order.size_remaining
        self._leave_queue(customer_order_ref, remaining)
        order = self._update(
            order,
            now,
            size_cancelled=round_money(order.size_cancelled + remaining),
            status=OrderStatus.EXECUTION_COMPLETE,
        )
        self._emit(EventKind.ORDER_CANCELLED, order, now)
        return order

    # --- market data and time ---------------------------------------------------------------
    def on_market_book(self, book: MarketBook) -> list[OrderUpdate]:
        """Apply one market update: due delayed orders first (they met the previous book), then traded
        volume to the queues, then suspension/close/in-play lapses."""
        now = require_aware(self._clock.now())
        self._activate_due(now)
        previous = self._markets.get(book.market_id)
        state = _MarketState.of(book)
        if previous is not None:
            self._fill_from_traded(book.market_id, previous, state, now)
        self._markets[book.market_id] = state
        self._requeue(book.market_id, state)
        self._apply_status(book, previous, now)
        return self._drain()

    def poll(self) -> list[OrderUpdate]:
        """Activate orders whose bet delay is over; returns the order updates since the last call."""
        self._activate_due(require_aware(self._clock.now()))
        return self._drain()

    def _activate_due(self, now: datetime) -> None:
        due = sorted((at, ref) for ref, at in self._pending.items() if at <= now)
        for _, ref in due:
            if self._orders[ref].market_id in self._markets:
                self._activate(ref, now)

    def _activate(self, ref: str, now: datetime) -> None:
        """The order reaches the book: match what crosses, rest the rest (or kill it)."""
        self._pending.pop(ref, None)
        order = self._orders[ref]
        state = self._markets[order.market_id]
        if state.book.status is not MarketStatus.OPEN:
            reason = (
                LapseReason.MARKET_CLOSED
                if state.book.status is MarketStatus.CLOSED
                else LapseReason.SUSPENDED_DURING_DELAY
            )
            self._lapse(ref, reason, now)
            return
        order = self._update(order, now, status=OrderStatus.EXECUTABLE)
        levels = state.taker_levels(order.side, order.selection)
        if order.fill_or_kill:
            available = fillable(order.side, order.price, levels)
            needed = order.min_fill_size if order.min_fill_size is not None else order.size
            if available + EPSILON >= needed:
                for price, size in take(order.side, order.price, levels, min(order.size, available)):
                    self._fill(ref, price, size, now, crossed=True)
            if self._orders[ref].size_remaining > 0.0:
                self._lapse(ref, LapseReason.FILL_OR_KILL, now)
            return
        for price, size in take(order.side, order.price, levels, order.size):
            self._fill(ref, price, size, now, crossed=True)
        order = self._orders[ref]
        if order.size_remaining > 0.0:
            self._seq += 1
            ahead = state.queue_volume(order.side, order.selection, order.price) + self._own_ahead(ref, self._seq)
            self._resting[ref] = _Resting(seq=self._seq, ahead=round_money(ahead))

    def _fill_from_traded(self, market_id: str, previous: _MarketState, state: _MarketState, now: datetime) -> None:
        resting_here = sorted(self._resting_in(market_id), key=lambda item: item[1].seq)
        if not resting_here:  # nothing of ours rests on this market: the traded volume moves no queue
            return
        scale = 0.5 if self.config.traded_volume_counts_both_sides else 1.0
        deltas: dict[str, dict[float, float]] = {}
        for selection, cumulative in state.traded.items():
            before = previous.traded.get(selection, {})
            # cumulative volume never falls; if the feed restarted its counts, take the new level as base
            deltas[selection] = {
                p: (v - before.get(p, 0.0)) * scale for p, v in cumulative.items() if v - before.get(p, 0.0) > EPSILON
            }
        for ref, resting in resting_here:
            order = self._orders[ref]
            if resting.ahead is None:
                continue
            traded = traded_through(order.side, order.price, deltas.get(order.selection, {}))
            resting.ahead, matched = advance_queue(resting.ahead, traded, order.size_remaining)
            if matched > 0.0:
                self._fill(ref, order.price, matched, now, crossed=False)

    def _requeue(self, market_id: str, state: _MarketState) -> None:
        """Queues never exceed what is visible at their price plus our own orders ahead."""
        for ref, resting in self._resting_in(market_id):
            order = self._orders[ref]
            cap = state.queue_volume(order.side, order.selection, order.price) + self._own_ahead(ref, resting.seq)
            resting.ahead = round_money(cap if resting.ahead is None else min(resting.ahead, cap))

    def _apply_status(self, book: MarketBook, previous: _MarketState | None, now: datetime) -> None:
        market_refs = [o.customer_order_ref for o in self.orders(book.market_id) if o.is_live]
        if book.status is MarketStatus.CLOSED:
            for ref in market_refs:
                self._lapse(ref, LapseReason.MARKET_CLOSED, now)
            return
        if book.status is MarketStatus.SUSPENDED:
            for ref in market_refs:
                order = self._orders[ref]
                if order.status is OrderStatus.PENDING:
                    self._lapse(ref, LapseReason.SUSPENDED_DURING_DELAY, now)
                elif order.persistence is Persistence.LAPSE:
                    self._lapse(ref, LapseReason.MARKET_SUSPENDED, now)
            return
        if book.in_play and previous is not None and not previous.book.in_play:
            for ref in market_refs:
                order = self._orders[ref]
                if order.status is OrderStatus.EXECUTABLE and order.persistence is Persistence.LAPSE:
                    self._lapse(ref, LapseReason.TURNED_IN_PLAY, now)

    # --- settlement -------------------------------------------------------------------------
    def settle_market(self, market_id: str, result: MatchResult) -> Settlement:
        """Settle a finished market: unmatched orders lapse, matched bets are paid, commission charged."""
        if market_id in self._settled_markets:
            raise ValueError(f"market {market_id} is already settled")
        now = require_aware(self._clock.now())
        for order in self.orders(market_id):
            if order.is_live:
                self._lapse(order.customer_order_ref, LapseReason.MARKET_CLOSED, now)
        settlement = settle_market(
            market_id,
            self.orders(market_id),
            result,
            commission=self.config.commission,
            bankroll=self._balance,
            settled_at=now,
            config=self.config.settlement,
        )
        self._balance = settlement.pnl.bankroll_after
        self._settled_markets.add(market_id)
        for order in self.orders(market_id):
            settled = self._update(order, now, settled=True)
            self._emit(EventKind.BET_SETTLED, settled, now)
        return settlement

    # --- bookkeeping ------------------------------------------------------------------------
    def _resting_in(self, market_id: str) -> list[tuple[str, _Resting]]:
        return [(ref, r) for ref, r in self._resting.items() if self._orders[ref].market_id == market_id]

    def _same_queue(self, a: Order, b: Order) -> bool:
        return (a.market_id, a.selection, a.side, a.price) == (b.market_id, b.selection, b.side, b.price)

    def _own_ahead(self, ref: str, seq: int) -> float:
        """Unmatched size of our own orders resting earlier at the same price (they are ahead of us)."""
        me = self._orders[ref]
        return sum(
            self._orders[r].size_remaining
            for r, q in self._resting.items()
            if r != ref and q.seq < seq and self._same_queue(self._orders[r], me)
        )

    def _leave_queue(self, ref: str, remaining: float) -> None:
        """An order leaves the book: our later orders at its price move up by its unmatched size."""
        leaving = self._resting.pop(ref, None)
        if leaving is None:
            return
        me = self._orders[ref]
        for other_ref, q in self._resting.items():
            if q.seq > leaving.seq and q.ahead is not None and self._same_queue(self._orders[other_ref], me):
                q.ahead = round_money(max(0.0, q.ahead - remaining))

    def _fill(self, ref: str, price: float, size: float, now: datetime, *, crossed: bool) -> None:
        order = self._orders[ref]
        matched_before = order.size_matched
        matched = round_money(matched_before + size)
        average = ((order.average_price_matched or 0.0) * matched_before + price * size) / matched
        fill = Fill(
            fill_id=f"{order.bet_id}:{round(matched_before * 100)}",
            customer_order_ref=ref,
            bet_id=order.bet_id or "",
            market_id=order.market_id,
            selection=order.selection,
            side=order.side,
            price=price,
            size=size,
            matched_at=now,
            crossed=crossed,
        )
        order = self._update(order, now, size_matched=matched, average_price_matched=average)
        if order.size_remaining <= 0.0:
            self._resting.pop(ref, None)
            order = self._update(order, now, status=OrderStatus.EXECUTION_COMPLETE)
        self._emit(EventKind.ORDER_FILLED, order, now, fill)

    def _lapse(self, ref: str, reason: LapseReason, now: datetime) -> None:
        order = self._orders[ref]
        remaining = order.size_remaining
        self._pending.pop(ref, None)
        self._leave_queue(ref, remaining)
        order = self._update(
            order,
            now,
            size_lapsed=round_money(order.size_lapsed + remaining),
            status=OrderStatus.EXECUTION_COMPLETE,
            lapse_reason=reason,
        )
        self._emit(EventKind.ORDER_LAPSED, order, now)

    def _update(self, order: Order, now: datetime, **changes: Unpack[_OrderChanges]) -> Order:
        updated = order.evolve(updated_at=now, **changes)
        self._orders[order.customer_order_ref] = updated
        return updated

    def _emit(self, kind: EventKind, order: Order, now: datetime, fill: Fill | None = None) -> None:
        self._outbox.append(OrderUpdate(kind=kind, order=order, at=now, fill=fill))

    def _drain(self) -> list[OrderUpdate]:
        updates, self._outbox = self._outbox, []
        return updates
