"""What one bet pays: the liability and the profit if the selection wins or loses.

The single source of these numbers for exposure (``betting.exposure``) and for settlement
(``betting.settlement``), computed the same way for both, so that a settled loss can never exceed
the exposure the risk checks saw:

- exact arithmetic: prices are ladder ticks (whole hundredths) and sizes whole pennies, so
  ``(price - 1) x size`` is a whole number of *units* of 1/10000 of the currency. An order's
  average matched price is turned back into its exact units (``average x size`` of pennies and
  hundredths is an integer; float noise is far below half a unit).
- one rounding per order: the units of an order are rounded half away from zero to the penny
  once. Splitting an order into partial fills therefore never adds a penny of exposure.
"""

from __future__ import annotations

from betting.records import Side

UNITS_PER_PENNY = 100
"""Exact profit units per penny (a unit is 1/10000 of the currency)."""


def _cents(amount: float) -> int:
    return round(amount * 100)


def profit_units(side: Side, price: float, size: float, selection_won: bool) -> int:
    """Exact profit of a bet before commission, in units of 1/10000, given whether its selection won.

    ``price`` may be an average matched price; ``size`` must be whole pennies.
    """
    size_cents = _cents(size)
    win_units = round(price * 100 * size_cents) - 100 * size_cents  # (price - 1) x size, exact
    stake_units = 100 * size_cents
    if side is Side.BACK:
        return win_units if selection_won else -stake_units
    return -win_units if selection_won else stake_units


def units_to_money(units: int) -> float:
    """Units rounded half away from zero to the penny, as money."""
    pennies = (abs(units) + UNITS_PER_PENNY // 2) // UNITS_PER_PENNY
    return (pennies if units >= 0 else -pennies) / 100 + 0.0


def bet_profit(side: Side, price: float, size: float, selection_won: bool) -> float:
    """Profit of a matched bet before commission, to the penny, given whether its selection won."""
    return units_to_money(profit_units(side, price, size, selection_won))


def liability(side: Side, price: float, size: float) -> float:
    """Most the bet can lose: the stake for a back, (price - 1) x stake for a lay."""
    return -min(bet_profit(side, price, size, True), bet_profit(side, price, size, False)) + 0.0
