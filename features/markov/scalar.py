"""In-play win probability: the Klaassen-Magnus Markov chain (points on serve independent and
identically distributed per server) solved exactly from any score, calibrated to the pre-match
forecast and updated with the points seen in the match (Kovalchik & Reid 2019).

Exact and fast without tables. Inside a game, a tie-break or a set, the score before the
"deuce" phase is reached is decided by playing out a fixed number of points (games): a game
from 0-0 is won outright if the server takes at least 4 of the first 6 points and goes to deuce
if they take exactly 3, whatever the order. So each stage is a sum over two binomial
distributions (the points or games on each player's serve) plus a closed form for the deuce phase,
where every pair of points (games) has one on each serve. Nothing is quantised: the result is the
chain's exact value to rounding error, in about 20 µs on a new pair of serve probabilities and 3 µs
on a pair seen before (``benchmarks/inplay_bench.py``).

A consequence used throughout (Newton & Keller 2005): who serves first does not change the
probability of winning a tie-break, a set from 0-0 or a match from 0-0, because the first 12 (18)
points of a tie-break and the first 10 games of a set are served equally by both players whatever
the order, and every later pair has one serve each. So the match probability from the start of a
set depends only on the sets won, and the calibration needs no assumption about the first server.

Conventions: player 0 is A, player 1 is B; ``p_a`` is the probability that A wins a point on A's
serve, ``p_b`` that B wins a point on B's serve; results are probabilities that A wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import comb
from typing import TYPE_CHECKING, TypeVar

from features.scoring import MatchFormat, Score, SetRule, check_next, tiebreak_turn

if TYPE_CHECKING:
    import numpy as np

_Serve = TypeVar("_Serve", float, "np.ndarray")

_BINOMIAL = tuple(tuple(comb(n, k) for k in range(n + 1)) for n in range(64))


def _binomial_pmf(n: int, p: float) -> list[float]:
    """P(K = k) for K ~ Binomial(n, p), k = 0..n."""
    q = 1.0 - p
    row = _BINOMIAL[n]
    pmf = [0.0] * (n + 1)
    power = 1.0
    for k in range(n + 1):  # pmf[k] = C(n, k) p^k, times q^(n - k) below
        pmf[k] = row[k] * power
        power *= p
    power = 1.0
    for k in range(n, -1, -1):
        pmf[k] *= power
        power *= q
    return pmf


def _play_out(start: int, target: int, n_a: int, win_a: float, n_b: int, win_b: float) -> tuple[float, float]:
    """For X = start + Bin(n_a, win_a) + Bin(n_b, win_b): P(X >= target) and P(X == target - 1)."""
    pmf_a = _binomial_pmf(n_a, win_a)
    pmf_b = _binomial_pmf(n_b, win_b)
    reach = level = 0.0
    tail = 0.0  # P(Bin(n_b) >= need), growing as need falls
    need = target - start  # wins on B's serve still needed, given i wins on A's serve
    j = n_b
    for i in range(n_a + 1):
        while j >= need and j >= 0:
            tail += pmf_b[j]
            j -= 1
        reach += pmf_a[i] * (tail if need > 0 else 1.0)
        if 1 <= need <= n_b + 1:
            level += pmf_a[i] * pmf_b[need - 1]
        need -= 1
    return reach, level


def _two_in_a_row(win: float, lose: float) -> float:
    """From level, when each pair is won by one side with ``win`` and by the other with ``lose``: P(first wins)."""
    total = win + lose
    return win / total if total > 0.0 else 0.5


# --- game ----------------------------------------------------------------------------------------


def game_win_prob(p: float, points_server: int = 0, points_returner: int = 0) -> float:
    """P(the server wins the game) from this score (points as 0, 1, 2, 3, 4 = 0, 15, 30, 40, A)."""
    i, j = points_server, points_returner
    if i >= 4 and i - j >= 2:
        return 1.0
    if j >= 4 and j - i >= 2:
        return 0.0
    q = 1.0 - p
    deuce = _two_in_a_row(p * p, q * q)
    if i >= 3 and j >= 3:
        lead = i - j
        return deuce if lead == 0 else (p + q * deuce if lead > 0 else p * deuce)
    if i == 0 and j == 0:
        return p**4 * (1.0 + 4.0 * q + 10.0 * q * q) + 20.0 * p**3 * q**3 * deuce
    reach, level = _play_out(i, 4, 6 - i - j, p, 0, 0.0)
    return reach + level * deuce


def hold_prob(p: float) -> float:
    """P(the server wins a game from 0-0), ``p`` the server's point-on-serve probability."""
    q = 1.0 - p
    return p**4 * (1.0 + 4.0 * q + 10.0 * q * q) + 20.0 * p**3 * q**3 * _two_in_a_row(p * p, q * q)


