"""Request and response models of the prediction service (pydantic; shared by server, client and tests).

Requests are validated as their JSON schema says, nothing looser: numbers must be JSON numbers (no
``"0.6"``, no ``true`` for 1), finite (no NaN or Infinity), integers within bounds that keep numpy and
the scoring code away from overflow, strings of bounded length, dates ISO strings.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, model_validator

from features.matches import WTA_LEVEL_FAMILY
from features.ratings import SURFACES
from features.scoring import MAX_GAMES, ScoringError, read_points


def _json_integer(value: Any) -> Any:
    """Integer choices (best of 3/5, server 1/2) take JSON integers only: not ``true``, ``"5"`` or ``5.0``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


def _iso_date(value: Any) -> Any:
    """Dates are ISO strings ("2024-06-30"), not numbers of seconds."""
    if not isinstance(value, str | dt.date):
        raise ValueError("must be an ISO date string (YYYY-MM-DD)")
    return value


REQUESTS = ConfigDict(extra="forbid", allow_inf_nan=False)
"""Every request model: unknown fields and non-finite numbers refused."""
Surface = Literal[SURFACES]  # type: ignore[valid-type]
"""One of ``features.ratings.SURFACES`` (a Literal of the tuple is a Literal of each of its values)."""
Level = Literal["G", "M", "A", "F", "D", "C", "PM", "P", "I", "T1", "T2", "T3", "T4", "T5", "W", "O"]
"""Sackmann tourney_level: Grand Slam, Masters 1000, ATP 250/500, Tour Finals, Davis Cup, Challenger; for the WTA also
its own codes (Premier Mandatory, Premier, International, the Tiers I-V, W, Olympics:
``features.matches.WTA_LEVEL_FAMILY``)."""
Tour = Literal["ATP", "WTA"]
ATP_LEVELS = ("G", "M", "A", "F", "D", "C")
PlayerId = Annotated[int, Strict(), Field(ge=1, le=10**9)]
PlayerName = Annotated[str, Field(min_length=1, max_length=100)]
PlayerRef = PlayerId | PlayerName
"""A Sackmann player id, or a full name ("Novak Djokovic")."""
BestOf = Annotated[Literal[3, 5], BeforeValidator(_json_integer)]
Server = Annotated[Literal[1, 2], BeforeValidator(_json_integer)]
IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]
Games = Annotated[int, Strict(), Field(ge=0, le=MAX_GAMES)]
"""Games in a set, or points in a game or tie-break (99: beyond any match ever played)."""
Count = Annotated[int, Strict(), Field(ge=0, le=2000)]
"""Points served (or won on serve) in one match by one player (the longest match ever had 980 points)."""

SETS_EXPECTED = "the completed sets [[one, two], ...], each a finished set, e.g. [[6, 4], [6, 7]]"
GAMES_EXPECTED = "the games of the set being played [one, two], e.g. [3, 2] (a finished set goes in sets)"
POINT_CALLS = "0, 1, 2, 3, 4 for 0, 15, 30, 40, A"
GAME_POINTS_EXPECTED = f"the points won in this game [one, two]: {POINT_CALLS}, e.g. [2, 3] for 30-40"
TIEBREAK_POINTS_EXPECTED = "the points won in this tie-break [one, two], e.g. [5, 4]"
POINTS_EXPECTED = f"{GAME_POINTS_EXPECTED}; in a tie-break the points won, e.g. [5, 4]"
"""What each part of a live state's score is, for the messages of a score refused (by the schema, or as
impossible by the service): short, as a message is cut at ``serving.errors.EXCERPT_CHARS``."""
_CALLS = ("0", "15", "30", "40", "A", "AD")


