"""In-play win probability: values worked by hand, independent brute-force recursions, the Markov
property at every reachable score of every format, calibration to the pre-match forecast, and the
serve tracker."""

from __future__ import annotations

import sys
from functools import cache

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from features.markov.scalar import (
    ServeTracker,
    game_win_prob,
    hold_prob,
    live_win_probability,
    match_win_probability,
    prematch_win_probability,
    serve_probabilities,
    set_win_prob,
    tiebreak_win_prob,
)
from features.scoring import FinalSet, MatchFormat, Score, ScoringError, SetRule

FORMATS = [MatchFormat(best_of, final_set) for best_of in (3, 5) for final_set in FinalSet]
A, B = 0, 1

probability = st.floats(0.05, 0.95)


def point_probability(score: Score, p_a: float, p_b: float) -> float:
    """P(A wins the next point) at ``score``."""
    return p_a if score.server == A else 1.0 - p_b


# --- independent brute force (plain recursions over points and games, no closed forms) -----------

sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
CAP = 240  # points (games) after which a deuce-like phase is cut: reaching it has probability < 1e-20 here


def oracle_game(p: float, i: int = 0, j: int = 0) -> float:
    """P(server wins the game) by recursion over raw point counts."""

    @cache
    def value(i: int, j: int) -> float:
        if i >= 4 and i - j >= 2:
            return 1.0
        if j >= 4 and j - i >= 2:
            return 0.0
        if i + j > CAP:
            return 0.5
        return p * value(i + 1, j) + (1 - p) * value(i, j + 1)

    return value(i, j)


def oracle_tiebreak(p_a: float, p_b: float, first: int, target: int, a: int = 0, b: int = 0) -> float:
    """P(A wins the tie-break): the k-th point (from 0) is served by ``first`` when k % 4 is 0 or 3."""

    @cache
    def value(a: int, b: int) -> float:
        if a >= target and a - b >= 2:
            return 1.0
        if b >= target and b - a >= 2:
            return 0.0
        if a + b > CAP:
            return 0.5
        server = first if (a + b) % 4 in (0, 3) else 1 - first
        u = p_a if server == A else 1 - p_b
        return u * value(a + 1, b) + (1 - u) * value(a, b + 1)

    return value(a, b)


def oracle_set(p_a: float, p_b: float, rule: SetRule, ga: int, gb: int, server: int) -> float:
    """P(A wins the set) by recursion over games, games won on serve from ``oracle_game``."""
    hold_a, hold_b = oracle_game(p_a), oracle_game(p_b)

    @cache
    def value(ga: int, gb: int, server: int) -> float:
        if ga >= rule.games and ga - gb >= 2:
            return 1.0
        if gb >= rule.games and gb - ga >= 2:
            return 0.0
        if ga == gb and ga == rule.tiebreak_at:
            return oracle_tiebreak(p_a, p_b, server, rule.tiebreak_points)
        if ga + gb > CAP:
            return 0.5
        u = hold_a if server == A else 1 - hold_b
        return u * value(ga + 1, gb, 1 - server) + (1 - u) * value(ga, gb + 1, 1 - server)

    return value(ga, gb, server)


# --- worked by hand ------------------------------------------------------------------------------


def test_game_from_love_at_sixty_percent():
    # p^4 (1 + 4q + 10q^2) + 20 p^3 q^3 p^2 / (p^2 + q^2) = 0.54432 + 0.27648 * 9/13
    assert game_win_prob(0.6) == pytest.approx(0.54432 + 0.27648 * 9 / 13, abs=1e-15)
    assert game_win_prob(0.6) == pytest.approx(0.735729230769, abs=1e-12)
    assert hold_prob(0.6) == pytest.approx(game_win_prob(0.6), abs=1e-15)


@pytest.mark.parametrize("p", [0.3, 0.5, 0.62, 0.75, 0.99])
def test_game_from_deuce_advantage_and_other_scores(p):
    q = 1 - p
    deuce = p * p / (p * p + q * q)
    assert game_win_prob(p, 3, 3) == pytest.approx(deuce, abs=1e-15)
    assert game_win_prob(p, 2, 2) == pytest.approx(deuce, abs=1e-15)  # 30-30 is deuce in all but name
    assert game_win_prob(p, 4, 3) == pytest.approx(p + q * deuce, abs=1e-15)
    assert game_win_prob(p, 3, 4) == pytest.approx(p * deuce, abs=1e-15)
    assert game_win_prob(p, 3, 0) == pytest.approx(1 - q**3 * (1 - deuce), abs=1e-15)
    assert game_win_prob(p, 1, 3) == pytest.approx(p * p * deuce, abs=1e-15)
    assert game_win_prob(p, 4, 2) == 1.0 and game_win_prob(p, 0, 4) == 0.0
    for i in range(4):
        for j in range(4):
            assert game_win_prob(p, i, j) == pytest.approx(oracle_game(p, i, j), abs=1e-13)


