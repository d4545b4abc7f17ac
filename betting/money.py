"""Money arithmetic: every amount is a ``float`` in the account currency, recorded to the penny.

Floats (not ``Decimal``) because the exchange API, the feed and pandas all speak floats; exactness
comes from rounding at every point where money is *recorded* (stakes, matched sizes, liabilities,
profits, commission, bankroll), always through the two functions below, so that exposure checks and
settlement compute the very same numbers:

- ``round_money``: half-up (away from zero) on the decimal representation, to 0.01. A loss or a
  liability is therefore never understated by float noise (-0.005 -> -0.01).
- ``floor_to_step``: stakes are rounded *down* to the currency step, so a stake never exceeds what
  Kelly or a limit allowed.

Comparisons against limits use ``EPSILON`` so that a sum of penny amounts that lands on a limit
(10.000000000000002 for 3.3 + 6.7) counts as on the limit, not over it.
"""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

PENNY = 0.01
"""Smallest recorded amount of money."""

EPSILON = 1e-9
"""Tolerance of money comparisons (far below a penny, far above float noise on amounts < 1e6)."""


def _decimal(amount: float) -> Decimal:
    if not math.isfinite(amount):
        raise ValueError(f"not a finite amount of money: {amount!r}")
    return Decimal(repr(float(amount)))


_FAST_LIMIT = 1e7
"""Below this size an amount in cents is known to ~1e-7 of a cent, so ``round_money`` can tell a half penny."""


def round_money(amount: float) -> float:
    """The amount to the penny, half away from zero (on the decimal representation).

    Fast path, the same float: away from a half penny, the float's nearest penny (``round``, correctly
    rounded) is the one its decimal representation rounds to — they differ by less than a float's spacing;
    within 1e-6 of a cent of a half penny (or beyond ``_FAST_LIMIT``, or not finite) the decimal rule
    decides."""
    if -_FAST_LIMIT < amount < _FAST_LIMIT:
        fraction = abs(amount * 100.0) % 1.0
        if abs(fraction - 0.5) > 1e-6:
            return round(amount, 2) + 0.0
    return float(_decimal(amount).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)) + 0.0


def floor_to_step(amount: float, step: float = PENNY) -> float:
    """The largest multiple of ``step`` not above ``amount`` (a stake never rounds up)."""
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    # a hair of tolerance so that 0.29 / 0.01 = 28.999999999999996 still floors to 29 steps
    units = (_decimal(amount) / _decimal(step) + Decimal("1e-9")).to_integral_value(rounding=ROUND_FLOOR)
    return round_money(float(units * _decimal(step)))


def is_penny_amount(amount: float) -> bool:
    """True when the amount has no fraction of a penny (what an exchange accepts as a size)."""
    return math.isfinite(amount) and abs(round_money(amount) - amount) < EPSILON
