"""Staking: fractional Kelly on the edge after commission.

For a bet that risks 1 to win ``b`` (after commission) with win probability ``w``, Kelly's optimal
fraction of the bankroll *at risk* is ``f* = (w b - (1 - w)) / b``:

- back at price o: risk the stake, ``b = (o - 1)(1 - c)``, ``w = p``;
- lay at price o: risk the liability (o - 1) x stake, ``b = (1 - c) / (o - 1)``, ``w = 1 - p``.

The numerator is exactly the edge of ``betting.value`` in both cases, so ``f* = edge / b``. The
order size is the backer's stake: ``f B`` for a back, ``f B / (o - 1)`` for a lay. Sizes are rounded
*down* to the currency step; a size below the exchange minimum becomes 0 (no bet), never the minimum.
Risk limits cap the result separately (``cap``), they are checked again before the order leaves.
"""

from __future__ import annotations

from dataclasses import dataclass

from betting.money import floor_to_step
from betting.records import Side
from betting.value import edge


@dataclass(frozen=True)
class StakingConfig:
    """How much of the Kelly stake to bet, and the exchange's stake rules."""

    kelly_fraction: float = 0.25
    """Multiplier of the full Kelly fraction (0.25 = quarter Kelly: ~half the growth, far less variance)."""
    commission: float = 0.05
    """Exchange commission on net winnings, in the odds the Kelly formula sees."""
    stake_step: float = 0.01
    """Currency step: stakes are rounded down to a multiple of it."""
    min_stake: float = 1.00
    """Exchange minimum stake: a smaller Kelly stake is no bet (0), never rounded up to it."""

    def __post_init__(self) -> None:
        if not 0.0 < self.kelly_fraction <= 1.0:
            raise ValueError(f"kelly_fraction must be in (0, 1], got {self.kelly_fraction}")
        if not 0.0 <= self.commission < 1.0:
            raise ValueError(f"commission must be in [0, 1), got {self.commission}")
        if self.stake_step <= 0 or self.min_stake < 0:
            raise ValueError("stake_step must be positive and min_stake non-negative")


def kelly_fraction(side: Side, model_probability: float, price: float, commission: float) -> float:
    """Full-Kelly fraction of the bankroll to put at risk (stake for a back, liability for a lay); 0 without edge."""
    e = edge(side, model_probability, price, commission)
    if e <= 0.0:
        return 0.0
    b = (price - 1.0) * (1.0 - commission) if side is Side.BACK else (1.0 - commission) / (price - 1.0)
    return e / b


def kelly_stake(
    side: Side,
    model_probability: float,
    price: float,
    bankroll: float,
    config: StakingConfig,
    cap: float | None = None,
) -> float:
    """Order size (backer's stake) from fractional Kelly, capped, rounded down; 0 when below the minimum."""
    if bankroll <= 0.0:
        return 0.0
    at_risk = config.kelly_fraction * kelly_fraction(side, model_probability, price, config.commission) * bankroll
    size = at_risk if side is Side.BACK else at_risk / (price - 1.0)
    if cap is not None:
        size = min(size, cap)
    size = floor_to_step(max(size, 0.0), config.stake_step)
    return size if size >= config.min_stake and size > 0.0 else 0.0
