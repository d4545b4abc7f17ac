"""Every risk limit on its own: accepted just under (or at) the limit, rejected just over it."""

from dataclasses import replace
from datetime import timedelta

import pytest

from betting.records import Side
from betting.risk import RejectReason, RiskBook, RiskLimits, check
from tests.betting.builders import T0, matched, request, resting, settlement

LOOSE = RiskLimits(
    max_stake=1000.0,
    max_selection_exposure=1000.0,
    max_market_exposure=1000.0,
    max_total_exposure=1000.0,
    daily_loss_limit=1000.0,
    weekly_loss_limit=1000.0,
    daily_profit_target=None,
    min_edge=0.0,
    min_confidence=0.0,
    min_price=1.01,
    max_price=1000.0,
    max_open_orders=100,
    max_orders_per_hour=1000,
    bankroll_floor=0.0,
)
"""Nothing binds; each test tightens one limit."""


def book_with(*orders, bankroll: float = 1000.0, runners=("A", "B")) -> RiskBook:
    book = RiskBook(bankroll)
    book.register_market("m1", runners)
    book.register_market("m2", ("C", "D"))
    for order in orders:
        book.record_order(order)
    return book


def verdict(limits, book, req, now=T0):
    decision = check(req, book, now, limits)
    return decision.reason if not decision.approved else "ok"


def test_max_stake():
    limits = replace(LOOSE, max_stake=50.0)
    assert verdict(limits, book_with(), request("r", size=50.0)) == "ok"
    assert verdict(limits, book_with(), request("r", size=50.01)) is RejectReason.STAKE_ABOVE_MAX


def test_max_selection_exposure():
    limits = replace(LOOSE, max_selection_exposure=100.0)
    book = book_with(matched("x", selection="A", side=Side.BACK, price=2.0, size=60.0))
    assert verdict(limits, book, request("r", selection="A", size=40.0)) == "ok"
    assert verdict(limits, book, request("r", selection="A", size=40.01)) is RejectReason.SELECTION_EXPOSURE


def test_selection_exposure_of_a_lay_is_its_liability():
    limits = replace(LOOSE, max_selection_exposure=100.0)
    assert verdict(limits, book_with(), request("r", side=Side.LAY, price=5.0, size=25.0)) == "ok"  # 4 x 25 = 100
    assert verdict(limits, book_with(), request("r", side=Side.LAY, price=5.0, size=25.01)) is (
        RejectReason.SELECTION_EXPOSURE
    )


def test_max_market_exposure():
    limits = replace(LOOSE, max_selection_exposure=100.0, max_market_exposure=150.0)
    book = book_with(matched("x", selection="A", side=Side.BACK, price=2.0, size=100.0))  # loses 100 if B wins
    # laying B adds to the loss when B wins; B's own exposure (50) stays under its limit
    assert verdict(limits, book, request("r", selection="B", side=Side.LAY, price=2.0, size=50.0)) == "ok"
    assert verdict(limits, book, request("r", selection="B", side=Side.LAY, price=2.0, size=50.01)) is (
        RejectReason.MARKET_EXPOSURE
    )


def test_max_total_exposure():
    limits = replace(LOOSE, max_selection_exposure=100.0, max_market_exposure=150.0, max_total_exposure=150.0)
    book = book_with(matched("x", market="m1", selection="A", size=100.0))
    assert verdict(limits, book, request("r", market="m2", selection="C", size=50.0)) == "ok"
    assert verdict(limits, book, request("r", market="m2", selection="C", size=50.01)) is RejectReason.TOTAL_EXPOSURE


def test_unmatched_orders_count_at_their_limit_price():
    limits = replace(LOOSE, max_selection_exposure=100.0)
    book = book_with(resting("x", side=Side.LAY, price=3.0, size=30.0))  # could lose 60 if it matches
    assert verdict(limits, book, request("r", side=Side.LAY, price=3.0, size=20.0)) == "ok"
    assert verdict(limits, book, request("r", side=Side.LAY, price=3.0, size=20.01)) is RejectReason.SELECTION_EXPOSURE


