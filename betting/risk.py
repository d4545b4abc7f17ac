"""Risk controls, all enforced before an order leaves: ``check(order, book, now, limits)``.

``RiskLimits`` is the configuration (frozen; change it with ``dataclasses.replace``, e.g. to pull
the kill switch), ``RiskBook`` the state it is checked against (unsettled orders, bankroll, realised
P&L by day and week, order times), ``RiskDecision`` the answer (approved, or a ``RejectReason`` and a
message, recorded by the caller with the order).

Which limits apply to which orders:

- to every order: kill switch, a valid order (ladder price, penny size, an unused reference),
  bankroll already below the floor, max stake, max open orders, max orders per hour;
- only to orders that *add risk* - that raise the selection's, the market's or the total
  exposure (see ``betting.exposure``): price bounds, min edge, min confidence, the daily/weekly
  stop-loss, the daily profit-taking stop, bankroll floor after the worst case, and each exposure
  limit (a given exposure limit rejects only when that exposure rises above it). A hedge that
  does not raise any exposure is therefore allowed even at or over the exposure limits and after
  a stop - that is when it is needed.

Guarantees (with limits unchanged while trading; proven by the property test in
``tests/betting/test_risk_properties.py``):

1. *Exposure*: no selection, market or total exposure ever exceeds its limit. Exposure is the worst
   case over outcomes *and* over any partial matching of open orders, and matching at a better
   price than the limit only lowers it, so fills cannot break the bound either.
2. *Bankroll floor*: a risk-adding order needs ``bankroll - total exposure after it >= floor``.
   Settling a market changes the bankroll by at least minus that market's exposure, so the
   bankroll never falls below the floor (and nothing at all is accepted if it ever is below it).
3. *Stop-loss*: the day's (week's) realised P&L - net of commission, booked on the UTC day (ISO
   week) of settlement - latches a stop as soon as its running loss reaches the limit: from then
   until the day (week) ends no risk-adding order is accepted, even if later settlements win the
   money back. Losses still settling from positions opened before the stop are not prevented, so
   the guarantee is: realised loss of the day <= limit + E, where E is the total exposure just
   before the settlement that made the running loss reach the limit (and < limit if it never does).
   Exposure can only fall after the stop, and whatever settles after it loses at most E.
4. *Kill switch*: with ``kill_switch`` set nothing is accepted, hedges included.
5. *Rates*: at most ``max_open_orders`` live orders, and at most ``max_orders_per_hour`` orders
   placed in any hour (a sliding 3600 s window of event time; orders the exchange rejected count).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from betting import exposure
from betting.clock import require_aware
from betting.codec import JsonRecord
from betting.ladder import is_valid_price
from betting.market import MarketBook
from betting.money import EPSILON, is_penny_amount, round_money
from betting.records import Order, OrderRequest, OrderStatus, Settlement

ORDER_RATE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class RiskLimits:
    """Every risk limit; amounts in the account currency."""

    max_stake: float = 50.0
    """Largest order size (backer's stake) of any single order."""
    max_selection_exposure: float = 100.0
    """Largest worst-case loss of the orders on one selection (it wins / it loses)."""
    max_market_exposure: float = 150.0
    """Largest worst-case loss of one match's market over which player wins."""
    max_total_exposure: float = 500.0
    """Largest sum of the markets' worst-case losses."""
    daily_loss_limit: float = 200.0
    """Stop-loss: once the UTC day's realised loss reaches it, no more risk that day."""
    weekly_loss_limit: float = 500.0
    """Stop-loss: once the ISO week's realised loss reaches it, no more risk that week."""
    daily_profit_target: float | None = None
    """Profit-taking stop: once the day's realised profit reaches it, no more risk that day (None = off)."""
    min_edge: float = 0.02
    """Least edge after commission (``betting.value.edge``) of a risk-adding order."""
    min_confidence: float = 0.55
    """Least model confidence (``betting.value.prediction_confidence``) of a risk-adding order."""
    min_price: float = 1.10
    """Lowest limit price of a risk-adding order."""
    max_price: float = 10.0
    """Highest limit price of a risk-adding order (lay liabilities grow with the price)."""
    max_open_orders: int = 10
    """Most live orders (in bet delay or resting unmatched) at once."""
    max_orders_per_hour: int = 60
    """Most orders placed in any sliding hour of event time."""
    bankroll_floor: float = 0.0
    """The bankroll must stay at or above this even if every open position loses."""
    kill_switch: bool = False
    """When True nothing is accepted (hedges included)."""

    def __post_init__(self) -> None:
        amounts = (
            "max_stake",
            "max_selection_exposure",
            "max_market_exposure",
            "max_total_exposure",
            "daily_loss_limit",
            "weekly_loss_limit",
        )
        for name in amounts:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.min_price > self.max_price:
            raise ValueError("min_price must not exceed max_price")
        if self.max_open_orders < 0 or self.max_orders_per_hour < 0:
            raise ValueError("order counts must be >= 0")


class RejectReason(StrEnum):
    """Why the risk checks refused an order (one code per limit)."""

    KILL_SWITCH = "KILL_SWITCH"
    INVALID_ORDER = "INVALID_ORDER"
    BANKROLL_FLOOR = "BANKROLL_FLOOR"
    STAKE_ABOVE_MAX = "STAKE_ABOVE_MAX"
    TOO_MANY_OPEN_ORDERS = "TOO_MANY_OPEN_ORDERS"
    ORDER_RATE = "ORDER_RATE"
    PRICE_OUT_OF_BOUNDS = "PRICE_OUT_OF_BOUNDS"
    EDGE_BELOW_MIN = "EDGE_BELOW_MIN"
    CONFIDENCE_BELOW_MIN = "CONFIDENCE_BELOW_MIN"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    WEEKLY_LOSS_LIMIT = "WEEKLY_LOSS_LIMIT"
    DAILY_PROFIT_TARGET = "DAILY_PROFIT_TARGET"
    SELECTION_EXPOSURE = "SELECTION_EXPOSURE"
    MARKET_EXPOSURE = "MARKET_EXPOSURE"
    TOTAL_EXPOSURE = "TOTAL_EXPOSURE"
    MATCH_NOT_OWNED = "MATCH_NOT_OWNED"
    """Several engine workers: the worker does not hold the match's lease (``betting.shared_limits``)."""


@dataclass(frozen=True)
class RiskCheck(JsonRecord):
    """One limit as ``check`` measured it for one order: the value the order would bring, the limit, the verdict."""

    check: str
    """The limit's ``RejectReason`` value (``TOTAL_EXPOSURE``, ``PRICE_OUT_OF_BOUNDS``, ...)."""
    value: float | None
    """What the order would make it (the exposure after it, its price, its edge, ...); None when not a number."""
    limit: float | None
    """The limit it is held to (for a range, the bound nearest the value); None when not a number."""
    passed: bool
    detail: str
    """In words, e.g. ``total exposure would be 512.40 (now 480.00), the limit is 500.00``."""


@dataclass(frozen=True)
class RiskDecision(JsonRecord):
    """The risk checks' answer for one order."""

    customer_order_ref: str
    approved: bool
    reason: RejectReason | None
    """None when approved: the first limit broken, in the order the checks run."""
    message: str
    checks: tuple[RiskCheck, ...] = ()
    """Every limit measured for the order, in order (a bet's lineage shows them all, passed or not)."""


def trading_day(moment: datetime) -> date:
    """The UTC calendar day a moment belongs to (daily limits reset at 00:00 UTC)."""
    return require_aware(moment).astimezone(UTC).date()


def trading_week(moment: datetime) -> tuple[int, int]:
    """The ISO (year, week) a moment belongs to (weekly limits reset Monday 00:00 UTC)."""
    iso = trading_day(moment).isocalendar()
    return iso.year, iso.week


@dataclass
class Running:
    """Realised P&L of one period and the extremes it went through (the stops latch on them)."""

    pnl: float = 0.0
    low: float = 0.0
    high: float = 0.0

    def add(self, amount: float) -> None:
        self.pnl = round_money(self.pnl + amount)
        self.low = min(self.low, self.pnl)
        self.high = max(self.high, self.pnl)


class PnlPeriods:
    """Realised P&L by trading day and trading week, each with the extremes it went through: what the daily and
    weekly stop-losses and the daily profit target read (one engine's ``RiskBook``, and several workers' combined
    realised P&L in ``betting.shared_limits.CombinedBook``)."""

    def __init__(self) -> None:
        self._days: dict[date, Running] = {}
        self._weeks: dict[tuple[int, int], Running] = {}

    def add(self, at: datetime, net: float) -> None:
        """A market settled at ``at`` for ``net``."""
        self._days.setdefault(trading_day(at), Running()).add(net)
        self._weeks.setdefault(trading_week(at), Running()).add(net)

    def day(self, now: datetime) -> Running:
        """The UTC day of ``now`` (all zero when nothing settled that day)."""
        return self._days.get(trading_day(now)) or Running()

    def week(self, now: datetime) -> Running:
        """The ISO week of ``now`` (all zero when nothing settled that week)."""
        return self._weeks.get(trading_week(now)) or Running()


class RiskBook:
    """What the risk checks look at: unsettled orders, bankroll, realised P&L, order times.

    Fed by the caller with every order snapshot the exchange returns (``record_order``) and every
    settlement (``record_settlement``); on restart, replay the persisted orders and settlements.
    """

    def __init__(self, bankroll: float) -> None:
        self._bankroll = round_money(bankroll)
        self._known: dict[str, Order] = {}
        self._open_markets: dict[str, dict[str, Order]] = {}
        self._settled_markets: set[str] = set()
        self._runners: dict[str, tuple[str, ...]] = {}
        self._placed_times: list[datetime] = []
        self.periods = PnlPeriods()
        """Realised P&L by trading day and week."""
        self._exposure: dict[str, tuple[tuple[str, ...], dict[str, float], float]] = {}
        """Each open market as booked: its outcomes, the orders' summed profit in each, the worst-case loss
        (recomputed only when its orders change; a candidate order adds its own profit to the sums)."""
        self._selection_exposure: dict[str, dict[str, dict[str, float] | None]] = {}
        """market -> selection -> summed profit of its booked orders in each outcome (forgotten when the market
        changes; None: no orders)."""
        self._live: set[str] = set()
        """References of the booked open orders that are live (in the bet delay or resting)."""
        self._total: float | None = None
        """The sum of the markets' exposures, to the penny (None once a market changed since it was summed)."""
        self._outcome_pnl: dict[str, tuple[Order, dict[str, float]]] = {}
        """``exposure.order_outcome_pnl`` of each booked open order by winner, for the snapshot it was
        computed on (an order's terms are fixed; its fills change the snapshot and so the entry)."""

    # --- feeding the book -------------------------------------------------------------------
    def register_market(self, market_id: str, selections: tuple[str, ...] | list[str]) -> None:
        """The market's runners, for exact worst cases (else an unknown other runner is assumed)."""
        runners = tuple(selections)
        if self._runners.get(market_id) != runners:
            self._runners[market_id] = runners
            self._changed(market_id)

    def record_market_book(self, book: MarketBook) -> None:
        """Take the runners from a market update."""
        self.register_market(book.market_id, book.selections)

    def record_order(self, order: Order) -> None:
        """The latest snapshot of an order sent to the exchange (the first one counts towards the rate)."""
        ref = order.customer_order_ref
        if ref not in self._known:
            bisect.insort(self._placed_times, require_aware(order.placed_at))
        self._known[ref] = order
        self._changed(order.market_id)
        if order.settled or order.market_id in self._settled_markets:
            return
        self._open_markets.setdefault(order.market_id, {})[ref] = order
        if order.is_live:
            self._live.add(ref)
        else:
            self._live.discard(ref)

    def record_settlement(self, settlement: Settlement) -> None:
        """A settled market: its orders leave the book, its net P&L goes to the bankroll and the periods."""
        self._settled_markets.add(settlement.market_id)
        for ref in self._open_markets.pop(settlement.market_id, {}):
            self._outcome_pnl.pop(ref, None)
            self._live.discard(ref)
        self._changed(settlement.market_id)
        net = settlement.pnl.net_profit
        self._bankroll = round_money(self._bankroll + net)
        at = settlement.pnl.settled_at
        self.periods.add(at, net)

    def forget_market(self, market_id: str) -> None:
        """An open market whose orders are no longer this book's (another engine worker adopted them): they leave
        it, rate and exposure included, as if never recorded. A settled market is never forgotten."""
        if market_id in self._settled_markets:
            return
        for ref, order in self._open_markets.pop(market_id, {}).items():
            self._known.pop(ref, None)
            self._outcome_pnl.pop(ref, None)
            self._live.discard(ref)
            at = require_aware(order.placed_at)
            i = bisect.bisect_left(self._placed_times, at)
            if i < len(self._placed_times) and self._placed_times[i] == at:
                del self._placed_times[i]
        self._changed(market_id)

    def _changed(self, market_id: str) -> None:
        """The market's orders, runners or settlement changed: its exposure and the total are computed again."""
        self._exposure.pop(market_id, None)
        self._selection_exposure.pop(market_id, None)
        self._total = None

    # --- reading the book -------------------------------------------------------------------
    @property
    def bankroll(self) -> float:
        """Realised balance: starting bankroll plus every settled market's net P&L."""
        return self._bankroll

    def order(self, customer_order_ref: str) -> Order | None:
        """The latest snapshot of the order with this reference, if it was ever sent."""
        return self._known.get(customer_order_ref)

    def open_orders(self, market_id: str | None = None) -> tuple[Order, ...]:
        """Unsettled orders (live or matched), of one market or all."""
        markets = [market_id] if market_id is not None else list(self._open_markets)
        return tuple(o for m in markets for o in self._open_markets.get(m, {}).values())

    def live_order_count(self) -> int:
        """Orders in the bet delay or resting with an unmatched remainder."""
        return len(self._live)

    def orders_placed_in_window(self, now: datetime, window: timedelta = ORDER_RATE_WINDOW) -> int:
        """Orders placed in (now - window, now]."""
        lo = bisect.bisect_right(self._placed_times, now - window)
        hi = bisect.bisect_right(self._placed_times, now)
        return hi - lo

    def day_pnl(self, now: datetime) -> float:
        """Realised net P&L of the UTC day of ``now``."""
        return self.periods.day(now).pnl

    def week_pnl(self, now: datetime) -> float:
        """Realised net P&L of the ISO week of ``now``."""
        return self.periods.week(now).pnl

    def day_low(self, now: datetime) -> float:
        """Lowest running realised P&L the day of ``now`` has reached (0 at the start of the day)."""
        return self.periods.day(now).low

    def day_high(self, now: datetime) -> float:
        """Highest running realised P&L the day of ``now`` has reached."""
        return self.periods.day(now).high

    def week_low(self, now: datetime) -> float:
        """Lowest running realised P&L the week of ``now`` has reached."""
        return self.periods.week(now).low

    def _pnl(self, order: Order, winner: str) -> float:
        """``exposure.order_outcome_pnl``, remembered for the booked snapshot of an open order."""
        ref = order.customer_order_ref
        if self._open_markets.get(order.market_id, {}).get(ref) is not order:  # a candidate: not kept
            return exposure.order_outcome_pnl(order, winner)
        entry = self._outcome_pnl.get(ref)
        if entry is None or entry[0] is not order:
            entry = self._outcome_pnl[ref] = (order, {})
        value = entry[1].get(winner)
        if value is None:
            value = entry[1][winner] = exposure.order_outcome_pnl(order, winner)
        return value

    def _market_orders(self, market_id: str, extra: Order | None) -> list[Order]:
        orders = list(self._open_markets.get(market_id, {}).values())
        if extra is not None and extra.market_id == market_id:
            orders.append(extra)
        return orders

    def _with(self, sums: dict[str, float], extra: Order) -> float:
        """The worst loss of booked orders whose outcome sums are ``sums``, with ``extra`` added after them: the
        same bits as summing them all afresh (``exposure.outcome_sums``), at the cost of one order."""
        pnl = self._pnl
        return exposure.worst_loss({w: s + pnl(extra, w) for w, s in sums.items()})

    def _selection_sums(self, market_id: str, selection: str) -> dict[str, float] | None:
        """Outcome sums of the booked orders on one selection (None: it has none), kept until the market changes."""
        by_selection = self._selection_exposure.setdefault(market_id, {})
        if selection not in by_selection:
            own = [o for o in self._open_markets.get(market_id, {}).values() if o.selection == selection]
            by_selection[selection] = (
                exposure.outcome_sums(own, exposure.selection_outcomes(selection), self._pnl) if own else None
            )
        return by_selection[selection]

    def selection_exposure(self, market_id: str, selection: str, extra: Order | None = None) -> float:
        """Worst-case loss of the orders on one selection (with ``extra`` added, if given)."""
        sums = self._selection_sums(market_id, selection)
        if extra is not None and extra.market_id == market_id and extra.selection == selection:
            return self._with(sums or dict.fromkeys(exposure.selection_outcomes(selection), 0.0), extra)
        return 0.0 if sums is None else exposure.worst_loss(sums)

    def _market_sums(self, market_id: str) -> tuple[tuple[str, ...], dict[str, float], float]:
        """The outcomes of the booked orders of one market, their sums and the worst loss, kept until it changes."""
        cached = self._exposure.get(market_id)
        if cached is None:
            orders = self._market_orders(market_id, None)
            outcomes = exposure.market_outcomes(orders, self._runners.get(market_id))
            sums = exposure.outcome_sums(orders, outcomes, self._pnl)
            cached = self._exposure[market_id] = (outcomes, sums, exposure.worst_loss(sums) if orders else 0.0)
        return cached

    def market_exposure(self, market_id: str, extra: Order | None = None) -> float:
        """Worst-case loss of one market (with ``extra`` added, if given)."""
        outcomes, sums, booked = self._market_sums(market_id)
        if extra is None or extra.market_id != market_id:
            return booked
        if extra.selection in outcomes:  # the same outcomes with it as without it
            return self._with(sums, extra)
        return exposure.market_exposure(self._market_orders(market_id, extra), self._runners.get(market_id), self._pnl)

    def total_exposure(self, extra: Order | None = None, extra_market: float | None = None) -> float:
        """Sum of the markets' worst-case losses (with ``extra`` added, if given). The booked sum is kept until
        a market changes, so a check costs one market's exposure, not every open market's (all terms are
        whole pennies: swapping one market's term in the sum gives the same penny as summing afresh).
        ``extra_market``: ``market_exposure(extra.market_id, extra)`` when the caller has it already."""
        if self._total is None:
            self._total = round_money(sum(self.market_exposure(m) for m in self._open_markets))
        if extra is None:
            return self._total
        market_id = extra.market_id
        booked = self.market_exposure(market_id) if market_id in self._open_markets else 0.0
        after = self.market_exposure(market_id, extra) if extra_market is None else extra_market
        return round_money(self._total - booked + after)


def _decision(order: OrderRequest, checks: list[RiskCheck], approved_message: str) -> RiskDecision:
    """Approved when every check passed, else rejected by the first that failed (its detail is the message)."""
    failed = next((c for c in checks if not c.passed), None)
    if failed is None:
        return RiskDecision(order.customer_order_ref, True, None, approved_message, tuple(checks))
    return RiskDecision(order.customer_order_ref, False, RejectReason(failed.check), failed.detail, tuple(checks))


def check(order: OrderRequest, book: RiskBook, now: datetime, limits: RiskLimits) -> RiskDecision:
    """Approve the order, or reject it with the first limit it breaks (see the module docstring). Every limit that
    applies is measured and returned in ``checks`` (a rejection still shows the ones after the first failure)."""
    require_aware(now)
    checks: list[RiskCheck] = []

    def add(reason: RejectReason, value: float | None, limit: float | None, passed: bool, detail: str) -> None:
        checks.append(RiskCheck(str(reason), value, limit, passed, detail))

    add(
        RejectReason.KILL_SWITCH,
        None,
        None,
        not limits.kill_switch,
        "kill switch is on: no orders" if limits.kill_switch else "kill switch is off",
    )
    if limits.kill_switch:
        return _decision(order, checks, "")

    existing = book.order(order.customer_order_ref)
    if existing is not None:
        same = existing.same_terms(order)
        add(
            RejectReason.INVALID_ORDER,
            None,
            None,
            same,
            "resubmission of an order already sent: the exchange returns it, no new risk"
            if same
            else f"reference {order.customer_order_ref} already used for a different order",
        )
        return _decision(order, checks, checks[-1].detail)
    if not is_valid_price(order.price):
        add(RejectReason.INVALID_ORDER, order.price, None, False, f"price {order.price} is not on the ladder")
        return _decision(order, checks, "")
    if not (order.size > 0.0 and is_penny_amount(order.size)):
        add(RejectReason.INVALID_ORDER, order.size, None, False, f"size {order.size} is not a positive penny amount")
        return _decision(order, checks, "")
    add(
        RejectReason.INVALID_ORDER, None, None, True, "price on the ladder, size a positive penny amount, new reference"
    )

    add(
        RejectReason.BANKROLL_FLOOR,
        book.bankroll,
        limits.bankroll_floor,
        book.bankroll >= limits.bankroll_floor - EPSILON,
        f"bankroll {book.bankroll:.2f}, the floor is {limits.bankroll_floor:.2f}",
    )
    add(
        RejectReason.STAKE_ABOVE_MAX,
        order.size,
        limits.max_stake,
        order.size <= limits.max_stake + EPSILON,
        f"stake {order.size:.2f}, the maximum is {limits.max_stake:.2f}",
    )
    live = book.live_order_count()
    add(
        RejectReason.TOO_MANY_OPEN_ORDERS,
        live,
        limits.max_open_orders,
        live < limits.max_open_orders,
        f"{live} open orders, the maximum is {limits.max_open_orders}",
    )
    recent = book.orders_placed_in_window(now)
    add(
        RejectReason.ORDER_RATE,
        recent,
        limits.max_orders_per_hour,
        recent < limits.max_orders_per_hour,
        f"{recent} orders in the last hour, the maximum is {limits.max_orders_per_hour}",
    )

    candidate = Order.from_request(order, bet_id=None, status=OrderStatus.PENDING, placed_at=now, updated_at=now)
    market_after = book.market_exposure(order.market_id, candidate)
    exposures = (
        (
            RejectReason.SELECTION_EXPOSURE,
            f"selection {order.selection} exposure",
            limits.max_selection_exposure,
            book.selection_exposure(order.market_id, order.selection),
            book.selection_exposure(order.market_id, order.selection, candidate),
        ),
        (
            RejectReason.MARKET_EXPOSURE,
            f"market {order.market_id} exposure",
            limits.max_market_exposure,
            book.market_exposure(order.market_id),
            market_after,
        ),
        (
            RejectReason.TOTAL_EXPOSURE,
            "total exposure",
            limits.max_total_exposure,
            book.total_exposure(),
            book.total_exposure(candidate, market_after),
        ),
    )
    if not any(after > before + EPSILON for *_, before, after in exposures):
        for reason, label, limit, before, after in exposures:
            add(reason, after, limit, True, f"{label} would be {after:.2f} (now {before:.2f}): not raised")
        return _decision(
            order, checks, "adds no risk (hedge or no change in any exposure): the other limits do not apply"
        )

    low, high = limits.min_price, limits.max_price
    add(
        RejectReason.PRICE_OUT_OF_BOUNDS,
        order.price,
        high if order.price > high else low,
        low <= order.price <= high,
        f"price {order.price}, the bounds are [{low}, {high}]",
    )
    add(
        RejectReason.EDGE_BELOW_MIN,
        order.edge,
        limits.min_edge,
        order.edge is not None and order.edge >= limits.min_edge,
        f"edge {'none given' if order.edge is None else f'{order.edge:.4f}'}, the minimum is {limits.min_edge:.4f}",
    )
    add(
        RejectReason.CONFIDENCE_BELOW_MIN,
        order.confidence,
        limits.min_confidence,
        order.confidence is not None and order.confidence >= limits.min_confidence,
        f"confidence {'none given' if order.confidence is None else f'{order.confidence:.3f}'}, "
        f"the minimum is {limits.min_confidence:.3f}",
    )
    day_low, week_low = book.day_low(now), book.week_low(now)
    add(
        RejectReason.DAILY_LOSS_LIMIT,
        round_money(-day_low),
        limits.daily_loss_limit,
        day_low > -limits.daily_loss_limit + EPSILON,
        f"the day's realised loss reached {-day_low:.2f} (stop-loss at {limits.daily_loss_limit:.2f})",
    )
    add(
        RejectReason.WEEKLY_LOSS_LIMIT,
        round_money(-week_low),
        limits.weekly_loss_limit,
        week_low > -limits.weekly_loss_limit + EPSILON,
        f"the week's realised loss reached {-week_low:.2f} (stop-loss at {limits.weekly_loss_limit:.2f})",
    )
    target = limits.daily_profit_target
    if target is not None:
        high_day = book.day_high(now)
        add(
            RejectReason.DAILY_PROFIT_TARGET,
            high_day,
            target,
            high_day < target - EPSILON,
            f"the day's realised profit reached {high_day:.2f} (target {target:.2f})",
        )
    total_after = exposures[-1][-1]
    left = round_money(book.bankroll - total_after)
    add(
        RejectReason.BANKROLL_FLOOR,
        left,
        limits.bankroll_floor,
        left >= limits.bankroll_floor - EPSILON,
        f"bankroll {book.bankroll:.2f} minus worst case {total_after:.2f} is {left:.2f}, "
        f"the floor is {limits.bankroll_floor:.2f}",
    )
    for reason, label, limit, before, after in exposures:
        add(
            reason,
            after,
            limit,
            not (after > limit + EPSILON and after > before + EPSILON),
            f"{label} would be {after:.2f} (now {before:.2f}), the limit is {limit:.2f}",
        )
    return _decision(order, checks, "within every limit")
