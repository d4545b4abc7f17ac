"""One trading decision on a two-runner market: the single rule both lanes use (the live engine
in-play, the Dagster pre-match scan), so value, staking and references never differ between them.

    probability of the first selection + market book -> every opportunity (``detect_value``) ->
    the best one by edge -> fractional-Kelly stake (capped by the max stake) -> an order request
    with a deterministic client reference

The risk checks stay with whoever places the order (``betting.risk.check``), against its book.
"""

from __future__ import annotations

from dataclasses import dataclass

from betting.market import MarketBook
from betting.records import OrderRequest, customer_order_ref
from betting.staking import StakingConfig, kelly_fraction, kelly_stake
from betting.value import Opportunity, ValueConfig, detect_value


@dataclass(frozen=True)
class Decision:
    """What the market and the model gave: the best opportunity (if any) and the order (if staked)."""

    opportunity: Opportunity | None
    request: OrderRequest | None


def decide(
    match_id: str,
    book: MarketBook,
    probability_first: float,
    selections: tuple[str, str],
    bankroll: float,
    value: ValueConfig,
    staking: StakingConfig,
    max_stake: float,
    ref_parts: tuple[object, ...],
) -> Decision:
    """The best bet on ``book`` given P(``selections[0]`` wins); the reference is derived from
    ``(match_id, *ref_parts, selection, side)`` so the same decision always gets the same one.
    A decided match (probability 0 or 1, e.g. match point converted before the market closes) offers
    no bet: there is no price at which the model's certainty is information."""
    if not 0.0 < probability_first < 1.0:
        return Decision(None, None)
    found: list[Opportunity] = []
    for selection, prob in zip(selections, (probability_first, 1.0 - probability_first), strict=True):
        runner = book.runner(selection)
        if runner is None:
            continue
        found += detect_value(
            match_id, selection, prob, back_price=runner.best_back, lay_price=runner.best_lay, config=value
        )
    if not found:
        return Decision(None, None)
    opp = max(found, key=lambda o: o.edge)
    size = kelly_stake(opp.side, opp.model_probability, opp.price, bankroll, staking, cap=max_stake)
    if size <= 0:
        return Decision(opp, None)
    ref = customer_order_ref(match_id, *ref_parts, opp.selection, opp.side)
    return Decision(opp, opp.to_order_request(market_id=book.market_id, size=size, customer_order_ref=ref))


def stake_rule(opp: Opportunity, bankroll: float, staking: StakingConfig, max_stake: float, size: float) -> dict:
    """How ``decide`` sized the order, in numbers a person can redo: fractional Kelly of the bankroll at risk,
    capped by the max stake, rounded down to the stake step (0 below the exchange minimum)."""
    full = kelly_fraction(opp.side, opp.model_probability, opp.price, staking.commission)
    return {
        "rule": "fractional Kelly",
        "kelly_fraction": staking.kelly_fraction,
        "full_kelly": round(full, 6),
        "bankroll": bankroll,
        "at_risk": round(staking.kelly_fraction * full * bankroll, 2),
        "at_risk_is": "stake" if opp.side == "BACK" else "liability",
        "max_stake": max_stake,
        "min_stake": staking.min_stake,
        "size": size,
    }
