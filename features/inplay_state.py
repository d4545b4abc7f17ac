"""The in-play state as numbers: one feature matrix from (pre-match probability, exact score, points
won on serve so far), shared by the in-play models' training (``training.inplay_data``) and by
``/predict_live`` (``serving.service``), so the two can never drift apart.

Player A is the one whose pre-match probability is given (player one of a live request, the first
server of a point-by-point record). The features carry both Markov chains of ``features.markov``
(calibrated to the pre-match probability with constant serve probabilities, and with the serve
probabilities updated by the points seen), so a model built on them can fall back to, or correct,
the chain; the rest describes the score and the serve statistics of the match so far.

The chain is ``features.markov.scalar.match_win_probability``, evaluated for all states at once by
``features.markov.vector`` (which hands small batches to the scalar chain).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from features.markov.scalar import posterior_serve_probability
from features.markov.vector import ScoreArrays, calibrated_serve_probabilities, chain_probabilities
from features.scoring import MatchFormat, Score

SERVE_PRIOR_STRENGTH = 40.0
"""Weight in points of the pre-match serve priors (Kovalchik & Reid 2019's empirical-Bayes update)."""

LOGIT_LIMIT = 30.0
"""Logits are clipped to +-30 (probabilities within 1e-13 of 0 or 1), so decided states stay finite."""

INPLAY_FEATURES: tuple[str, ...] = (
    "prematch_logit",
    "markov_logit",
    "markov_updated_logit",
    "serve_a",
    "serve_b",
    "serve_shift_a",
    "serve_shift_b",
    "observed_serve_a",
    "observed_serve_b",
    "points_played",
    "points_won_diff",
    "sets_diff",
    "games_diff",
    "total_games_diff",
    "set_number",
    "points_a",
    "points_b",
    "in_tiebreak",
    "a_serving",
    "deciding_set",
    "best_of_5",
)
"""Column order of :func:`inplay_features`. Logits are of P(A wins the match); ``serve_*`` are the posterior
means of the serve-point probabilities and ``serve_shift_*`` their move from the pre-match prior;
``observed_serve_*`` the share of points won on serve (NaN before the player has served)."""

FEATURE_INDEX = {name: i for i, name in enumerate(INPLAY_FEATURES)}
"""Position of each feature in a row."""

_P_LIMIT = 1.0 / (1.0 + math.exp(LOGIT_LIMIT))
"""The probability whose logit is -LOGIT_LIMIT."""


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), clipped to +-``LOGIT_LIMIT`` (element-wise)."""
    p = np.minimum(np.maximum(np.asarray(p, dtype=float), _P_LIMIT), 1.0 - _P_LIMIT)
    return np.log(p) - np.log1p(-p)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The inverse of :func:`logit` (element-wise)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


# --- the features ------------------------------------------------------------------------------------


def inplay_features(
    prematch_p: Sequence[float] | np.ndarray,
    scores: Sequence[Score],
    won_a: Sequence[int] | np.ndarray,
    served_a: Sequence[int] | np.ndarray,
    won_b: Sequence[int] | np.ndarray,
    served_b: Sequence[int] | np.ndarray,
    strength: float = SERVE_PRIOR_STRENGTH,
) -> np.ndarray:
    """The feature matrix (rows: states, columns: ``INPLAY_FEATURES``) of match states.

    Row i: P(A wins) before the match ``prematch_p[i]``, the score ``scores[i]``, and the points A won
    on serve / served so far (``won_a[i]``/``served_a[i]``), the same for B. Before the first point both
    chains equal the pre-match probability (to rounding error).
    """
    p0 = np.asarray(prematch_p, dtype=float)
    n = len(scores)
    counts = np.asarray([won_a, served_a, won_b, served_b], dtype=np.int64).reshape(4, -1)
    if not (len(p0) == counts.shape[1] == n):
        raise ValueError("prematch_p, scores and the serve counts must have one entry per state")
    won_a, served_a, won_b, served_b = counts
    if n and not ((p0 > 0.0) & (p0 < 1.0)).all():
        raise ValueError(f"prematch_p must be strictly between 0 and 1: {p0[~((p0 > 0) & (p0 < 1))][:3]}")
    if ((won_a < 0) | (won_a > served_a) | (won_b < 0) | (won_b > served_b)).any():
        raise ValueError("points won on serve must be between 0 and the points served")
    keys: dict[tuple[float, int], int] = {}  # (p, id of the format object): cheap, and states of a match share one
    formats: list[MatchFormat] = []
    which = np.empty(n, dtype=np.int64)
    for i, (p, s) in enumerate(zip(p0.tolist(), scores, strict=True)):
        key = (p, id(s.fmt))
        k = keys.get(key)
        if k is None:
            k = keys[key] = len(formats)
            formats.append(s.fmt)
        which[i] = k
    unique_a, unique_b = calibrated_serve_probabilities([p for p, _ in keys], formats)
    prior_a, prior_b = unique_a[which], unique_b[which]
    # ServeTracker's posterior means, element-wise over all states (the one place of the update rule)
    serve_a = posterior_serve_probability(prior_a, won_a, served_a, strength)
    serve_b = posterior_serve_probability(prior_b, won_b, served_b, strength)
    arrays = ScoreArrays(scores)
    out = np.empty((n, len(INPLAY_FEATURES)))
    column = FEATURE_INDEX
    out[:, column["prematch_logit"]] = logit(p0)
    out[:, column["markov_logit"]] = logit(chain_probabilities(scores, prior_a, prior_b, arrays))
    out[:, column["markov_updated_logit"]] = logit(chain_probabilities(scores, serve_a, serve_b, arrays))
    out[:, column["serve_a"]] = serve_a
    out[:, column["serve_b"]] = serve_b
    out[:, column["serve_shift_a"]] = serve_a - prior_a
    out[:, column["serve_shift_b"]] = serve_b - prior_b
    np.divide(won_a, served_a, out=out[:, column["observed_serve_a"]], where=served_a > 0)
    np.divide(won_b, served_b, out=out[:, column["observed_serve_b"]], where=served_b > 0)
    out[served_a == 0, column["observed_serve_a"]] = math.nan
    out[served_b == 0, column["observed_serve_b"]] = math.nan
    out[:, column["points_played"]] = served_a + served_b
    out[:, column["points_won_diff"]] = 2 * (won_a - won_b) + served_b - served_a
    out[:, column["sets_diff"]] = arrays.sets_a - arrays.sets_b
    out[:, column["games_diff"]] = arrays.games_a - arrays.games_b
    out[:, column["total_games_diff"]] = arrays.games_done_a + arrays.games_a - arrays.games_done_b - arrays.games_b
    set_number = arrays.sets_a + arrays.sets_b + (arrays.winner < 0)
    best_of = np.array([f.best_of for f in arrays.formats], dtype=np.int64)[arrays.format_code]
    out[:, column["set_number"]] = set_number
    out[:, column["points_a"]] = arrays.points_a
    out[:, column["points_b"]] = arrays.points_b
    out[:, column["in_tiebreak"]] = arrays.in_tiebreak
    out[:, column["a_serving"]] = arrays.server == 0
    out[:, column["deciding_set"]] = set_number == best_of
    out[:, column["best_of_5"]] = best_of == 5
    return out
