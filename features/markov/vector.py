"""The Markov chain of ``features.markov.scalar`` for many states at once, with numpy.

``chain_probabilities`` is ``scalar.match_win_probability`` and ``calibrated_serve_probabilities`` is
``scalar.serve_probabilities`` for whole arrays of states (training on every point of thousands of
matches): the same recursions over points, games, tie-breaks and sets, as tables over the score instead
of memoised scalars, about a hundred times faster. A handful of states (a live request) go to the scalar
chain as they are. tests/features/test_inplay_state.py checks both ways agree to 1e-12 on every state of
real matches and of every format.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import numpy as np

from features.markov.scalar import match_win_probability, serve_probabilities
from features.scoring import MatchFormat, Score, SetRule, tiebreak_turn

SCALAR_UP_TO = 16
"""Batches up to this many states use the scalar chain (no table set-up cost); larger ones the tables."""

CHUNK = 20_000
"""States per table pass (the tables hold about 150 values a state: 24 MB at this size)."""


# --- the score as integers ---------------------------------------------------------------------------


class ScoreArrays:
    """Scores as integer arrays (one entry per score), what the vectorised chain reads."""

    __slots__ = (
        "formats",
        "format_code",
        "winner",
        "sets_a",
        "sets_b",
        "games_a",
        "games_b",
        "points_a",
        "points_b",
        "game_server",
        "server",
        "in_tiebreak",
        "games_done_a",
        "games_done_b",
    )

    def __init__(self, scores: Sequence[Score]):
        n = len(scores)
        cols = np.zeros((13, n), dtype=np.int64)
        self.formats: list[MatchFormat] = []
        """The distinct formats; ``format_code`` indexes them."""
        by_object: dict[int, int] = {}  # states of one match share a format object: hash each object once
        by_value: dict[MatchFormat, int] = {}
        for i, s in enumerate(scores):
            code = by_object.get(id(s.fmt))
            if code is None:
                code = by_value.get(s.fmt)
                if code is None:
                    code = by_value[s.fmt] = len(self.formats)
                    self.formats.append(s.fmt)
                by_object[id(s.fmt)] = code
            done_a = done_b = won_a = 0
            for st in s.sets:
                ga, gb = st.games
                done_a += ga
                done_b += gb
                won_a += ga > gb
            tb = s.in_tiebreak
            server = s.game_server
            if tb and tiebreak_turn(s.points[0] + s.points[1]):
                server = 1 - server
            cols[:, i] = (
                code,
                -1 if s.winner is None else s.winner,
                won_a,
                len(s.sets) - won_a,
                s.games[0],
                s.games[1],
                s.points[0],
                s.points[1],
                s.game_server,
                server,
                tb,
                done_a,
                done_b,
            )
        (
            self.format_code,
            self.winner,
            self.sets_a,
            self.sets_b,
            self.games_a,
            self.games_b,
            self.points_a,
            self.points_b,
            self.game_server,
            self.server,
            self.in_tiebreak,
            self.games_done_a,
            self.games_done_b,
        ) = cols


# --- the chain for many states at once ---------------------------------------------------------------


def _first_of_pair(win: np.ndarray, lose: np.ndarray) -> np.ndarray:
    """From level, each pair won by one side with ``win`` and by the other with ``lose``: P(first wins)."""
    total = win + lose
    out = np.full(np.shape(total), 0.5)
    np.divide(win, total, out=out, where=total > 0.0)
    return out


def _hold(p: np.ndarray) -> np.ndarray:
    """P(the server wins a game from 0-0)."""
    q = 1.0 - p
    return p**4 * (1.0 + 4.0 * q + 10.0 * q * q) + 20.0 * p**3 * q**3 * _first_of_pair(p * p, q * q)


def _game(p: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """P(the server wins the game) at points i (server) - j (returner), deuce stored as 3-3, advantage 4-3."""
    q = 1.0 - p
    deuce = _first_of_pair(p * p, q * q)
    table = {(3, 3): deuce, (4, 3): p + q * deuce, (3, 4): p * deuce}
    for a in range(3, -1, -1):
        for b in range(3, -1, -1):
            if (a, b) == (3, 3):
                continue
            up = 1.0 if a == 3 else table[(a + 1, b)]  # from 3-b (b < 3) the server's point wins the game
            down = 0.0 if b == 3 else table[(a, b + 1)]
            table[(a, b)] = p * up + q * down
    out = np.empty(len(p))
    for (a, b), value in table.items():
        hit = (i == a) & (j == b)
        if hit.any():
            out[hit] = value[hit]
    return out


def _a_point(p_a: np.ndarray, p_b: np.ndarray, first: np.ndarray, played: int | np.ndarray) -> np.ndarray:
    """P(A wins the tie-break's point number ``played`` (from 0)), ``first`` having served the first point."""
    turn = (played + 1) // 2 % 2 if isinstance(played, np.ndarray) else tiebreak_turn(played)
    return np.where(first ^ turn == 0, p_a, 1.0 - p_b)


def _tiebreak_table(
    p_a: np.ndarray, p_b: np.ndarray, first: np.ndarray, target: int
) -> dict[tuple[int, int], np.ndarray]:
    """P(A wins the tie-break) at every score x-y with x, y < ``target``; (target-1, target-1) is level."""
    last = target - 1
    table = {(last, last): _first_of_pair(p_a * (1.0 - p_b), (1.0 - p_a) * p_b)}
    for x in range(last, -1, -1):
        for y in range(last, -1, -1):
            if (x, y) == (last, last):
                continue
            u = _a_point(p_a, p_b, first, x + y)
            up = 1.0 if x == last else table[(x + 1, y)]  # y < last here: A's point at last wins it
            down = 0.0 if y == last else table[(x, y + 1)]
            table[(x, y)] = u * up + (1.0 - u) * down
    return table


def _tiebreak_start(p_a: np.ndarray, p_b: np.ndarray, target: int) -> np.ndarray:
    """P(A wins a tie-break to ``target`` from 0-0) (the same whoever serves first)."""
    return _tiebreak_table(p_a, p_b, np.zeros(len(p_a), dtype=np.int64), target)[(0, 0)]


def _tiebreak(
    p_a: np.ndarray, p_b: np.ndarray, first: np.ndarray, a: np.ndarray, b: np.ndarray, target: int
) -> np.ndarray:
    """P(A wins the tie-break to ``target``) at points a-b, ``first`` having served its first point."""
    last = target - 1
    table = _tiebreak_table(p_a, p_b, first, target)
    level = table[(last, last)]
    out = np.empty(len(p_a))
    late = (a >= last) & (b >= last)  # beyond the table: the closed form of the deuce-like phase
    u = _a_point(p_a, p_b, first, a + b)
    out[late] = np.where(a == b, level, np.where(a > b, u + (1.0 - u) * level, u * level))[late]
    for (x, y), value in table.items():
        hit = ~late & (a == x) & (b == y)
        if hit.any():
            out[hit] = value[hit]
    return out


class _SetRuleValues:
    """P(A wins a set under one rule) from any games score, for many states (each its own hold probabilities)."""

    def __init__(
        self, rule: SetRule, hold_a: np.ndarray, hold_b: np.ndarray, tiebreak: np.ndarray, first_server: np.ndarray
    ):
        self.rule, self.hold_a, self.hold_b, self.tiebreak = rule, hold_a, hold_b, tiebreak
        self.first = first_server
        self.win = hold_a * (1.0 - hold_b)  # A wins the next two games (one on each serve)
        self.lose = (1.0 - hold_a) * hold_b
        size = rule.games
        table: dict[tuple[int, int], np.ndarray] = {}
        for x in range(size - 1, -1, -1):
            for y in range(size - 1, -1, -1):
                if x == y == size - 1:
                    continue
                u = self._a_game(np.full(len(hold_a), x + y))
                table[(x, y)] = u * self._at(x + 1, y, table) + (1.0 - u) * self._at(x, y + 1, table)
        self.table = table

    def _a_game(self, games_played: np.ndarray) -> np.ndarray:
        server = self.first ^ (games_played & 1)
        return np.where(server == 0, self.hold_a, 1.0 - self.hold_b)

    def level(self, games: np.ndarray | int) -> np.ndarray:
        """From ``games`` all (at least size - 1 each)."""
        rule = self.rule
        if rule.tiebreak_at is None:
            return _first_of_pair(self.win, self.lose)
        pairs = rule.tiebreak_at - np.asarray(games)
        split = 1.0 - self.win - self.lose
        carried = split ** np.maximum(pairs, 0)
        played_out = np.divide(self.win * (1.0 - carried), 1.0 - split, out=np.zeros(len(split)), where=split < 1.0)
        return np.where((pairs <= 0) | (split >= 1.0), self.tiebreak, played_out + carried * self.tiebreak)

    def _late(self, ga: np.ndarray, gb: np.ndarray) -> np.ndarray:
        """Both players at size - 1 games or more, not decided: the closed forms."""
        u = self._a_game(ga + gb)
        after = self.level(np.maximum(ga, gb))
        return np.where(ga == gb, self.level(ga), np.where(ga > gb, u + (1.0 - u) * after, u * after))

    def _at(self, x: int, y: int, table: dict) -> np.ndarray | float:
        size = self.rule.games
        if x >= size and x - y >= 2:
            return 1.0
        if y >= size and y - x >= 2:
            return 0.0
        if x >= size - 1 and y >= size - 1:
            n = len(self.hold_a)
            return self._late(np.full(n, x), np.full(n, y))
        return table[(x, y)]

    def at(self, ga: np.ndarray, gb: np.ndarray) -> np.ndarray:
        """P(A wins the set) between games at ga-gb (each state its own)."""
        size = self.rule.games
        out = np.where(ga - gb >= 2, 1.0, 0.0)  # decided sets (only those are filled from here)
        late = (ga >= size - 1) & (gb >= size - 1) & (np.abs(ga - gb) < 2)
        out[late] = self._late(ga, gb)[late]
        for (x, y), value in self.table.items():
            hit = (ga == x) & (gb == y)
            if hit.any():
                out[hit] = value[hit]
        return out


def _match_tables(
    fmt: MatchFormat, pa: np.ndarray, pb: np.ndarray, first_of_set: np.ndarray
) -> tuple[dict[str, _SetRuleValues], dict[tuple[int, int], np.ndarray | float]]:
    """Set values of the format's regular and final rules, and P(A wins the match) at the start of a set
    with sets won (x, y): ``from_sets[(x, y)]``."""
    hold_a, hold_b = _hold(pa), _hold(pb)
    regular, final = fmt.set_rules[0], fmt.set_rules[-1]
    tiebreaks = {t: _tiebreak_start(pa, pb, t) for t in {regular.tiebreak_points, final.tiebreak_points}}
    rules = {"regular": _SetRuleValues(regular, hold_a, hold_b, tiebreaks[regular.tiebreak_points], first_of_set)}
    rules["final"] = (
        rules["regular"]
        if final == regular
        else _SetRuleValues(final, hold_a, hold_b, tiebreaks[final.tiebreak_points], first_of_set)
    )
    start = {k: v.table[(0, 0)] for k, v in rules.items()}  # from 0-0: the same whoever serves first
    need = fmt.sets_to_win
    from_sets: dict[tuple[int, int], np.ndarray | float] = {}
    for x in range(need, -1, -1):
        for y in range(need, -1, -1):
            if x == need:
                from_sets[(x, y)] = 1.0
            elif y == need:
                from_sets[(x, y)] = 0.0
            else:
                won = start["final" if x + y == fmt.best_of - 1 else "regular"]
                from_sets[(x, y)] = won * from_sets[(x + 1, y)] + (1.0 - won) * from_sets[(x, y + 1)]
    return rules, from_sets


def _chain_one_format(
    fmt: MatchFormat, s: ScoreArrays, rows: np.ndarray, p_a: np.ndarray, p_b: np.ndarray
) -> np.ndarray:
    """``match_win_probability`` for the states ``rows`` (all of format ``fmt``)."""
    n = len(rows)
    pa, pb = p_a[rows], p_b[rows]
    sets_a, sets_b = s.sets_a[rows], s.sets_b[rows]
    ga, gb = s.games_a[rows], s.games_b[rows]
    gs = s.game_server[rows]
    regular, final = fmt.set_rules[0], fmt.set_rules[-1]
    rules, from_sets = _match_tables(fmt, pa, pb, gs ^ ((ga + gb) & 1))
    in_final = (sets_a + sets_b) == fmt.best_of - 1
    # the current set: the current game (or tie-break), then the set from the next games score
    server_p = np.where(gs == 0, pa, pb)
    mine = np.where(gs == 0, s.points_a[rows], s.points_b[rows])
    theirs = np.where(gs == 0, s.points_b[rows], s.points_a[rows])
    game = _game(server_p, mine, theirs)
    game_a = np.where(gs == 0, game, 1.0 - game)
    set_prob = np.empty(n)
    for key, mask in (("regular", ~in_final), ("final", in_final)):
        if mask.any():
            values = rules[key]
            after = game_a * values.at(ga + 1, gb) + (1.0 - game_a) * values.at(ga, gb + 1)
            set_prob[mask] = after[mask]
    tb = s.in_tiebreak[rows].astype(bool)
    if tb.any():
        for key, rule in (("regular", regular), ("final", final)):
            mask = tb & (in_final if key == "final" else ~in_final)
            if mask.any():
                set_prob[mask] = _tiebreak(
                    pa[mask], pb[mask], gs[mask], s.points_a[rows][mask], s.points_b[rows][mask], rule.tiebreak_points
                )
    win_set = np.empty(n)
    lose_set = np.empty(n)
    for x, y in {(int(a), int(b)) for a, b in zip(sets_a, sets_b, strict=True)}:
        hit = (sets_a == x) & (sets_b == y)
        win_set[hit] = np.broadcast_to(from_sets[(x + 1, y)], n)[hit]
        lose_set[hit] = np.broadcast_to(from_sets[(x, y + 1)], n)[hit]
    return set_prob * win_set + (1.0 - set_prob) * lose_set


def chain_probabilities(
    scores: Sequence[Score], p_a: np.ndarray, p_b: np.ndarray, arrays: ScoreArrays | None = None
) -> np.ndarray:
    """``scalar.match_win_probability`` of every score, each with its own serve probabilities."""
    p_a, p_b = np.asarray(p_a, dtype=float), np.asarray(p_b, dtype=float)
    if len(scores) <= SCALAR_UP_TO:
        return np.array([match_win_probability(s, a, b) for s, a, b in zip(scores, p_a, p_b, strict=True)])
    s = arrays or ScoreArrays(scores)
    out = np.empty(len(scores))
    over = s.winner >= 0
    out[over] = (s.winner[over] == 0).astype(float)
    for code, fmt in enumerate(s.formats):
        idx = np.flatnonzero((s.format_code == code) & ~over)
        for start in range(0, len(idx), CHUNK):
            rows = idx[start : start + CHUNK]
            out[rows] = _chain_one_format(fmt, s, rows, p_a, p_b)
    return out


CALIBRATION_CACHE_SIZE = 8192
"""Calibrations kept (per path, see ``calibrated_serve_probabilities``): a match's pre-match probability
does not change during the match, so a live service asks for the same few thousand again and again."""


class _Calibrations:
    """A bounded LRU of calibrations keyed by (prematch p, format, mean serve); thread safe (the service
    answers requests from a thread pool). Values are the exact results of the computation they cache."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[float, MatchFormat, float], tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, keys: list[tuple[float, MatchFormat, float]]) -> list[tuple[float, float] | None]:
        with self._lock:
            out = [self._items.get(k) for k in keys]
            for k, v in zip(keys, out, strict=True):
                if v is not None:
                    self._items.move_to_end(k)
            return out

    def put_many(self, items: Iterable[tuple[tuple[float, MatchFormat, float], tuple[float, float]]]) -> None:
        with self._lock:
            for k, v in items:
                self._items[k] = v
                self._items.move_to_end(k)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_SCALAR_CALIBRATIONS = _Calibrations(CALIBRATION_CACHE_SIZE)
_VECTOR_CALIBRATIONS = _Calibrations(CALIBRATION_CACHE_SIZE)


def calibrated_serve_probabilities(
    prematch_p: Sequence[float] | np.ndarray, fmts: Sequence[MatchFormat], mean_serve: float = 0.64
) -> tuple[np.ndarray, np.ndarray]:
    """``scalar.serve_probabilities`` of many matches: the same bisection, run for all at once.

    Up to ``SCALAR_UP_TO`` matches go to the scalar bisection, more to the vectorised one (they agree to
    1e-12, not always to the last bit). Both paths keep their results in a bounded LRU of their own,
    keyed by (p, format, mean serve), and which path a call takes still depends only on its length, so
    a cached answer is bit for bit the one the call would have computed (each match's vectorised
    bisection is element-wise, independent of the other matches in the batch)."""
    p = np.asarray(prematch_p, dtype=float)
    if len(p) != len(fmts):
        raise ValueError("prematch_p and fmts must have one entry per match")
    values = p.tolist()
    if len(p) <= SCALAR_UP_TO:
        keys = [(x, f, mean_serve) for x, f in zip(values, fmts, strict=True)]
        found = _SCALAR_CALIBRATIONS.get_many(keys)
        new = []
        pairs = []
        for key, hit in zip(keys, found, strict=True):
            if hit is None:
                hit = serve_probabilities(key[0], key[1], mean_serve)
                new.append((key, hit))
            pairs.append(hit)
        if new:
            _SCALAR_CALIBRATIONS.put_many(new)
        return np.array([a for a, _ in pairs], dtype=float), np.array([b for _, b in pairs], dtype=float)
    if ((p < 0.0) | (p > 1.0)).any():
        raise ValueError(f"prematch_p must be probabilities: {p[(p < 0) | (p > 1)][:3]}")
    keys = [(x, f, mean_serve) for x, f in zip(values, fmts, strict=True)]
    found = _VECTOR_CALIBRATIONS.get_many(keys)
    missing = [i for i, hit in enumerate(found) if hit is None]
    out_a, out_b = np.empty(len(p)), np.empty(len(p))
    if missing:
        todo = {keys[i]: None for i in missing}  # distinct, in order
        miss_keys = list(todo)
        got_a, got_b = _bisect_serve_probabilities(
            np.array([k[0] for k in miss_keys], dtype=float), [k[1] for k in miss_keys], mean_serve
        )
        computed = {k: (float(a), float(b)) for k, a, b in zip(miss_keys, got_a.tolist(), got_b.tolist(), strict=True)}
        _VECTOR_CALIBRATIONS.put_many(computed.items())
        for i in missing:
            found[i] = computed[keys[i]]
    for i, (a, b) in enumerate(found):  # type: ignore[misc]
        out_a[i], out_b[i] = a, b
    return out_a, out_b


def _bisect_serve_probabilities(
    p: np.ndarray, fmts: Sequence[MatchFormat], mean_serve: float
) -> tuple[np.ndarray, np.ndarray]:
    """The vectorised bisection of ``calibrated_serve_probabilities`` (every match on its own, element-wise)."""
    best = np.empty(len(p))
    span = min(mean_serve, 1.0 - mean_serve)
    groups: dict[MatchFormat, list[int]] = {}
    for i, f in enumerate(fmts):
        groups.setdefault(f, []).append(i)
    for fmt, idx in groups.items():
        target = p[idx]

        def start_value(d: np.ndarray, fmt: MatchFormat = fmt) -> np.ndarray:
            zeros = np.zeros(len(d), dtype=np.int64)
            return np.broadcast_to(_match_tables(fmt, mean_serve + d, mean_serve - d, zeros)[1][(0, 0)], len(d))

        low, high = np.full(len(idx), -span), np.full(len(idx), span)
        active = np.ones(len(idx), dtype=bool)
        for _ in range(200):
            middle = 0.5 * (low + high)
            active &= (middle != low) & (middle != high)
            if not active.any():
                break
            on = np.flatnonzero(active)
            below = start_value(middle[on]) < target[on]
            low[on] = np.where(below, middle[on], low[on])
            high[on] = np.where(below, high[on], middle[on])
        best[idx] = np.where(np.abs(start_value(low) - target) <= np.abs(start_value(high) - target), low, high)
    return mean_serve + best, mean_serve - best