def test_tiebreak_by_hand_at_six_all_and_six_five():
    p_a, p_b = 0.7, 0.6
    level = 0.7 * 0.4 / (0.7 * 0.4 + 0.3 * 0.6)  # pairs: one point on each serve, A needs both
    assert level == pytest.approx(0.6086956521739131, abs=1e-15)
    assert tiebreak_win_prob(p_a, p_b, 6, 6, first_server=A) == pytest.approx(level, abs=1e-15)
    # 6-5 after 11 points: point 12 is served by the first server (points 12-13 are that player's)
    assert tiebreak_win_prob(p_a, p_b, 6, 5, first_server=A) == pytest.approx(0.7 + 0.3 * level, abs=1e-15)
    assert tiebreak_win_prob(p_a, p_b, 6, 5, first_server=B) == pytest.approx(0.4 + 0.6 * level, abs=1e-15)
    assert tiebreak_win_prob(p_a, p_b, 7, 5) == 1.0 and tiebreak_win_prob(p_a, p_b, 9, 11) == 0.0


@pytest.mark.parametrize("target", [7, 10])
@pytest.mark.parametrize(("p_a", "p_b"), [(0.7, 0.6), (0.55, 0.68), (0.62, 0.62)])
def test_tiebreak_against_brute_force_from_every_score(target, p_a, p_b):
    for first in (A, B):
        for a in range(target + 2):
            for b in range(target + 2):
                if max(a, b) > target and abs(a - b) > 1:
                    continue
                expected = oracle_tiebreak(p_a, p_b, first, target, a, b)
                assert tiebreak_win_prob(p_a, p_b, a, b, first, target) == pytest.approx(expected, abs=1e-13)


def test_set_by_hand():
    p_a, p_b = 0.66, 0.61
    hold_a, hold_b = hold_prob(p_a), hold_prob(p_b)
    advantage = SetRule(tiebreak_at=None)
    win, lose = hold_a * (1 - hold_b), (1 - hold_a) * hold_b
    assert set_win_prob(p_a, p_b, advantage, 5, 5, A) == pytest.approx(win / (win + lose), abs=1e-15)
    assert set_win_prob(p_a, p_b, advantage, 11, 11, B) == pytest.approx(win / (win + lose), abs=1e-15)
    tiebreak = tiebreak_win_prob(p_a, p_b, 0, 0, A)
    assert set_win_prob(p_a, p_b, SetRule(), 6, 5, A) == pytest.approx(hold_a + (1 - hold_a) * tiebreak, abs=1e-15)
    assert set_win_prob(p_a, p_b, SetRule(), 5, 6, A) == pytest.approx(hold_a * tiebreak, abs=1e-15)
    assert set_win_prob(p_a, p_b, SetRule(), 6, 4, B) == 1.0


