"""The limits that span matches, shared by several workers through Postgres, over random schedules.

Workers are threads here (the same ``WorkerLimits`` over ``storage.shared_risk`` the engine processes use, on a
real Postgres), each owning its matches, all released at once so they really decide at the same time. Each
runs a random schedule of orders, fills, cancellations, settlements (losses too) and publications. At the
moment each order is decided - inside the shared lock - the test reads every worker's *true* book (they are in
this process) and checks the decision against the truth: an approved order that adds risk never takes the true
total exposure, open orders or orders per hour over their limits, nor passes a stop-loss the true realised
losses reached; the kill switch stops everyone. ``test_without_the_lock_the_limit_breaks`` shows the test can
fail: the same workers without the lock exceed the total exposure limit.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from betting.money import EPSILON
from betting.records import Order, OrderRequest, OrderStatus, Side
from betting.risk import RiskBook, RiskLimits, trading_day
from betting.settlement import MatchResult, settle_market
from serving.engine.workers import WorkerLimits
from storage import live as store
from storage import shared_risk

pytestmark = [pytest.mark.postgres]

LIMITS = RiskLimits(
    max_stake=20.0,
    max_selection_exposure=100.0,
    max_market_exposure=100.0,
    max_total_exposure=60.0,
    daily_loss_limit=25.0,
    weekly_loss_limit=60.0,
    max_open_orders=4,
    max_orders_per_hour=9,
    min_edge=0.0,
    min_confidence=0.0,
)
RUNNERS = ("First Player", "Second Player")
PRICES = (1.5, 2.0, 2.5, 3.0, 4.0, 6.0)
START = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
TABLES = ("engine_workers", "match_leases", "risk_reservations", "risk_positions", "risk_realised", "operator_controls")


@pytest.fixture(scope="module")
def db(postgres_module_db):
    return postgres_module_db


def _clean(db) -> None:
    with db.begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(TABLES)))


class Unlocked(shared_risk.SharedRisk):
    """The counter-test: the same reservation without the advisory lock (two workers may decide at once)."""

    def reserve(self, ref, match_id, market_id, placed_at, decide):
        with self.db.begin() as conn:
            figures = self._figures(conn, placed_at)
        time.sleep(0.002)  # the window another worker decides in
        out = decide(figures)
        if out.get("approved"):
            with self.db.begin() as conn:
                conn.execute(
                    shared_risk.pg_insert(shared_risk.RiskReservation).values(
                        ref=ref,
                        worker=self.worker,
                        placed_by=self.worker,
                        lease_epoch=1,
                        match_id=match_id,
                        market_id=market_id,
                        placed_at=placed_at,
                        total_exposure=out["total_exposure"],
                        others_exposure=figures["others_exposure"],
                        live_orders=out["live_orders"],
                        orders_in_hour=out["orders_in_hour"],
                        reserved_at=shared_risk.func.now(),
                    )
                )
                self._put_position(conn, market_id, match_id, out["market_exposure"], out["market_live_orders"])
        return out


@dataclass
class World:
    """Every worker's true book, and the orders reserved but not yet in their worker's book."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    books: dict[str, RiskBook] = field(default_factory=dict)
    in_flight: dict[str, Order] = field(default_factory=dict)
    realised: list[tuple[datetime, float]] = field(default_factory=list)
    kill_at: int | None = None
    decisions: int = 0
    violations: list[str] = field(default_factory=list)
    approved: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def true_total(self, extra: Order | None = None) -> float:
        total = sum(b.total_exposure() for b in self.books.values())
        for o in self.in_flight.values():
            total += _alone(o)
        return total + (0.0 if extra is None else _marginal(self.books, extra))

    def live(self) -> int:
        return sum(b.live_order_count() for b in self.books.values()) + len(self.in_flight)

    def placed_in_hour(self, now: datetime) -> int:
        return sum(b.orders_placed_in_window(now) for b in self.books.values()) + sum(
            1 for o in self.in_flight.values() if now - timedelta(hours=1) < o.placed_at <= now
        )

    def day_low(self, now: datetime) -> float:
        pnl = low = 0.0
        for at, net in self.realised:
            if trading_day(at) == trading_day(now):
                pnl += net
                low = min(low, pnl)
        return low


def _alone(order: Order) -> float:
    book = RiskBook(0.0)
    book.register_market(order.market_id, RUNNERS)
    book.record_order(order)
    return book.total_exposure()


def _marginal(books: dict[str, RiskBook], extra: Order) -> float:
    for b in books.values():
        if b.open_orders(extra.market_id) or extra.market_id in b._runners:  # noqa: SLF001 - the test's own books
            return b.market_exposure(extra.market_id, extra) - b.market_exposure(extra.market_id)
    return _alone(extra)


