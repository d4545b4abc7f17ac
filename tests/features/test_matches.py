"""The clean match table: outcomes, settlement rule, chronological order on real data."""

import pandas as pd
import pytest

from features.matches import ROUND_ORDER, parse_outcome, settles_with_winner
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
