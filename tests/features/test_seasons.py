"""Features a season at a time equal the full walk bit for bit: from scratch, from checkpoints, after a result of an
earlier season changed (the stale checkpoint is not used), and whatever years happened to be computed before."""

import numpy as np
import pandas as pd
import pytest

from features.prematch import build_prematch_features
from features.seasons import SeasonStore, year_fingerprints, year_of
from tests.real_data import clean

FIRST = 1990


@pytest.fixture(scope="module")
def recent():
    """The real clean ATP table from 2006 (fifteen seasons: a fast walk, the same rules)."""
    matches, players = clean()
    sel = year_of(matches) >= 2006
    return matches[sel].reset_index(drop=True), players


def _full(matches, players):
    emit = matches["is_tour_main"] & (year_of(matches) >= FIRST)
    table, _ = build_prematch_features(matches, players, emit)
    return table


@pytest.mark.slow
def test_seasons_walked_one_by_one_equal_the_full_walk_bit_for_bit(recent, tmp_path):
    matches, players = recent
    store = SeasonStore(tmp_path)
    years = list(range(2006, 2022))
    for year in years:  # one run per season, each from the previous run's checkpoint
        store.update(matches, players, [year], FIRST)
    pd.testing.assert_frame_equal(store.read(), _full(matches, players), check_exact=True)
    assert set(store.checkpoints()) == set(years)  # the last year of every run


@pytest.mark.slow
def test_a_changed_earlier_result_is_never_built_on_a_stale_checkpoint(recent, tmp_path):
    matches, players = recent
    store = SeasonStore(tmp_path)
    store.update(matches, players, range(2006, 2022), FIRST)  # checkpoints 2009, 2019, 2021
    assert store.checkpoints() == [2009, 2019, 2021]

    changed = matches.copy()
    i = int(np.flatnonzero((year_of(changed) == 2015).to_numpy() & changed["is_tour_main"].to_numpy())[0])
    changed.loc[i, ["w_svpt", "w_1stWon"]] = [120, 80]  # a corrected 2015 serve statistic
    before, after = year_fingerprints(matches), year_fingerprints(changed)
    assert before[2014] == after[2014] and all(before[y] != after[y] for y in range(2015, 2022))

    store.update(changed, players, [2020], FIRST)  # the 2019 checkpoint saw the old 2015: walked from 2009
    full = _full(changed, players)
    got = pd.read_parquet(store.features_path(2020))
    want = full[year_of(full) == 2020].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    old = _full(matches, players)
    assert not got.equals(old[year_of(old) == 2020].reset_index(drop=True))  # the change did reach 2020


def test_years_must_be_contiguous(tmp_path):
    with pytest.raises(ValueError, match="contiguous"):
        SeasonStore(tmp_path).update(pd.DataFrame(), pd.DataFrame(), [2019, 2021], FIRST)


@pytest.mark.slow
def test_a_changed_player_or_an_unreadable_checkpoint_is_a_cache_miss_never_a_wrong_answer(recent, tmp_path):
    matches, players = recent
    store = SeasonStore(tmp_path)
    store.update(matches, players, range(2006, 2022), FIRST)
    assert store._start(2021, year_fingerprints(matches, players))[0] == 2019

    taller = players.copy()
    taller.loc[taller.index[0], "height"] = 199.0  # a corrected height: a feature of every season
    assert store._start(2021, year_fingerprints(matches, taller)) == (None, None)

    (tmp_path / "state" / "2019.pickle").write_bytes(b"not a pickle")  # cut short, or written by other code
    store.update(matches, taller, [2020], FIRST)
    full = _full(matches, taller)
    pd.testing.assert_frame_equal(
        pd.read_parquet(store.features_path(2020)), full[year_of(full) == 2020].reset_index(drop=True), check_exact=True
    )
