"""Property tests of the risk guarantees (see ``betting.risk``) on random trading sessions.

A session trades on a ``PaperExchange`` through ``risk.check`` under random limits: orders near the
market's prices (crossing or joining a queue; hedges happen), market updates with random depth,
traded volume, suspensions and the turn in-play, clock jumps (bet delay, hours, days, weeks),
cancels, settlements (wins, losses, retirements, walkovers) and the kill switch. After every step:

- no selection, market or total exposure exceeds its limit; exposure is recomputed here
  independently - from the fills, in exact decimals, by brute force over every winner and every
  subset of the live orders matching in full - and must equal ``RiskBook``'s;
- a settled market never loses more than the exposure it had just before settlement;
- the day's (week's) realised loss never exceeds its limit by more than the total exposure
  committed just before the settlement that made it reach the limit, and once a stop-loss (or the
  daily profit target) is reached the total exposure only falls until the period ends;
- the bankroll never falls below the floor; nothing is accepted below it or with the kill switch;
- at most ``max_open_orders`` live orders, at most ``max_orders_per_hour`` accepted per hour.

Two drivers: hypothesis (search and shrinking) and a seeded random walk that also asserts the
sessions really reach every limit, so the property cannot pass by never getting near one.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import HealthCheck, event, settings, target
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from betting import exposure as exposure_rules
from betting.clock import ManualClock
from betting.ladder import TICKS
from betting.market import MarketBook, MarketStatus
from betting.paper import PaperExchange, PaperExchangeConfig
from betting.records import Order, OrderRequest, OrderStatus, Persistence, Side
from betting.risk import RiskBook, RiskLimits, check, trading_day, trading_week
from betting.settlement import MatchResult
from tests.betting.builders import T0, runner

BANKROLL = 1000.0
RUNNERS = ("A", "B")

LIMIT_CHOICES = {
    "max_stake": [10.0, 25.0],
    "max_selection_exposure": [30.0, 60.0],
    "max_market_exposure": [40.0, 80.0],
    "max_total_exposure": [45.0, 150.0],
    "daily_loss_limit": [4.0, 15.0, 50.0],
    "weekly_loss_limit": [8.0, 40.0, 120.0],
    "daily_profit_target": [None, 10.0],
    "min_edge": [0.0, 0.02],
    "min_confidence": [0.0, 0.6],
    "max_price": [3.0, 1000.0],
    "max_open_orders": [2, 6],
    "max_orders_per_hour": [3, 25],
    "bankroll_floor": [0.0, 960.0],
}
SIZES = [1.0, 2.5, 5.0, 7.77, 10.0, 13.33, 20.0, 26.0]
EDGES = [0.1, 0.1, 0.1, 0.1, 0.0, None]
CONFIDENCES = [0.7, 0.7, 0.7, 0.7, 0.55, None]
DEPTHS = [0.0, 2.0, 5.0, 13.0, 50.0]
TRADES = [0.0, 3.0, 10.0, 40.0]
STATUSES = [MarketStatus.OPEN] * 4 + [MarketStatus.SUSPENDED]
WAITS = [0.5, 1.0, 2.5, 60.0, 900.0, 3600.0, 6 * 3600.0, 86400.0, 7 * 86400.0]
RESULTS = [
    ("A", "6-4 6-4"),
    ("B", "6-4 6-4"),
    ("A", "6-3 7-5"),
    ("B", "7-6(3) 6-2"),
    ("A", "6-4 1-0 RET"),
    ("B", "3-1 RET"),
    (None, "W/O"),
]


def penny(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def dec(x: float) -> Decimal:
    return Decimal(repr(x))


class Session:
    """The system under test, the independent model of its worst cases, and the invariants."""

    def __init__(self, limits: RiskLimits, note: Callable[[str], None]) -> None:
        self.limits = limits
        self.note = note
        self.clock = ManualClock(T0)
        self.exchange = PaperExchange(
            self.clock, PaperExchangeConfig(in_play_delay_seconds=2.0, min_payout=None), balance=BANKROLL
        )
        self.book = RiskBook(BANKROLL)
        self.serial = itertools.count()
        self.in_play: dict[str, bool] = {}
        self.mids: dict[str, dict[str, int]] = {}
        self.traded: dict[str, dict[str, dict[float, float]]] = {}
        self.matched_win: dict[str, Decimal] = defaultdict(Decimal)  # exact sum of (price - 1) x size of fills
        self.matched_size: dict[str, Decimal] = defaultdict(Decimal)
        self.accepted_at: list = []
        self.periods: dict = {}
        self.worst_loss_ratio = 0.0
        self.worst_exposure_ratio = 0.0
        self.last_total = Decimal(0)
        self.markets = [self.open_market(), self.open_market()]

    # --- plumbing ---------------------------------------------------------------------------
    def sync(self, updates) -> None:
        for update in updates:
            self.book.record_order(update.order)
            if update.fill is not None:
                ref = update.fill.customer_order_ref
                self.matched_win[ref] += (dec(update.fill.price) - 1) * dec(update.fill.size)
                self.matched_size[ref] += dec(update.fill.size)
                self.note("fill crossed" if update.fill.crossed else "fill from the queue")

    def open_market(self) -> str:
        market_id = f"m{next(self.serial)}"
        self.in_play[market_id] = False
        self.traded[market_id] = {s: {} for s in RUNNERS}
        self.mids[market_id] = {"A": 80, "B": 120}
        self.book.register_market(market_id, RUNNERS)
        self.sync(self.exchange.on_market_book(self.market_book(market_id, 80, 120, 1, (20.0, 20.0, 20.0))))
        return market_id

    def market_book(self, market_id, mid_a, mid_b, spread, depth, status=MarketStatus.OPEN) -> MarketBook:
        runners = []
        for selection, mid in (("A", mid_a), ("B", mid_b)):
            back = [(TICKS[mid - i], d) for i, d in enumerate(depth)]
            lay = [(TICKS[mid + spread + i], d) for i, d in enumerate(depth)]
            runners.append(runner(selection, back=back, lay=lay, traded=self.traded[market_id][selection].items()))
        return MarketBook(
            market_id=market_id,
            publish_time=self.clock.now(),
            status=status,
            in_play=self.in_play[market_id],
            runners=tuple(runners),
        )

    # --- independent worst case --------------------------------------------------------------
    def order_profit(self, order: Order, winner: str, full: bool) -> Decimal:
        """Exact profit of an order if ``winner`` wins, its remainder matched in full at its limit or not."""
        ref = order.customer_order_ref
        assert self.matched_size[ref] == dec(order.size_matched), "order and fills disagree"
        win, stake = self.matched_win[ref], self.matched_size[ref]
        if full:
            remaining = dec(order.size_remaining)
            win += (dec(order.price) - 1) * remaining
            stake += remaining
        if order.side is Side.BACK:
            return penny(win) if order.selection == winner else -penny(stake)
        return -penny(win) if order.selection == winner else penny(stake)

    def worst_loss(self, orders, outcomes) -> Decimal:
        live = [o for o in orders if o.is_live and o.size_remaining > 0]
        worst = Decimal(0)
        for winner in outcomes:
            for mask in range(2 ** len(live)):
                filled = {o.customer_order_ref for i, o in enumerate(live) if mask >> i & 1}
                loss = -sum((self.order_profit(o, winner, o.customer_order_ref in filled) for o in orders), Decimal(0))
                worst = max(worst, loss)
        return worst

    def market_worst(self, market_id) -> Decimal:
        return self.worst_loss(self.exchange.orders(market_id), RUNNERS)

    def total_worst(self) -> Decimal:
        return sum((self.market_worst(m) for m in self.markets), Decimal(0))

    # --- actions ----------------------------------------------------------------------------
    def place(self, which, selection, side, offset, size, persistence, fill_or_kill, edge, confidence) -> None:
        now = self.clock.now()
        market_id = self.markets[which]
        request = OrderRequest(
            customer_order_ref=f"o{next(self.serial)}",
            market_id=market_id,
            selection=selection,
            side=side,
            price=TICKS[self.mids[market_id][selection] + offset],  # near the market: crosses or joins a queue
            size=size,
            persistence=persistence,
            fill_or_kill=fill_or_kill,
            edge=edge,
            confidence=confidence,
        )
        live_before = sum(1 for o in self.exchange.orders() if o.is_live)
        decision = check(request, self.book, now, self.limits)
        # the book checks a candidate by adding its profit to the booked sums: the same penny as afresh
        candidate = Order.from_request(request, bet_id=None, status=OrderStatus.PENDING, placed_at=now, updated_at=now)
        with_it = [*self.book.open_orders(market_id), candidate]
        assert self.book.selection_exposure(market_id, selection, candidate) == exposure_rules.selection_exposure(
            with_it, selection
        )
        assert self.book.market_exposure(market_id, candidate) == exposure_rules.market_exposure(with_it, RUNNERS)
        if self.limits.kill_switch or self.book.bankroll < self.limits.bankroll_floor:
            assert not decision.approved, "accepted with the kill switch on or below the bankroll floor"
        if not decision.approved:
            assert decision.reason is not None and decision.message
            self.note(f"rejected {decision.reason}")
            return
        self.note("approved: " + decision.message.split(":")[0])
        assert live_before < self.limits.max_open_orders
        self.accepted_at.append(now)
        last_hour = sum(1 for t in self.accepted_at if now - timedelta(hours=1) < t <= now)
        assert last_hour <= self.limits.max_orders_per_hour
        self.exchange.place(request)
        self.sync(self.exchange.poll())

    def market_update(
        self, which, mid_a, mid_b, spread, depth, trade_selection, trade_offset, trade_size, status, turn_in_play
    ) -> None:
        market_id = self.markets[which]
        self.mids[market_id] = {"A": mid_a, "B": mid_b}
        if trade_size:
            price = TICKS[(mid_a if trade_selection == "A" else mid_b) + trade_offset]
            volume = self.traded[market_id][trade_selection]
            volume[price] = volume.get(price, 0.0) + trade_size
        self.in_play[market_id] = self.in_play[market_id] or turn_in_play
        self.sync(self.exchange.on_market_book(self.market_book(market_id, mid_a, mid_b, spread, depth, status)))

    def wait(self, seconds) -> None:
        self.clock.advance(seconds)
        self.sync(self.exchange.poll())

    def cancel(self, pick: Callable[[list[str]], str]) -> None:
        live = [o.customer_order_ref for o in self.exchange.orders() if o.is_live]
        if live:
            self.exchange.cancel(pick(live))
            self.sync(self.exchange.poll())

    def settle(self, which, result) -> None:
        market_id = self.markets[which]
        total_before, market_before = self.total_worst(), self.market_worst(market_id)
        settlement = self.exchange.settle_market(market_id, MatchResult.from_score(*result))
        self.book.record_settlement(settlement)
        self.sync(self.exchange.poll())
        net = dec(settlement.pnl.net_profit)
        self.note(f"settled: {'loss' if net < 0 else 'win' if net > 0 else 'nothing'}")
        assert -net <= market_before, "a settled market lost more than its exposure"

        now = self.clock.now()
        for key, limit in (
            ((trading_day(now), "day"), self.limits.daily_loss_limit),
            ((trading_week(now), "week"), self.limits.weekly_loss_limit),
        ):
            period = self.periods.setdefault(key, {"pnl": Decimal(0), "exposure_at_stop": None, "target": False})
            period["pnl"] += net
            target_profit = self.limits.daily_profit_target
            if key[1] == "day" and target_profit is not None and period["pnl"] >= dec(target_profit):
                period["target"] = True
            if period["exposure_at_stop"] is None and -period["pnl"] >= dec(limit):
                period["exposure_at_stop"] = total_before
                self.note(f"{key[1]} stop-loss reached")
            allowance = period["exposure_at_stop"] if period["exposure_at_stop"] is not None else Decimal(0)
            assert -period["pnl"] <= dec(limit) + allowance, (
                f"{key[1]} realised loss {-period['pnl']} exceeds limit {limit} + exposure at the stop {allowance}"
            )
            if -period["pnl"] > dec(limit):
                self.note(f"{key[1]} loss beyond its limit, within the exposure committed before the stop")
            self.worst_loss_ratio = max(self.worst_loss_ratio, float(-period["pnl"]) / limit)
        assert dec(self.book.day_pnl(now)) == self.periods[(trading_day(now), "day")]["pnl"]
        self.markets[which] = self.open_market()

    def set_kill_switch(self, on: bool) -> None:
        self.limits = replace(self.limits, kill_switch=on)

    # --- invariants -------------------------------------------------------------------------
    def check_invariants(self) -> None:
        total = Decimal(0)
        for market_id in self.markets:
            orders = self.exchange.orders(market_id)
            market = self.worst_loss(orders, RUNNERS)
            assert market <= dec(self.limits.max_market_exposure), f"market {market_id} exposure {market}"
            for selection in RUNNERS:
                exposure = self.worst_loss([o for o in orders if o.selection == selection], (selection, "other"))
                assert exposure <= dec(self.limits.max_selection_exposure), f"selection exposure {exposure}"
            total += market
        assert total <= dec(self.limits.max_total_exposure), f"total exposure {total}"
        assert abs(total - dec(self.book.total_exposure())) < Decimal("1e-6"), "RiskBook disagrees"
        now = self.clock.now()
        current = [self.periods.get((trading_day(now), "day")), self.periods.get((trading_week(now), "week"))]
        if any(p and (p["exposure_at_stop"] is not None or p["target"]) for p in current):
            # after a stop-loss or the profit target, exposure only ever falls until the period ends
            assert total <= self.last_total, f"exposure rose from {self.last_total} to {total} after a stop"
            self.note("exposure checked after a stop")
        self.last_total = total
        self.worst_exposure_ratio = max(self.worst_exposure_ratio, float(total) / self.limits.max_total_exposure)
        assert self.exchange.balance >= self.limits.bankroll_floor, "bankroll below the floor"
        assert self.book.bankroll == self.exchange.balance
        assert sum(1 for o in self.exchange.orders() if o.is_live) <= self.limits.max_open_orders
        # what the book keeps between changes is what it would compute afresh from its orders
        assert self.book.live_order_count() == sum(1 for o in self.book.open_orders() if o.is_live)
        for market_id in self.markets:
            booked = self.book.open_orders(market_id)
            for selection in RUNNERS:
                assert self.book.selection_exposure(market_id, selection) == exposure_rules.selection_exposure(
                    booked, selection
                )
            assert self.book.market_exposure(market_id) == exposure_rules.market_exposure(booked, RUNNERS)


# --- driver 1: hypothesis ------------------------------------------------------------------------
class TradingSession(RuleBasedStateMachine):
    session: Session

    @initialize(limits=st.fixed_dictionaries({k: st.sampled_from(v) for k, v in LIMIT_CHOICES.items()}))
    def start(self, limits) -> None:
        self.session = Session(RiskLimits(**limits), note=event)

    @rule(
        which=st.integers(0, 1),
        selection=st.sampled_from(RUNNERS),
        side=st.sampled_from(Side),
        offset=st.integers(-4, 4),
        size=st.sampled_from(SIZES),
        persistence=st.sampled_from(Persistence),
        fill_or_kill=st.sampled_from([False, False, False, True]),
        edge=st.sampled_from(EDGES),
        confidence=st.sampled_from(CONFIDENCES),
    )
    def place(self, **kw) -> None:
        self.session.place(**kw)

    @rule(
        which=st.integers(0, 1),
        mid_a=st.integers(60, 150),
        mid_b=st.integers(60, 150),
        spread=st.integers(1, 3),
        depth=st.tuples(*[st.sampled_from(DEPTHS)] * 3),
        trade_selection=st.sampled_from(RUNNERS),
        trade_offset=st.integers(-3, 3),
        trade_size=st.sampled_from(TRADES),
        status=st.sampled_from(STATUSES),
        turn_in_play=st.booleans(),
    )
    def market_update(self, **kw) -> None:
        self.session.market_update(**kw)

    @rule(seconds=st.sampled_from(WAITS))
    def wait(self, seconds) -> None:
        self.session.wait(seconds)

    @rule(data=st.data())
    def cancel(self, data) -> None:
        self.session.cancel(lambda refs: data.draw(st.sampled_from(refs)))

    @rule(which=st.integers(0, 1), result=st.sampled_from(RESULTS))
    def settle(self, which, result) -> None:
        self.session.settle(which, result)

    @rule(on=st.sampled_from([False, False, False, True]))
    def kill_switch(self, on) -> None:
        self.session.set_kill_switch(on)

    @invariant()
    def invariants(self) -> None:
        self.session.check_invariants()

    def teardown(self) -> None:
        # steer the search towards sessions that press against the limits
        target(self.session.worst_loss_ratio, label="realised loss / loss limit")
        target(self.session.worst_exposure_ratio, label="total exposure / limit")


TradingSession.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_risk_guarantees_hold_on_hypothesis_sessions = TradingSession.TestCase


# --- driver 2: seeded random walk with coverage --------------------------------------------------
def random_session(rng: random.Random, note: Callable[[str], None], steps: int = 60) -> None:
    session = Session(RiskLimits(**{k: rng.choice(v) for k, v in LIMIT_CHOICES.items()}), note=note)
    for _ in range(steps):
        action = rng.choice(["place", "place", "place", "update", "update", "wait", "cancel", "settle", "kill"])
        if action == "place":
            session.place(
                rng.randint(0, 1),
                rng.choice(RUNNERS),
                rng.choice(list(Side)),
                rng.randint(-4, 4),
                rng.choice(SIZES),
                rng.choice(list(Persistence)),
                rng.random() < 0.25,
                rng.choice(EDGES),
                rng.choice(CONFIDENCES),
            )
        elif action == "update":
            session.market_update(
                rng.randint(0, 1),
                rng.randint(60, 150),
                rng.randint(60, 150),
                rng.randint(1, 3),
                tuple(rng.choice(DEPTHS) for _ in range(3)),
                rng.choice(RUNNERS),
                rng.randint(-3, 3),
                rng.choice(TRADES),
                rng.choice(STATUSES),
                rng.random() < 0.2,
            )
        elif action == "wait":
            session.wait(rng.choice(WAITS))
        elif action == "cancel":
            session.cancel(rng.choice)
        elif action == "settle":
            session.settle(rng.randint(0, 1), rng.choice(RESULTS))
        else:
            session.set_kill_switch(rng.random() < 0.2)
        session.check_invariants()


def test_risk_guarantees_hold_on_seeded_sessions_that_reach_every_limit():
    notes: Counter = Counter()
    for seed in range(150):
        random_session(random.Random(seed), lambda label: notes.update([label]))
    reached = {
        "rejected KILL_SWITCH",
        "rejected BANKROLL_FLOOR",
        "rejected STAKE_ABOVE_MAX",
        "rejected TOO_MANY_OPEN_ORDERS",
        "rejected ORDER_RATE",
        "rejected PRICE_OUT_OF_BOUNDS",
        "rejected EDGE_BELOW_MIN",
        "rejected CONFIDENCE_BELOW_MIN",
        "rejected DAILY_LOSS_LIMIT",
        "rejected WEEKLY_LOSS_LIMIT",
        "rejected DAILY_PROFIT_TARGET",
        "rejected SELECTION_EXPOSURE",
        "rejected MARKET_EXPOSURE",
        "rejected TOTAL_EXPOSURE",
        "approved: adds no risk (hedge or no change in any exposure)",
        "fill crossed",
        "fill from the queue",
        "settled: loss",
        "settled: win",
        "day stop-loss reached",
        "week stop-loss reached",
        "day loss beyond its limit, within the exposure committed before the stop",
        "exposure checked after a stop",
    }
    assert not reached - set(notes), f"never reached: {sorted(reached - set(notes))}"