# --- tie-break -----------------------------------------------------------------------------------


def tiebreak_win_prob(
    p_a: float, p_b: float, points_a: int = 0, points_b: int = 0, first_server: int = 0, target: int = 7
) -> float:
    """P(A wins the tie-break to ``target`` points) from this score; ``first_server`` served its first point."""
    a, b = points_a, points_b
    if a >= target and a - b >= 2:
        return 1.0
    if b >= target and b - a >= 2:
        return 0.0
    level = _two_in_a_row(p_a * (1.0 - p_b), (1.0 - p_a) * p_b)
    played = a + b
    if a >= target - 1 and b >= target - 1:
        if a == b:
            return level
        server = first_server ^ tiebreak_turn(played)
        u = p_a if server == 0 else 1.0 - p_b  # P(A wins the next point)
        return u + (1.0 - u) * level if a > b else u * level
    remaining = 2 * target - 2 - played
    n_a = sum(1 for k in range(played, played + remaining) if first_server ^ tiebreak_turn(k) == 0)
    reach, tie = _play_out(a, target, n_a, p_a, remaining - n_a, 1.0 - p_b)
    return reach + tie * level


# --- set -----------------------------------------------------------------------------------------


TIEBREAK_SET = SetRule()
"""A set to 6 games with a 7-point tie-break at 6-6."""


def set_win_prob(
    p_a: float, p_b: float, rule: SetRule = TIEBREAK_SET, games_a: int = 0, games_b: int = 0, server: int = 0
) -> float:
    """P(A wins the set) between games at ``games_a``-``games_b``, ``server`` to serve the next game."""
    return _Chain(p_a, p_b, (rule,), 1).set_from(0, games_a, games_b, server)


def _set_from(chain: _Chain, index: int, ga: int, gb: int, server: int) -> float:
    """P(A wins set ``index``) between games at ga-gb (uncached; ``_Chain.set_from`` memoises it)."""
    size = chain.rules[index].games
    if ga >= size and ga - gb >= 2:
        return 1.0
    if gb >= size and gb - ga >= 2:
        return 0.0
    hold_a, hold_b = chain.hold_a, chain.hold_b
    if ga >= size - 1 and gb >= size - 1:
        if ga == gb:
            return chain.level(index, ga, server)
        u = hold_a if server == 0 else 1.0 - hold_b  # P(A wins the next game)
        after = chain.level(index, max(ga, gb), 1 - server)
        return u + (1.0 - u) * after if ga > gb else u * after
    remaining = 2 * size - 2 - ga - gb
    n_a = (remaining + 1) // 2 if server == 0 else remaining // 2
    reach, level = _play_out(ga, size, n_a, hold_a, remaining - n_a, 1.0 - hold_b)
    if level == 0.0:
        return reach
    next_server = server if remaining % 2 == 0 else 1 - server
    return reach + level * chain.level(index, size - 1, next_server)


def _set_level(chain: _Chain, index: int, games: int, server: int) -> float:
    """P(A wins set ``index``) from ``games`` all (uncached; ``_Chain.level`` memoises it)."""
    rule = chain.rules[index]
    win = chain.hold_a * (1.0 - chain.hold_b)  # A wins the next two games (one on each serve, either order)
    lose = (1.0 - chain.hold_a) * chain.hold_b
    if rule.tiebreak_at is None:
        return _two_in_a_row(win, lose)
    tiebreak = chain.tiebreak(rule.tiebreak_points)
    pairs = rule.tiebreak_at - games
    if pairs <= 0:
        return tiebreak
    split = 1.0 - win - lose
    if split >= 1.0:
        return tiebreak
    carried = split**pairs
    return win * (1.0 - carried) / (1.0 - split) + carried * tiebreak


# --- match ---------------------------------------------------------------------------------------


