"""The matching arithmetic of the paper exchange (pure functions, no state).

- *Crossing*: an arriving order matches the visible opposite offers at prices at least as good as
  its limit, best first, each at the offer's price (price improvement), until its size is done.
- *Queue*: a resting order fills only from volume traded at its price or better for it, after
  the volume ahead of it in the queue has traded (``advance_queue``).
"""

from __future__ import annotations

from collections.abc import Mapping

from betting.money import EPSILON, round_money
from betting.records import Side


def crosses(side: Side, limit: float, price: float) -> bool:
    """True when an order at ``limit`` can be matched at ``price`` (a back wants more, a lay less)."""
    return price >= limit if side is Side.BACK else price <= limit


def fillable(side: Side, limit: float, levels: list[list[float]]) -> float:
    """Size an arriving order could match now against ``levels`` (best first, [price, size])."""
    return round_money(sum(size for price, size in levels if crosses(side, limit, price)))


def take(side: Side, limit: float, levels: list[list[float]], size: float) -> list[tuple[float, float]]:
    """Match up to ``size`` against ``levels`` (best first), consuming them; returns (price, size) matches."""
    matches = []
    remaining = size
    for level in levels:
        if remaining <= EPSILON or not crosses(side, limit, level[0]):
            break
        matched = round_money(min(remaining, level[1]))
        if matched <= 0.0:
            continue
        matches.append((level[0], matched))
        level[1] = round_money(level[1] - matched)
        remaining = round_money(remaining - matched)
    levels[:] = [lv for lv in levels if lv[1] > 0.0]
    return matches


def traded_through(side: Side, limit: float, traded: Mapping[float, float]) -> float:
    """Volume traded at the resting order's price or better for it (what moves its queue)."""
    return sum(size for price, size in traded.items() if crosses(side, limit, price))


def advance_queue(queue_ahead: float, traded: float, remaining: float) -> tuple[float, float]:
    """After ``traded`` volume: (new size ahead, size matched for the resting order)."""
    if traded <= 0.0:
        return queue_ahead, 0.0
    reached = traded - queue_ahead
    if reached <= 0.0:
        return round_money(queue_ahead - traded), 0.0
    return 0.0, round_money(min(remaining, reached))
