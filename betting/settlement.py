"""Settlement of a match-odds market from the match outcome.

Whether the market stands is the one rule in ``features.matches`` (``settles_with_winner``): a
completed match, or a retirement/default after at least one full set, settles with the player who
advanced; otherwise the market is void. Two exchange-specific switches on top:

- a walkover is always void (the match never started);
- ``SettlementConfig.void_retirement_before_first_set`` (default True, Betfair's tennis rule) can
  be turned off for venues that settle any retirement with the player who advanced.

Each bet's profit comes from ``betting.payoff`` (the same numbers the exposure checks used);
commission is charged once per market, on net winnings, only when they are positive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from betting.codec import JsonRecord
from betting.money import round_money
from betting.payoff import bet_profit
from betting.records import Bet, BetResult, Order, PnL, Settlement, Side
from features.outcomes import parse_outcome, settles_with_winner

_RETIREMENTS = ("retired", "defaulted")


@dataclass(frozen=True)
class SettlementConfig:
    """Venue rules of settlement."""

    void_retirement_before_first_set: bool = True
    """True: a retirement/default before one full set is completed voids the market (Betfair tennis).
    False: it settles with the player who advanced."""


@dataclass(frozen=True)
class MatchResult(JsonRecord):
    """How a match ended, in the terms of ``features.matches``."""

    winner: str | None
    """Selection of the player who advanced (None for a walkover or when unknown)."""
    outcome: str
    """completed, retired, defaulted, walkover, unfinished or unknown."""
    sets_completed: int
    """Full sets played before the end (what decides a retirement)."""

    @classmethod
    def from_score(cls, winner: str | None, score: str | None) -> MatchResult:
        """The result read from a Sackmann-style score string ("6-4 3-1 RET", "W/O", ...)."""
        outcome, sets_completed = parse_outcome(score)
        return cls(winner=winner, outcome=outcome, sets_completed=sets_completed)


def market_stands(result: MatchResult, config: SettlementConfig = SettlementConfig()) -> bool:
    """True when the market settles with a winner, False when it is void."""
    if result.outcome == "walkover":
        return False
    if settles_with_winner(result.outcome, result.sets_completed):
        return True
    return not config.void_retirement_before_first_set and result.outcome in _RETIREMENTS


def settle_market(
    market_id: str,
    orders: Iterable[Order],
    result: MatchResult,
    *,
    commission: float,
    bankroll: float,
    settled_at: datetime,
    config: SettlementConfig = SettlementConfig(),
) -> Settlement:
    """Every matched bet of the market settled, commission on net winnings, the bankroll after."""
    stands = market_stands(result, config)
    if stands and result.winner is None:
        raise ValueError(f"market {market_id}: outcome {result.outcome!r} settles, but no winner was given")
    bets = []
    for order in orders:
        if order.market_id != market_id or order.size_matched <= 0.0 or order.average_price_matched is None:
            continue
        if stands:
            selection_won = order.selection == result.winner
            profit = bet_profit(order.side, order.average_price_matched, order.size_matched, selection_won)
            bet_won = selection_won if order.side is Side.BACK else not selection_won
            outcome = BetResult.WON if bet_won else BetResult.LOST
        else:
            profit, outcome = 0.0, BetResult.VOID
        bets.append(
            Bet(
                customer_order_ref=order.customer_order_ref,
                bet_id=order.bet_id or "",
                market_id=market_id,
                selection=order.selection,
                side=order.side,
                size_matched=order.size_matched,
                average_price_matched=order.average_price_matched,
                result=outcome,
                profit=profit,
            )
        )
    gross = round_money(sum(b.profit for b in bets))
    charged = round_money(gross * commission) if gross > 0.0 else 0.0
    net = round_money(gross - charged)
    pnl = PnL(
        market_id=market_id,
        gross_profit=gross,
        commission=charged,
        net_profit=net,
        bankroll_before=round_money(bankroll),
        bankroll_after=round_money(bankroll + net),
        settled_at=settled_at,
    )
    return Settlement(
        market_id=market_id,
        outcome=result.outcome,
        sets_completed=result.sets_completed,
        winner=result.winner if stands else None,
        void=not stands,
        bets=tuple(bets),
        pnl=pnl,
    )