def test_daily_loss_limit():
    limits = replace(LOOSE, daily_loss_limit=100.0)
    under = book_with()
    under.record_settlement(settlement("s", -99.99, T0 - timedelta(hours=1)))
    assert verdict(limits, under, request("r")) == "ok"
    over = book_with()
    over.record_settlement(settlement("s", -100.01, T0 - timedelta(hours=1)))
    assert verdict(limits, over, request("r")) is RejectReason.DAILY_LOSS_LIMIT
    assert verdict(limits, over, request("r"), now=T0 + timedelta(days=1)) == "ok"  # a new UTC day


def test_daily_stop_latches_even_if_the_day_wins_it_back():
    limits = replace(LOOSE, daily_loss_limit=100.0)
    book = book_with()
    book.record_settlement(settlement("s1", -100.0, T0 - timedelta(hours=2)))
    book.record_settlement(settlement("s2", +80.0, T0 - timedelta(hours=1)))
    assert book.day_pnl(T0) == -20.0
    assert verdict(limits, book, request("r")) is RejectReason.DAILY_LOSS_LIMIT


def test_weekly_loss_limit():
    limits = replace(LOOSE, weekly_loss_limit=150.0)
    monday = T0  # 2024-01-01 is a Monday
    under = book_with()
    under.record_settlement(settlement("s", -149.99, monday))
    assert verdict(limits, under, request("r"), now=monday + timedelta(days=2)) == "ok"
    over = book_with()
    over.record_settlement(settlement("s", -150.01, monday))
    assert verdict(limits, over, request("r"), now=monday + timedelta(days=2)) is RejectReason.WEEKLY_LOSS_LIMIT
    assert verdict(limits, over, request("r"), now=monday + timedelta(days=7)) == "ok"  # next ISO week


def test_daily_profit_target():
    limits = replace(LOOSE, daily_profit_target=100.0)
    under = book_with()
    under.record_settlement(settlement("s", 99.99, T0))
    assert verdict(limits, under, request("r")) == "ok"
    over = book_with()
    over.record_settlement(settlement("s", 100.01, T0))
    assert verdict(limits, over, request("r")) is RejectReason.DAILY_PROFIT_TARGET


def test_min_edge():
    limits = replace(LOOSE, min_edge=0.02)
    assert verdict(limits, book_with(), request("r", edge=0.02)) == "ok"
    assert verdict(limits, book_with(), request("r", edge=0.0199)) is RejectReason.EDGE_BELOW_MIN
    assert verdict(limits, book_with(), request("r", edge=None)) is RejectReason.EDGE_BELOW_MIN


def test_min_confidence():
    limits = replace(LOOSE, min_confidence=0.55)
    assert verdict(limits, book_with(), request("r", confidence=0.55)) == "ok"
    assert verdict(limits, book_with(), request("r", confidence=0.5499)) is RejectReason.CONFIDENCE_BELOW_MIN


@pytest.mark.parametrize(("price", "ok"), [(1.10, True), (1.09, False), (10.0, True), (10.5, False)])
def test_price_bounds(price, ok):
    limits = replace(LOOSE, min_price=1.10, max_price=10.0)
    result = verdict(limits, book_with(), request("r", price=price))
    assert result == ("ok" if ok else RejectReason.PRICE_OUT_OF_BOUNDS)


def test_max_open_orders():
    limits = replace(LOOSE, max_open_orders=3)
    two = book_with(
        resting("x1", price=3.0, size=2.0), resting("x2", price=3.0, size=2.0), matched("done", size=2.0)
    )  # matched orders are not open
    assert verdict(limits, two, request("r")) == "ok"
    three = book_with(
        resting("x1", price=3.0, size=2.0), resting("x2", price=3.0, size=2.0), resting("x3", price=3.0, size=2.0)
    )
    assert verdict(limits, three, request("r")) is RejectReason.TOO_MANY_OPEN_ORDERS


