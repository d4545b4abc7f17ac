"""Messages of the live feed, modelled on the API-Tennis live format plus a per-channel sequence
number. Every message travels in an ``Envelope``; a client resumes by asking for everything
after the last sequence number it processed.

Channels: ``match`` (point-by-point match events) and ``market`` (pre-match closing odds and the
in-play market, which is SIMULATED — see feeds/live/market.py). Heartbeats carry no sequence
number of their own, only the last one published, so a quiet client can tell it is up to date.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Channel = Literal["match", "market"]


class PointInfo(BaseModel):
    """The point just played (last entry of API-Tennis ``pointbypoint``)."""

    model_config = ConfigDict(extra="forbid")

    set_number: int = Field(ge=1, le=5)
    game_number: int = Field(ge=1)
    point_number: int = Field(ge=1, description="point number in the match")
    winner: Literal["First Player", "Second Player"]
    server: Literal["First Player", "Second Player"]
    break_point: bool = False
    set_point: bool = False
    match_point: bool = False


class SetScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score_first: int = Field(ge=0)
    score_second: int = Field(ge=0)
    score_set: int = Field(ge=1, le=5)


class MatchEvent(BaseModel):
    """A match's state after an event (start, a point, the end), API-Tennis style."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["match_start", "point", "match_end"]
    event_key: str = Field(min_length=1)
    event_date: str
    event_first_player: str
    first_player_key: int | None = Field(None, description="Sackmann id, when known")
    event_second_player: str
    second_player_key: int | None = None
    event_final_result: str = Field(pattern=r"^\d - \d$", description='sets, e.g. "1 - 0"')
    event_game_result: str = Field(description='points in the current game, e.g. "40 - 30", "A - 40", "5 - 4"')
    event_serve: Literal["First Player", "Second Player"] | None
    event_winner: Literal["First Player", "Second Player"] | None = None
    event_status: str = Field(description='"Set 2", "Finished", "Retired"')
    tournament_name: str
    tournament_key: str | None = None
    tournament_round: str | None = None
    tournament_season: str
    best_of: Literal[3, 5]
    surface: str | None = None
    event_live: Literal["0", "1"] = "1"
    scores: list[SetScore] = Field(description="games per set, current set last")
    pointbypoint: list[PointInfo] = Field(default_factory=list, description="the point just played")
    elapsed_s: float | None = Field(None, ge=0, description="seconds since the start of the match (real timing)")


class RunnerPrices(BaseModel):
    """Best available prices of one runner (decimal odds on the exchange ladder)."""

    model_config = ConfigDict(extra="forbid")

    selection: Literal["First Player", "Second Player"]
    back_price: float | None = Field(None, ge=1.01, le=1000)
    back_size: float = Field(0, ge=0)
    lay_price: float | None = Field(None, ge=1.01, le=1000)
    lay_size: float = Field(0, ge=0)
    traded_volume: float = Field(0, ge=0)


class MarketUpdate(BaseModel):
    """The match-odds market of one match."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["market"] = "market"
    event_key: str = Field(min_length=1)
    market_id: str
    status: Literal["OPEN", "SUSPENDED", "CLOSED"]
    in_play: bool
    simulated: bool = Field(description="true for the simulated in-play market; false for real closing odds")
    source: str = Field(description='"pinnacle-close", "bet365-close" or "simulated"')
    runners: list[RunnerPrices] = Field(min_length=2, max_length=2)
    point_number: int | None = Field(None, description="last point reflected in these prices")


Payload = Annotated[MatchEvent | MarketUpdate, Field(discriminator="kind")]


class Envelope(BaseModel):
    """One sequenced message of a channel."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["event"] = "event"
    feed: str
    channel: Channel
    seq: int = Field(ge=1)
    event_time: float = Field(description="replay clock: seconds since the feed started")
    data: Payload


class Heartbeat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["heartbeat"] = "heartbeat"
    feed: str
    channel: Channel
    last_seq: int = Field(ge=0)
    event_time: float


class ErrorMessage(BaseModel):
    type: Literal["error"] = "error"
    message: str


ServerMessage = TypeAdapter(Annotated[Envelope | Heartbeat | ErrorMessage, Field(discriminator="type")])
"""Parses any message a client receives."""


def parse(raw: str | bytes) -> Envelope | Heartbeat | ErrorMessage:
    """Validate one raw message; raises ``pydantic.ValidationError`` with the offending fields."""
    return ServerMessage.validate_json(raw)