class _Chain:
    """The chain for one pair of serve probabilities and one sequence of set rules, set values memoised.

    Built once per pair and format (``_chain``); a score then costs a game probability and two look-ups.
    """

    __slots__ = ("p_a", "p_b", "rules", "hold_a", "hold_b", "from_sets", "_sets", "_levels", "_tiebreaks")

    def __init__(self, p_a: float, p_b: float, rules: tuple[SetRule, ...], sets_to_win: int) -> None:
        self.p_a, self.p_b, self.rules = p_a, p_b, rules
        self.hold_a, self.hold_b = hold_prob(p_a), hold_prob(p_b)
        self._sets: dict[tuple[int, int, int, int], float] = {}
        self._levels: dict[tuple[int, int, int], float] = {}
        self._tiebreaks: dict[int, float] = {}
        table = [[0.0] * (sets_to_win + 1) for _ in range(sets_to_win + 1)]
        for a in range(sets_to_win, -1, -1):
            for b in range(sets_to_win, -1, -1):
                if a == sets_to_win:
                    table[a][b] = 1.0
                elif b < sets_to_win:
                    # from 0-0 a set's probability does not depend on its first server: take A
                    won = self.set_from(self._first_with_rule(a + b), 0, 0, 0)
                    table[a][b] = won * table[a + 1][b] + (1.0 - won) * table[a][b + 1]
        self.from_sets = table
        """P(A wins the match) at the start of a set with sets won (a, b): from_sets[a][b]."""

    def _first_with_rule(self, index: int) -> int:
        """The first set index with the same rule as set ``index`` (so equal sets share memo entries)."""
        return self.rules.index(self.rules[index])

    def set_from(self, index: int, ga: int, gb: int, server: int) -> float:
        """P(A wins set ``index``) between games at ga-gb, ``server`` to serve the next game."""
        key = (index, ga, gb, server)
        value = self._sets.get(key)
        if value is None:
            value = self._sets[key] = _set_from(self, index, ga, gb, server)
        return value

    def level(self, index: int, games: int, server: int) -> float:
        """P(A wins set ``index``) from ``games`` all (at least the set's games - 1), ``server`` to serve."""
        key = (index, games, server)
        value = self._levels.get(key)
        if value is None:
            value = self._levels[key] = _set_level(self, index, games, server)
        return value

    def tiebreak(self, target: int) -> float:
        """P(A wins a tie-break to ``target`` points from 0-0), the same whoever serves first."""
        value = self._tiebreaks.get(target)
        if value is None:
            value = self._tiebreaks[target] = tiebreak_win_prob(self.p_a, self.p_b, 0, 0, 0, target)
        return value


@lru_cache(maxsize=4096)
def _chain(p_a: float, p_b: float, fmt: MatchFormat) -> _Chain:
    return _Chain(p_a, p_b, fmt.set_rules, fmt.sets_to_win)


def match_win_probability(score: Score, p_a: float, p_b: float) -> float:
    """P(A wins the match) from ``score``, A winning a point on serve with ``p_a`` and B with ``p_b``."""
    if score.winner is not None:
        return 1.0 if score.winner == 0 else 0.0
    fmt = score.fmt
    chain = _chain(p_a, p_b, fmt)
    sets = score.sets
    won_a = 0
    for done in sets:
        if done.games[0] > done.games[1]:
            won_a += 1
    won_b = len(sets) - won_a
    index = len(sets)
    rule = fmt.set_rules[index]
    ga, gb = score.games
    a, b = score.points
    if ga == gb and ga == rule.tiebreak_at:
        set_prob = tiebreak_win_prob(p_a, p_b, a, b, score.game_server, rule.tiebreak_points)
    else:
        server = score.game_server
        game = game_win_prob(p_a, a, b) if server == 0 else 1.0 - game_win_prob(p_b, b, a)
        index = 0 if index < fmt.best_of - 1 else index  # every set but the last has the same rule
        set_prob = game * chain.set_from(index, ga + 1, gb, 1 - server) + (1.0 - game) * chain.set_from(
            index, ga, gb + 1, 1 - server
        )
    rows = chain.from_sets
    return set_prob * rows[won_a + 1][won_b] + (1.0 - set_prob) * rows[won_a][won_b + 1]


@lru_cache(maxsize=1 << 16)
def prematch_win_probability(fmt: MatchFormat, p_a: float, p_b: float) -> float:
    """P(A wins the match) before the first point (the same whoever serves first). Remembered: the feature walk
    asks it with serve shares rounded to 0.001, 43k distinct of 103k matches."""
    return _chain(p_a, p_b, fmt).from_sets[0][0]


# --- calibration to the pre-match forecast -------------------------------------------------------


@lru_cache(maxsize=4096)
def serve_probabilities(prematch_p: float, fmt: MatchFormat, mean_serve: float = 0.64) -> tuple[float, float]:
    """Serve-point probabilities (p_a, p_b) = (m + d, m - d) whose match probability is ``prematch_p``.

    ``m`` is ``mean_serve`` (the tour's share of points won on serve); ``d`` is found by bisection
    to machine precision. The first server does not matter (see the module docstring). A forecast
    beyond what any ``d`` can give (p_a or p_b would leave [0, 1]) gets the extreme ``d``.
    """
    if not 0.0 <= prematch_p <= 1.0:
        raise ValueError(f"prematch_p must be a probability, not {prematch_p!r}")
    if not 0.0 < mean_serve < 1.0:
        raise ValueError(f"mean_serve must be strictly between 0 and 1, not {mean_serve!r}")
    span = min(mean_serve, 1.0 - mean_serve)
    low, high = -span, span
    for _ in range(200):
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if prematch_win_probability(fmt, mean_serve + middle, mean_serve - middle) < prematch_p:
            low = middle
        else:
            high = middle
    best = min(
        (low, high), key=lambda d: abs(prematch_win_probability(fmt, mean_serve + d, mean_serve - d) - prematch_p)
    )
    return mean_serve + best, mean_serve - best


