"""The clean match table: Sackmann results in true chronological order, walkovers dropped,
retirements flagged, with the settlement outcome every metric and bet uses.

``tourney_date`` is the tournament's Monday for every match of the tournament, so matches are
ordered by date, then by round, then by ``match_num``; a feature may only use matches that come
earlier in this order (see ``features.prematch``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.outcomes import OUTCOMES, parse_outcome, settles_with_winner  # noqa: F401  (the rules live there)

ROUND_ORDER: dict[str, int] = {
    "Q1": 0,
    "Q2": 1,
    "Q3": 2,
    "Q4": 3,
    "ER": 4,
    "R128": 5,
    "R64": 6,
    "R32": 7,
    "R16": 8,
    "RR": 9,
    "QF": 10,
    "SF": 11,
    "BR": 12,
    "F": 13,
}
"""Order of rounds inside one tournament (round robin before the semi-finals)."""

TOUR_LEVELS = ("G", "M", "A", "F", "D")
"""Sackmann tourney_level codes of tour-level events (Grand Slam, Masters, ATP 250/500, Finals, Davis Cup)."""

WTA_LEVEL_FAMILY: dict[str, str] = {
    "G": "G",
    "PM": "M",
    "T1": "M",
    "P": "A",
    "I": "A",
    "T2": "A",
    "T3": "A",
    "T4": "A",
    "T5": "A",
    "W": "A",
    "O": "A",
    "F": "F",
    "D": "D",
}
"""The WTA's levels in Sackmann's files mapped onto the ATP's tiers the features know: Premier Mandatory and
the Tier I events of 1988-2008 are the Masters' peers; Premier, International, Tiers II-V, the pre-1988 tour
events (W) and the Olympics the 250/500 tier; the Finals; the Fed/BJK Cup as Davis Cup. Exhibitions and the
lower tiers (E, J, CC) stay outside the tour level. The file's own code is kept in ``tourney_level_source``."""

_ROUND_DAY_ONE_WEEK = {
    "Q1": -3,
    "Q2": -2,
    "Q3": -1,
    "Q4": -1,
    "ER": 0,
    "R128": 0,
    "R64": 1,
    "R32": 2,
    "R16": 3,
    "RR": 2,
    "QF": 4,
    "SF": 5,
    "BR": 5,
    "F": 6,
}
_ROUND_DAY_TWO_WEEKS = {
    "Q1": -6,
    "Q2": -5,
    "Q3": -4,
    "Q4": -3,
    "ER": 1,
    "R128": 1,
    "R64": 3,
    "R32": 5,
    "R16": 7,
    "RR": 5,
    "QF": 9,
    "SF": 11,
    "BR": 11,
    "F": 13,
}


def estimated_match_date(tourney_date: pd.Series, rounds: pd.Series, two_weeks: pd.Series) -> pd.Series:
    """Approximate day of each match from the tournament's Monday and the round (for rest features)."""
    one = rounds.map(_ROUND_DAY_ONE_WEEK).fillna(0)
    two = rounds.map(_ROUND_DAY_TWO_WEEKS).fillna(0)
    days = np.where(two_weeks.to_numpy(dtype=bool), two, one)
    return tourney_date + pd.to_timedelta(days, unit="D")


def clean_matches(
    tour: pd.DataFrame,
    qual_chall: pd.DataFrame | None = None,
    tour_name: str = "ATP",
    level_family: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """One chronologically ordered table of every match that was played, with outcome flags.

    ``tour_name`` fills the ``tour`` column; ``level_family`` (the WTA's: ``WTA_LEVEL_FAMILY``) maps the
    tour's own ``tourney_level`` codes onto ``TOUR_LEVELS`` (the original code kept in ``tourney_level_source``).
    Returns the table and counts of what was dropped or flagged (for the asset's metadata).
    """
    frames = []
    for source, frame in (("tour", tour), ("qual_chall", qual_chall)):
        if frame is None:
            continue
        f = frame.copy()
        f["source"] = source
        frames.append(f)
    m = pd.concat(frames, ignore_index=True)
    m["tour"] = tour_name
    m["tourney_level_source"] = m["tourney_level"]
    if level_family is not None:
        m["tourney_level"] = m["tourney_level"].map(level_family).fillna(m["tourney_level"])
    m["match_id"] = m["tourney_id"].astype(str) + ":" + m["match_num"].astype(str)
    parsed = [parse_outcome(s) for s in m["score"].tolist()]
    m["outcome"] = pd.Categorical([p[0] for p in parsed], categories=OUTCOMES)
    m["sets_completed"] = np.array([p[1] for p in parsed], dtype="int16")
    counts = {"rows_in": len(m), "walkovers_dropped": int((m["outcome"] == "walkover").sum())}
    m = m[m["outcome"] != "walkover"].copy()
    m["retired"] = m["outcome"].isin(["retired", "defaulted"])
    m["settles"] = [settles_with_winner(o, s) for o, s in zip(m["outcome"], m["sets_completed"], strict=True)]
    m["round_order"] = m["round"].map(ROUND_ORDER).fillna(4).astype("int16")
    m["is_tour_main"] = (m["source"] == "tour") & m["tourney_level"].isin(TOUR_LEVELS)
    two_weeks = (m["tourney_level"] == "G") | (
        (m["tourney_level"] == "M") & (pd.to_numeric(m["draw_size"], errors="coerce").fillna(0) >= 96)
    )
    m["match_date"] = estimated_match_date(m["tourney_date"], m["round"], two_weeks)
    m = m.sort_values(["tourney_date", "round_order", "tourney_id", "match_num"], kind="mergesort")
    m = m.reset_index(drop=True)
    m["order"] = np.arange(len(m), dtype="int64")
    counts.update(
        rows_out=len(m),
        retirements_flagged=int(m["retired"].sum()),
        void_by_settlement_rule=int((~m["settles"]).sum()),
        tour_main_rows=int(m["is_tour_main"].sum()),
    )
    return m, counts


def clean_players(players: pd.DataFrame) -> pd.DataFrame:
    """Players with a parsed date of birth (null when the source gives only the year or nothing)."""
    p = players.copy()
    p["dob"] = pd.to_datetime(p["dob"], format="%Y%m%d", errors="coerce")
    p["full_name"] = (p["name_first"].fillna("") + " " + p["name_last"].fillna("")).str.strip()
    return p
