"""The exact rules of tennis scoring: match formats by tournament and year, an immutable score that
advances one point at a time, and the check that a reported score can follow the previous one.

Both lanes use this one state machine: the live feed validator rejects impossible scores with
``transition``/``check_next``, the in-play model (``features.markov``) reads the state, and the
backtests replay history through it (``features.replays``).

Conventions: players are 0 (A, "First Player") and 1 (B, "Second Player"). Points inside a game
are counted as integers; deuce is always stored as 3-3 and advantage as 4-3 / 3-4, however many
deuces were played, so equal situations are equal scores. Tie-break points are stored as played
(7-6, 12-10, ...), because the serving rotation depends on how many were played.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache


class ScoringError(ValueError):
    """A score or a transition between scores that the rules of tennis do not allow."""


class ScoreUnchanged(ScoringError):
    """A reported score equal to the previous one: no point was played between them."""


# --- formats -------------------------------------------------------------------------------------


class FinalSet(Enum):
    """How the deciding set is decided."""

    ADVANTAGE = "advantage"
    """No tie-break: the set goes on until a player leads by two games."""
    TIEBREAK_7 = "tiebreak_7"
    """A 7-point tie-break at 6-6, like every other set."""
    TIEBREAK_10 = "tiebreak_10"
    """A 10-point match tie-break at 6-6."""
    TIEBREAK_7_AT_12 = "tiebreak_7_at_12"
    """A 7-point tie-break at 12-12 (Wimbledon 2019-2021)."""


@dataclass(frozen=True, slots=True)
class SetRule:
    """How one set is won."""

    games: int = 6
    """Games needed to win the set, with a lead of two."""
    tiebreak_at: int | None = 6
    """Games all at which a tie-break decides the set; None for an advantage set."""
    tiebreak_points: int = 7
    """Points needed to win that tie-break, with a lead of two."""


@dataclass(frozen=True, slots=True)
class MatchFormat:
    """The scoring rules of a singles match."""

    best_of: int = 3
    """Number of sets at most: 3 or 5."""
    final_set: FinalSet = FinalSet.TIEBREAK_7
    """How the deciding set is decided."""
    tiebreak_at: int = 6
    """Games all at which the other sets go to a tie-break (also the games needed to win a set)."""
    tiebreak_points: int = 7
    """Points needed to win the tie-break of the other sets."""
    set_rules: tuple[SetRule, ...] = field(init=False, repr=False, compare=False)
    """The rule of each set, first to last (derived)."""

    def __post_init__(self) -> None:
        if self.best_of not in (3, 5):
            raise ValueError(f"best_of must be 3 or 5, not {self.best_of!r}")
        if self.tiebreak_at < 1 or self.tiebreak_points < 1:
            raise ValueError("tiebreak_at and tiebreak_points must be positive")
        usual = SetRule(self.tiebreak_at, self.tiebreak_at, self.tiebreak_points)
        final = {
            FinalSet.ADVANTAGE: SetRule(self.tiebreak_at, None, self.tiebreak_points),
            FinalSet.TIEBREAK_7: usual,
            FinalSet.TIEBREAK_10: SetRule(self.tiebreak_at, self.tiebreak_at, 10),
            FinalSet.TIEBREAK_7_AT_12: SetRule(self.tiebreak_at, 2 * self.tiebreak_at, 7),
        }[self.final_set]
        object.__setattr__(self, "set_rules", (usual,) * (self.best_of - 1) + (final,))

    @property
    def sets_to_win(self) -> int:
        """Sets a player needs to win the match."""
        return self.best_of // 2 + 1


@dataclass(frozen=True, slots=True)
class FormatRule:
    """One line of the rules table: the deciding-set rule of a tournament over a range of years."""

    tournament: str
    """Canonical tournament key (see ``tournament_key``)."""
    final_set: FinalSet
    """How the deciding set is decided in those years."""
    first_year: int | None = None
    """First year the rule applies (None: since ever)."""
    last_year: int | None = None
    """Last year the rule applies (None: still in force)."""


TOURNAMENT_ALIASES: dict[str, tuple[str, ...]] = {
    "australian_open": ("australianopen", "ausopen", "^ao$", "^aus$"),
    "roland_garros": ("rolandgarros", "frenchopen", "^rg$", "^fo$"),
    "wimbledon": ("wimbledon", "^wim$"),
    "us_open": ("(?<!a)usopen", "^uso$", "^us$"),
    "davis_cup": ("daviscup",),
    "olympics": ("olympic",),
}
"""Regular expressions over the lower-cased, letters-and-digits-only tournament name, per key."""

DEFAULT_FORMAT_RULES: tuple[FormatRule, ...] = (
    FormatRule("australian_open", FinalSet.ADVANTAGE, last_year=2018),
    FormatRule("australian_open", FinalSet.TIEBREAK_10, first_year=2019),
    FormatRule("roland_garros", FinalSet.ADVANTAGE, last_year=2021),
    FormatRule("roland_garros", FinalSet.TIEBREAK_10, first_year=2022),
    FormatRule("wimbledon", FinalSet.ADVANTAGE, last_year=2018),
    FormatRule("wimbledon", FinalSet.TIEBREAK_7_AT_12, first_year=2019, last_year=2021),
    FormatRule("wimbledon", FinalSet.TIEBREAK_10, first_year=2022),
    # The US Open has played a 7-point tie-break in the deciding set since 1970; with the other
    # Grand Slams it moved to a 10-point tie-break at 6-6 in 2022 (Grand Slam Board, March 2022).
    FormatRule("us_open", FinalSet.TIEBREAK_7, last_year=2021),
    FormatRule("us_open", FinalSet.TIEBREAK_10, first_year=2022),
    # Davis Cup rubbers kept an advantage fifth set until tie-breaks came into every set in 2016.
    FormatRule("davis_cup", FinalSet.ADVANTAGE, last_year=2015),
    # Olympic deciding sets were advantage sets up to London 2012 (Federer - del Potro, 19-17).
    FormatRule("olympics", FinalSet.ADVANTAGE, last_year=2012),
)
"""Deciding-set rules by tournament and year; every event not listed plays a 7-point tie-break at
6-6 in every set (the ATP tour rule)."""

_NOT_LETTERS = re.compile(r"[^a-z0-9]")


def tournament_key(name: str, aliases: Mapping[str, Sequence[str]] = TOURNAMENT_ALIASES) -> str | None:
    """The canonical key of a tournament name written loosely ("Men'sAustralianOpen", "AO"), or None."""
    text = _NOT_LETTERS.sub("", name.lower().replace("&amp;", "&"))
    for key, patterns in aliases.items():
        if any(re.search(pattern, text) for pattern in patterns):
            return key
    return None


def match_format(
    tournament: str,
    year: int,
    best_of: int,
    rules: Iterable[FormatRule] = DEFAULT_FORMAT_RULES,
    aliases: Mapping[str, Sequence[str]] = TOURNAMENT_ALIASES,
) -> MatchFormat:
    """The scoring format of a match at ``tournament`` in ``year``.

    ``rules`` may be the caller's own table; a rule whose key has no aliases matches tournament
    names containing that key (lower case, letters and digits only), so a table can name new events.
    """
    key = tournament_key(tournament, aliases)
    text = _NOT_LETTERS.sub("", tournament.lower())
    for rule in rules:
        known = rule.tournament in aliases
        if (key == rule.tournament if known else _NOT_LETTERS.sub("", rule.tournament.lower()) in text) and (
            (rule.first_year is None or year >= rule.first_year) and (rule.last_year is None or year <= rule.last_year)
        ):
            return MatchFormat(best_of=best_of, final_set=rule.final_set)
    return MatchFormat(best_of=best_of, final_set=FinalSet.TIEBREAK_7)


# --- the score -----------------------------------------------------------------------------------

PLAYER_LABELS = ("First Player", "Second Player")
MAX_GAMES = 99
"""Most games a player can have in one set in any message or request (the longest set ever: 70-68). The feed
protocol and the prediction service both refuse more, so the engine never holds a state the service refuses."""
"""API-Tennis names of players 0 and 1."""
_POINT_CALLS = ("0", "15", "30", "40", "A")
_CALL_POINTS = {"0": 0, "00": 0, "15": 1, "30": 2, "40": 3, "A": 4, "AD": 4, "ADV": 4}


@dataclass(frozen=True, slots=True)
class SetScore:
    """The games of a completed set, and the tie-break points when a tie-break decided it."""

    games: tuple[int, int]
    """Games won by A and B."""
    tiebreak: tuple[int, int] | None = None
    """Tie-break points won by A and B, if the set went to a tie-break."""

    @property
    def winner(self) -> int:
        """The player who won the set."""
        return 0 if self.games[0] > self.games[1] else 1

    def sackmann(self, first: int = 0) -> str:
        """The set as Sackmann writes it, from player ``first``'s side: "6-4", "7-6(5)" (loser's points)."""
        a, b = self.games if first == 0 else self.games[::-1]
        text = f"{a}-{b}"
        if self.tiebreak is not None:
            text += f"({min(self.tiebreak)})"
        return text


@dataclass(frozen=True, slots=True)
class ScoreDisplay:
    """A score as an API-Tennis live event shows it."""

    event_final_result: str
    """Sets won, "1 - 0"."""
    event_game_result: str
    """Points in the current game: "40 - 30", "A - 40", "5 - 4" in a tie-break, "-" after the end."""
    scores: tuple[tuple[int, int, int], ...]
    """(score_first, score_second, score_set) of every set so far, the current set last."""
    event_serve: str | None
    """"First Player" or "Second Player"; None after the end."""
    event_status: str
    """"Set 2" while playing, "Finished" after the end."""
    event_winner: str | None
    """The winner's label after the end, else None."""


