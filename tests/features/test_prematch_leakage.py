"""No pre-match feature can see the match itself or anything after it (trap 1-3 of MODELING.md).

The features of every match up to a cut are computed three ways on the real data: from the true
history; with every later match removed; and with the match at the cut and everything after it
falsified (winner and loser swapped, serve statistics, minutes and ranks scrambled). All three
must agree exactly on every match up to the cut, including the cut match itself.
"""

import numpy as np
import pandas as pd
import pytest

from features.matches import clean_players
from features.prematch import FEATURES, FeatureState, build_prematch_features
from tests.real_data import clean, raw

SWAP = [("winner_id", "loser_id"), ("winner_rank", "loser_rank"), ("winner_rank_points", "loser_rank_points")]


@pytest.fixture(scope="module")
def history():
    table, players = clean()
    recent = table[table["tourney_date"].dt.year >= 2008].reset_index(drop=True)
    return recent, players


def _features(matches, players):
    emit = matches["is_tour_main"]
    table, _ = build_prematch_features(matches, players, emit)
    return table.set_index("match_id")


def _falsify(matches: pd.DataFrame, start: int) -> pd.DataFrame:
    """Swap winner and loser and scramble the statistics of every match from ``start`` on."""
    m = matches.copy()
    later = m.index >= start
    for a, b in SWAP:
        m.loc[later, [a, b]] = m.loc[later, [b, a]].to_numpy()
    rng = np.random.default_rng(0)
    for col in ("w_svpt", "w_1stWon", "w_2ndWon", "l_svpt", "l_1stWon", "l_2ndWon", "minutes"):
        m.loc[later, col] = rng.integers(0, 200, later.sum()).astype(float)
    m.loc[later, "score"] = "6-0 6-0"
    return m


@pytest.mark.slow
def test_features_of_a_match_ignore_it_and_everything_after(history):
    matches, players = history
    cut = int(matches.index[(matches["tourney_id"] == "2015-560") & (matches["round"] == "R32")][0])
    cut_id = matches.loc[cut, "match_id"]
    truth = _features(matches, players)
    upto = truth.loc[truth.index.isin(matches.loc[:cut, "match_id"])]

    truncated = _features(matches.loc[:cut].copy(), players)
    falsified = _features(_falsify(matches, cut), players)

    cols = ["player_a_id", "player_b_id", *FEATURES]
    pd.testing.assert_frame_equal(truncated.loc[upto.index, cols], upto[cols])
    pd.testing.assert_frame_equal(falsified.loc[upto.index, cols], upto[cols])
    # the falsified result really changed the label of the cut match, and later features moved
    assert falsified.loc[cut_id, "a_won"] != truth.loc[cut_id, "a_won"]
    later = truth.index.difference(upto.index)
    assert not np.allclose(falsified.loc[later, "elo_diff"], truth.loc[later, "elo_diff"])


@pytest.mark.slow
def test_player_order_does_not_reveal_the_winner(history):
    matches, players = history
    table = _features(matches, players)
    assert 0.48 < table["a_won"].mean() < 0.52
    # swapping every winner and loser leaves players A and B where they were and flips every label
    swapped = _features(_falsify(matches, 0), players)
    first = table.index[:2000]
    assert (swapped.loc[first, "player_a_id"] == table.loc[first, "player_a_id"]).all()
    assert (swapped.loc[first, "a_won"] != table.loc[first, "a_won"]).all()


@pytest.mark.slow
def test_swapping_players_mirrors_every_feature_exactly(history, monkeypatch):
    """The features of B against A are the mirror of A against B (mirror_spec classifies every
    feature), so a symmetric predictor quotes one price per match whatever the order asked."""
    import features.prematch as fp

    matches, players = history
    matches = matches[matches["tourney_date"].dt.year >= 2016].reset_index(drop=True)
    straight = _features(matches, players)
    monkeypatch.setattr(fp, "player_a_is_lower_id", lambda match_id: not fp.zlib.crc32(match_id.encode()) & 1)
    swapped = _features(matches, players).loc[straight.index]
    assert (swapped["player_a_id"] == straight["player_b_id"]).all()
    assert (swapped["a_won"] == 1 - straight["a_won"]).all()
    spec = fp.mirror_spec(FEATURES)
    mirrored = fp.mirror_rows(straight[list(FEATURES)].to_numpy(), spec)
    np.testing.assert_allclose(mirrored, swapped[list(FEATURES)].to_numpy(), rtol=1e-9, atol=1e-9)


def test_every_feature_is_classified_for_mirroring():
    import features.prematch as fp

    fp.mirror_spec(FEATURES)
    with pytest.raises(ValueError, match="not classified"):
        fp.mirror_spec([*FEATURES, "new_feature"])
    with pytest.raises(ValueError, match="no partner"):
        fp.mirror_spec(["elo_a"])


@pytest.mark.parametrize("unit", ["ns", "us", "s"])
def test_a_players_age_is_his_age_whatever_the_unit_of_the_birth_dates(unit):
    """The warehouse's parquet round trip turns birth dates into microseconds: ages must not change with the unit
    (they did: every player was born near 1970, and ``age_a`` was the calendar year in disguise)."""
    players = clean_players(raw("atp_players"))
    players = players.assign(dob=players["dob"].astype(f"datetime64[{unit}]"))
    state = FeatureState.with_players(players)
    djokovic = int(
        players.loc[(players["name_first"] == "Novak") & (players["name_last"] == "Djokovic"), "player_id"].iloc[0]
    )
    wimbledon_2012 = (pd.Timestamp("2012-06-25") - pd.Timestamp("1970-01-01")).days
    age = (wimbledon_2012 - state.info[djokovic].dob_day) / 365.25
    assert 25.0 < age < 25.2  # born 1987-05-22
