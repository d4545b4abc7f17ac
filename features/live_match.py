"""What a trader knows about one live match: its exact score (validated point by point), the
points each player won on serve, recent momentum, the pre-match prior and the last prediction.

A message about a match is checked against what is already known of it (the message's own form was
checked by ``feeds.live.protocol``): the same players as at the start, a score one point on from the
current one (``features.scoring``), a final result that agrees with the sets, one end. The live
engine and the backtests follow matches with this one state (through ``betting.trading``).

A message is anything shaped like the live feed's ``MatchEvent`` (:class:`MatchReport`): this
module reads its fields and imports no feed code.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from features.scoring import (
    PLAYER_LABELS,
    MatchFormat,
    Score,
    ScoringError,
    is_finished_set,
    is_tiebreak,
    match_format,
    read_points,
    transition,
)
from features.triggers import TriggerConfig, momentum_leader

FIRST, SECOND = PLAYER_LABELS
WALKOVER_STATUSES = frozenset({"Walk Over", "Walkover", "W/O"})
PLAY_SUSPENDED_STATUSES = frozenset({"Suspended", "Interrupted"})
"""Play stopped (rain, darkness, a medical stop) at a score: no trading until play resumes; nothing settles."""
"""How a feed says a match was not played (the market is void)."""
"""How the live feed (API-Tennis) names the two players, and the selections of their markets."""


class _SetRow(Protocol):
    score_first: int
    score_second: int


class _Point(Protocol):
    winner: str
    point_number: int


class MatchReport(Protocol):
    """The fields of a match message this module reads (``feeds.live.protocol.MatchEvent``)."""

    kind: str
    event_key: str
    event_date: str
    event_first_player: str
    event_second_player: str
    first_player_key: int | None
    second_player_key: int | None
    event_final_result: str
    event_game_result: str
    event_serve: str | None
    event_winner: str | None
    event_status: str
    tournament_name: str
    tournament_season: str
    best_of: int
    surface: str | None
    scores: Sequence[_SetRow]
    pointbypoint: Sequence[_Point]


class BadMessage(ValueError):
    """A message that cannot be right given the match's state; ``suspend``: the state itself may be
    behind (points missed), so the match is not traded until a later message resynchronises it."""

    def __init__(self, reason: str, suspend: bool = False):
        super().__init__(reason)
        self.suspend = suspend


class ImpossibleScore(BadMessage):
    """A reported score no point can lead to from the current one."""

    def __init__(self, reason: str):
        super().__init__(f"impossible score: {reason}", suspend=True)


def _sets_result(sets: list[tuple[int, int]] | tuple, text: str) -> None:
    won = [0, 0]
    for s in sets:
        won[0 if s[0] > s[1] else 1] += 1
    if f"{won[0]} - {won[1]}" != text.strip():
        raise ScoringError(f"final result {text!r} does not match the sets {won[0]} - {won[1]}")


def reported_score(event: MatchReport, fmt) -> Score:
    """The score a feed message reports, as an exact ``Score`` (raises ScoringError when impossible,
    including a final result that does not agree with the sets)."""
    finished = event.event_winner is not None
    rows = [(s.score_first, s.score_second) for s in event.scores]
    sets = rows if finished else rows[:-1]
    games = (0, 0) if finished or not rows else rows[-1]
    server = 0 if event.event_serve in (None, FIRST) else 1
    if finished:
        score = Score.at(fmt, sets, (0, 0), (0, 0), server)
    else:
        tiebreak = is_tiebreak(fmt, len(sets), games)
        score = Score.at(fmt, sets, games, read_points(event.event_game_result, tiebreak), server)
    _sets_result([s.games for s in score.sets], event.event_final_result)
    return score


@dataclass(frozen=True)
class MatchEnd:
    """How a match ended, as the engine accepts it (the winner's label, the Sackmann-style score)."""

    winner: str | None
    score_text: str
    retired: bool


@dataclass
class LiveMatch:
    """The engine's state of one match."""

    event_key: str
    feed: str
    fmt: MatchFormat
    score: Score
    players: tuple[str, str]
    player_keys: tuple[int | None, int | None]
    event_date: str
    surface: str | None
    tournament: str
    season: int
    served: list[int] = field(default_factory=lambda: [0, 0])
    won_on_serve: list[int] = field(default_factory=lambda: [0, 0])
    recent: deque = field(default_factory=lambda: deque(maxlen=6))
    points_since_prediction: int = 0
    momentum: int | None = None
    prior: float | None = None
    prior_source: str = ""
    finished: bool = False
    pending: Score | None = None
    """A reported score that did not follow from ``score`` (kept to detect a gap in the feed)."""
    last_probability: float | None = None
    points_played: int = 0
    predicted_points: int = -1
    """``points_played`` when ``last_probability`` was computed (it is for that score only)."""
    traded_points: int = -1
    """``points_played`` when the engine last made a trading decision (one per point)."""

    @classmethod
    def start(cls, event: MatchReport, feed: str, triggers: TriggerConfig) -> LiveMatch:
        season = int(event.tournament_season)
        fmt = match_format(event.tournament_name, season, event.best_of)
        score = Score.start(fmt, 0 if event.event_serve in (None, FIRST) else 1)
        m = cls(
            event.event_key,
            feed,
            fmt,
            score,
            (event.event_first_player, event.event_second_player),
            (event.first_player_key, event.second_player_key),
            event.event_date,
            event.surface,
            event.tournament_name,
            season,
        )
        m.recent = deque(maxlen=triggers.momentum_window)
        return m

    def check_same_match(self, event: MatchReport) -> None:
        """Every message of a match names the players and format it started with."""
        if (event.event_first_player, event.event_second_player) != self.players:
            raise BadMessage(
                f"players {event.event_first_player!r} v {event.event_second_player!r} are not "
                f"those of match {self.event_key} ({self.players[0]!r} v {self.players[1]!r})"
            )
        if event.best_of != self.fmt.best_of:
            raise BadMessage(f"best of {event.best_of}, the match started as best of {self.fmt.best_of}")
        if self.finished:
            raise BadMessage(f"{event.kind} after the end of match {self.event_key} (ignored)")

    def apply_point(self, event: MatchReport, triggers: TriggerConfig) -> tuple[Score, int]:
        """Advance by the point the message reports; returns (previous score, point winner).

        Raises ``ImpossibleScore`` when the reported score cannot follow the current one; the
        caller quarantines the message and may resynchronise with ``follow_gap``.
        """
        prev = self.score
        info = event.pointbypoint[-1] if event.pointbypoint else None
        reported_server = None
        if event.event_serve is not None and event.event_winner is None:
            reported_server = 0 if event.event_serve == FIRST else 1
        try:
            target = reported_score(event, self.fmt)
            winner = transition(
                prev,
                [(s.games[0], s.games[1]) for s in target.sets],
                target.games,
                target.points,
                reported_server if target.winner is None else None,
            )
        except (ScoringError, KeyError, ValueError) as exc:
            raise ImpossibleScore(
                f"{self.score.describe()} -> {event.event_final_result} {event.event_game_result}: {exc}"
            ) from None
        if info is not None and (FIRST if winner == 0 else SECOND) != info.winner:
            raise ImpossibleScore(f"the message says {info.winner} won the point, the score says otherwise")
        self._advance(winner)
        return prev, winner

    def resync(self, event: MatchReport) -> Score:
        """Jump to the score a feed reports after it skipped points (a feed of snapshots, as API-Tennis's,
        misses points across a reconnect or a late push): the state takes the reported score as it is and
        invents no point, so the serve counts leave the missed points out and the momentum window starts
        again. ``points_played`` becomes the reported point number (at least one more). Returns the previous
        score; raises ``ImpossibleScore`` when the reported score is no score or goes back a game or a set."""
        try:
            target = reported_score(event, self.fmt)
        except (ScoringError, KeyError, ValueError) as exc:
            raise ImpossibleScore(f"resync to {event.event_final_result} {event.event_game_result}: {exc}") from None
        if target.winner is not None:
            raise ImpossibleScore("a resync cannot end the match (the end is its own message)")
        if score_progress(target) < score_progress(self.score):
            raise ImpossibleScore(f"resync from {self.score.describe()} back to {target.describe()}")
        prev = self.score
        self.score = target
        self.pending = None
        self.recent.clear()
        info = event.pointbypoint[-1] if event.pointbypoint else None
        self.points_played = max(self.points_played + 1, info.point_number if info is not None else 0)
        self.points_since_prediction += 1
        return prev

    def follow(self, winner: int, score: Score) -> Score:
        """Advance by a point of a replay whose scores came from the exact scorer (``score`` is the score after
        ``winner`` won the point: nothing to check, as ``apply_point`` checks an outside feed's message);
        returns the previous score."""
        prev = self.score
        self._advance(winner, score)
        return prev

    def _advance(self, winner: int, score: Score | None = None) -> None:
        server = self.score.server
        self.score = self.score.point(winner) if score is None else score
        self.served[server] += 1
        self.won_on_serve[server] += int(winner == server)
        self.recent.append(winner)
        self.points_since_prediction += 1
        self.points_played += 1
        self.pending = None

    def follow_gap(self, event: MatchReport) -> Score | None:
        """After an impossible score the state stays put and the reported score is remembered; when
        the next message follows from that reported score (the feed skipped points, it did not
        lie), the state jumps to it and goes on. Returns the previous score, or None."""
        if self.pending is not None:
            saved, self.score = self.score, self.pending
            try:
                prev, _ = self.apply_point(event, TriggerConfig())
                return prev
            except ImpossibleScore:
                self.score = saved
        try:
            self.pending = reported_score(event, self.fmt)
        except (ScoringError, KeyError, ValueError):
            self.pending = None
        return None

    def end(self, event: MatchReport) -> MatchEnd:
        """Check a match end against the state: the winner and the sets must agree with the score the
        engine followed (a retirement: the sets played so far). Raises ``BadMessage`` otherwise."""
        self.check_same_match(event)
        if event.event_status in WALKOVER_STATUSES:
            if self.points_played:
                raise BadMessage(
                    f"a walkover after {self.points_played} points of match {self.event_key}", suspend=True
                )
            return MatchEnd(event.event_winner, "W/O", retired=False)
        rows = [(s.score_first, s.score_second) for s in event.scores]
        retired = event.event_status == "Retired"
        try:
            if retired:
                done = [r for i, r in enumerate(rows) if _finished_set(r, self.fmt, i)]
                if done != rows[: len(done)] or len(done) < len(rows) - 1:
                    raise ScoringError(f"sets {rows}: only the last set can be unfinished at a retirement")
                _sets_result(done, event.event_final_result)
                followed = [s.games for s in self.score.sets]
                if done[: len(followed)] != followed:
                    raise ScoringError(f"the sets {done} are not those followed ({followed})")
            else:
                final = reported_score(event, self.fmt)
                if final.winner is None or event.event_winner != (FIRST, SECOND)[final.winner]:
                    raise ScoringError(f"the winner {event.event_winner!r} is not the winner of the sets {rows}")
                if self.score.winner is not None and self.score.winner != final.winner:
                    raise ScoringError(f"the match was won by {(FIRST, SECOND)[self.score.winner]} point by point")
                followed = [s.games for s in self.score.sets]
                reported = [s.games for s in final.sets]
                if reported[: len(followed)] != followed:
                    raise ScoringError(f"the sets {rows} are not those followed ({followed})")
                if len(reported) > len(followed) and not self.score.is_over:
                    (fa, fb), (ga, gb) = reported[len(followed)], self.score.games
                    if ga > fa or gb > fb:
                        raise ScoringError(f"set {len(followed) + 1} cannot go from {ga}-{gb} to {fa}-{fb}")
        except (ScoringError, ValueError) as exc:
            raise BadMessage(
                f"match end {event.event_final_result} ({event.event_status}) does not agree with "
                f"the match ({self.score.describe()}): {exc}",
                suspend=True,
            ) from None
        sets = " ".join(f"{a}-{b}" for a, b in rows)
        return MatchEnd(event.event_winner, sets + (" RET" if retired else ""), retired)

    def momentum_now(self, triggers: TriggerConfig) -> int | None:
        return momentum_leader(self.recent, triggers)


def score_progress(score: Score) -> tuple[int, int]:
    """Sets and games played: neither goes back as a match goes on (a score reported behind it is refused)."""
    return len(score.sets), score.games[0] + score.games[1]


def _finished_set(games: tuple[int, int], fmt, index: int) -> bool:
    return index < fmt.best_of and is_finished_set(games, fmt.set_rules[index])
