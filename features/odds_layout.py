"""The bookmaker odds files (tennis-data.co.uk) in one neutral layout, the one
``features.identity.match_odds`` reads: ``date, tournament, round, p1_name, p2_name, winner_name`` and the
prices and match details of each source under common names."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd


def _pick(frame: pd.DataFrame, mapping: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame({new: frame[old] for old, new in mapping.items() if old in frame.columns})


def odds_tour_neutral(odds_tour: pd.DataFrame) -> pd.DataFrame:
    """The ``odds_tour`` dataset (tour level, Bet365 closing prices) in the neutral layout:
    ``date, tournament, round, p1_name, p2_name, winner_name, b365_p1, b365_p2`` plus series,
    court, surface, best_of, ranks, points, score and the source location."""
    return _pick(
        odds_tour,
        {
            "Date": "date",
            "Tournament": "tournament",
            "Round": "round",
            "Player_1": "p1_name",
            "Player_2": "p2_name",
            "Winner": "winner_name",
            "Odd_1": "b365_p1",
            "Odd_2": "b365_p2",
            "Series": "series",
            "Court": "court",
            "Surface": "surface",
            "Best of": "best_of",
            "Rank_1": "rank_p1",
            "Rank_2": "rank_p2",
            "Pts_1": "pts_p1",
            "Pts_2": "pts_p2",
            "score": "score",
            "source_file": "source_file",
            "source_line": "source_line",
        },
    )


def odds_slams_neutral(odds_slams: pd.DataFrame) -> pd.DataFrame:
    """The ``odds_slams`` dataset (Grand Slams) in the neutral layout, p1 = winner, p2 = loser:
    ``date, tournament, round, p1_name, p2_name, winner_name, comment`` and the prices
    ``b365_p1/p2`` (Bet365), ``ps_p1/p2`` (Pinnacle), ``avg_p1/p2``, ``max_p1/p2`` (market
    average and best), plus series, surface, best_of, ranks, points, sets and source location."""
    out = _pick(
        odds_slams,
        {
            "Date": "date",
            "Tournament": "tournament",
            "Round": "round",
            "Winner": "p1_name",
            "Loser": "p2_name",
            "B365W": "b365_p1",
            "B365L": "b365_p2",
            "PSW": "ps_p1",
            "PSL": "ps_p2",
            "AvgW": "avg_p1",
            "AvgL": "avg_p2",
            "MaxW": "max_p1",
            "MaxL": "max_p2",
            "Comment": "comment",
            "Location": "location",
            "Series": "series",
            "Court": "court",
            "Surface": "surface",
            "Best of": "best_of",
            "WRank": "rank_p1",
            "LRank": "rank_p2",
            "WPts": "pts_p1",
            "LPts": "pts_p2",
            "Wsets": "sets_p1",
            "Lsets": "sets_p2",
            "source_file": "source_file",
            "source_line": "source_line",
        },
    )
    out.insert(out.columns.get_loc("p2_name") + 1, "winner_name", odds_slams["Winner"])
    return out
