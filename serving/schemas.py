"""Request and response models of the prediction service (pydantic; shared by server, client and tests)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Surface = Literal["Hard", "Clay", "Grass", "Carpet"]
Level = Literal["G", "M", "A", "F", "D", "C"]
"""Sackmann tourney_level: Grand Slam, Masters 1000, ATP 250/500, Tour Finals, Davis Cup, Challenger."""
PlayerRef = int | str
"""A Sackmann player id, or a full name ("Novak Djokovic")."""


class PrematchRequest(BaseModel):
    """One pre-match question: P(player one beats player two)."""

    model_config = ConfigDict(extra="forbid")

    player_one: PlayerRef = Field(description="Sackmann player id or full name")
    player_two: PlayerRef = Field(description="Sackmann player id or full name")
    surface: Surface
    date: dt.date = Field(description="match day; must be after the data the service knows (as_of), unless "
                                      "match_id names a historical match")
    match_id: str | None = Field(None, description="Sackmann match id of a historical match (replays, backtests): "
                                                   "the answer uses the features as of that match, from the "
                                                   "pipeline's feature table, never what came after it")
    best_of: Literal[3, 5] = 3
    level: Level = Field("A", description="tournament tier (Sackmann tourney_level)")
    round: str = Field("R32", description="R128 .. F, RR, Q1-Q3")
    rank_one: int | None = Field(None, ge=1, description="current ranking of player one (latest known if omitted)")
    rank_two: int | None = Field(None, ge=1)
    points_one: float | None = Field(None, ge=0)
    points_two: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _different_players(self) -> PrematchRequest:
        if str(self.player_one).strip().lower() == str(self.player_two).strip().lower():
            raise ValueError("player_one and player_two must be different players")
        return self


class PrematchResponse(BaseModel):
    """P(player one wins), from the champion model."""

    player_one_id: int
    player_two_id: int
    probability: float = Field(ge=0, le=1, description="P(player one wins)")
    model_name: str
    model_version: str
    features_as_of: dt.date


class PrematchBatch(BaseModel):
    """A batch of pre-match questions."""

    model_config = ConfigDict(extra="forbid")

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
    inplay_model_name: str | None = Field(None, description="what /predict_live answers with: tennis-inplay, "
                                                            "or the Markov fallback while no champion is registered")
    inplay_model_version: str | None = None
    inplay_model_family: str | None = Field(None, description="markov, markov_updated or learned")
    inplay_last_error: str | None = None


class ServeStats(BaseModel):
    """Points served and won on serve so far in the match (updates the serve probabilities)."""

    model_config = ConfigDict(extra="forbid")

    won_one: int = Field(0, ge=0)
    served_one: int = Field(0, ge=0)
    won_two: int = Field(0, ge=0)
    served_two: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _won_within_served(self) -> ServeStats:
        if self.won_one > self.served_one or self.won_two > self.served_two:
            raise ValueError("won on serve cannot exceed points served")
        return self


class LiveRequest(BaseModel):
    """A match state: P(player one wins from here)."""

    model_config = ConfigDict(extra="forbid")

    match_id: str | None = None
    best_of: Literal[3, 5] = 3
    tournament: str = Field("", description="decides the final-set rule, with season")
    season: int = Field(2021, ge=1968, le=2100)
    sets: list[tuple[int, int]] = Field(default_factory=list, description="completed sets, games (one, two)")
    games: tuple[int, int] = (0, 0)
    points: tuple[int, int] = Field((0, 0), description="points in the game: 0,1,2,3,4 = 0,15,30,40,A; "
                                                        "tie-break points as counts")
    server: Literal[1, 2] = Field(description="who serves the next point")
    prematch_probability: float | None = Field(None, gt=0, lt=1, description="P(player one wins) before the match")
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


class LiveBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    states: list[LiveRequest] = Field(min_length=1, max_length=10_000)


class LiveBatchResponse(BaseModel):
    predictions: list[LiveResponse]
