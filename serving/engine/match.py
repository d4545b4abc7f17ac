"""What the engine knows about one live match: its exact score (validated point by point), the
points each player won on serve, recent momentum, the pre-match prior and the market."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from features.scoring import Score, ScoringError, match_format, transition
from feeds.live.protocol import MatchEvent
from serving.engine.triggers import TriggerConfig, momentum_leader

FIRST, SECOND = "First Player", "Second Player"


class ImpossibleScore(ValueError):
    """A reported score no point can lead to from the current one."""


def reported_score(event: MatchEvent, fmt) -> Score:
    """The score a feed message reports, as an exact ``Score`` (raises ScoringError when impossible)."""
    sets = [(s.score_first, s.score_second) for s in event.scores[:-1]] if event.event_winner is None else [
        (s.score_first, s.score_second) for s in event.scores]
    current = event.scores[-1] if event.scores and event.event_winner is None else None
    games = (current.score_first, current.score_second) if current else (0, 0)
    points = event.event_game_result.replace(" ", "")
    server = 0 if event.event_serve in (None, FIRST) else 1
    if event.event_winner is not None:
        return Score.at(fmt, sets, (0, 0), (0, 0), server)
    return Score.at(fmt, sets, games, _points(points, in_tiebreak=_tiebreak(games, fmt, len(sets))), server)


def _tiebreak(games: tuple[int, int], fmt, set_index: int) -> bool:
    rule = fmt.set_rules[min(set_index, len(fmt.set_rules) - 1)]
    return rule.tiebreak_at is not None and games == (rule.tiebreak_at, rule.tiebreak_at)


_CALLS = {"0": 0, "15": 1, "30": 2, "40": 3, "A": 4, "AD": 4}


def _points(text: str, in_tiebreak: bool) -> tuple[int, int]:
    a, _, b = text.partition("-")
    if in_tiebreak:
        return int(a), int(b)
    pa, pb = _CALLS[a], _CALLS[b]
    if pa == 4:
        pb = 3
    if pb == 4:
        pa = 3
    return pa, pb


@dataclass
class LiveMatch:
    """The engine's state of one match."""

    event_key: str
    feed: str
    fmt: object
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
    def start(cls, event: MatchEvent, feed: str, triggers: TriggerConfig) -> LiveMatch:
        season = int(event.tournament_season) if event.tournament_season.isdigit() else 2021
        fmt = match_format(event.tournament_name, season, event.best_of)
        score = Score.start(fmt, 0 if event.event_serve in (None, FIRST) else 1)
        m = cls(event.event_key, feed, fmt, score, (event.event_first_player, event.event_second_player),
                (event.first_player_key, event.second_player_key), event.event_date, event.surface,
                event.tournament_name, season)
        m.recent = deque(maxlen=triggers.momentum_window)
        return m

    def apply_point(self, event: MatchEvent, triggers: TriggerConfig) -> tuple[Score, int]:
        """Advance by the point the message reports; returns (previous score, point winner).

        Raises ``ImpossibleScore`` when the reported score cannot follow the current one; the
        caller quarantines the message and may resynchronise with ``resync``.
        """
        prev = self.score
        info = event.pointbypoint[-1] if event.pointbypoint else None
        reported_server = None
        if event.event_serve is not None and event.event_winner is None:
            reported_server = 0 if event.event_serve == FIRST else 1
        try:
            target = reported_score(event, self.fmt)
            winner = transition(prev, [(s.games[0], s.games[1]) for s in target.sets], target.games,
                                target.points, reported_server if target.winner is None else None)
        except (ScoringError, KeyError, ValueError) as exc:
            raise ImpossibleScore(f"{self.score.describe()} -> {event.event_final_result} "
                                  f"{event.event_game_result}: {exc}") from None
        if info is not None and (FIRST if winner == 0 else SECOND) != info.winner:
            raise ImpossibleScore(f"the message says {info.winner} won the point, the score says otherwise")
        server = prev.server
        self.score = prev.point(winner)
        self.served[server] += 1
        self.won_on_serve[server] += int(winner == server)
        self.recent.append(winner)
        self.points_since_prediction += 1
        self.points_played += 1
        return prev, winner

    def momentum_now(self, triggers: TriggerConfig) -> int | None:
        return momentum_leader(self.recent, triggers)