def _point_counts(value: Any) -> Any:
    """Points are counts (JSON integers): a call such as ``["30", "40"]`` or ``"30-40"`` is refused saying what
    to send instead (``[2, 3]``)."""
    parts = value if isinstance(value, list | tuple) else None
    if parts is not None and all(isinstance(v, int) and not isinstance(v, bool) for v in parts):
        return value  # the pair's length and bounds are checked by the type
    texts = [value] if isinstance(value, str) else parts or []
    if texts and all(isinstance(t, str) for t in texts):
        calls = [p.strip().upper() for t in texts for p in t.split("-")]
        try:
            counts = read_points((calls[0], calls[1]), tiebreak=False) if len(calls) == 2 else None
        except ScoringError:  # "A-A", "A-15": no game has that score
            counts = None
        if counts is not None and all(c in _CALLS for c in calls):
            raise ValueError(
                f"points are integers, not calls: {'-'.join(calls)} is {list(counts)} ({POINT_CALLS}; "
                "in a tie-break the points won, e.g. [5, 4])"
            )
    raise ValueError(f"points must be {POINTS_EXPECTED}")


class PrematchRequest(BaseModel):
    """One pre-match question: P(player one beats player two)."""

    model_config = REQUESTS

    player_one: PlayerRef = Field(description="Sackmann player id or full name")
    player_two: PlayerRef = Field(description="Sackmann player id or full name")
    tour: Tour = Field("ATP", description="whose players and model: ATP (tennis-prematch) or WTA (tennis-prematch-wta)")
    surface: Surface
    date: IsoDate = Field(
        description="match day; must be after the data the service knows (as_of), unless "
        "match_id names a historical match"
    )
    match_id: str | None = Field(
        None,
        max_length=64,
        description="Sackmann match id of a historical match (replays, backtests): "
        "the answer uses the features as of that match, from the "
        "pipeline's feature table, never what came after it",
    )
    best_of: BestOf = 3
    level: Level | None = Field(
        None, description="tournament tier (Sackmann tourney_level of the tour); omitted: the 250/500 tier (A, or I)"
    )
    round: str = Field("R32", max_length=8, description="R128 .. F, RR, Q1-Q3")
    rank_one: Annotated[int, Strict()] | None = Field(
        None, ge=1, le=100_000, description="current ranking of player one (latest known if omitted)"
    )
    rank_two: Annotated[int, Strict()] | None = Field(None, ge=1, le=100_000)
    points_one: float | None = Field(None, ge=0, le=1e6, strict=True)
    points_two: float | None = Field(None, ge=0, le=1e6, strict=True)

    @model_validator(mode="after")
    def _different_players(self) -> PrematchRequest:
        if str(self.player_one).strip().lower() == str(self.player_two).strip().lower():
            raise ValueError("player_one and player_two must be different players")
        if self.level is not None and self.tour == "ATP" and self.level not in ATP_LEVELS:
            raise ValueError(f"level {self.level} is a WTA level; the ATP's are {', '.join(ATP_LEVELS)}")
        if self.level is not None and self.tour == "WTA" and self.level not in WTA_LEVEL_FAMILY:
            raise ValueError(f"level {self.level} is not a WTA level: {', '.join(WTA_LEVEL_FAMILY)}")
        return self

    def feature_level(self) -> str:
        """The tier the features know (``features.matches.TOUR_LEVELS``, plus C) for this request's level."""
        if self.level is None:
            return "A"
        return WTA_LEVEL_FAMILY[self.level] if self.tour == "WTA" else self.level


class PrematchResponse(BaseModel):
    """P(player one wins), from the champion model."""

    player_one_id: int
    player_two_id: int
    tour: Tour = "ATP"
    probability: float = Field(ge=0, le=1, description="P(player one wins)")
    model_name: str
    model_version: str
    features_as_of: dt.date
    features_age_days: int = Field(
        0, description="days between features_as_of and the match (0: a historical match's own as-of features)"
    )
    warnings: list[str] = Field(default_factory=list, description="e.g. features older than the warning age")


class PrematchBatch(BaseModel):
    """A batch of pre-match questions."""

    model_config = ConfigDict(
        **REQUESTS,
        json_schema_extra={
            "examples": [
                {
                    "requests": [
                        {
                            "player_one": "Novak Djokovic",
                            "player_two": "Rafael Nadal",
                            "surface": "Hard",
                            "date": "2022-01-24",  # the week after the shared data ends: use a date after yours
                            "best_of": 5,
                            "level": "G",
                            "round": "QF",
                        }
                    ]
                }
            ]
        },
    )

    requests: list[PrematchRequest] = Field(min_length=1, max_length=10_000)


