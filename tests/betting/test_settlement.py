"""Settlement from the match outcome: winners, retirements, walkovers, commission, bankroll."""

import pytest

from betting.records import BetResult, Side
from betting.settlement import MatchResult, SettlementConfig, market_stands, settle_market
from tests.betting.builders import T0, matched

ORDERS = (
    matched("backA", selection="A", side=Side.BACK, price=2.5, size=10.0),  # +15 / -10
    matched("layB", selection="B", side=Side.LAY, price=3.0, size=5.0),  # -10 / +5
)


DEFAULT_RULES = SettlementConfig()


def settle(result, *, config=DEFAULT_RULES, commission=0.05, bankroll=100.0, orders=ORDERS):
    return settle_market("m1", orders, result, commission=commission, bankroll=bankroll, settled_at=T0, config=config)


def test_completed_match_settles_every_bet_with_commission_on_net_winnings():
    s = settle(MatchResult.from_score("A", "6-4 3-6 7-6(5)"))
    assert (s.outcome, s.sets_completed, s.winner, s.void) == ("completed", 3, "A", False)
    results = {b.customer_order_ref: (b.result, b.profit) for b in s.bets}
    assert results == {"backA": (BetResult.WON, 15.0), "layB": (BetResult.WON, 5.0)}
    assert (s.pnl.gross_profit, s.pnl.commission, s.pnl.net_profit) == (20.0, 1.0, 19.0)
    assert (s.pnl.bankroll_before, s.pnl.bankroll_after) == (100.0, 119.0)


def test_losing_market_pays_no_commission():
    s = settle(MatchResult.from_score("B", "6-4 6-4"))
    results = {b.customer_order_ref: (b.result, b.profit) for b in s.bets}
    assert results == {"backA": (BetResult.LOST, -10.0), "layB": (BetResult.LOST, -10.0)}
    assert (s.pnl.gross_profit, s.pnl.commission, s.pnl.net_profit, s.pnl.bankroll_after) == (-20.0, 0.0, -20.0, 80.0)


def test_retirement_after_a_full_set_settles_with_the_player_who_advanced():
    s = settle(MatchResult.from_score("A", "4-6 2-1 RET"))
    assert (s.outcome, s.sets_completed, s.void, s.winner) == ("retired", 1, False, "A")
    assert s.pnl.gross_profit == 20.0


def test_retirement_before_a_set_is_void_by_default_and_configurable():
    result = MatchResult.from_score("A", "3-1 RET")
    void = settle(result)
    assert void.void and void.winner is None
    assert all(b.result is BetResult.VOID and b.profit == 0.0 for b in void.bets)
    assert (void.pnl.net_profit, void.pnl.bankroll_after) == (0.0, 100.0)
    stands = settle(result, config=SettlementConfig(void_retirement_before_first_set=False))
    assert not stands.void and stands.pnl.gross_profit == 20.0


def test_walkover_is_always_void():
    result = MatchResult.from_score(None, "W/O")
    assert not market_stands(result)
    assert not market_stands(result, SettlementConfig(void_retirement_before_first_set=False))
    assert settle(result).void


def test_unknown_outcome_is_void_and_a_standing_market_needs_a_winner():
    assert settle(MatchResult(winner=None, outcome="unknown", sets_completed=0)).void
    with pytest.raises(ValueError):
        settle(MatchResult(winner=None, outcome="completed", sets_completed=2))


def test_commission_rounds_to_the_penny():
    order = matched("x", selection="A", side=Side.BACK, price=1.33, size=3.0)  # +0.99
    s = settle(MatchResult.from_score("A", "6-0 6-0"), orders=(order,), commission=0.05)
    assert (s.pnl.gross_profit, s.pnl.commission, s.pnl.net_profit) == (0.99, 0.05, 0.94)


def test_orders_of_other_markets_and_unmatched_orders_are_not_settled_here():
    other = matched("o", market="m2", selection="A", size=10.0)
    s = settle(MatchResult.from_score("A", "6-0 6-0"), orders=(*ORDERS, other))
    assert {b.customer_order_ref for b in s.bets} == {"backA", "layB"}
