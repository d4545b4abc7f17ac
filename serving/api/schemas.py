"""Request and response models of the live API (they are its OpenAPI documentation).

Request bodies are strict: JSON types as the schema says (``0`` is not ``false``, ``"10"`` not 10),
finite numbers only, no unknown fields. A silent coercion of an operator's command (a kill switch
"released" by ``{"engaged": 0}``) is worse than a 422.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving.api.alerts import webhook_url_problem
from serving.errors import ErrorBody

__all__ = ["ErrorBody"]  # the error shape of every service (serving.errors), documented here too

REQUESTS = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
"""Every request body: unknown fields, coercions and non-finite numbers refused."""


class ScoreView(BaseModel):
    sets: list[list[int]] = Field(description="completed sets, games of [first, second] player")
    games: list[int] | None = Field(description="games in the current set; null once finished")
    points: str | None = Field(description='points of the current game, "40-30", "A-40"; tie-break points')
    tiebreak: bool
    server: int | None = Field(description="1 or 2; null before the first point and after the end")
    winner: int | None


class MatchSummary(BaseModel):
    match_id: str
    players: list[str]
    player_keys: list[int | None]
    tournament: str | None
    season: int | None
    surface: str | None
    best_of: int | None
    status: Literal["scheduled", "in_play", "finished"]
    started_at: datetime | None
    updated_at: datetime | None = Field(description="event time (the feed's clock) of the latest entry")
    score: ScoreView | None
    score_text: str | None
    sets: str | None = Field(description='sets won, "1 - 0"')
    game: str | None = Field(description='points of the current game as the feed calls them, "40 - 30"')
    winner: str | None = Field(description="the winning selection's label (First Player / Second Player)")
    winner_name: str | None = Field(default=None, description="the winner's name (also of a retired match)")
    outcome: str | None
    final_score: str | None
    probability: float | None = Field(description="the in-play model's latest P(first player wins)")
    market_probability: float | None = Field(
        description="P(first player) of the latest open market, margin removed (in-play prices are SIMULATED)"
    )
    prematch_market_probability: float | None
    prematch_model: dict[str, Any] | None = Field(description="the pre-match champion's probability, if scanned")
    model: str | None
    model_version: str | None
    points_played: int | None
    value_bets: int = Field(description="value bets detected so far in this match")
    suspended: str | None = Field(
        None,
        description="why the engine does not trade this match now (a message it "
        "could not trust; it resumes at the next clean one), or null",
    )


class ActiveGames(BaseModel):
    count: int
    matches: list[MatchSummary]


class MatchState(BaseModel):
    match: MatchSummary
    odds: dict[str, Any] = Field(description="latest odds of each market of the match")
    last_prediction: dict[str, Any] | None
    last_event_id: int = Field(description="the event-log entry this state includes")


class PredictionPoint(BaseModel):
    ts: datetime = Field(description="event time of the prediction")
    probability: float
    market_probability: float | None = Field(description="the market's P(first player) at that moment")
    score: str | None
    points_played: int | None
    model: str | None
    model_version: str | None
    triggers: list[str]


class Predictions(BaseModel):
    match_id: str
    count: int
    predictions: list[PredictionPoint]


class ValueBet(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int = Field(description="event-log entry id")
    ts: datetime
    source: str = Field(description="inplay (engine) or prematch (control-plane scan)")
    match_id: str
    selection: str
    side: str
    price: float
    model_probability: float
    edge: float = Field(description="expected profit after commission per unit at risk")
    confidence: float
    fair_price: float
    reason: str


class ValueBets(BaseModel):
    match_id: str
    min_edge: float
    count: int
    value_bets: list[ValueBet]


class BetView(BaseModel):
    model_config = ConfigDict(extra="allow")

    customer_order_ref: str
    match_id: str
    market_id: str
    source: str
    selection: str
    side: str
    price: float
    size: float
    size_matched: float
    average_price_matched: float | None
    status: str
    placed_at: datetime
    settled: bool
    result: str | None = Field(None, description="WON, LOST or VOID once settled")
    profit: float | None = Field(None, description="profit of the bet before commission, once settled")


class BetsPage(BaseModel):
    total: int
    limit: int
    offset: int
    bets: list[BetView]


class AlertRequest(BaseModel):
    """Which value bets to be alerted of: all criteria given must hold."""

    model_config = REQUESTS

    match_ids: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="any of these matches (each must be a match of the live view, else 422 with the closest ids)",
    )
    players: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="a player of the match is one of these: each must name a player of a match of the live view, "
        'by full name or whole words of it ("Djokovic"), without regard to case or accents; it is resolved to the '
        "full names it designates (an unknown one: 422 with the closest names)",
    )
    min_edge: float = Field(0.0, ge=0.0, le=10.0, description="least edge after commission")
    webhook_url: str | None = Field(
        None,
        max_length=2000,
        description="also POST each alert to this http(s) URL, signed (X-Courtside-Signature) with the secret "
        "returned once in the answer; retried with backoff",
    )

    @field_validator("players", "match_ids")
    @classmethod
    def _non_empty(cls, values: list[str]) -> list[str]:
        if any(not v.strip() or len(v) > 128 for v in values):
            raise ValueError("entries must be non-empty strings of at most 128 characters")
        return [v.strip() for v in values]

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        problem = webhook_url_problem(url) if url is not None else None
        if problem:
            raise ValueError(problem)
        return url


class AlertCriteria(BaseModel):
    match_ids: list[str]
    players: list[str] = Field(description="the full names the requested players were resolved to")
    min_edge: float


class AlertSubscribed(BaseModel):
    """A new alert subscription (stored: it survives restarts of the API until it expires or is deleted)."""

    alert_id: str
    room: str = Field(description='subscribe to this room over the WebSocket: {"type": "subscribe", "match_id": room}')
    ws_url: str
    criteria: AlertCriteria
    webhook_url: str | None
    secret: str | None = Field(
        description="key of the webhook's HMAC-SHA256 signature (X-Courtside-Signature: sha256=<hex>): shown here "
        "only, once; null without a webhook"
    )
    created_at: datetime
    expires_at: datetime


class AlertDeliveryEntry(BaseModel):
    id: int = Field(description="the delivery id (X-Courtside-Delivery)")
    event_id: int = Field(description="the value bet's event-log entry")
    status: Literal["pending", "delivered", "failed", "socket_only"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="when a pending delivery is tried (again)")
    delivered_at: datetime | None
    created_at: datetime
    value_bet: dict[str, Any]


class AlertState(BaseModel):
    """A subscription (its secret is never shown again) and its webhook delivery log."""

    alert_id: str
    room: str
    criteria: AlertCriteria
    webhook_url: str | None
    last_event_id: int = Field(
        description="the newest event-log entry considered for this subscription's webhook (it moves only with one)"
    )
    created_at: datetime
    expires_at: datetime
    deliveries: list[AlertDeliveryEntry] = Field(description="newest first, at most 100")


class ControlReason(BaseModel):
    model_config = REQUESTS

    reason: str | None = Field(None, max_length=500)


class IdentityRequest(BaseModel):
    """Who a venue's player is (an operator's answer: it stands against the identity rules)."""

    model_config = REQUESTS

    venue: str = Field(min_length=1, max_length=32, examples=["api-tennis"])
    venue_key: str = Field(min_length=1, max_length=64, description="the venue's player key (or name)")
    player_id: int = Field(ge=1, le=10**12, description="our (Sackmann) player id")


class KillSwitchRequest(BaseModel):
    model_config = REQUESTS

    engaged: bool = Field(
        description="true: stop everything and cancel resting orders; false: release "
        '(a JSON boolean: 0, 1 or "true" are refused)'
    )
    reason: str | None = Field(None, max_length=500)


class RiskLimitsRequest(BaseModel):
    """Overrides of ``betting.risk.RiskLimits`` (null removes an override); the kill switch has its own
    endpoint. Validated by building the limits the engine will use."""

    model_config = REQUESTS

    max_stake: float | None = None
    max_selection_exposure: float | None = None
    max_market_exposure: float | None = None
    max_total_exposure: float | None = None
    daily_loss_limit: float | None = None
    weekly_loss_limit: float | None = None
    daily_profit_target: float | None = None
    min_edge: float | None = None
    min_confidence: float | None = None
    min_price: float | None = None
    max_price: float | None = None
    max_open_orders: int | None = None
    max_orders_per_hour: int | None = None
    bankroll_floor: float | None = None
    reason: str | None = Field(None, max_length=500)


class Controls(BaseModel):
    version: int = Field(description="0: never changed")
    paused: bool
    kill_switch: bool
    risk_limits: dict[str, Any] = Field(description="overrides of the engine's configured limits")
    reason: str | None
    changed_by: str | None
    changed_at: datetime | None


class EngineAck(BaseModel):
    engine: str
    controls_version: int
    in_force: bool = Field(description="the engine applies the newest controls")
    updated_at: datetime
    age_s: float
    status: dict[str, Any]


class ControlState(BaseModel):
    controls: Controls
    effective_risk_limits: dict[str, Any] = Field(description="the engine's default limits with the overrides")
    engines: list[EngineAck]
    history: list[Controls]


class Readiness(BaseModel):
    """``GET /readyz``: whether a load balancer should send this replica traffic."""

    ready: bool
    reason: str
    replica: str | int | None = None
    read_up_to: int = Field(description="the newest event-log entry this replica has read")
    newest: int | None = Field(default=None, description="the newest entry in the log (None: the database is away)")
