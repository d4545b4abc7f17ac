"""Worst-case exposure: matched bets, unmatched orders, hedges, unknown runners, rounding."""

import pytest

from betting.exposure import market_exposure, order_outcome_pnl, selection_exposure
from betting.payoff import bet_profit, liability
from betting.records import Side
from tests.betting.builders import matched, resting


def test_liability_of_back_and_lay():
    assert liability(Side.BACK, 3.0, 10.0) == 10.0
    assert liability(Side.LAY, 3.0, 10.0) == 20.0
    assert liability(Side.LAY, 1.5, 3.33) == 1.67  # 1.665 rounds half away from zero
    assert bet_profit(Side.LAY, 1.5, 3.33, selection_won=False) == 3.33


def test_back_and_lay_worst_cases_over_both_outcomes():
    back = matched("b", selection="A", side=Side.BACK, price=2.5, size=10.0)
    assert market_exposure([back], ("A", "B")) == 10.0
    lay = matched("l", selection="A", side=Side.LAY, price=2.5, size=10.0)
    assert market_exposure([lay], ("A", "B")) == 15.0


def test_a_matched_hedge_lowers_the_exposure():
    back = matched("b", side=Side.BACK, price=3.0, size=10.0)  # +20 / -10
    hedge = matched("h", side=Side.LAY, price=2.0, size=15.0)  # -15 / +15
    assert market_exposure([back, hedge], ("A", "B")) == 0.0  # +5 whoever wins


def test_an_unmatched_hedge_neither_lowers_nor_raises_the_exposure():
    back = matched("b", side=Side.BACK, price=3.0, size=10.0)
    hedge = resting("h", side=Side.LAY, price=2.0, size=15.0)
    assert market_exposure([back, hedge], ("A", "B")) == 10.0


def test_dutching_with_known_runners_and_conservatively_without():
    a = matched("a", selection="A", price=2.0, size=10.0)
    b = matched("b", selection="B", price=2.0, size=10.0)
    assert market_exposure([a, b], ("A", "B")) == 0.0
    assert market_exposure([a, b], None) == 20.0  # an unnamed third runner could win
    assert selection_exposure([a, b], "A") == 10.0


def test_partial_fills_never_add_a_penny():
    whole = resting("l", side=Side.LAY, price=1.5, size=3.33)
    parts = [(0.01, 3.32), (1.11, 2.22), (3.32, 0.01)]
    before = -order_outcome_pnl(whole, "A")
    assert before == 1.67
    for m, r in parts:
        partly = whole.__class__(**{**whole.__dict__, "size_matched": m, "average_price_matched": 1.5})
        assert partly.size_remaining == pytest.approx(r)
        assert -order_outcome_pnl(partly, "A") == before