class PrematchBatchResponse(BaseModel):
    predictions: list[PrematchResponse]


class Health(BaseModel):
    status: Literal["ok", "loading", "error"]
    model_name: str
    model_version: str | None
    model_kind: str | None
    features_as_of: dt.date | None
    reloads: int
    last_error: str | None = None
    inplay_model_name: str | None = Field(
        None,
        description="what /predict_live answers with: tennis-inplay, "
        "or the Markov fallback while no champion is registered",
    )
    inplay_model_version: str | None = None
    inplay_model_family: str | None = Field(None, description="markov, markov_updated or learned")
    inplay_last_error: str | None = None
    wta_model_name: str | None = Field(None, description="what answers /predict with tour WTA")
    wta_model_version: str | None = Field(None, description="None while no WTA champion is loaded")
    wta_features_as_of: dt.date | None = None
    wta_last_error: str | None = None


class ServeStats(BaseModel):
    """Points served and won on serve so far in the match (updates the serve probabilities)."""

    model_config = REQUESTS

    won_one: Count = 0
    served_one: Count = 0
    won_two: Count = 0
    served_two: Count = 0

    @model_validator(mode="after")
    def _won_within_served(self) -> ServeStats:
        if self.won_one > self.served_one or self.won_two > self.served_two:
            raise ValueError("won on serve cannot exceed points served")
        return self


class LiveRequest(BaseModel):
    """A match state: P(player one wins from here)."""

    model_config = REQUESTS

    match_id: str | None = Field(None, max_length=128)
    best_of: BestOf = 3
    tournament: str = Field("", max_length=200, description="decides the final-set rule, with season")
    season: int = Field(2021, ge=1968, le=2100, strict=True)
    sets: list[tuple[Games, Games]] = Field(default_factory=list, max_length=5, description=SETS_EXPECTED)
    games: tuple[Games, Games] = Field((0, 0), description=GAMES_EXPECTED)
    points: Annotated[tuple[Games, Games], BeforeValidator(_point_counts)] = Field(
        (0, 0), description=f"{POINTS_EXPECTED}; counts past deuce work too ([6, 5] is A-40)"
    )
    server: Server = Field(description="who serves the next point")
    prematch_probability: float | None = Field(
        None, gt=0, lt=1, strict=True, description="P(player one wins) before the match"
    )
    prematch: PrematchRequest | None = Field(None, description="players etc., when no pre-match probability is given")
    serve_stats: ServeStats | None = None

    @model_validator(mode="after")
    def _needs_a_prior(self) -> LiveRequest:
        if self.prematch_probability is None and self.prematch is None:
            raise ValueError("give prematch_probability or prematch (the players)")
        return self


class LiveResponse(BaseModel):
    match_id: str | None
    probability: float = Field(ge=0, le=1, description="P(player one wins the match from this state)")
    prematch_probability: float
    serve_one: float = Field(description="P(player one wins a point on serve) used")
    serve_two: float
    model_name: str
    model_version: str
    data_version: str | None = Field(
        default=None, description="the data the in-play model was trained on (its run's data_version tag)"
    )


LIVE_EXAMPLE: dict = {
    "states": [
        {
            "match_id": "2012-wimbledon-1103",
            "best_of": 5,
            "tournament": "Wimbledon",
            "season": 2012,
            "sets": [[6, 4]],
            "games": [3, 2],
            "points": [2, 1],
            "server": 1,
            "prematch_probability": 0.62,
            "serve_stats": {"won_one": 40, "served_one": 60, "won_two": 35, "served_two": 55},
        }
    ]
}
"""A ``/predict_live`` body: the schema's example (OpenAPI) and the live benchmark's request."""


class LiveBatch(BaseModel):
    model_config = ConfigDict(**REQUESTS, json_schema_extra={"examples": [LIVE_EXAMPLE]})

    states: list[LiveRequest] = Field(min_length=1, max_length=10_000)


class LiveBatchResponse(BaseModel):
    predictions: list[LiveResponse]
