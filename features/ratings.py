"""Elo ratings, overall and by surface, with FiveThirtyEight's K-schedule K = 250 / (m + 5) ** 0.4,
where m is the number of rated matches the player has played before.

``EloBook`` is the one implementation both lanes use: the batch pipeline walks history through it,
and the live service asks it for current ratings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias, overload

import numpy as np
import pandas as pd

INITIAL_RATING = 1500.0
ELO_SCALE = 400.0
"""Rating points for odds of 10 to 1."""
SURFACES = ("Hard", "Clay", "Grass", "Carpet")
"""The court surfaces of the Sackmann and tennis-data files (the one list every lane uses)."""


Ratings: TypeAlias = float | np.ndarray | pd.Series
"""A rating, a rating difference or many of them (the Elo formulas are element-wise)."""


@overload
def k_factor(matches_played: int) -> float: ...
@overload
def k_factor(matches_played: np.ndarray) -> np.ndarray: ...
def k_factor(matches_played: int | np.ndarray) -> float | np.ndarray:
    """FiveThirtyEight's K for a player with ``matches_played`` earlier rated matches (a number or
    a numpy array)."""
    return 250.0 / (matches_played + 5) ** 0.4


@overload
def win_probability(rating_a: float, rating_b: float = ...) -> float: ...
@overload
def win_probability(rating_a: Ratings, rating_b: Ratings = ...) -> Ratings: ...
def win_probability(rating_a: Ratings, rating_b: Ratings = 0.0) -> Ratings:
    """Elo probability that A beats B: 1 / (1 + 10 ** ((rating_b - rating_a) / 400)).

    Numbers, numpy arrays or pandas Series (element-wise). With ``rating_b`` left at 0, ``rating_a`` is
    A's rating minus B's (or any blend of such differences)."""
    return 1.0 / (1.0 + 10.0 ** ((rating_b - rating_a) / ELO_SCALE))


@dataclass
class EloBook:
    """Current overall and per-surface Elo ratings of every player seen so far."""

    overall: dict[int, float] = field(default_factory=dict)
    played: dict[int, int] = field(default_factory=dict)
    surface: dict[tuple[int, str], float] = field(default_factory=dict)
    surface_played: dict[tuple[int, str], int] = field(default_factory=dict)

    def rating(self, player: int) -> float:
        """Overall rating of ``player`` (1500 when unseen)."""
        return self.overall.get(player, INITIAL_RATING)

    def surface_rating(self, player: int, surface: str | None) -> float:
        """Rating of ``player`` on ``surface`` (overall rating when the surface is unknown)."""
        if surface is None:
            return self.rating(player)
        return self.surface.get((player, surface), INITIAL_RATING)

    def update(self, winner: int, loser: int, surface: str | None) -> None:
        """Apply one result."""
        ov, pl = self.overall, self.played
        rw, rl = ov.get(winner, INITIAL_RATING), ov.get(loser, INITIAL_RATING)
        mw, ml = pl.get(winner, 0), pl.get(loser, 0)
        p = win_probability(rw, rl)
        ov[winner] = rw + k_factor(mw) * (1.0 - p)
        ov[loser] = rl - k_factor(ml) * (1.0 - p)
        pl[winner], pl[loser] = mw + 1, ml + 1
        if surface is None:
            return
        sv, sp = self.surface, self.surface_played
        kw, kl = (winner, surface), (loser, surface)
        rw, rl = sv.get(kw, INITIAL_RATING), sv.get(kl, INITIAL_RATING)
        mw, ml = sp.get(kw, 0), sp.get(kl, 0)
        p = win_probability(rw, rl)
        sv[kw] = rw + k_factor(mw) * (1.0 - p)
        sv[kl] = rl - k_factor(ml) * (1.0 - p)
        sp[kw], sp[kl] = mw + 1, ml + 1


def surface_or_none(value: object) -> str | None:
    """A known surface name, or None."""
    return value if isinstance(value, str) and value in SURFACES else None


def elo_history(matches: pd.DataFrame, progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Pre-match ratings of both players of every match (in the table's chronological order)."""
    n = len(matches)
    out = np.empty((n, 6), dtype="float64")
    book = EloBook()
    winners = matches["winner_id"].to_numpy(dtype="int64")
    losers = matches["loser_id"].to_numpy(dtype="int64")
    surfaces = [surface_or_none(s) for s in matches["surface"].tolist()]
    step = max(n // 20, 1)
    for i in range(n):
        w, lo, s = int(winners[i]), int(losers[i]), surfaces[i]
        out[i, 0] = book.rating(w)
        out[i, 1] = book.rating(lo)
        out[i, 2] = book.surface_rating(w, s)
        out[i, 3] = book.surface_rating(lo, s)
        out[i, 4] = book.played.get(w, 0)
        out[i, 5] = book.played.get(lo, 0)
        book.update(w, lo, s)
        if progress and i % step == 0:
            progress(i, n)
    if progress:
        progress(n, n)
    frame = pd.DataFrame(
        out,
        columns=[
            "winner_elo",
            "loser_elo",
            "winner_surface_elo",
            "loser_surface_elo",
            "winner_elo_matches",
            "loser_elo_matches",
        ],
    )
    frame.insert(0, "match_id", matches["match_id"].to_numpy())
    frame["winner_elo_prob"] = win_probability(frame["winner_elo"], frame["loser_elo"])
    return frame
