"""The Betfair price ladder: decimal odds 1.01-1000 on 350 ticks.

Increments: 0.01 up to 2, 0.02 to 3, 0.05 to 4, 0.1 to 6, 0.2 to 10, 0.5 to 20, 1 to 30, 2 to 50,
5 to 100, 10 to 1000. Any other price is invalid odds (the exchange rejects it).

Rounding a price that is not on the ladder (a model's fair price, a simulated market price) goes
in the *conservative* direction: the one that is worse for whoever takes the price.

- BACK rounds **down** (a backer is paid less at a lower price),
- LAY rounds **up** (a layer risks more at a higher price),

so an edge computed at the rounded price is never better than the unrounded one, and an order
at the rounded price never claims a price the market did not show.
"""

from __future__ import annotations

import bisect
import math

from betting.records import Side

_BANDS_CENTS = (
    (200, 1),
    (300, 2),
    (400, 5),
    (600, 10),
    (1000, 20),
    (2000, 50),
    (3000, 100),
    (5000, 200),
    (10000, 500),
    (100000, 1000),
)
"""(upper bound, increment) of each band, in hundredths of a unit of odds."""


def _build_ladder() -> tuple[int, ...]:
    cents = [101]
    for upper, step in _BANDS_CENTS:
        while cents[-1] < upper:
            cents.append(cents[-1] + step)
    return tuple(cents)


TICK_CENTS: tuple[int, ...] = _build_ladder()
"""Every valid price in hundredths (exact integers)."""

TICKS: tuple[float, ...] = tuple(c / 100 for c in TICK_CENTS)
"""Every valid price, ascending: 1.01, 1.02, ..., 990.0, 1000.0 (350 ticks)."""

MIN_PRICE: float = TICKS[0]
MAX_PRICE: float = TICKS[-1]

_INDEX = {c: i for i, c in enumerate(TICK_CENTS)}
_EXACT: dict[float, int] = {t: i for i, t in enumerate(TICKS)}
"""The ladder's own floats (what prices almost always are): their index in one dict lookup, the
tolerant hundredths arithmetic only for the rest (2.0000000001, an int)."""
_TOLERANCE = 1e-6  # in hundredths: 2.0000000001 is 2.00, 2.001 is not a tick

assert len(TICKS) == 350


class InvalidPrice(ValueError):
    """A price that is not on the ladder (the exchange's INVALID_ODDS)."""


def _cents(price: float) -> int | None:
    if not isinstance(price, int | float) or not math.isfinite(price):
        return None
    scaled = price * 100
    cents = round(scaled)
    return cents if abs(scaled - cents) <= _TOLERANCE else None


def is_valid_price(price: float) -> bool:
    """True when the price is one of the 350 ticks."""
    if type(price) is float and price in _EXACT:
        return True
    return _cents(price) in _INDEX


def tick_index(price: float) -> int:
    """Position of the price on the ladder (1.01 -> 0, 1000 -> 349); invalid odds raise."""
    if type(price) is float:
        exact = _EXACT.get(price)
        if exact is not None:
            return exact
    index = _INDEX.get(_cents(price))  # type: ignore[arg-type]
    if index is None:
        raise InvalidPrice(f"{price!r} is not on the Betfair price ladder")
    return index


def canonical_price(price: float) -> float:
    """The exact ladder float for a valid price (2.0000000001 -> 2.0); invalid odds raise."""
    return TICKS[tick_index(price)]


def round_to_tick(price: float, side: Side) -> float:
    """The nearest tick in the conservative direction: down for a back, up for a lay.

    A back below 1.01 or a lay above 1000 has no conservative tick and raises ``InvalidPrice``;
    a back above 1000 becomes 1000 and a lay below 1.01 becomes 1.01.
    """
    if is_valid_price(price):
        return canonical_price(price)
    if not isinstance(price, int | float) or math.isnan(price):
        raise InvalidPrice(f"{price!r} is not a price")
    if side is Side.BACK:
        i = bisect.bisect_right(TICKS, price) - 1
        if i < 0:
            raise InvalidPrice(f"no back price at or below {price!r} (the ladder starts at {MIN_PRICE})")
        return TICKS[i]
    i = bisect.bisect_left(TICKS, price)
    if i >= len(TICKS):
        raise InvalidPrice(f"no lay price at or above {price!r} (the ladder ends at {MAX_PRICE})")
    return TICKS[i]


def ticks_between(from_price: float, to_price: float) -> int:
    """Signed number of ticks from one valid price to another (2.0 -> 2.02 is +1)."""
    return tick_index(to_price) - tick_index(from_price)


def tick_offset(price: float, ticks: int) -> float:
    """The price ``ticks`` ticks away (clamped to the ladder's ends)."""
    return TICKS[min(max(tick_index(price) + ticks, 0), len(TICKS) - 1)]
