"""Market data: one ``MarketBook`` per update of a market, as a feed (real or simulated) produces it.

Made to be easy to produce: prices must be on the ladder (use ``ladder.round_to_tick``), levels may
come in any order (they are sorted best-first here), and traded volume is the *cumulative* amount
matched at each price since the market opened (Betfair's ``trd``), so a repeated or missed update
never invents or loses volume: the exchange diffs consecutive books.

Vocabulary (Betfair's): ``available_to_back`` are the prices a customer can back at now (the
layers' offers, best = highest first); ``available_to_lay`` the prices a customer can lay at
(the backers' offers, best = lowest first).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from betting.codec import JsonRecord
from betting.ladder import canonical_price, is_valid_price


class MarketStatus(StrEnum):
    """Whether the market takes orders."""

    OPEN = "OPEN"
    SUSPENDED = "SUSPENDED"
    """No orders accepted; LAPSE orders' unmatched remainders are cancelled; PERSIST orders stay."""
    CLOSED = "CLOSED"
    """Finished: every unmatched remainder lapses; settlement follows."""


@dataclass(frozen=True)
class PriceSize(JsonRecord):
    """An amount (backer's stake) at a price."""

    price: float
    size: float

    def __post_init__(self) -> None:
        if not is_valid_price(self.price):
            raise ValueError(f"price {self.price!r} is not on the ladder")
        if not self.size >= 0.0:
            raise ValueError(f"size must be >= 0, got {self.size!r}")
        object.__setattr__(self, "price", canonical_price(self.price))


@dataclass(frozen=True)
class RunnerBook(JsonRecord):
    """One runner's side of the book."""

    selection: str
    available_to_back: tuple[PriceSize, ...] = ()
    """Layers' offers, sorted best (highest) first."""
    available_to_lay: tuple[PriceSize, ...] = ()
    """Backers' offers, sorted best (lowest) first."""
    traded_volume: tuple[PriceSize, ...] = ()
    """Cumulative amount matched at each price since the market opened."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "available_to_back", _levels(self.available_to_back, descending=True))
        object.__setattr__(self, "available_to_lay", _levels(self.available_to_lay, descending=False))
        object.__setattr__(self, "traded_volume", _levels(self.traded_volume, descending=False))

    @classmethod
    def top_of_book(
        cls,
        selection: str,
        back_price: float | None,
        back_size: float,
        lay_price: float | None,
        lay_size: float,
        traded_volume: float = 0.0,
    ) -> RunnerBook:
        """A runner as a feed shows it: only the best price on each side (a side without a price or
        size is empty), and the volume traded so far at the best back price."""

        def level(price: float | None, size: float) -> tuple[PriceSize, ...]:
            return (PriceSize(price, size),) if price is not None and size > 0 else ()

        # Built without ``__post_init__``: a side here is empty or one positive level, which is what ``_levels``
        # would return unchanged (the simulated market and the backtests make two of these a book, a point).
        runner = object.__new__(cls)
        runner.__dict__.update(
            selection=selection,
            available_to_back=level(back_price, back_size),
            available_to_lay=level(lay_price, lay_size),
            traded_volume=level(back_price, traded_volume),
        )
        return runner

    @property
    def best_back(self) -> float | None:
        """Best price to back at now."""
        return self.available_to_back[0].price if self.available_to_back else None

    @property
    def best_lay(self) -> float | None:
        """Best price to lay at now."""
        return self.available_to_lay[0].price if self.available_to_lay else None


def _levels(levels: tuple[PriceSize, ...] | list, descending: bool) -> tuple[PriceSize, ...]:
    if len(levels) == 1 and isinstance(levels[0], PriceSize):  # a feed's top of book: nothing to merge or sort
        return tuple(levels) if levels[0].size > 0.0 else ()
    items = [lv if isinstance(lv, PriceSize) else PriceSize(*lv) for lv in levels]
    merged: dict[float, float] = {}
    for lv in items:
        merged[lv.price] = merged.get(lv.price, 0.0) + lv.size
    return tuple(PriceSize(p, s) for p, s in sorted(merged.items(), reverse=descending) if s > 0.0)


@dataclass(frozen=True)
class MarketBook(JsonRecord):
    """One update of one market."""

    market_id: str
    publish_time: datetime
    """When the feed published it (event time; the exchange itself reads its clock)."""
    status: MarketStatus
    in_play: bool
    runners: tuple[RunnerBook, ...]

    def runner(self, selection: str) -> RunnerBook | None:
        """The runner's book, or None when the market has no such runner."""
        for r in self.runners:
            if r.selection == selection:
                return r
        return None

    @property
    def selections(self) -> tuple[str, ...]:
        """The market's runners."""
        return tuple(r.selection for r in self.runners)
