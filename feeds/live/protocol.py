"""Messages of the live feed, modelled on the API-Tennis live format plus a per-channel sequence
number. Every message travels in an ``Envelope``; a client resumes by asking for everything
after the last sequence number it processed.

Channels: ``match`` (point-by-point match events) and ``market`` (pre-match closing odds and the
in-play market, which is SIMULATED — see feeds/live/market.py). Heartbeats carry no sequence
number of their own, only the last one published, so a quiet client can tell it is up to date.

Sequence numbers are positions: a connection opened with ``?since=N`` carries messages N+1, N+2,
... in order, one per data frame (heartbeats and errors are not numbered). A frame whose own
``seq`` is not its position is out of order (see ``feeds.live.client``).

This module is the one place where a message's *form* is validated: types, bounds, finite numbers,
and what a message can say without knowing the match it belongs to (a game result that exists in
tennis, set numbers in order, a market id that names its match, prices on the exchange ladder).
Whether a score can follow the previous one is the scoring state machine's rule
(``features.scoring``), applied by the engine's match state.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from betting.ladder import is_valid_price
from features.scoring import MAX_GAMES, ScoringError, read_points

Channel = Literal["match", "market"]

MAX_EVENT_TIME_S = 4e9
"""A feed's clock (seconds since it started) stays below this (~126 years): finite, and an epoch plus
it is always a representable date."""
MAX_SIZE = 1e9
"""Largest size or traded volume a market message may carry (account currency)."""
MAX_SEQ = 2**53
"""Largest sequence number (exact in every JSON number implementation)."""
MAX_ELAPSED_S = 7 * 86400.0
"""Longest a match can have been going (the longest ever lasted 11 h 5 min)."""
FIRST_SEASON, LAST_SEASON = 1968, 2100

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)
"""No silent coercion: "114" is not a sequence number, 0 is not False."""
_MARKET_PREFIX = re.compile(r"[A-Za-z0-9]{1,16}")
Player = Literal["First Player", "Second Player"]


class PointInfo(BaseModel):
    """The point just played (last entry of API-Tennis ``pointbypoint``)."""

    model_config = _STRICT

    set_number: int = Field(ge=1, le=5)
    game_number: int = Field(ge=1, le=500)
    point_number: int = Field(ge=1, le=100_000, description="point number in the match")
    winner: Player
    server: Player
    break_point: bool = False
    set_point: bool = False
    match_point: bool = False


class SetGames(BaseModel):
    model_config = _STRICT

    score_first: int = Field(ge=0, le=MAX_GAMES)
    score_second: int = Field(ge=0, le=MAX_GAMES)
    score_set: int = Field(ge=1, le=5)


def check_game_result(text: str) -> str:
    """``text`` if it is a game result tennis can show (calls of a game or tie-break counts)."""
    for tiebreak in (False, True):
        try:
            read_points(text, tiebreak)
            return text
        except ScoringError:
            continue
    raise ValueError(f'{text!r} is not a game result ("40 - 30", "A - 40", "5 - 4" in a tie-break)')


class MatchEvent(BaseModel):
    """A match's state after an event (start, a point, the end), API-Tennis style. ``resync``: the score
    jumped (a feed of snapshots skipped points): the state takes the score as reported, no point is invented.
    ``status``: only the status changed, at the same score (play suspended — "Suspended", "Interrupted" — or
    resumed)."""

    model_config = _STRICT

    kind: Literal["match_start", "point", "resync", "status", "match_end"]
    event_key: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    event_date: str = Field(max_length=32)
    event_first_player: str = Field(min_length=1, max_length=200)
    first_player_key: int | None = Field(None, ge=1, le=10**12, description="Sackmann id, when known")
    event_second_player: str = Field(min_length=1, max_length=200)
    second_player_key: int | None = Field(None, ge=1, le=10**12)
    event_final_result: str = Field(pattern=r"^[0-3] - [0-3]$", description='sets, e.g. "1 - 0"')
    event_game_result: str = Field(
        max_length=16, description='points in the current game, e.g. "40 - 30", "A - 40", "5 - 4"'
    )
    event_serve: Player | None
    event_winner: Player | None = None
    event_status: str = Field(max_length=64, description='"Set 2", "Finished", "Retired"')
    tournament_name: str = Field(max_length=200)
    tournament_key: str | None = Field(None, max_length=64)
    tournament_round: str | None = Field(None, max_length=64)
    tournament_season: str = Field(pattern=r"^[0-9]{4}$", description="the year, four ASCII digits")
    best_of: Literal[3, 5]
    surface: str | None = Field(None, max_length=32)
    event_live: Literal["0", "1"] = "1"
    scores: list[SetGames] = Field(max_length=5, description="games per set, current set last")
    pointbypoint: list[PointInfo] = Field(default_factory=list, max_length=1, description="the point just played")
    elapsed_s: float | None = Field(
        None, ge=0, le=MAX_ELAPSED_S, description="seconds since the start of the match (real timing)"
    )

    @field_validator("event_game_result")
    @classmethod
    def _game_result(cls, value: str) -> str:
        return value if value.strip() in ("", "-") else check_game_result(value)

    @field_validator("tournament_season")
    @classmethod
    def _season(cls, value: str) -> str:
        if not FIRST_SEASON <= int(value) <= LAST_SEASON:
            raise ValueError(f"season {value} is outside {FIRST_SEASON}-{LAST_SEASON}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MatchEvent:
        if self.event_first_player == self.event_second_player:
            raise ValueError("the two players have the same name")
        if [s.score_set for s in self.scores] != list(range(1, len(self.scores) + 1)):
            raise ValueError("scores must number the sets 1, 2, ... in order")
        if len(self.scores) > self.best_of:
            raise ValueError(f"{len(self.scores)} sets in a best-of-{self.best_of} match")
        won = [int(x) for x in self.event_final_result.split(" - ")]
        if max(won) > self.best_of // 2 + 1 or sum(won) > len(self.scores):
            raise ValueError(
                f"final result {self.event_final_result} is impossible with {len(self.scores)} "
                f"sets in a best-of-{self.best_of} match"
            )
        if self.event_winner is not None and self.kind == "match_start":
            raise ValueError("a match that starts has no winner")
        return self


def market_event_key(market_id: str) -> str | None:
    """The match a market id names: ``<kind>-<event key>`` (``pre-...``, ``sim-...``); None otherwise."""
    prefix, dash, key = market_id.partition("-")
    return key if dash and key and _MARKET_PREFIX.fullmatch(prefix) else None


class RunnerPrices(BaseModel):
    """Best available prices of one runner (decimal odds on the exchange ladder)."""

    model_config = _STRICT

    selection: Player
    back_price: float | None = Field(None, ge=1.01, le=1000)
    back_size: float = Field(0, ge=0, le=MAX_SIZE)
    lay_price: float | None = Field(None, ge=1.01, le=1000)
    lay_size: float = Field(0, ge=0, le=MAX_SIZE)
    traded_volume: float = Field(0, ge=0, le=MAX_SIZE)

    @model_validator(mode="after")
    def _on_the_ladder(self) -> RunnerPrices:
        for name in ("back_price", "lay_price"):
            price = getattr(self, name)
            if price is not None and not is_valid_price(price):
                raise ValueError(f"{name} {price} is not a price of the exchange ladder")
        if self.back_price is not None and self.lay_price is not None and self.back_price > self.lay_price:
            raise ValueError(f"crossed prices: back {self.back_price} above lay {self.lay_price}")
        return self


class MarketUpdate(BaseModel):
    """The match-odds market of one match."""

    model_config = _STRICT

    kind: Literal["market"] = "market"
    event_key: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    market_id: str = Field(max_length=160, description="<kind>-<event_key>, e.g. sim-<event_key>")
    status: Literal["OPEN", "SUSPENDED", "CLOSED"]
    in_play: bool
    simulated: bool = Field(description="true for the simulated in-play market; false for real closing odds")
    source: str = Field(max_length=64, description='"pinnacle-close", "bet365-close" or "simulated"')
    runners: list[RunnerPrices] = Field(min_length=2, max_length=2)
    point_number: int | None = Field(None, ge=0, le=100_000, description="last point reflected in these prices")

    @model_validator(mode="after")
    def _belongs(self) -> MarketUpdate:
        if market_event_key(self.market_id) != self.event_key:
            raise ValueError(
                f"market id {self.market_id!r} does not name match {self.event_key!r} (expected <kind>-<event_key>)"
            )
        if {r.selection for r in self.runners} != {"First Player", "Second Player"}:
            raise ValueError("the two runners must be First Player and Second Player")
        return self


Payload = Annotated[MatchEvent | MarketUpdate, Field(discriminator="kind")]


class Envelope(BaseModel):
    """One sequenced message of a channel."""

    model_config = _STRICT

    type: Literal["event"] = "event"
    feed: str = Field(min_length=1, max_length=64)
    channel: Channel
    seq: int = Field(ge=1, le=MAX_SEQ)
    event_time: float = Field(ge=0, le=MAX_EVENT_TIME_S, description="replay clock: seconds since the feed started")
    data: Payload


class Heartbeat(BaseModel):
    model_config = _STRICT

    type: Literal["heartbeat"] = "heartbeat"
    feed: str = Field(max_length=64)
    channel: Channel
    last_seq: int = Field(ge=0, le=MAX_SEQ)
    event_time: float = Field(ge=0, le=MAX_EVENT_TIME_S)


class ErrorMessage(BaseModel):
    """The server refuses a subscription (then closes the connection)."""

    model_config = _STRICT

    type: Literal["error"] = "error"
    message: str = Field(max_length=2000)


ServerMessage = TypeAdapter(Annotated[Envelope | Heartbeat | ErrorMessage, Field(discriminator="type")])
"""Parses any message a client receives."""


def parse(raw: str | bytes) -> Envelope | Heartbeat | ErrorMessage:
    """Validate one raw message; raises ``pydantic.ValidationError`` with the offending fields."""
    return ServerMessage.validate_json(raw)
