"""API-Tennis live snapshots -> the feed's match messages (``feeds.live.protocol.MatchEvent``).

API-Tennis pushes (WebSocket) and answers (``get_livescore``) *snapshots*: each names a match's whole
state — sets (``event_final_result``, ``scores``), the current game (``event_game_result``), the server
(``event_serve``), the status, and the games so far (``pointbypoint``) — not the point that was just
played. ``SnapshotTranslator`` keeps each followed match's exact score (``features.scoring``) and turns a
snapshot into what the engine takes:

- the first snapshot of a match in play: ``match_start`` (then a ``resync`` if play is already on);
- a snapshot one point on: a ``point`` message, its winner worked out by the scoring rules (``transition``);
- the same score again: nothing (a duplicate, counted);
- a score further on (points skipped: a reconnect, a late push): a ``resync`` to the reported score,
  counted and logged; no point is ever invented;
- ``Suspended`` / ``Interrupted`` (rain, darkness) at the same score: a ``status`` message (and another when
  play resumes): the core trades no more on the match and cancels its live orders until play is on again;
  nothing settles (a match that never resumes ends as the vendor says: retired, or settled by the operator);
- ``Finished``, ``Retired``, ``Walk Over``: a ``match_end`` with that outcome (settled by the core's rules:
  a walkover and an early retirement are void); a score that goes back, or cannot be a score, is refused
  with its reason and counted, and the match goes on from the last good score.

Singles only: doubles and the tours not asked for (``tours``: ``atp``, ``wta``, ``challenger``, ``itf``)
are skipped and counted. A malformed snapshot is refused with its reason; the others of the same push go on.
Event keys become ``at-<event_key>``. Best of five for men's Grand Slam singles, else three; the final-set
rules come from the tournament (``features.scoring.match_format``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from features.live_match import (
    FIRST,
    PLAY_SUSPENDED_STATUSES,
    SECOND,
    WALKOVER_STATUSES,
    reported_score,
    score_progress,
)
from features.scoring import (
    PLAYER_LABELS,
    Score,
    ScoreUnchanged,
    ScoringError,
    match_format,
    tournament_key,
    transition,
)
from feeds.live.protocol import MatchEvent, PointInfo, SetGames

log = logging.getLogger(__name__)

TOURS = ("atp", "wta", "challenger", "itf")
"""The tours an ``event_type_type`` can name ("Atp Singles", "Challenger Men Singles", "Itf Women Singles")."""
DEFAULT_TOURS = frozenset({"atp", "wta"})
FINISHED, RETIRED = "Finished", "Retired"
ENDED = frozenset({FINISHED, RETIRED}) | WALKOVER_STATUSES
NOT_STARTED = frozenset({"", "Not Started", "Postponed", "Cancelled", "Scheduled"})
"""Statuses of a match not (yet) in play: nothing to follow."""
SLAMS = frozenset({"australian_open", "roland_garros", "wimbledon", "us_open"})
KEY_PREFIX = "at-"
REFUSALS_KEPT = 200
"""The last refused snapshots kept with their reasons (for the review list and the logs)."""


def _count(value: object) -> int:
    """A vendor's number, sent as a number or a string ("6", "7.5" for a set with its tie-break points)."""
    if isinstance(value, bool):
        raise ValueError("not a number")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text.split(".")[0]) if text else 0


class VendorPoint(BaseModel):
    model_config = ConfigDict(extra="ignore")

    number_point: int
    score: str
    break_point: str | None = None
    set_point: str | None = None
    match_point: str | None = None


class VendorGame(BaseModel):
    """One game of ``pointbypoint`` (its ``points`` leave out the point that won the game)."""

    model_config = ConfigDict(extra="ignore")

    set_number: str
    number_game: int
    player_served: str | None = None
    serve_winner: str | None = None
    serve_lost: str | None = None
    score: str = ""
    points: list[VendorPoint] = Field(default_factory=list)


class VendorSet(BaseModel):
    model_config = ConfigDict(extra="ignore")

    score_first: int
    score_second: int
    score_set: int

    @field_validator("score_first", "score_second", "score_set", mode="before")
    @classmethod
    def _games(cls, value: object) -> int:
        return _count(value)


