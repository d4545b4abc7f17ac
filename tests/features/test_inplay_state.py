"""The in-play feature matrix: the vectorised chain and calibration (``features.markov.vector``) equal
``features.markov.scalar``'s ones on every state of real matches and of every format; small batches (the
live path) and large ones (training) give the same rows; values worked by hand; bad input refused."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.inplay_state import FEATURE_INDEX, INPLAY_FEATURES, inplay_features, logit, sigmoid
from features.markov import vector
from features.markov.scalar import ServeTracker, match_win_probability, serve_probabilities
from features.markov.vector import SCALAR_UP_TO, calibrated_serve_probabilities, chain_probabilities
from features.replays import replay_pbp
from features.scoring import FinalSet, MatchFormat, Score, ScoringError
from tests.real_data import data_dir

FORMATS = [MatchFormat(best_of, final_set) for best_of in (3, 5) for final_set in FinalSet]


@pytest.fixture(scope="module")
def real_states() -> list[Score]:
    """Every state of 40 real ATP point-by-point matches, replayed under every format they fit."""
    raw = pd.read_csv(data_dir() / "pbp" / "pbp_matches_atp_main_archive.csv.gz").sample(40, random_state=4)
    states: list[Score] = []
    for pbp in raw["pbp"]:
        for fmt in FORMATS:
            try:
                after = replay_pbp(pbp, fmt, 0)
            except ScoringError:
                continue  # e.g. a five-set record under a best-of-3 format
            states += [Score.start(fmt, 0), *after]
    return states


def test_vectorised_chain_is_the_scalar_chain_on_every_real_state(real_states):
    rng = np.random.default_rng(0)
    n = len(real_states)
    p_a, p_b = rng.uniform(0.3, 0.95, n), rng.uniform(0.3, 0.95, n)
    p_a[:200], p_b[100:300] = 1.0, 1.0  # the calibration can reach 1 for extreme forecasts
    expected = np.array([match_win_probability(s, a, b) for s, a, b in zip(real_states, p_a, p_b, strict=True)])
    got = chain_probabilities(real_states, p_a, p_b)
    assert n > 10_000 and {s.fmt for s in real_states} == set(FORMATS)
    assert sum(s.in_tiebreak for s in real_states) > 100 and sum(s.winner is not None for s in real_states) > 50
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_vectorised_calibration_is_serve_probabilities():
    rng = np.random.default_rng(1)
    p = np.r_[rng.uniform(0.01, 0.99, 400), 0.5, 1e-4, 1 - 1e-4]
    fmts = [FORMATS[i % len(FORMATS)] for i in range(len(p))]
    assert len(p) > SCALAR_UP_TO
    got_a, got_b = calibrated_serve_probabilities(p, fmts)
    expected = np.array([serve_probabilities(float(x), f) for x, f in zip(p, fmts, strict=True)])
    np.testing.assert_allclose(got_a, expected[:, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got_b, expected[:, 1], rtol=0, atol=1e-12)


def test_cached_calibrations_are_bit_for_bit_the_computed_ones():
    """The calibration LRU (a live service asks for a match's pre-match probability on every request)
    returns exactly what the call computes without it, on both paths, for batches mixing cached and new
    matches, and repeats within a batch."""
    rng = np.random.default_rng(5)
    pool = np.r_[rng.uniform(0.01, 0.99, 120), 0.5, 1e-4, 1 - 1e-4]

    def fresh(p, fmts):
        vector._SCALAR_CALIBRATIONS.clear()
        vector._VECTOR_CALIBRATIONS.clear()
        return calibrated_serve_probabilities(p, fmts)

    for n in (1, 5, SCALAR_UP_TO, SCALAR_UP_TO + 1, 40, 80):
        for _ in range(3):
            p = pool[rng.integers(0, len(pool), n)]
            fmts = [FORMATS[i] for i in rng.integers(0, len(FORMATS), n)]
            cached = calibrated_serve_probabilities(p, fmts)  # some of these were calibrated before
            again = calibrated_serve_probabilities(p, fmts)  # all cached now
            computed = fresh(p, fmts)
            for got in (cached, again):
                for g, c in zip(got, computed, strict=True):
                    assert g.tolist() == c.tolist()
    assert len(vector._VECTOR_CALIBRATIONS._items) <= vector.CALIBRATION_CACHE_SIZE


def _inputs(states: list[Score], seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    n = len(states)
    served_a, served_b = rng.integers(0, 120, n), rng.integers(0, 120, n)
    won_a = (served_a * rng.uniform(0.4, 0.85, n)).astype(int)
    won_b = (served_b * rng.uniform(0.4, 0.85, n)).astype(int)
    p0 = np.repeat(rng.uniform(0.05, 0.95, n // 50 + 1), 50)[:n]  # a pre-match probability per "match"
    return p0, won_a, served_a, won_b, served_b


def test_small_batches_and_large_batches_give_the_same_rows(real_states):
    states = real_states[::7][:3000]
    p0, won_a, served_a, won_b, served_b = _inputs(states, 2)
    large = inplay_features(p0, states, won_a, served_a, won_b, served_b, 200.0)
    small = np.vstack(
        [
            inplay_features(
                p0[i : i + 5],
                states[i : i + 5],
                won_a[i : i + 5],
                served_a[i : i + 5],
                won_b[i : i + 5],
                served_b[i : i + 5],
                200.0,
            )
            for i in range(0, len(states), 5)
        ]
    )
    assert large.shape == (len(states), len(INPLAY_FEATURES))
    np.testing.assert_allclose(large, small, rtol=0, atol=1e-12, equal_nan=True)


def test_one_state_worked_by_hand():
    fmt = MatchFormat(3)
    score = Score.at(fmt, [(6, 4)], (3, 2), (2, 1), 0)  # A leads 6-4 3-2, 30-15, A serving
    x = inplay_features([0.6], [score], [30], [40], [20], [35], strength=100.0)[0]
    v = dict(zip(INPLAY_FEATURES, x, strict=True))
    prior_a, prior_b = serve_probabilities(0.6, fmt)
    post_a, post_b = ServeTracker(0.6, prior_a, prior_b, 100.0, 30, 40, 20, 35).serve_probabilities
    assert v["serve_a"] == pytest.approx(post_a, abs=1e-15) and v["serve_b"] == pytest.approx(post_b, abs=1e-15)
    assert post_a == pytest.approx((100 * prior_a + 30) / 140)
    assert v["serve_shift_a"] == pytest.approx(post_a - prior_a)
    assert v["markov_logit"] == pytest.approx(float(logit(match_win_probability(score, prior_a, prior_b))))
    assert v["markov_updated_logit"] == pytest.approx(float(logit(match_win_probability(score, post_a, post_b))))
    assert v["prematch_logit"] == pytest.approx(math.log(0.6 / 0.4))
    assert v["observed_serve_a"] == pytest.approx(30 / 40) and v["observed_serve_b"] == pytest.approx(20 / 35)
    assert v["points_played"] == 75
    assert v["points_won_diff"] == (30 + 35 - 20) - (20 + 40 - 30)
    assert (v["sets_diff"], v["games_diff"], v["total_games_diff"], v["set_number"]) == (1, 1, 3, 2)
    assert (v["points_a"], v["points_b"], v["in_tiebreak"], v["a_serving"]) == (2, 1, 0, 1)
    assert (v["deciding_set"], v["best_of_5"]) == (0, 0)


def test_tiebreak_server_and_deciding_set():
    fmt = MatchFormat(5, FinalSet.ADVANTAGE)
    score = Score.at(fmt, [(6, 4), (3, 6), (7, 6), (4, 6)], (6, 6), (0, 0), 1)  # fifth set, 6-6: no tie-break
    v = dict(zip(INPLAY_FEATURES, inplay_features([0.5], [score], [0], [0], [0], [0])[0], strict=True))
    assert (v["in_tiebreak"], v["deciding_set"], v["best_of_5"], v["a_serving"]) == (0, 1, 1, 0)
    tb = Score.at(MatchFormat(3), [], (6, 6), (0, 0), 0).point(0)  # tie-break 1-0: B serves points 2 and 3
    w = dict(zip(INPLAY_FEATURES, inplay_features([0.5], [tb], [0], [0], [0], [0])[0], strict=True))
    assert (w["in_tiebreak"], w["a_serving"], w["points_a"], w["points_b"]) == (1, 0, 1, 0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_before_the_first_point_both_chains_are_the_prematch_probability(fmt):
    p0 = np.linspace(0.02, 0.98, 40)
    starts = [Score.start(fmt, int(i % 2)) for i in range(len(p0))]
    zeros = np.zeros(len(p0), dtype=int)
    for batch in (slice(0, 3), slice(0, len(p0))):  # the scalar and the table paths
        x = inplay_features(p0[batch], starts[batch], zeros[batch], zeros[batch], zeros[batch], zeros[batch])
        for name in ("markov_logit", "markov_updated_logit"):
            np.testing.assert_allclose(sigmoid(x[:, FEATURE_INDEX[name]]), p0[batch], rtol=0, atol=1e-12)


def test_a_finished_match_is_certain():
    fmt = MatchFormat(3)
    won_by_b = Score.at(fmt, [(4, 6), (3, 6)], (0, 0), (0, 0), 0)
    states = [won_by_b] * (SCALAR_UP_TO + 1)
    for batch in (states[:1], states):
        assert (chain_probabilities(batch, np.full(len(batch), 0.7), np.full(len(batch), 0.6)) == 0.0).all()


def test_bad_input_is_refused_with_a_reason():
    start = Score.start(MatchFormat(3), 0)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        inplay_features([1.0], [start], [0], [0], [0], [0])
    with pytest.raises(ValueError, match="between 0 and the points served"):
        inplay_features([0.5], [start], [5], [4], [0], [0])
    with pytest.raises(ValueError, match="one entry per state"):
        inplay_features([0.5, 0.6], [start], [0], [0], [0], [0])