@dataclass(frozen=True, slots=True)
class Score:
    """The exact state of a match between two points."""

    fmt: MatchFormat
    """The rules of the match."""
    sets: tuple[SetScore, ...]
    """Completed sets, first to last."""
    games: tuple[int, int]
    """Games of A and B in the current set."""
    points: tuple[int, int]
    """Points of A and B in the current game (0, 1, 2, 3, 4 = 0, 15, 30, 40, A) or tie-break."""
    game_server: int
    """Who serves the current game; in a tie-break, who served its first point."""
    winner: int | None = None
    """The winner of the match; None while it is played."""
    _decisive: tuple[int | None, int | None, int | None] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )
    """Remembered (game, set, match) point holders: a score is immutable, and the triggers and the feed ask each
    of them several times a point."""
    in_tiebreak: bool = field(default=False, repr=False, compare=False, hash=False)
    """Whether the current game is a tie-break (never after the end). Set by the constructors below
    (``_made``), which every score comes from: a replay asks it several times a point."""
    server: int = field(default=0, repr=False, compare=False, hash=False)
    """Who serves the next point (after the end: who would have served). Set with ``in_tiebreak``."""

    @classmethod
    def start(cls, fmt: MatchFormat, first_server: int = 0) -> Score:
        """The score before the first point, ``first_server`` to serve."""
        _check_player(first_server, "first_server")
        return _made(fmt, (), (0, 0), (0, 0), first_server)

    @classmethod
    def at(
        cls,
        fmt: MatchFormat,
        sets: Sequence[tuple[int, int] | SetScore],
        games: tuple[int, int],
        points: tuple[int, int],
        server: int,
    ) -> Score:
        """The score with these completed sets, games and points, ``server`` to serve the next point.

        Raises ``ScoringError`` for a score no match can reach (a set of 5-4, a game at 5-0, ...).
        """
        _check_player(server, "server")
        done = tuple(s if isinstance(s, SetScore) else SetScore((int(s[0]), int(s[1]))) for s in sets)
        won = [0, 0]
        for number, completed in enumerate(done, start=1):
            if max(won) >= fmt.sets_to_win:
                raise ScoringError(f"set {number} was played after the match was over")
            rule = fmt.set_rules[number - 1]
            if not is_finished_set(completed.games, rule):
                raise ScoringError(f"set {number} at {_pair(completed.games)} is not a finished set")
            won[completed.winner] += 1
        over = max(won) >= fmt.sets_to_win
        winner = won.index(fmt.sets_to_win) if over else None
        if over:
            if games != (0, 0) or points != (0, 0):
                raise ScoringError("games or points after the end of the match")
            return _made(fmt, done, (0, 0), (0, 0), server, winner)
        rule = fmt.set_rules[len(done)]
        ga, gb = games
        if min(ga, gb) < 0 or is_finished_set((ga, gb), rule) or not _is_reachable_games((ga, gb), rule):
            raise ScoringError(f"games {_pair(games)} cannot be the score of a set in progress")
        a, b = points
        tiebreak = rule.tiebreak_at is not None and ga == gb == rule.tiebreak_at
        if tiebreak:
            target = rule.tiebreak_points
            if min(a, b) < 0 or (max(a, b) >= target and abs(a - b) >= 2):
                raise ScoringError(f"tie-break points {_pair(points)} cannot be a tie-break in progress")
            game_server = server if tiebreak_turn(a + b) == 0 else 1 - server
        else:
            if min(a, b) >= 3 and abs(a - b) <= 1:
                a, b = 3 + max(0, a - b), 3 + max(0, b - a)  # counted points: every deuce is 40-40
            if min(a, b) < 0 or max(a, b) > 4 or (max(a, b) == 4 and min(a, b) != 3):
                raise ScoringError(f"points {_pair(points)} cannot be a game in progress")
            game_server = server
        return _made(fmt, done, (ga, gb), (a, b), game_server)

    # --- advancing ---

    def point(self, winner: int) -> Score:
        """The score after ``winner`` (0 = A, 1 = B) wins the next point."""
        if self.winner is not None:
            raise ScoringError(f"the match is over ({self.describe()}): no point can follow")
        if winner != 0 and winner != 1:
            raise ScoringError(f"the winner of a point is player 0 or 1, not {winner!r}")
        a, b = self.points
        if winner == 0:
            a += 1
        else:
            b += 1
        fmt = self.fmt
        rule = fmt.set_rules[len(self.sets)]
        ga, gb = self.games
        tiebreak = ga == gb and ga == rule.tiebreak_at
        game_server = self.game_server
        if tiebreak:
            target = rule.tiebreak_points
            if (a < target and b < target) or -2 < a - b < 2:
                return Score(
                    fmt,
                    self.sets,
                    self.games,
                    (a, b),
                    game_server,
                    None,
                    True,
                    1 - game_server if tiebreak_turn(a + b) else game_server,
                )
        elif (a < 4 and b < 4) or -2 < a - b < 2:
            if a == 4 and b == 4:
                a = b = 3
            return Score(fmt, self.sets, self.games, (a, b), game_server, None, False, game_server)
        # the game is won
        if winner == 0:
            ga += 1
        else:
            gb += 1
        next_server = 1 - game_server
        if not tiebreak and (max(ga, gb) < rule.games or -2 < ga - gb < 2):
            return Score(fmt, self.sets, (ga, gb), (0, 0), next_server, None, ga == gb == rule.tiebreak_at, next_server)
        # the set is won
        sets = (*self.sets, SetScore((ga, gb), (a, b) if tiebreak else None))
        won = sum(1 for s in sets if s.winner == winner)
        return _made(fmt, sets, (0, 0), (0, 0), next_server, winner if won == fmt.sets_to_win else None)

    # --- reading ---

    @property
    def is_over(self) -> bool:
        """Whether the match has been won."""
        return self.winner is not None

    @property
    def set_first_server(self) -> int:
        """Who served the first game of the current set."""
        return self.game_server if (self.games[0] + self.games[1]) % 2 == 0 else 1 - self.game_server

    @property
    def sets_won(self) -> tuple[int, int]:
        """Sets won by A and B."""
        a = sum(1 for s in self.sets if s.winner == 0)
        return a, len(self.sets) - a

    @property
    def set_number(self) -> int:
        """The number of the current set (of the last set after the end), from 1."""
        return len(self.sets) if self.winner is not None else len(self.sets) + 1

    @property
    def set_rule(self) -> SetRule:
        """The rule of the current set."""
        return self.fmt.set_rules[min(len(self.sets), self.fmt.best_of - 1)]

    @property
    def game_point_for(self) -> int | None:
        """The player who wins the current game (or tie-break) by winning the next point, if any."""
        return self._decisive_points()[0]

    @property
    def break_point_for(self) -> int | None:
        """The receiver, when winning the next point breaks serve (never in a tie-break)."""
        if self.in_tiebreak:
            return None
        holder = self.game_point_for
        return holder if holder is not None and holder != self.game_server else None

    @property
    def is_break_point(self) -> bool:
        """Whether the receiver breaks serve by winning the next point."""
        return self.break_point_for is not None

    @property
    def set_point_for(self) -> int | None:
        """The player who wins the set by winning the next point, if any."""
        return self._decisive_points()[1]

    @property
    def is_set_point(self) -> bool:
        """Whether the next point can end the set."""
        return self.set_point_for is not None

    @property
    def match_point_for(self) -> int | None:
        """The player who wins the match by winning the next point, if any."""
        return self._decisive_points()[2]

    @property
    def is_match_point(self) -> bool:
        """Whether the next point can end the match."""
        return self.match_point_for is not None

    def _decisive_points(self) -> tuple[int | None, int | None, int | None]:
        """The first player (A, then B) who wins the game, the set, the match by winning the next point."""
        held = self._decisive
        if held is None:
            game = set_ = match = None
            if self.winner is None:
                for player in (0, 1):
                    after = self.point(player)
                    if game is None and (after.games != self.games or after.sets != self.sets):
                        game = player
                    if set_ is None and len(after.sets) > len(self.sets):
                        set_ = player
                    if match is None and after.winner is not None:
                        match = player
            held = (game, set_, match)
            object.__setattr__(self, "_decisive", held)
        return held

    def game_result(self) -> str:
        """The points of the current game as called: "40 - 30", "A - 40", "6 - 5" in a tie-break."""
        if self.winner is not None:
            return "-"
        a, b = self.points
        if self.in_tiebreak:
            return f"{a} - {b}"
        return f"{_POINT_CALLS[a]} - {_POINT_CALLS[b]}"

    def display(self) -> ScoreDisplay:
        """The score as an API-Tennis live event shows it."""
        sa, sb = self.sets_won
        rows = [(s.games[0], s.games[1], n) for n, s in enumerate(self.sets, start=1)]
        if self.winner is None:
            rows.append((self.games[0], self.games[1], len(self.sets) + 1))
        return ScoreDisplay(
            event_final_result=f"{sa} - {sb}",
            event_game_result=self.game_result(),
            scores=tuple(rows),
            event_serve=None if self.winner is not None else PLAYER_LABELS[self.server],
            event_status="Finished" if self.winner is not None else f"Set {len(self.sets) + 1}",
            event_winner=None if self.winner is None else PLAYER_LABELS[self.winner],
        )

    def sackmann(self, first: int = 0) -> str:
        """The completed sets as Sackmann's ``score`` column writes them, from player ``first``'s side."""
        return " ".join(s.sackmann(first) for s in self.sets)

    def describe(self) -> str:
        """A short human description: "6-4 2-1, 30-15, A serving"."""
        parts = [self.sackmann()] if self.sets else []
        if self.winner is not None:
            return " ".join(parts + [f"won by {'AB'[self.winner]}"])
        parts.append(f"{self.games[0]}-{self.games[1]}")
        game = self.game_result().replace(" ", "")
        return f"{' '.join(parts)}, {'tie-break ' if self.in_tiebreak else ''}{game}, {'AB'[self.server]} serving"


