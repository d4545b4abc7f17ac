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
    date: dt.date = Field(description="match day; must be after the data the service knows (as_of)")
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
