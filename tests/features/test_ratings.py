"""Elo: the one win-probability formula and K-factor, for numbers and arrays alike, and the book's update."""

import numpy as np
import pandas as pd
import pytest

from features.ratings import INITIAL_RATING, EloBook, elo_history, k_factor, win_probability


def test_win_probability_is_the_elo_formula_for_numbers_arrays_and_differences():
    assert win_probability(1600.0, 1400.0) == pytest.approx(1 / (1 + 10 ** (-200 / 400)))
    assert win_probability(1500.0, 1500.0) == 0.5
    a, b = np.array([1500.0, 1720.0, 1310.0]), np.array([1650.0, 1480.0, 1310.0])
    p = win_probability(a, b)
    assert p.tolist() == [win_probability(x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True)]
    assert np.array_equal(p, win_probability(a - b))  # a difference alone
    assert np.allclose(p + win_probability(b, a), 1.0)
    series = win_probability(pd.Series(a), pd.Series(b))
    assert isinstance(series, pd.Series) and np.array_equal(series.to_numpy(), p)


def test_k_factor_is_fivethirtyeights_schedule():
    assert k_factor(0) == pytest.approx(250 / 5**0.4)
    assert k_factor(95) == pytest.approx(250 / 100**0.4)
    assert np.allclose(k_factor(np.array([0, 95])), [k_factor(0), k_factor(95)])


def test_the_book_moves_both_ratings_by_k_times_the_surprise():
    book = EloBook()
    book.update(1, 2, "Clay")
    gain = k_factor(0) * (1 - win_probability(INITIAL_RATING, INITIAL_RATING))
    assert book.rating(1) == INITIAL_RATING + gain and book.rating(2) == INITIAL_RATING - gain
    assert book.surface_rating(1, "Clay") == INITIAL_RATING + gain and book.surface_rating(1, "Grass") == INITIAL_RATING
    table = elo_history(
        pd.DataFrame({"match_id": ["m1", "m2"], "winner_id": [1, 1], "loser_id": [2, 2], "surface": ["Clay", None]})
    )
    assert table["winner_elo_prob"].tolist() == [0.5, win_probability(book.rating(1), book.rating(2))]