class VendorEvent(BaseModel):
    """One match of an API-Tennis snapshot (the fields the adapter reads; the vendor's other fields are kept
    in the raw record only). Accepts the names of the vendor's older format (``league_name``, ...) too."""

    model_config = ConfigDict(extra="ignore")

    event_key: str
    event_date: str
    event_time: str | None = None
    event_first_player: str = Field(min_length=1)
    first_player_key: int | None = None
    event_second_player: str = Field(min_length=1)
    second_player_key: int | None = None
    event_final_result: str = "0 - 0"
    event_game_result: str = "0 - 0"
    event_serve: str | None = None
    event_winner: str | None = None
    event_status: str = ""
    event_type_type: str = Field("", validation_alias=AliasChoices("event_type_type", "country_name"))
    tournament_name: str = Field(validation_alias=AliasChoices("tournament_name", "league_name"))
    tournament_key: str | None = Field(None, validation_alias=AliasChoices("tournament_key", "league_key"))
    tournament_round: str | None = Field(None, validation_alias=AliasChoices("tournament_round", "league_round"))
    tournament_season: str | None = Field(None, validation_alias=AliasChoices("tournament_season", "league_season"))
    event_live: str | None = None
    scores: list[VendorSet] = Field(default_factory=list)
    pointbypoint: list[VendorGame] = Field(default_factory=list)

    @field_validator("event_key", "tournament_key", mode="before")
    @classmethod
    def _key(cls, value: object) -> object:
        return None if value is None else str(value)

    @field_validator("first_player_key", "second_player_key", mode="before")
    @classmethod
    def _player_key(cls, value: object) -> object:
        return None if value in (None, "", 0, "0") else value

    @field_validator("event_serve", "event_winner", mode="before")
    @classmethod
    def _player(cls, value: object) -> object:
        return None if value in (None, "", "-") else value


def tour_of(event_type: str) -> tuple[str | None, bool]:
    """The tour an ``event_type_type`` names (None: none of ``TOURS``) and whether it is doubles."""
    words = event_type.lower().split()
    return (words[0] if words and words[0] in TOURS else None), "doubles" in words


def best_of(tour: str, tournament: str) -> int:
    """Five sets for men's Grand Slam singles, else three."""
    return 5 if tour == "atp" and tournament_key(tournament) in SLAMS else 3


def _points_in(v: VendorEvent) -> int:
    """Points played by the vendor's ``pointbypoint``: each finished game's listed points and the one that won it,
    and the current game's points so far (0 when it gives no games)."""
    return sum(len(g.points) + (1 if g.serve_winner else 0) for g in v.pointbypoint)


def _last_winner(v: VendorEvent) -> str | None:
    """Who won the last point the snapshot shows, when its ``pointbypoint`` says so."""
    if not v.pointbypoint:
        return None
    game = v.pointbypoint[-1]
    if game.serve_winner:
        return game.serve_winner if game.serve_winner in PLAYER_LABELS else None
    if not game.points:
        return None
    now = game.points[-1].score
    before = game.points[-2].score if len(game.points) > 1 else "0 - 0"
    try:
        a0, b0 = (_call(x) for x in before.split(" - "))
        a1, b1 = (_call(x) for x in now.split(" - "))
    except ValueError:
        return None
    if (a1, b1) == (a0, b0):
        return None
    # A point moves the winner's call up, or (from advantage) the loser's down to 40 - 40
    return FIRST if a1 > a0 or b1 < b0 else SECOND


_CALLS = {"0": 0, "15": 1, "30": 2, "40": 3, "A": 4}


def _call(text: str) -> int:
    """A point call ("30", "A") or a tie-break count ("5") as a number that rises with the points."""
    text = text.strip()
    return _CALLS[text] if text in _CALLS else int(text)


@dataclass
class Followed:
    """One match the translator follows: its players, format and exact score as last sent to the engine."""

    key: str
    event: MatchEvent
    score: Score
    points: int = 0
    ended: bool = False
    vendor_keys: tuple[int | None, int | None] = (None, None)
    """The venue's keys of the two players (its own ids: ``adapters.api_tennis.identity`` maps them to ours)."""
    status: str = ""
    """The status last sent ("Set 2", "Suspended", ...)."""