def test_max_orders_per_hour_is_a_sliding_window():
    limits = replace(LOOSE, max_orders_per_hour=5)
    first = T0 - timedelta(minutes=59)
    orders = [matched(f"x{i}", size=1.0, at=first + timedelta(minutes=i)) for i in range(5)]
    four = book_with(*orders[:4])
    assert verdict(limits, four, request("r", size=1.0)) == "ok"
    five = book_with(*orders)
    assert verdict(limits, five, request("r", size=1.0)) is RejectReason.ORDER_RATE
    # an hour after the first one it has left the window
    assert verdict(limits, five, request("r", size=1.0), now=first + timedelta(hours=1)) == "ok"


def test_bankroll_floor_with_the_worst_case_of_every_open_position():
    limits = replace(LOOSE, bankroll_floor=900.0)
    assert verdict(limits, book_with(), request("r", size=100.0)) == "ok"  # 1000 - 100 = 900
    assert verdict(limits, book_with(), request("r", size=100.01)) is RejectReason.BANKROLL_FLOOR


def test_nothing_is_accepted_below_the_bankroll_floor_not_even_a_hedge():
    limits = replace(LOOSE, bankroll_floor=900.0)
    position = matched("x", side=Side.BACK, price=2.0, size=10.0)
    assert verdict(limits, book_with(position, bankroll=900.0), request("h", side=Side.LAY, size=10.0)) == "ok"
    assert verdict(limits, book_with(position, bankroll=899.99), request("h", side=Side.LAY, size=10.0)) is (
        RejectReason.BANKROLL_FLOOR
    )


def test_kill_switch_rejects_everything():
    position = matched("x", side=Side.BACK, price=2.0, size=10.0)
    assert verdict(LOOSE, book_with(position), request("h", side=Side.LAY, size=10.0)) == "ok"
    killed = replace(LOOSE, kill_switch=True)
    assert verdict(killed, book_with(position), request("h", side=Side.LAY, size=10.0)) is RejectReason.KILL_SWITCH


def test_a_hedge_is_allowed_at_the_exposure_limits_and_after_a_stop():
    limits = replace(
        LOOSE,
        max_selection_exposure=100.0,
        max_market_exposure=100.0,
        max_total_exposure=100.0,
        daily_loss_limit=50.0,
        min_edge=0.05,
        min_price=1.5,
        max_price=3.0,
    )
    book = book_with(matched("x", side=Side.BACK, price=2.0, size=100.0))
    book.record_settlement(settlement("old", -60.0, T0))  # the daily stop is on
    hedge = request("h", side=Side.LAY, price=1.4, size=100.0, edge=None, confidence=None)  # locks in a profit
    decision = check(hedge, book, T0, limits)
    assert decision.approved, decision.message
    new_risk = request("n", side=Side.BACK, price=2.0, size=1.0)
    assert verdict(limits, book, new_risk) is RejectReason.DAILY_LOSS_LIMIT
    over_hedge = request("o", side=Side.LAY, price=2.0, size=200.01, edge=0.1)
    assert not check(over_hedge, book, T0, limits).approved


def test_a_resubmitted_reference_is_approved_and_a_reused_one_rejected():
    limits = replace(LOOSE, max_stake=5.0)
    book = book_with(matched("x", price=2.0, size=10.0))
    assert verdict(limits, book, request("x", price=2.0, size=10.0)) == "ok"  # the exchange will return it
    assert verdict(limits, book, request("x", price=2.2, size=10.0)) is RejectReason.INVALID_ORDER


@pytest.mark.parametrize(("price", "size"), [(2.01, 10.0), (2.0, 0.0), (2.0, 1.005)])
def test_invalid_orders_never_pass(price, size):
    assert verdict(LOOSE, book_with(), request("r", price=price, size=size)) is RejectReason.INVALID_ORDER
