"""Small hand-written frames for the suite tests, typed exactly as the ingest types them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from expectations.suites import EXTRA_SOURCE_COLUMNS
from feeds.historical import SPECS, coerce

SOURCE_FILE = "test/sample.csv"
SMALL = (1, 1_000)
"""Row bounds for small frames (the suites' own bounds are for the full history)."""


def typed_frame(dataset: str, rows: Sequence[dict[str, str]]) -> pd.DataFrame:
    """Rows given as source text (missing fields empty), typed like the ingest, with
    ``source_file``/``source_line`` (line 2 is the first row, below the header)."""
    names = [*SPECS[dataset].names, *EXTRA_SOURCE_COLUMNS.get(dataset, ())]
    text = pd.DataFrame([{n: str(row.get(n, "")) for n in names} for row in rows], dtype=str)
    typed, reason = coerce(text, SPECS[dataset])
    assert reason.eq("").all(), reason[reason.ne("")].tolist()
    typed["source_file"] = pd.Categorical([SOURCE_FILE] * len(typed))
    typed["source_line"] = np.arange(len(typed), dtype="int64") + 2
    return typed


_PLAYERS = [
    ("104925", "Novak Djokovic", "188"),
    ("104745", "Rafael Nadal", "185"),
    ("103819", "Roger Federer", "185"),
    ("106421", "Daniil Medvedev", "198"),
    ("100644", "Alexander Zverev", "198"),
    ("126774", "Stefanos Tsitsipas", "193"),
]


def atp_row(match_num: int, winner: int, loser: int, **fields: str) -> dict[str, str]:
    """A plausible Sackmann match row between two of six players (indexes into a fixed list)."""
    (wid, wname, wht), (lid, lname, lht) = _PLAYERS[winner], _PLAYERS[loser]
    row = {
        "tourney_id": "2019-0301",
        "tourney_name": "Auckland",
        "surface": "Hard",
        "draw_size": "32",
        "tourney_level": "A",
        "tourney_date": "20190107",
        "match_num": str(match_num),
        "winner_id": wid,
        "winner_name": wname,
        "winner_hand": "R",
        "winner_ht": wht,
        "winner_ioc": "SRB",
        "winner_age": "31.6",
        "loser_id": lid,
        "loser_name": lname,
        "loser_hand": "R",
        "loser_ht": lht,
        "loser_ioc": "ESP",
        "loser_age": "32.6",
        "score": "6-4 6-3",
        "best_of": "3",
        "round": "R32",
        "minutes": "75",
        "winner_rank": "1",
        "winner_rank_points": "9000",
        "loser_rank": "2",
        "loser_rank_points": "8000",
    }
    for side in "wl":
        row |= {
            f"{side}_ace": "5",
            f"{side}_df": "2",
            f"{side}_svpt": "60",
            f"{side}_1stIn": "40",
            f"{side}_1stWon": "30",
            f"{side}_2ndWon": "10",
            f"{side}_SvGms": "9",
            f"{side}_bpSaved": "1",
            f"{side}_bpFaced": "2",
        }
    return row | fields


def clean_atp_rows() -> list[dict[str, str]]:
    """Four matches of one draw: two first-round matches, a semi-final and the final."""
    return [atp_row(1, 0, 1), atp_row(2, 2, 3), atp_row(3, 4, 5, round="SF"), atp_row(4, 0, 2, round="F")]


def odds_tour_row(date: str, p1: str, p2: str, **fields: str) -> dict[str, str]:
    """A plausible tennis-data tour row won by Player_1."""
    return {
        "Tournament": "Brisbane International",
        "Date": date,
        "Series": "ATP250",
        "Court": "Outdoor",
        "Surface": "Hard",
        "Round": "1st Round",
        "Best of": "3",
        "Player_1": p1,
        "Player_2": p2,
        "Winner": p1,
        "Rank_1": "10",
        "Rank_2": "50",
        "Pts_1": "3000",
        "Pts_2": "800",
        "Odd_1": "1.25",
        "Odd_2": "3.75",
        "score": "6-4 6-4",
    } | fields


def odds_slams_row(date: str, winner: str, loser: str, **fields: str) -> dict[str, str]:
    """A plausible tennis-data Grand Slam row."""
    return {
        "ATP": "6",
        "Location": "Melbourne",
        "Tournament": "Australian Open",
        "Date": date,
        "Series": "Grand Slam",
        "Court": "Outdoor",
        "Surface": "Hard",
        "Round": "1st Round",
        "Best of": "5",
        "Winner": winner,
        "Loser": loser,
        "WRank": "1",
        "LRank": "80",
        "WPts": "9000",
        "LPts": "600",
        "W1": "6",
        "L1": "3",
        "W2": "6",
        "L2": "2",
        "W3": "6",
        "L3": "4",
        "Wsets": "3",
        "Lsets": "0",
        "Comment": "Completed",
        "B365W": "1.05",
        "B365L": "11",
        "PSW": "1.06",
        "PSL": "12.5",
        "MaxW": "1.07",
        "MaxL": "13",
        "AvgW": "1.05",
        "AvgL": "10.8",
    } | fields