# --- updating with the points of the match -------------------------------------------------------


def posterior_serve_probability(prior: _Serve, won: _Serve, served: _Serve, strength: float) -> _Serve:
    """Posterior mean of a player's serve-point probability: prior mean ``prior`` with weight ``strength``
    points, then ``won`` of ``served`` points won on serve (numbers, or numpy arrays element-wise)."""
    return (strength * prior + won) / (strength + served)


@dataclass(frozen=True, slots=True)
class ServeTracker:
    """Beta posteriors of both players' serve-point probabilities (empirical Bayes, Kovalchik & Reid 2019).

    The prior means are the calibrated pre-match serve probabilities; ``strength`` is the prior's
    weight in points (the prior is Beta(strength * p, strength * (1 - p))). Each observed point on a
    player's serve moves that player's estimate towards their share of service points won.
    """

    prematch_p: float
    """The pre-match probability that A wins, the source of the priors."""
    prior_a: float
    """Prior mean of P(A wins a point on A's serve)."""
    prior_b: float
    """Prior mean of P(B wins a point on B's serve)."""
    strength: float = 40.0
    """Weight of each prior, in points."""
    won_a: int = 0
    """Points A won on A's serve so far."""
    served_a: int = 0
    """Points A served so far."""
    won_b: int = 0
    """Points B won on B's serve so far."""
    served_b: int = 0
    """Points B served so far."""

    @classmethod
    def from_prematch(
        cls, prematch_p: float, fmt: MatchFormat, strength: float = 40.0, mean_serve: float = 0.64
    ) -> ServeTracker:
        """A tracker whose priors reproduce the pre-match forecast ``prematch_p`` for this format."""
        if strength <= 0.0:
            raise ValueError(f"strength must be positive, not {strength!r}")
        p_a, p_b = serve_probabilities(prematch_p, fmt, mean_serve)
        return cls(prematch_p, p_a, p_b, strength)

    def observe(self, server: int, point_winner: int) -> ServeTracker:
        """The tracker after one more point served by ``server`` and won by ``point_winner``."""
        if server not in (0, 1) or point_winner not in (0, 1):
            raise ValueError(f"players are 0 or 1, not server={server!r}, point_winner={point_winner!r}")
        held = 1 if point_winner == server else 0
        if server == 0:
            return ServeTracker(
                self.prematch_p,
                self.prior_a,
                self.prior_b,
                self.strength,
                self.won_a + held,
                self.served_a + 1,
                self.won_b,
                self.served_b,
            )
        return ServeTracker(
            self.prematch_p,
            self.prior_a,
            self.prior_b,
            self.strength,
            self.won_a,
            self.served_a,
            self.won_b + held,
            self.served_b + 1,
        )

    def observe_transition(self, prev: Score, new: Score) -> ServeTracker:
        """The tracker after the point that took ``prev`` to ``new`` (``ScoringError`` if none can)."""
        return self.observe(prev.server, check_next(prev, new))

    @property
    def serve_probabilities(self) -> tuple[float, float]:
        """Posterior means of (p_a, p_b)."""
        return (
            posterior_serve_probability(self.prior_a, self.won_a, self.served_a, self.strength),
            posterior_serve_probability(self.prior_b, self.won_b, self.served_b, self.strength),
        )


def live_win_probability(prematch_p: float, score: Score, tracker: ServeTracker | None = None) -> float:
    """P(A wins) from ``score``: the chain calibrated to ``prematch_p``, updated by ``tracker`` when given.

    With no points observed this is the chain at the calibrated serve probabilities, so at 0-0 it
    equals ``prematch_p`` (to rounding error).
    """
    if tracker is None:
        p_a, p_b = serve_probabilities(prematch_p, score.fmt)
    else:
        if tracker.prematch_p != prematch_p:
            raise ValueError(f"the tracker was calibrated to {tracker.prematch_p}, not to {prematch_p}")
        p_a, p_b = tracker.serve_probabilities
    return match_win_probability(score, p_a, p_b)