@dataclass
class SnapshotTranslator:
    """Snapshots in, the feed's match messages out (see the module docstring)."""

    tours: frozenset[str] = DEFAULT_TOURS
    matches: dict[str, Followed] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    """What happened to each snapshot: ``points``, ``resyncs``, ``duplicates``, ``skipped: ...``,
    ``refused: ...``."""
    refused: deque = field(default_factory=lambda: deque(maxlen=REFUSALS_KEPT))
    """The last refused snapshots: (event key or "?", reason)."""

    def translate(self, raw: str | bytes | dict | list) -> list[MatchEvent]:
        """The messages one push (or ``get_livescore`` answer) gives, in order; what is refused is counted."""
        try:
            events = _events_of(json.loads(raw) if isinstance(raw, str | bytes) else raw)
        except (ValueError, TypeError) as exc:
            self._refuse("?", f"not a snapshot: {exc}")
            return []
        out: list[MatchEvent] = []
        for item in events:
            key = str(item.get("event_key", "?")) if isinstance(item, dict) else "?"
            try:
                out.extend(self.event(VendorEvent.model_validate(item)))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ()))
                self._refuse(key, f"malformed snapshot: {where}: {first.get('msg')}")
            except (ScoringError, ValueError) as exc:
                self._refuse(key, str(exc))
        return out

    def followed(self) -> list[tuple[str, str, str, str]]:
        """The matches followed: (event key, date, first player, second player), what a price source resolves
        its markets against (``adapters.betfair.prices.resolve_by_players``)."""
        return [
            (f.key, f.event.event_date, f.event.event_first_player, f.event.event_second_player)
            for f in self.matches.values()
        ]

    def _refuse(self, key: str, reason: str) -> None:
        self.counts[f"refused: {reason.split(':')[0]}"] += 1
        self.refused.append((key, reason))
        log.warning("API-Tennis snapshot of %s refused: %s", key, reason)

    def event(self, v: VendorEvent) -> list[MatchEvent]:
        """The messages one match's snapshot gives."""
        tour, doubles = tour_of(v.event_type_type)
        if doubles:
            self.counts["skipped: doubles"] += 1
            return []
        if tour not in self.tours:
            self.counts[f"skipped: tour {tour or v.event_type_type or 'unknown'}"] += 1
            return []
        key = KEY_PREFIX + v.event_key
        followed = self.matches.get(key)
        status = v.event_status.strip()
        if followed is None:
            if status in NOT_STARTED:
                self.counts["skipped: not started"] += 1
                return []
            if status in (FINISHED, RETIRED):
                self.counts["skipped: ended before it was followed"] += 1
                return []
            return self._start(key, tour, v)
        if followed.ended:
            self.counts["duplicates: after the end"] += 1
            return []
        if status in ENDED:
            return [self._end(followed, v)]
        return self._on(followed, v)

    def _message(self, kind: str, base: MatchEvent, v: VendorEvent, **fields: Any) -> MatchEvent:
        """``base`` (the match's start) with the snapshot's score and status."""
        rows = [(s.score_first, s.score_second) for s in sorted(v.scores, key=lambda s: s.score_set)]
        won = [int(x) for x in v.event_final_result.split(" - ")] if " - " in v.event_final_result else [0, 0]
        if kind != "match_end" and len(rows) == sum(won):
            rows.append((0, 0))  # a new set not shown yet
        game = v.event_game_result.strip()
        update = {
            "kind": kind,
            "event_final_result": v.event_final_result.strip(),
            "event_game_result": "0 - 0" if game in ("", "-") else game,
            "event_serve": v.event_serve,
            "event_winner": v.event_winner,
            "event_status": v.event_status.strip(),
            "event_live": "0" if kind == "match_end" else "1",
            "scores": [SetGames(score_first=a, score_second=b, score_set=n) for n, (a, b) in enumerate(rows, start=1)],
            "pointbypoint": [],
            **fields,
        }
        return MatchEvent.model_validate({**base.model_dump(), **update})

    def _start(self, key: str, tour: str | None, v: VendorEvent) -> list[MatchEvent]:
        first_server = v.pointbypoint[0].player_served if v.pointbypoint else v.event_serve
        season = v.tournament_season or v.event_date[:4]
        start = MatchEvent(
            kind="match_start",
            event_key=key,
            event_date=v.event_date,
            event_first_player=v.event_first_player,
            first_player_key=None,  # API-Tennis keys are not our player ids (identity resolves them)
            event_second_player=v.event_second_player,
            second_player_key=None,
            event_final_result="0 - 0",
            event_game_result="0 - 0",
            event_serve=first_server if first_server in PLAYER_LABELS else FIRST,
            event_status="Set 1",
            tournament_name=v.tournament_name,
            tournament_key=v.tournament_key,
            tournament_round=v.tournament_round,
            tournament_season=season,
            best_of=best_of(tour or "", v.tournament_name),
            scores=[SetGames(score_first=0, score_second=0, score_set=1)],
        )
        fmt = match_format(start.tournament_name, int(season), start.best_of)
        score = Score.start(fmt, 0 if start.event_serve == FIRST else 1)
        followed = Followed(key, start, score, vendor_keys=(v.first_player_key, v.second_player_key))
        self.matches[key] = followed
        self.counts["matches"] += 1
        out = [start]
        if v.event_status.strip() in WALKOVER_STATUSES:
            out.append(self._end(followed, v))
            return out
        out.extend(self._on(followed, v, joining=True))
        return out

    def _on(self, followed: Followed, v: VendorEvent, joining: bool = False) -> list[MatchEvent]:
        """A snapshot of a match in play: a point, a resync, a status change or nothing (``joining``: its first
        snapshot). The status is remembered only once the snapshot was taken (a refused one changes nothing)."""
        status = v.event_status.strip()
        out = self._after(followed, v, joining, status, followed.status)
        followed.status = status
        return out

    def _after(self, followed: Followed, v: VendorEvent, joining: bool, status: str, was: str) -> list[MatchEvent]:
        probe = self._message("point", followed.event, v)
        try:
            target = reported_score(probe, followed.score.fmt)
        except ScoringError as exc:
            raise ScoringError(f"impossible score {v.event_final_result} {v.event_game_result}: {exc}") from None
        prev = followed.score
        # the vendor's own count of points played shows points skipped where the score alone cannot (a deuce
        # game: 40-40, A-40, 40-40 again); it only ever adds a resync, never a point
        hidden = _points_in(v) > followed.points + 1
        if target == prev and not hidden:
            if status != was and PLAY_SUSPENDED_STATUSES & {status, was}:
                self.counts[f"status: {status}"] += 1  # play stopped or resumed, at the same score
                log.info("API-Tennis %s: %s -> %s at %s", followed.key, was, status, prev.describe())
                return [self._message("status", followed.event, v)]
            if not joining:  # a match joined at its start is no repeat
                self.counts["duplicates"] += 1
            return []
        if hidden:
            return self._resync(followed, v, target)
        sets = [s.games for s in target.sets]
        server = None if target.winner is not None else target.server
        try:
            winner = transition(prev, sets, target.games, target.points, server)
        except ScoreUnchanged:
            self.counts["duplicates"] += 1
            return []
        except ScoringError:
            return self._resync(followed, v, target)
        if target.winner is not None:  # a match point won, the end not reported yet: the end says it
            self.counts["duplicates: match over, waiting for the end"] += 1
            return []
        followed.points += 1
        followed.score = target
        self.counts["points"] += 1
        info = PointInfo(
            set_number=len(prev.sets) + 1,
            game_number=prev.games[0] + prev.games[1] + 1,
            point_number=followed.points,
            winner=PLAYER_LABELS[winner],
            server=PLAYER_LABELS[prev.server],
        )
        return [self._message("point", followed.event, v, pointbypoint=[info])]

    def _resync(self, followed: Followed, v: VendorEvent, target: Score) -> list[MatchEvent]:
        prev = followed.score
        if score_progress(target) < score_progress(prev):
            raise ScoringError(f"score went back: {prev.describe()} -> {target.describe()}")
        if target.winner is not None:
            self.counts["duplicates: match over, waiting for the end"] += 1
            return []
        followed.points = max(followed.points + 1, _points_in(v))
        followed.score = target
        self.counts["resyncs"] += 1
        log.info("API-Tennis %s: points skipped, resync %s -> %s", followed.key, prev.describe(), target.describe())
        winner = _last_winner(v)
        info = (
            []
            if winner is None
            else [
                PointInfo(
                    set_number=len(target.sets) + 1,
                    game_number=target.games[0] + target.games[1] + 1,
                    point_number=followed.points,
                    winner=winner,
                    server=PLAYER_LABELS[target.game_server],
                )
            ]
        )
        return [self._message("resync", followed.event, v, pointbypoint=info)]

    def _end(self, followed: Followed, v: VendorEvent) -> MatchEvent:
        followed.ended = True
        self.counts[f"ends: {v.event_status.strip()}"] += 1
        if v.event_status.strip() in WALKOVER_STATUSES:
            return self._message("match_end", followed.event, v, scores=[], event_final_result="0 - 0")
        return self._message("match_end", followed.event, v)


def _events_of(payload: Any) -> Iterable[Any]:
    """The match records of a push: a list, one record, or a REST answer ``{"success": 1, "result": [...]}``."""
    if isinstance(payload, dict) and "result" in payload:
        payload = payload["result"]
    if isinstance(payload, dict):
        return [payload]
    if isinstance(payload, list):
        return payload
    raise TypeError(f"a snapshot is a list or an object, not {type(payload).__name__}")
