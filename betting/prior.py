"""Market-implied probabilities a trader starts from: the margin-free mid of a two-runner book, and
the pre-match prior an in-play match is calibrated to."""

from __future__ import annotations

from betting.market import MarketBook
from betting.value import fair_probability
from features.live_match import FIRST, SECOND

NEUTRAL_PRIOR = 0.5


def mid_probability(book: MarketBook, selections: tuple[str, str] = (FIRST, SECOND)) -> float | None:
    """Margin-free P(``selections[0]``) from the best back prices of both runners; None without both."""
    a, b = book.runner(selections[0]), book.runner(selections[1])
    if not a or not b or a.best_back is None or b.best_back is None:
        return None
    return fair_probability(a.best_back, b.best_back)


def prior_probability(prematch: MarketBook | None, opening: MarketBook | None) -> tuple[float, str]:
    """The pre-match probability a live match is calibrated to, and where it came from: the pre-match
    closing book, else the opening in-play market, else 0.5 (both margin-free)."""
    if prematch is not None and (p := mid_probability(prematch)) is not None:
        return p, "pre-match closing odds, margin removed"
    if opening is not None and (p := mid_probability(opening)) is not None:
        return p, "opening in-play market, margin removed"
    return NEUTRAL_PRIOR, "no price: 0.5"
