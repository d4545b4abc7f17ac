"""The clean match table: outcomes, settlement rule, chronological order on real data."""

import pandas as pd
import pytest

from features.matches import ROUND_ORDER, WTA_LEVEL_FAMILY, clean_matches, parse_outcome, settles_with_winner
from tests.real_data import clean


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        ("6-4 6-4", ("completed", 2)),
        ("7-6(5) 3-6 7-6(10)", ("completed", 3)),
        ("6-7(3) 6-4 12-10", ("completed", 3)),
        ("2-6 1-4 RET", ("retired", 1)),
        ("3-1 RET", ("retired", 0)),
        ("W/O", ("walkover", 0)),
        ("6-3 2-0 DEF", ("defaulted", 1)),
        ("6-4 3-6 [10-8]", ("completed", 3)),
        ("", ("unknown", 0)),
        (None, ("unknown", 0)),
    ],
)
def test_parse_outcome(score, expected):
    assert parse_outcome(score) == expected


def test_settlement_rule_voids_retirement_before_a_set():
    assert settles_with_winner("completed", 2)
    assert settles_with_winner("retired", 1)
    assert not settles_with_winner("retired", 0)
    assert not settles_with_winner("walkover", 0)
    assert not settles_with_winner("unknown", 0)


@pytest.mark.slow
def test_real_matches_are_in_true_chronological_order():
    table, _ = clean()
    assert table["order"].is_monotonic_increasing
    assert table["tourney_date"].is_monotonic_increasing
    # inside every tournament, rounds never go backwards (Q1 .. F), whatever tourney_date says
    rank = table.groupby("tourney_id")["round_order"].apply(lambda s: s.is_monotonic_increasing)
    assert rank.all(), rank[~rank].index[:5].tolist()
    # the 2019 Brisbane final is after its semi-finals even though all share tourney_date 2018-12-31
    brisbane = table[table["tourney_id"] == "2019-M020"].set_index("round")["order"]
    assert brisbane["F"] > brisbane["SF"].max() > brisbane["QF"].max()


@pytest.mark.slow
def test_real_walkovers_dropped_and_retirements_flagged():
    table, _ = clean()
    assert not (table["outcome"] == "walkover").any()
    assert table["retired"].sum() > 5000
    assert table["match_id"].is_unique
    assert set(table["round"].unique()) <= set(ROUND_ORDER)
    assert pd.api.types.is_datetime64_any_dtype(table["match_date"])


def _wta_rows(levels: list[str]) -> pd.DataFrame:
    n = len(levels)
    return pd.DataFrame(
        {
            "tourney_id": [f"2019-{i}" for i in range(n)],
            "tourney_name": ["X"] * n,
            "tourney_level": levels,
            "tourney_date": pd.to_datetime(["2019-03-04"] * n),
            "draw_size": [96] * n,
            "match_num": range(n),
            "round": ["R64"] * n,
            "score": ["6-4 6-4"] * n,
            "winner_id": [1] * n,
            "loser_id": [2] * n,
        }
    )


def test_the_wtas_levels_map_onto_the_tiers_the_features_know_and_keep_their_own_code():
    table, counts = clean_matches(_wta_rows(["PM", "I", "T1", "W", "E", "G"]), None, "WTA", WTA_LEVEL_FAMILY)
    by_source = table.set_index("tourney_level_source")
    assert by_source["tourney_level"].to_dict() == {"PM": "M", "I": "A", "T1": "M", "W": "A", "E": "E", "G": "G"}
    assert by_source["is_tour_main"].to_dict() == {"PM": True, "I": True, "T1": True, "W": True, "E": False, "G": True}
    assert (table["tour"] == "WTA").all() and counts["tour_main_rows"] == 5
    # a 96-draw Premier Mandatory is a two-week event, like a 96-draw Masters: R64 is on its fourth day
    assert (by_source.loc["PM", "match_date"] - by_source.loc["PM", "tourney_date"]).days == 3


def test_an_atp_table_is_unchanged_by_the_level_family():
    rows = _wta_rows(["M", "A"])
    table, _ = clean_matches(rows, rows.iloc[:0])
    assert table["tourney_level"].tolist() == table["tourney_level_source"].tolist() == ["M", "A"]
    assert (table["tour"] == "ATP").all()
