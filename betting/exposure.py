"""Exposure: the worst-case loss of a position over the outcomes of a market.

A match-odds market has one outcome per runner ("this runner wins"); a void market pays nothing
and is never the worst case. The loss in an outcome counts

- every *matched* bet at its average matched price (what settlement will book), and
- every *unmatched* live order (in the bet delay or resting) at its limit price, but only when it
  would lose in that outcome: an unmatched order may fill completely or not at all before the
  outcome is known, and the worst case picks whichever hurts.

The matched and unmatched parts of one order win or lose together, and each order is rounded to
the penny once (``betting.payoff``), so partial fills never add a penny and settlement never books
more loss than the exposure showed.

So the exposure bounds the loss of every possible future of the open orders (any partial fills;
matching at a better price than the limit only lowers a loss). A hedge that is still unmatched
lowers nothing yet, but it does not raise the exposure either (unless it over-hedges): with
``before`` = exposure without the order and ``full`` = exposure if it matched fully, adding it
gives ``max(before, full)`` - a loss is convex in the fill fraction.

Scopes: a *selection*'s exposure uses only its own orders, over "it wins" / "it loses"; a
*market*'s uses all its orders over every runner winning; the *total* is the sum over markets
(separate matches are separate events, so their worst cases can coincide).

When the market's runners are not known, an unnamed other runner (``OTHER_RUNNER``) is added to
the outcomes: conservative (it makes every back lose), exact for a two-runner market once both
runners have been seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from betting.money import round_money
from betting.payoff import profit_units, units_to_money
from betting.records import Order

OTHER_RUNNER = "<other runner>"
"""Stands for any runner of the market that no order names (used when runners are unknown)."""


def order_outcome_pnl(order: Order, winner: str) -> float:
    """Worst profit of one order when ``winner`` wins: the matched part as settlement will book it,
    plus the unmatched part at its limit price only if it loses; rounded to the penny once."""
    selection_won = order.selection == winner
    units = 0
    if order.size_matched > 0.0 and order.average_price_matched is not None:
        units += profit_units(order.side, order.average_price_matched, order.size_matched, selection_won)
    remaining = order.size_remaining
    if remaining > 0.0:
        units += min(0, profit_units(order.side, order.price, remaining, selection_won))
    return units_to_money(units)


def market_outcomes(orders: Iterable[Order], runners: Sequence[str] | None = None) -> tuple[str, ...]:
    """The winners to consider: the known runners, else the selections seen plus an unnamed other runner."""
    if runners:
        known = list(dict.fromkeys(runners))
        return tuple(known + [o.selection for o in orders if o.selection not in known])
    return tuple(dict.fromkeys(o.selection for o in orders)) + (OTHER_RUNNER,)


OutcomePnl = Callable[[Order, str], float]
"""``order_outcome_pnl`` or a memo of it (``betting.risk.RiskBook`` keeps one per booked order)."""


def outcome_sums(
    orders: Sequence[Order], outcomes: Sequence[str], pnl: OutcomePnl = order_outcome_pnl
) -> dict[str, float]:
    """Summed profit of the orders in each outcome, added up in the orders' order and not rounded: so the sums
    of some orders plus one more order's profit are, to the bit, the sums of all of them (``RiskBook`` checks a
    candidate order this way without summing the booked ones again)."""
    sums: dict[str, float] = {}
    for w in outcomes:
        total = 0.0
        for o in orders:
            total += pnl(o, w)
        sums[w] = total
    return sums


def worst_loss(sums: Mapping[str, float]) -> float:
    """Worst loss (never below 0) over outcomes, from their summed profits (``outcome_sums``)."""
    return max(0.0, *(round_money(-s) for s in sums.values()))


def market_exposure(
    orders: Sequence[Order], runners: Sequence[str] | None = None, pnl: OutcomePnl = order_outcome_pnl
) -> float:
    """Worst-case loss of all orders of one market over which runner wins (never below 0)."""
    if not orders:
        return 0.0
    return worst_loss(outcome_sums(orders, market_outcomes(orders, runners), pnl))


def selection_outcomes(selection: str) -> tuple[str, ...]:
    """The outcomes of one selection's exposure: it wins, it loses (some other runner wins)."""
    return (selection, OTHER_RUNNER)


def selection_exposure(orders: Sequence[Order], selection: str, pnl: OutcomePnl = order_outcome_pnl) -> float:
    """Worst-case loss of the orders on one selection, over it winning or losing (never below 0)."""
    own = [o for o in orders if o.selection == selection]
    if not own:
        return 0.0
    return worst_loss(outcome_sums(own, selection_outcomes(selection), pnl))


def total_exposure(
    orders_by_market: Mapping[str, Sequence[Order]],
    runners: Mapping[str, Sequence[str]] | None = None,
) -> float:
    """Sum of the markets' worst-case losses."""
    runners = runners or {}
    return round_money(sum(market_exposure(orders, runners.get(m)) for m, orders in orders_by_market.items()))