@pytest.mark.parametrize(
    "rule",
    [SetRule(), SetRule(tiebreak_at=None), SetRule(tiebreak_points=10), SetRule(tiebreak_at=12)],
    ids=["tiebreak-7", "advantage", "tiebreak-10", "tiebreak-7-at-12"],
)
@pytest.mark.parametrize(("p_a", "p_b"), [(0.66, 0.61), (0.58, 0.7)])
def test_set_against_brute_force_from_every_score(rule, p_a, p_b):
    top = 14 if rule.tiebreak_at != 6 else 7
    for server in (A, B):
        for ga in range(top):
            for gb in range(top):
                finished = max(ga, gb) >= rule.games and abs(ga - gb) >= 2
                beyond_tiebreak = rule.tiebreak_at is not None and max(ga, gb) > rule.tiebreak_at  # unreachable
                if finished or beyond_tiebreak or abs(ga - gb) > 6:
                    continue
                expected = oracle_set(p_a, p_b, rule, ga, gb, server)
                assert set_win_prob(p_a, p_b, rule, ga, gb, server) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_symmetric_players_are_even_and_finished_matches_are_certain(fmt):
    for p in (0.5, 0.64, 0.8):
        for first in (A, B):
            assert match_win_probability(Score.start(fmt, first), p, p) == pytest.approx(0.5, abs=1e-14)
    level = Score.at(fmt, [(6, 4), (4, 6)] * (fmt.best_of // 2), (6, 6), (0, 0), server=A)
    assert match_win_probability(level, 0.7, 0.7) == pytest.approx(0.5, abs=1e-14)
    won = Score.start(fmt)
    for _ in range(fmt.sets_to_win * 24):
        won = won.point(A)
    assert won.winner == A
    assert match_win_probability(won, 0.1, 0.9) == 1.0
    lost = Score.at(fmt, [(3, 6)] * fmt.sets_to_win, (0, 0), (0, 0), server=A)
    assert match_win_probability(lost, 0.9, 0.1) == 0.0


def test_a_best_of_five_with_an_advantage_fifth_set_by_brute_force():
    fmt = MatchFormat(5, FinalSet.ADVANTAGE)
    p_a, p_b = 0.66, 0.62
    regular = oracle_set(p_a, p_b, SetRule(), 0, 0, A)
    final = oracle_set(p_a, p_b, SetRule(tiebreak_at=None), 0, 0, A)

    @cache
    def match(a: int, b: int) -> float:
        if a == 3 or b == 3:
            return float(a == 3)
        won = final if a + b == 4 else regular
        return won * match(a + 1, b) + (1 - won) * match(a, b + 1)

    assert prematch_win_probability(fmt, p_a, p_b) == pytest.approx(match(0, 0), abs=1e-12)
    # two sets all, 4-5 in the fifth, B serving at 30-40: A wins this game, then the fifth from 5-5
    score = Score.at(fmt, [(6, 3), (3, 6), (7, 6), (6, 7)], (4, 5), (3, 2), server=B)
    game = 1 - oracle_game(p_b, 2, 3)
    expected = game * oracle_set(p_a, p_b, SetRule(tiebreak_at=None), 5, 5, A)
    assert match_win_probability(score, p_a, p_b) == pytest.approx(expected, abs=1e-12)


# --- the Markov property at every reachable score ------------------------------------------------


def reachable_scores(fmt: MatchFormat, games_cap: int, points_cap: int) -> list[Score]:
    """One score per distinct situation (sets won, games, points, server) reachable from the start."""
    seen: dict[tuple, Score] = {}
    frontier = [Score.start(fmt, A), Score.start(fmt, B)]
    while frontier:
        score = frontier.pop()
        key = (score.sets_won, score.games, score.points, score.game_server, score.winner)
        if key in seen or max(score.games) > games_cap or max(score.points) > points_cap:
            continue
        seen[key] = score
        if not score.is_over:
            frontier.extend((score.point(A), score.point(B)))
    return list(seen.values())


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_markov_property_at_every_reachable_score(fmt):
    p_a, p_b = 0.67, 0.59
    scores = reachable_scores(fmt, games_cap=14, points_cap=13)
    assert len(scores) > (2000 if fmt.best_of == 3 else 5000)
    for score in scores:
        value = match_win_probability(score, p_a, p_b)
        if score.is_over:
            assert value == float(score.winner == A)
            continue
        u = point_probability(score, p_a, p_b)
        expected = u * match_win_probability(score.point(A), p_a, p_b) + (1 - u) * match_win_probability(
            score.point(B), p_a, p_b
        )
        assert value == pytest.approx(expected, abs=1e-12), score.describe()


def random_score(fmt: MatchFormat, first: int, winners: list[int]) -> Score:
    score = Score.start(fmt, first)
    for winner in winners:
        if score.is_over:
            break
        score = score.point(winner)
    return score


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FORMATS), st.integers(0, 1), st.lists(st.integers(0, 1), max_size=350), probability, probability)
def test_markov_property_bounds_and_monotonicity_on_random_scores(fmt, first, winners, p_a, p_b):
    score = random_score(fmt, first, winners)
    value = match_win_probability(score, p_a, p_b)
    assert 0.0 <= value <= 1.0
    if not score.is_over:
        u = point_probability(score, p_a, p_b)
        expected = u * match_win_probability(score.point(A), p_a, p_b) + (1 - u) * match_win_probability(
            score.point(B), p_a, p_b
        )
        assert value == pytest.approx(expected, abs=1e-12)
    assert match_win_probability(score, min(p_a + 0.02, 1.0), p_b) >= value - 1e-12
    assert match_win_probability(score, p_a, min(p_b + 0.02, 1.0)) <= value + 1e-12


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(FORMATS), probability, probability)
def test_first_server_does_not_matter_before_the_first_point(fmt, p_a, p_b):
    at_a = match_win_probability(Score.start(fmt, A), p_a, p_b)
    at_b = match_win_probability(Score.start(fmt, B), p_a, p_b)
    assert at_a == pytest.approx(at_b, abs=1e-13)
    assert prematch_win_probability(fmt, p_a, p_b) == pytest.approx(at_a, abs=1e-13)