def _check_player(player: object, what: str) -> None:
    if player != 0 and player != 1:
        raise ScoringError(f"{what} must be player 0 or 1, not {player!r}")


def _made(
    fmt: MatchFormat,
    sets: tuple[SetScore, ...],
    games: tuple[int, int],
    points: tuple[int, int],
    game_server: int,
    winner: int | None = None,
) -> Score:
    """A ``Score`` with its ``in_tiebreak`` and ``server`` worked out (``Score.point`` sets them itself on its
    common paths)."""
    ga, gb = games
    tiebreak = winner is None and ga == gb and ga == fmt.set_rules[len(sets)].tiebreak_at
    server = 1 - game_server if tiebreak and tiebreak_turn(points[0] + points[1]) else game_server
    return Score(fmt, sets, games, points, game_server, winner, tiebreak, server)


def tiebreak_turn(points_played: int) -> int:
    """0 when the tie-break's first server serves the next point, 1 when the other player does.

    The first server serves one point, then the players alternate every two points: ABBAABBA...
    """
    return ((points_played + 1) // 2) % 2


def is_finished_set(games: tuple[int, int], rule: SetRule) -> bool:
    """Whether a set with these games is over under ``rule`` (6-4, 7-5, 7-6, 12-10 in an advantage set)."""
    hi, lo = max(games), min(games)
    if rule.tiebreak_at is not None and hi == rule.tiebreak_at + 1 and lo == rule.tiebreak_at:
        return True
    if rule.tiebreak_at is not None and hi > rule.tiebreak_at + 1:
        return False
    return (hi == rule.games and lo <= rule.games - 2) or (hi > rule.games and hi - lo == 2)


def _is_reachable_games(games: tuple[int, int], rule: SetRule) -> bool:
    hi, lo = max(games), min(games)
    if rule.tiebreak_at is not None and hi > rule.tiebreak_at:
        return False
    return hi < rule.games or hi - lo <= 1


def _pair(values: Sequence[object]) -> str:
    return f"{values[0]}-{values[1]}"


# --- checking a reported score against the previous one -----------------------------------------


Observed = tuple[tuple[tuple[int, int], ...], tuple[int, int], tuple[int, int]]
"""What a feed reports: the games of the completed sets, the games and the points of the current set."""


def check_next(prev: Score, new: Score) -> int:
    """The player who won the point that took ``prev`` to ``new``; ``ScoringError`` if one point cannot.

    Scores are compared as a feed shows them (completed sets' games, games, points, server), so
    ``new`` may come from ``Score.at`` without the tie-break points of earlier sets.
    """
    if new.fmt != prev.fmt:
        raise ScoringError(f"the formats differ: {prev.fmt} then {new.fmt}")
    return _point_between(prev, _observed(new), None if new.is_over else new.server)


def transition(
    prev: Score,
    reported_sets: Sequence[tuple[int, int]],
    reported_games: tuple[int, int],
    reported_points: tuple[int, int] | tuple[str, str] | str,
    reported_server: int | None = None,
) -> int:
    """The player who won the point between ``prev`` and the reported score; ``ScoringError`` if none can.

    ``reported_sets`` are the games of the completed sets; ``reported_points`` are integers, calls
    ("40", "A") or the game result as displayed ("40 - 30"; tie-break points are counts). After the
    end of a game the points are 0-0 (an empty or "-" game result is read as 0-0 too). When
    ``reported_server`` (who serves the next point) is given, it must be right too.
    ``ScoreUnchanged`` (a ``ScoringError``) means the report repeats ``prev``.
    """
    points = read_points(reported_points, prev.in_tiebreak)
    sets = tuple((int(a), int(b)) for a, b in reported_sets)
    return _point_between(prev, (sets, (int(reported_games[0]), int(reported_games[1])), points), reported_server)


def _point_between(prev: Score, observed: Observed, server: int | None) -> int:
    if observed == _observed(prev) and (server is None or server == prev.server):
        raise ScoreUnchanged(f"no point between {prev.describe()} and the same score")
    if prev.winner is not None:
        raise ScoringError(f"the match is over ({prev.describe()}): no point can follow")
    for player in (0, 1):
        after = prev.point(player)
        if _observed(after) == observed:
            if server is not None and not after.is_over and server != after.server:
                raise ScoringError(
                    f"{after.describe()} follows {prev.describe()}, but the report has {'AB'[server]} serving"
                )
            return player
    raise ScoringError(_impossible(prev, observed))


def read_points(reported: tuple[int, int] | tuple[str, str] | str, tiebreak: bool) -> tuple[int, int]:
    """Points from a report: counts in a tie-break, calls ("15", "40", "A"/"AD") or counts in a game.

    The one reader of a game result ("40 - 30", "A - 40", "5 - 4" in a tie-break): the live feed's
    validation and the engine's match state both use it. An advantage is only ever called against
    40 ("A - A", "A - 15" are refused), and every deuce is 40-40 whatever was played before it."""
    if isinstance(reported, str):
        return _read_text(reported, tiebreak)
    return _read_pair(reported, tiebreak)


@lru_cache(maxsize=4096)
def _read_text(reported: str, tiebreak: bool) -> tuple[int, int]:
    """``read_points`` of a text (a feed calls the same few dozen results over and over: remembered;
    a refused text raises every time, it is not remembered)."""
    text = reported.strip()
    if text in ("", "-"):
        return 0, 0
    parts = [p.strip() for p in text.split("-")]
    if len(parts) != 2:
        raise ScoringError(f"cannot read the game result {reported!r}")
    return _read_pair((parts[0], parts[1]), tiebreak)


def _read_pair(reported: tuple[int, int] | tuple[str, str], tiebreak: bool) -> tuple[int, int]:
    out = []
    advantage = []
    for value in reported:
        text = str(value).strip().upper()
        if isinstance(value, str) and not tiebreak and text in _CALL_POINTS:
            out.append(_CALL_POINTS[text])
            advantage.append(out[-1] == 4)
        elif text.isascii() and text.isdigit() and len(text) <= 3:
            out.append(int(text))
            advantage.append(False)
        else:
            raise ScoringError(f"cannot read the points {reported!r}")
    a, b = out
    if any(advantage) and sorted((a, b)) != [3, 4]:
        raise ScoringError(f"an advantage is called against 40 only, not {reported!r}")
    if not tiebreak and a >= 3 and b >= 3:
        a, b = 3 + max(0, a - b), 3 + max(0, b - a)  # every deuce is 40-40, every advantage A-40
    return a, b


def _observed(score: Score) -> Observed:
    """What a feed reports: completed sets, games, points (tie-break points as counts, not calls)."""
    return tuple(s.games for s in score.sets), score.games, score.points


def _calls(points: tuple[int, int], tiebreak: bool) -> str:
    """Points as called, "40-30" ("5-4" in a tie-break)."""
    if tiebreak or max(points) > 4 or min(points) < 0:
        return _pair(points)
    return f"{_POINT_CALLS[points[0]]}-{_POINT_CALLS[points[1]]}"


def is_tiebreak(fmt: MatchFormat, sets_done: int, games: tuple[int, int]) -> bool:
    """Whether the game at ``games`` after ``sets_done`` completed sets is a tie-break."""
    ga, gb = games
    return sets_done < fmt.best_of and ga == gb and ga == fmt.set_rules[sets_done].tiebreak_at


def _in_tiebreak(observed: Observed, fmt: MatchFormat) -> bool:
    sets, games, _ = observed
    return is_tiebreak(fmt, len(sets), games)


def _show(observed: Observed, fmt: MatchFormat) -> str:
    sets, games, points = observed
    return " ".join([*(_pair(s) for s in sets), _pair(games)]) + ", " + _calls(points, _in_tiebreak(observed, fmt))


def _impossible(prev: Score, observed: Observed) -> str:
    """Why the reported score cannot follow ``prev`` in one point, for people reading the quarantine."""
    fmt = prev.fmt
    sets, games, points = observed
    before = _observed(prev)
    now = _calls(prev.points, prev.in_tiebreak)
    options = " or ".join(f"{_show(_observed(prev.point(p)), fmt)} ({'AB'[p]} wins it)" for p in (0, 1))
    head = f"impossible transition from {_show(before, fmt)} to {_show(observed, fmt)}: the next point gives {options}"
    reason = ""
    if sets[: len(before[0])] != before[0] or len(sets) < len(before[0]):
        reason = "completed sets changed"
    elif len(sets) > len(before[0]) + 1:
        reason = f"{len(sets) - len(before[0])} sets completed in one point"
    elif len(sets) == len(before[0]) + 1:
        number = len(sets)
        rule = fmt.set_rules[number - 1]
        if not is_finished_set(sets[-1], rule):
            reason = f"set {number} reported won at {_pair(sets[-1])}, which is not a finished set"
        elif prev.set_point_for is None:
            reason = f"set {number} cannot end from {_pair(before[1])}, {now} (not a set point)"
        else:
            reason = f"set {number} can only end {_pair(prev.point(prev.set_point_for).sets[-1].games)}"
    elif games != before[1]:
        step = (games[0] - before[1][0], games[1] - before[1][1])
        if sorted(step) != [0, 1]:
            reason = f"games jump from {_pair(before[1])} to {_pair(games)}"
        elif prev.game_point_for != step.index(1):
            reason = f"a game cannot be won by {'AB'[step.index(1)]} from {now}"
    elif points != before[2]:
        reason = f"points cannot go from {now} to {_calls(points, prev.in_tiebreak)} in one point"
    return f"{head} ({reason})" if reason else head