class Observed(WorkerLimits):
    """``WorkerLimits`` whose decision, made under the lock, is compared with every worker's true book."""

    def __init__(self, shared, bankroll, world: World, name: str):
        super().__init__(shared, bankroll)
        self.world = world
        self.name = name

    def reserve(self, request, match_id, now, local, limits):
        world = self.world
        inner = self.shared.reserve

        def observed_reserve(ref, match_id, market_id, placed_at, decide):
            def checked(figures):
                out = decide(figures)
                with world.lock:
                    world.decisions += 1
                    candidate = Order.from_request(
                        request, bet_id=None, status=OrderStatus.PENDING, placed_at=now, updated_at=now
                    )
                    before, after = world.true_total(), world.true_total(candidate)
                    adds = after > before + EPSILON
                    if out.get("approved"):
                        if world.kill_at is not None:
                            world.violations.append(f"{ref}: approved after the kill switch")
                        if adds and after > limits.max_total_exposure + EPSILON:
                            world.violations.append(f"{ref}: true total exposure {after:.2f} > limit")
                        if world.live() + 1 > limits.max_open_orders:
                            world.violations.append(f"{ref}: {world.live() + 1} open orders")
                        if world.placed_in_hour(now) + 1 > limits.max_orders_per_hour:
                            world.violations.append(f"{ref}: {world.placed_in_hour(now) + 1} orders in the hour")
                        if adds and world.day_low(now) <= -limits.daily_loss_limit + EPSILON:
                            world.violations.append(f"{ref}: risk added after the day's stop-loss")
                        world.in_flight[ref] = candidate
                return out

            return inner(ref, match_id, market_id, placed_at, checked)

        self.shared.reserve = observed_reserve  # type: ignore[method-assign]
        try:
            decision = super().reserve(request, match_id, now, local, limits)
        finally:
            self.shared.reserve = inner  # type: ignore[method-assign]
        with world.lock:
            if decision.approved:
                world.approved += 1
            else:
                world.rejected[str(decision.reason)] = world.rejected.get(str(decision.reason), 0) + 1
        return decision


def _run(db, schedule: list[list[tuple]], seed: int, shared_cls=shared_risk.SharedRisk, kill_at: int | None = None):
    """Run one schedule per worker, all threads released together; returns the world."""
    _clean(db)
    world = World()
    names = [f"w{i}" for i in range(len(schedule))]
    barrier = threading.Barrier(len(names))
    errors: list[BaseException] = []

    def worker(i: int, name: str, ops: list[tuple]) -> None:
        rng = random.Random(seed * 31 + i)
        shared = shared_cls(db, name, lease_s=60.0)
        book = RiskBook(1000.0)
        limits = Observed(shared, 1000.0, world, name)
        matches = [f"{name}-m{k}" for k in range(3)]
        for m in matches:
            book.register_market(f"mk-{m}", RUNNERS)
        assert {lease.match_id for lease in shared.acquire(matches)} == set(matches)
        with world.lock:
            world.books[name] = book
        orders: list[Order] = []
        settled: set[str] = set()
        clock = START
        barrier.wait()
        try:
            for n, op in enumerate(ops):
                clock += timedelta(minutes=op[-1])
                kind = op[0]
                if kind == "order":
                    _, k, selection, side, price, size, _ = op
                    match = matches[k]
                    market = f"mk-{match}"
                    if market in settled:
                        continue
                    request = OrderRequest(
                        f"{name}-{n}", market, RUNNERS[selection], side, price, size, edge=0.1, confidence=0.7
                    )
                    decision = limits.reserve(request, match, clock, book, LIMITS)
                    if decision.approved:
                        order = Order.from_request(
                            request, bet_id=f"B{n}", status=OrderStatus.EXECUTABLE, placed_at=clock, updated_at=clock
                        )
                        with world.lock:
                            book.record_order(order)
                            world.in_flight.pop(request.customer_order_ref, None)
                        orders.append(order)
                elif kind in ("fill", "cancel") and orders:
                    j = rng.randrange(len(orders))
                    o = orders[j]
                    if not o.is_live or o.market_id in settled:
                        continue
                    if kind == "fill":
                        o = o.evolve(
                            size_matched=o.size, average_price_matched=o.price, status=OrderStatus.EXECUTION_COMPLETE
                        )
                    else:
                        o = o.evolve(size_cancelled=o.size, status=OrderStatus.EXECUTION_COMPLETE)
                    orders[j] = o
                    with world.lock:
                        book.record_order(o)
                elif kind == "settle":
                    _, k, winner, _ = op
                    market = f"mk-{matches[k]}"
                    if market in settled:
                        continue
                    mine = [o for o in orders if o.market_id == market]
                    if any(o.is_live for o in mine):
                        continue  # a market settles once its orders are off the book (the engine cancels them)
                    s = settle_market(
                        market,
                        mine,
                        MatchResult(winner=RUNNERS[winner], outcome="completed", sets_completed=2),
                        commission=0.02,
                        bankroll=book.bankroll,
                        settled_at=clock,
                    )
                    with db.begin() as conn:  # the shared lock first, then the world's (as a decision does)
                        shared_risk.lock_risk(conn)
                        shared.book_realised(conn, market, clock, s.pnl.net_profit)
                        with world.lock:
                            book.record_settlement(s)
                            world.realised.append((clock, s.pnl.net_profit))
                    settled.add(market)
                elif kind == "publish":
                    with world.lock:
                        positions = {}
                        for o in book.open_orders():
                            live = sum(1 for x in book.open_orders(o.market_id) if x.is_live)
                            positions[o.market_id] = (
                                o.market_id.removeprefix("mk-"),
                                book.market_exposure(o.market_id),
                                live,
                            )
                    shared.publish(positions)
                if kill_at is not None and i == 0 and n == kill_at:
                    store.change_controls(db, "test", kill_switch=True, reason="kill switch mid-schedule")
                    with world.lock:
                        world.kill_at = n
                if rng.random() < 0.3:
                    time.sleep(rng.uniform(0, 0.003))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(i, n, ops))
        for i, (n, ops) in enumerate(zip(names, schedule, strict=True))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]
    return world