def test_who_serves_matters_inside_a_set_only_at_odd_games():
    fmt = MatchFormat(3)
    at = {
        (games, server): match_win_probability(Score.at(fmt, [], games, (0, 0), server), 0.65, 0.65)
        for games in ((4, 4), (5, 4))
        for server in (A, B)
    }
    # at 4-4 both serve once before 5-5 whatever the order; at 5-4 A serving for the set is better
    assert at[(4, 4), A] == pytest.approx(0.5, abs=1e-14) and at[(4, 4), B] == pytest.approx(0.5, abs=1e-14)
    assert at[(5, 4), A] > at[(5, 4), B] > 0.5


# --- calibration to the pre-match forecast -------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(FORMATS), st.floats(0.01, 0.99), st.floats(0.55, 0.72), st.integers(0, 1))
def test_calibrated_chain_reproduces_the_prematch_forecast(fmt, prematch_p, mean_serve, first):
    p_a, p_b = serve_probabilities(prematch_p, fmt, mean_serve)
    assert p_a + p_b == pytest.approx(2 * mean_serve, abs=1e-12)
    assert 0.0 <= p_b <= p_a <= 1.0 if prematch_p >= 0.5 else 0.0 <= p_a <= p_b <= 1.0
    reachable = prematch_win_probability(fmt, min(2 * mean_serve, 1.0), max(2 * mean_serve - 1, 0.0))
    assume(1 - reachable < prematch_p < reachable)
    assert match_win_probability(Score.start(fmt, first), p_a, p_b) == pytest.approx(prematch_p, abs=1e-12)
    assert live_win_probability(prematch_p, Score.start(fmt, first)) == pytest.approx(prematch_p, abs=1e-12)


def test_calibration_edges():
    fmt = MatchFormat(5, FinalSet.ADVANTAGE)
    assert serve_probabilities(0.5, fmt) == pytest.approx((0.64, 0.64), abs=1e-12)
    p_a, p_b = serve_probabilities(0.8, fmt)
    q_b, q_a = serve_probabilities(0.2, fmt)
    assert (p_a, p_b) == pytest.approx((q_a, q_b), abs=1e-12)  # mirror images
    # five sets magnify an edge on serve: 80% needs a smaller one than in three sets (5.3 vs 6.8 points in 100)
    three = serve_probabilities(0.8, MatchFormat(3))
    assert 0.05 < p_a - p_b < three[0] - three[1] < 0.07
    assert prematch_win_probability(fmt, *serve_probabilities(1.0, fmt)) == 1.0
    with pytest.raises(ValueError):
        serve_probabilities(1.2, fmt)


# --- serve tracking ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_tracker_without_points_gives_the_prematch_probability(fmt):
    tracker = ServeTracker.from_prematch(0.73, fmt, strength=40)
    assert tracker.serve_probabilities == serve_probabilities(0.73, fmt)
    for first in (A, B):
        assert live_win_probability(0.73, Score.start(fmt, first), tracker) == pytest.approx(0.73, abs=1e-12)


def test_tracker_is_a_beta_posterior_per_server():
    fmt = MatchFormat(3)
    tracker = ServeTracker.from_prematch(0.6, fmt, strength=40)
    prior_a, prior_b = tracker.serve_probabilities
    for _ in range(10):
        tracker = tracker.observe(server=A, point_winner=A)
    tracker = tracker.observe(server=B, point_winner=A).observe(server=B, point_winner=B)
    p_a, p_b = tracker.serve_probabilities
    assert p_a == pytest.approx((40 * prior_a + 10) / 50, abs=1e-15)
    assert p_b == pytest.approx((40 * prior_b + 1) / 42, abs=1e-15)
    assert (tracker.won_a, tracker.served_a, tracker.won_b, tracker.served_b) == (10, 10, 1, 2)
    with pytest.raises(ValueError):
        tracker.observe(server=2, point_winner=A)


def test_live_probability_follows_the_match():
    fmt = MatchFormat(3)
    score, tracker = Score.start(fmt, A), ServeTracker.from_prematch(0.5, fmt, strength=40)
    for _ in range(3):  # A wins three games to love: holds, breaks, holds
        for winner in (A, A, A, A):
            after = score.point(winner)
            tracker = tracker.observe_transition(score, after)
            score = after
    assert score.games == (3, 0)
    assert tracker.serve_probabilities[0] > 0.64 > tracker.serve_probabilities[1]
    live = live_win_probability(0.5, score, tracker)
    constant = live_win_probability(0.5, score)
    assert live > constant > 0.5  # the score alone helps A; A's dominance on both serves helps more
    with pytest.raises(ScoringError):
        tracker.observe_transition(score, score.point(A).point(A))
    with pytest.raises(ValueError, match="calibrated"):
        live_win_probability(0.6, score, tracker)
