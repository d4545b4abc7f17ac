"""``betting.decision.decide``: the one trading decision both lanes make."""

import pytest

from betting.decision import decide
from betting.records import Side
from betting.staking import StakingConfig
from betting.value import ValueConfig, edge
from tests.betting.builders import market_book, runner

BOOK = market_book(
    "m1", runner("A", back=[(2.2, 500)], lay=[(2.26, 500)]), runner("B", back=[(1.8, 500)], lay=[(1.84, 500)])
)


def _decide(p, bankroll=1000.0, max_stake=50.0, parts=(7,)):
    return decide("match-1", BOOK, p, ("A", "B"), bankroll, ValueConfig(), StakingConfig(), max_stake, parts)


def test_backs_the_selection_with_the_largest_edge_after_commission():
    d = _decide(0.6)
    assert d.request is not None and d.opportunity is not None
    assert (d.request.selection, d.request.side, d.request.price) == ("A", Side.BACK, 2.2)
    assert d.opportunity.edge == pytest.approx(edge(Side.BACK, 0.6, 2.2, 0.05))
    assert 0 < d.request.size <= 50.0


def test_the_same_decision_gets_the_same_reference_and_another_point_another():
    assert _decide(0.6).request.customer_order_ref == _decide(0.6).request.customer_order_ref
    assert _decide(0.6).request.customer_order_ref != _decide(0.6, parts=(8,)).request.customer_order_ref


def test_no_value_no_order_and_tiny_kelly_stakes_are_not_rounded_up():
    none = _decide(0.45)  # inside the spread once commission is paid: neither back nor lay pays
    assert none.opportunity is None and none.request is None
    small = _decide(0.6, bankroll=5.0)
    assert small.opportunity is not None and small.request is None  # below the 1.00 minimum stake


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_a_decided_match_offers_no_bet(p):
    assert _decide(p).opportunity is None and _decide(p).request is None