_minutes = st.integers(0, 20)
_op = st.one_of(
    st.tuples(
        st.just("order"),
        st.integers(0, 2),
        st.integers(0, 1),
        st.sampled_from([Side.BACK, Side.LAY]),
        st.sampled_from(PRICES),
        st.sampled_from([2.0, 5.0, 10.0, 20.0]),
        _minutes,
    ),
    st.tuples(st.just("fill"), _minutes),
    st.tuples(st.just("cancel"), _minutes),
    st.tuples(st.just("settle"), st.integers(0, 2), st.integers(0, 1), _minutes),
    st.tuples(st.just("publish"), _minutes),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    schedule=st.lists(st.lists(_op, min_size=5, max_size=30), min_size=2, max_size=3),
    seed=st.integers(0, 10_000),
    kill=st.booleans(),
)
def test_no_limit_spanning_matches_is_exceeded_by_workers_deciding_at_once(db, schedule, seed, kill):
    kill_at = len(schedule[0]) // 2 if kill else None
    world = _run(db, schedule, seed, kill_at=kill_at)
    assert not world.violations, world.violations[:5]


def test_the_workers_compete_for_the_limits(db):
    """A heavy schedule where the shared limits must bind: some orders are rejected by them, none breaks them."""
    rng = random.Random(7)
    schedule = [
        [("order", rng.randrange(3), rng.randrange(2), Side.LAY, 6.0, 10.0, 1) for _ in range(25)] for _ in range(3)
    ]
    world = _run(db, schedule, seed=1)
    assert not world.violations, world.violations[:5]
    assert world.approved and world.rejected.get("TOTAL_EXPOSURE", 0) + world.rejected.get("TOO_MANY_OPEN_ORDERS", 0)
    reservations = shared_risk.reservations(db)
    assert max(r["total_exposure"] for r in reservations) <= LIMITS.max_total_exposure + EPSILON


def test_a_loss_realised_by_one_worker_stops_the_others(db):
    """Worker w0 loses past the daily stop-loss; w1's next risk-adding order is refused by it."""
    _clean(db)
    a, b = shared_risk.SharedRisk(db, "w0"), shared_risk.SharedRisk(db, "w1")
    a.acquire(["w0-m0"])
    b.acquire(["w1-m0"])
    a.realise("mk-w0-m0", START, -30.0)
    book = RiskBook(1000.0)
    book.register_market("mk-w1-m0", RUNNERS)
    request = OrderRequest("r1", "mk-w1-m0", RUNNERS[0], Side.BACK, 2.0, 5.0, edge=0.1, confidence=0.7)
    decision = WorkerLimits(b, 1000.0).reserve(request, "w1-m0", START + timedelta(hours=1), book, LIMITS)
    assert not decision.approved and str(decision.reason) == "DAILY_LOSS_LIMIT", decision
    bankroll = next(c for c in decision.checks if c.check == "BANKROLL_FLOOR")
    assert bankroll.value == 970.0  # the other worker's loss is in the shared bankroll


def test_a_worker_without_the_lease_places_nothing(db):
    _clean(db)
    a, b = shared_risk.SharedRisk(db, "w0", lease_s=60.0), shared_risk.SharedRisk(db, "w1")
    assert a.acquire(["m"]) and not b.acquire(["m"])  # a valid lease is nobody else's
    book = RiskBook(1000.0)
    request = OrderRequest("r1", "mk-m", RUNNERS[0], Side.BACK, 2.0, 5.0, edge=0.1, confidence=0.7)
    decision = WorkerLimits(b, 1000.0).reserve(request, "m", START, book, LIMITS)
    assert not decision.approved and str(decision.reason) == "MATCH_NOT_OWNED"
    assert "worker w0" in decision.message


def test_without_the_lock_the_limit_breaks(db):
    """The counter-test: the same competing workers without the advisory lock exceed the total exposure limit
    (the checks are only as good as the lock; this proves the property test above can fail)."""
    rng = random.Random(3)
    schedule = [
        [("order", rng.randrange(3), rng.randrange(2), Side.LAY, 6.0, 10.0, 0) for _ in range(20)] for _ in range(3)
    ]
    breaches = 0
    for attempt in range(5):
        world = _run(db, schedule, seed=attempt, shared_cls=Unlocked)
        breaches += sum("true total exposure" in v or "open orders" in v for v in world.violations)
        if breaches:
            break
    assert breaches, "without the lock no limit broke: the race window is too small to show anything"
