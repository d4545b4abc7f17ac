"""The live picture people see, projected from the durable event log: every match with its score,
odds, predictions and value bets, the bankroll after each settlement, the models in use.

``LiveView.apply`` takes one log entry (``storage.live.event_rows``) and returns the ``Update``s it
causes for the WebSocket rooms; the REST endpoints read the same view, so what the REST API says and
what the gateway pushed agree. The view is rebuilt from the log at start (the log is the truth; the
view is memory only) and bounded per match.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from betting.market import MarketStatus
from betting.prior import mid_probability
from betting.records import EventKind
from features.live_match import FIRST, SECOND
from features.live_quality import QualityTally
from feeds.live.books import logged_book
from serving.api.lineage import selection_name

MAX_PREDICTIONS = 5_000
"""Predictions kept per match (a five-set match has fewer than 500 points)."""
MAX_VALUE_BETS = 2_000
"""Value bets kept per match."""
MAX_UNFATED = 50_000
"""Value bets kept waiting for their order's fate."""
ORDER_KINDS = {
    str(k) for k in (EventKind.ORDER_PLACED, EventKind.ORDER_FILLED, EventKind.ORDER_CANCELLED, EventKind.ORDER_LAPSED)
}
MATCH_ROOM_TYPES = ("game_event", "odds_update", "prediction_update", "value_bet")
"""Message types of a match room (and of the ``*`` room, which carries every match)."""
LEDGER_TYPES = ("bet_update", "bankroll_update")
"""Message types of the ``ledger`` room."""

_SET = re.compile(r"^(\d+)-(\d+)(?:\((\d+)\))?$")
_WINNER = re.compile(r"^(.*?)\s*won by ([AB])$")


class ScoreFormatError(ValueError):
    """A score description that is not in ``features.scoring.Score.describe`` form."""


def parse_score(text: str) -> dict[str, Any]:
    """A ``Score.describe()`` text as structured data.

    "6-7(4) 7-5 5-4, 40-30, A serving" -> sets [[6, 7], [7, 5]], games [5, 4], points "40-30",
    tiebreak False, server 1; "6-3 6-3 6-1 won by A" -> sets of the match, winner 1.
    """

    def sets_of(tokens: list[str]) -> list[list[int]]:
        out = []
        for token in tokens:
            m = _SET.match(token)
            if not m:
                raise ScoreFormatError(f"set score {token!r} in {text!r}")
            out.append([int(m.group(1)), int(m.group(2))])
        return out

    won = _WINNER.match(text.strip())
    if won:
        return {
            "sets": sets_of(won.group(1).split()),
            "games": None,
            "points": None,
            "tiebreak": False,
            "server": None,
            "winner": "AB".index(won.group(2)) + 1,
        }
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not parts[2].endswith(" serving") or parts[2][0] not in "AB":
        raise ScoreFormatError(f"score {text!r}: expected 'SETS GAMES, POINTS, X serving'")
    tokens = parts[0].split()
    if not tokens:
        raise ScoreFormatError(f"score {text!r}: no games")
    games = sets_of(tokens[-1:])[0]
    tiebreak = parts[1].startswith("tie-break ")
    return {
        "sets": sets_of(tokens[:-1]),
        "games": games,
        "points": parts[1].removeprefix("tie-break "),
        "tiebreak": tiebreak,
        "server": "AB".index(parts[2][0]) + 1,
        "winner": None,
    }


@dataclass(frozen=True)
class Update:
    """Something people should see: a message ``type`` for the ``rooms`` it belongs to. Updates with
    the same ``key`` in one room replace each other until the room is flushed (coalescing)."""

    type: str
    rooms: tuple[str, ...]
    match_id: str | None
    ts: datetime
    """Event time of the log entry (the feed's clock)."""
    data: dict[str, Any]
    recorded_at: datetime | None
    """When the entry was committed to the log (wall clock): the start of the delivery clock."""
    coalesce: bool = True

    @property
    def key(self) -> tuple[str, str | None]:
        return self.type, self.match_id


@dataclass
class MatchView:
    """One match as people see it."""

    match_id: str
    players: list[str] = field(default_factory=lambda: ["", ""])
    player_keys: list[int | None] = field(default_factory=lambda: [None, None])
    tournament: str | None = None
    season: int | None = None
    surface: str | None = None
    best_of: int | None = None
    status: str = "scheduled"
    """scheduled (odds before the first point), in_play, finished."""
    started_at: datetime | None = None
    updated_at: datetime | None = None
    score_text: str | None = None
    score: dict[str, Any] | None = None
    sets_text: str | None = None
    game_text: str | None = None
    winner: str | None = None
    outcome: str | None = None
    final_score: str | None = None
    markets: dict[str, dict[str, Any]] = field(default_factory=dict)
    """market id -> latest odds (prices, status, in_play, simulated, source, at)."""
    market_probability: float | None = None
    """Margin-free P(first player) of the latest open market (in-play once it opened, else pre-match)."""
    prematch_market_probability: float | None = None
    prematch_model: dict[str, Any] | None = None
    """The pre-match champion's probability for this match (control plane scan)."""
    probability: float | None = None
    """The latest in-play model P(first player)."""
    model: str | None = None
    model_version: str | None = None
    points_played: int | None = None
    suspended: str | None = None
    """Why the engine does not trade this match now (its state could not be trusted), or None."""
    quality: QualityTally = field(default_factory=QualityTally)
    """The data quality of its feed messages (``features.live_quality``)."""
    predictions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_PREDICTIONS))
    value_bets: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_VALUE_BETS))

    def summary(self) -> dict[str, Any]:
        """The match without its histories."""
        return {
            "match_id": self.match_id,
            "players": self.players,
            "player_keys": self.player_keys,
            "tournament": self.tournament,
            "season": self.season,
            "surface": self.surface,
            "best_of": self.best_of,
            "status": self.status,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "score": self.score,
            "score_text": self.score_text,
            "sets": self.sets_text,
            "game": self.game_text,
            "winner": self.winner,
            "winner_name": selection_name(self.winner, self.players),
            "outcome": self.outcome,
            "final_score": self.final_score,
            "probability": self.probability,
            "market_probability": self.market_probability,
            "prematch_market_probability": self.prematch_market_probability,
            "prematch_model": self.prematch_model,
            "model": self.model,
            "model_version": self.model_version,
            "points_played": self.points_played,
            "value_bets": len(self.value_bets),
            "suspended": self.suspended,
            "data_quality": self.quality.as_dict(),
        }

    def odds(self) -> dict[str, Any]:
        """The latest odds of each market and the market's probability."""
        return {
            "markets": self.markets,
            "market_probability": self.market_probability,
            "prematch_market_probability": self.prematch_market_probability,
        }

    def prediction(self) -> dict[str, Any] | None:
        """The latest in-play prediction with the market's view at that moment."""
        return self.predictions[-1] if self.predictions else None


class LiveView:
    """The projection of the event log (one writer: the log tailer)."""

    def __init__(self) -> None:
        self.matches: dict[str, MatchView] = {}
        self.last_id = 0
        self.last_recorded_at: datetime | None = None
        self.last_event_time: datetime | None = None
        self.kinds: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        """ORDER_REJECTED entries by reason (risk limit, kill switch, pause)."""
        self.rejection_times: deque[tuple[datetime, str]] = deque(maxlen=100_000)
        """(event time, reason) of each rejection (the rejections over time)."""
        self.value_bet_of: dict[str, dict[str, Any]] = {}
        """order reference -> its value bet (the row a fate is written on)."""
        self.bankroll_curve: list[dict[str, Any]] = []
        """One point per settled market: settled_at, market, net profit, bankroll after."""
        self.serving_model: dict[str, Any] | None = None
        """Name and version of the pre-match champion, from the latest pre-match scan."""
        self.inplay_model: dict[str, Any] | None = None
        """Name and version of the in-play model, from the latest in-play prediction."""

    # --- reading ---------------------------------------------------------------------------
    def match(self, match_id: str) -> MatchView | None:
        return self.matches.get(match_id)

    def active(self, tournament: str | None = None, surface: str | None = None) -> list[MatchView]:
        """Matches in play, optionally of one tournament / surface (case-insensitive)."""
        out = [m for m in self.matches.values() if m.status == "in_play"]
        if tournament:
            out = [m for m in out if (m.tournament or "").casefold() == tournament.casefold()]
        if surface:
            out = [m for m in out if (m.surface or "").casefold() == surface.casefold()]
        return sorted(out, key=lambda m: (m.started_at is None, m.started_at, m.match_id))

    def replay_state(self) -> dict[str, Any]:
        """Whether every match the feed started has finished (the end of a replay), and what to do next."""
        started = [m for m in self.matches.values() if m.status != "scheduled"]
        over = bool(started) and all(m.status == "finished" for m in started)
        return {
            "matches": len(self.matches),
            "in_play": sum(m.status == "in_play" for m in started),
            "finished": sum(m.status == "finished" for m in started),
            "over": over,
            "hint": f"every match has finished ({len(started)} played): start another replay with "
            "`courtside up --skip-pipeline` (options: --speed N, --matches N, --tour atp|wta|both)"
            if over
            else None,
        }

    # --- projecting ------------------------------------------------------------------------
    def apply(self, entry: dict[str, Any]) -> list[Update]:
        """Take one log entry (``storage.live.event_rows`` row); the updates it causes."""
        self.last_id = max(self.last_id, int(entry["id"]))
        self.last_recorded_at = entry.get("recorded_at") or self.last_recorded_at
        kind, at, match_id, payload = entry["kind"], entry["event_time"], entry["match_id"], entry["payload"]
        self.kinds[kind] += 1
        self.last_event_time = at
        handler = _HANDLERS.get(kind)
        if handler is None:
            return []
        return handler(self, entry, kind, at, match_id, payload)

    def _match(self, match_id: str) -> MatchView:
        m = self.matches.get(match_id)
        if m is None:
            m = self.matches[match_id] = MatchView(match_id)
        return m

    def _update(self, type_: str, m: MatchView, entry: dict, data: dict, coalesce: bool = True) -> Update:
        return Update(
            type_, (m.match_id, "*"), m.match_id, entry["event_time"], data, entry.get("recorded_at"), coalesce
        )

    def _feed(self, entry, kind, at, match_id, payload) -> list[Update]:
        if not match_id:
            return []
        m = self._match(match_id)
        m.updated_at = at
        if "dq" in payload:
            m.quality.add(payload["dq"])
        if payload.get("kind") == "match_start":
            m.players = list(payload.get("players") or m.players)
            m.player_keys = list(payload.get("player_keys") or m.player_keys)
            m.tournament, m.season = payload.get("tournament"), payload.get("season")
            m.surface, m.best_of = payload.get("surface"), payload.get("best_of")
            m.status, m.started_at = "in_play", at
            m.score_text, m.sets_text, m.game_text = None, "0 - 0", "0 - 0"
            m.score = {"sets": [], "games": [0, 0], "points": "0-0", "tiebreak": False, "server": None, "winner": None}
        elif payload.get("kind") == "point":
            if m.status == "scheduled":
                m.status = "in_play"
            m.score_text, m.sets_text, m.game_text = payload.get("score"), payload.get("sets"), payload.get("game")
            try:
                m.score = parse_score(m.score_text or "")
            except ScoreFormatError:
                m.score = None  # the text is still shown; the structure is not guessed
        else:
            return []
        return [self._update("game_event", m, entry, {"event": payload.get("kind"), **m.summary()})]

    def _finished(self, entry, kind, at, match_id, payload) -> list[Update]:
        m = self._match(match_id or payload.get("event_key"))
        m.status, m.updated_at = "finished", at
        m.winner, m.outcome, m.final_score = payload.get("winner"), payload.get("outcome"), payload.get("score")
        if payload.get("players"):
            m.players = list(payload["players"])
        return [self._update("game_event", m, entry, {"event": "match_end", **m.summary()})]

    def _quarantined(self, entry, kind, at, match_id, payload) -> list[Update]:
        if not match_id or "dq" not in payload:
            return []
        m = self._match(match_id)
        m.quality.add(payload["dq"])
        return [self._update("game_event", m, entry, {"event": "refused", **m.summary()})]

    def _suspension(self, entry, kind, at, match_id, payload) -> list[Update]:
        if not match_id:
            return []
        m = self._match(match_id)
        m.suspended = payload.get("reason") if kind == str(EventKind.MATCH_SUSPENDED) else None
        event = "suspended" if m.suspended else "resumed"
        return [self._update("game_event", m, entry, {"event": event, **m.summary()})]

    def _market(self, entry, kind, at, match_id, payload) -> list[Update]:
        if not match_id:
            return []
        m = self._match(match_id)
        market_id = payload.get("market_id", "")
        m.markets[market_id] = {
            "market_id": market_id,
            "status": payload.get("status"),
            "in_play": bool(payload.get("in_play")),
            "simulated": bool(payload.get("simulated")),
            "source": payload.get("source"),
            "prices": payload.get("prices", {}),
            "sizes": payload.get("sizes", {}),
            "at": at,
        }
        p = _market_probability(payload, at)
        if p is not None:
            if payload.get("in_play"):
                m.market_probability = p
            else:
                m.prematch_market_probability = p
                if m.status == "scheduled" or m.market_probability is None:
                    m.market_probability = p
        return [
            self._update(
                "odds_update",
                m,
                entry,
                {"market_id": market_id, **m.markets[market_id], "market_probability": m.market_probability},
            )
        ]

    def _prediction(self, entry, kind, at, match_id, payload) -> list[Update]:
        if not match_id:
            return []
        m = self._match(match_id)
        m.probability = float(payload["probability"])
        m.model, m.model_version = payload.get("model"), payload.get("version")
        m.points_played = payload.get("points_played")
        self.inplay_model = {"name": m.model, "version": m.model_version, "at": at}
        point = {
            "ts": at,
            "probability": m.probability,
            "market_probability": m.market_probability,
            "score": payload.get("score"),
            "points_played": m.points_played,
            "model": m.model,
            "model_version": m.model_version,
            "triggers": payload.get("triggers", []),
        }
        m.predictions.append(point)
        return [self._update("prediction_update", m, entry, {"phase": "inplay", **point})]

    def _prematch_prediction(self, entry, kind, at, match_id, payload) -> list[Update]:
        if not match_id:
            return []
        m = self._match(match_id)
        if payload.get("players") and not all(m.players):  # a scheduled match: named before its first point
            m.players = [str(p) for p in payload["players"]][:2]
        m.prematch_model = {
            "probability": payload.get("probability"),
            "model": payload.get("model"),
            "version": payload.get("version"),
            "market_id": payload.get("market_id"),
        }
        self.serving_model = {"name": payload.get("model"), "version": payload.get("version"), "at": at}
        return [
            self._update(
                "prediction_update",
                m,
                entry,
                {
                    "phase": "prematch",
                    "ts": at,
                    **m.prematch_model,
                    "market_probability": m.prematch_market_probability,
                },
            )
        ]

    def _opportunity(self, entry, kind, at, match_id, payload) -> list[Update]:
        if not match_id:
            return []
        m = self._match(match_id)
        previous = m.value_bets[-1] if m.value_bets else None
        decision = (payload.get("selection"), payload.get("side"), payload.get("source", "inplay"))
        ref = payload.get("ref")
        bet = {
            "id": int(entry["id"]),
            "ts": at,
            "source": payload.get("source", "inplay"),
            **payload,
            "players": m.players,
            "selection_name": selection_name(payload.get("selection"), m.players),
            "tournament": m.tournament,
            "score": m.score_text,
            "change": previous is None
            or (previous.get("selection"), previous.get("side"), previous.get("source")) != decision,
            "fate": {"status": None, "reason": None, "message": None}
            if ref
            else {"status": "not_staked", "reason": None, "message": "Kelly stake below the exchange minimum"},
        }
        if ref:
            self.value_bet_of[ref] = bet
            if len(self.value_bet_of) > MAX_UNFATED:  # a request the engine never took: forget the oldest
                self.value_bet_of.pop(next(iter(self.value_bet_of)))
        m.value_bets.append(bet)
        return [self._update("value_bet", m, entry, bet, coalesce=False)]

    def _fated(self, entry, ref: str | None, status: str, reason: str | None, message: str | None) -> list[Update]:
        """The value bet of ``ref`` learnt its fate: the row is sent again with it (same ``id``)."""
        bet = self.value_bet_of.pop(ref, None) if ref else None
        if bet is None:
            return []
        bet["fate"] = {"status": status, "reason": reason, "message": message}
        m = self._match(bet["match_id"])
        return [self._update("value_bet", m, entry, bet, coalesce=False)]

    def _order(self, entry, kind, at, match_id, payload) -> list[Update]:
        order = payload.get("order") or {}
        players = self.matches[match_id].players if match_id in self.matches else None
        data = {
            "event": kind,
            "match_id": match_id,
            **order,
            "players": players,
            "selection_name": selection_name(order.get("selection"), players),
        }
        if payload.get("fill"):
            data["fill"] = payload["fill"]
        out = [Update("bet_update", ("ledger",), match_id, at, data, entry.get("recorded_at"), coalesce=False)]
        if kind == str(EventKind.ORDER_PLACED):
            ref = order.get("customer_order_ref")
            if order.get("status") == "REJECTED":
                code = order.get("error_code")
                self.rejections[str(code)] += 1
                self.rejection_times.append((at, str(code)))
                out += self._fated(entry, ref, "rejected", code, f"refused by the exchange: {code}")
            else:
                out += self._fated(entry, ref, "placed", None, f"{order.get('size')} at {order.get('price')}")
        return out

    def _rejected(self, entry, kind, at, match_id, payload) -> list[Update]:
        order = payload.get("request") or payload.get("order") or {}
        reason = str(payload.get("reason") or order.get("error_code"))
        self.rejections[reason] += 1
        self.rejection_times.append((at, reason))
        message = payload.get("message") or f"refused by the exchange: {reason}"
        return self._fated(entry, order.get("customer_order_ref"), "rejected", reason, message)

    def _settled(self, entry, kind, at, match_id, payload) -> list[Update]:
        pnl = payload.get("pnl") or {}
        point = {
            "settled_at": pnl.get("settled_at") or at,
            "market_id": payload.get("market_id"),
            "match_id": match_id,
            "net_profit": pnl.get("net_profit"),
            "bankroll": pnl.get("bankroll_after"),
            "bets": len(payload.get("bets") or []),
            "winner": payload.get("winner"),
            "void": payload.get("void"),
        }
        self.bankroll_curve.append(point)
        return [Update("bankroll_update", ("ledger",), match_id, at, point, entry.get("recorded_at"), coalesce=False)]


def _market_probability(payload: dict, at: datetime) -> float | None:
    """Margin-free P(first player) of an open market with both back prices (the engine's rule)."""
    if payload.get("status") != MarketStatus.OPEN.value or set(payload.get("prices", {})) != {FIRST, SECOND}:
        return None
    try:
        return mid_probability(logged_book(payload, at))
    except (KeyError, TypeError, ValueError):
        return None


_HANDLERS = {
    str(EventKind.FEED_MESSAGE): LiveView._feed,
    str(EventKind.MATCH_FINISHED): LiveView._finished,
    str(EventKind.MARKET_UPDATE): LiveView._market,
    str(EventKind.MARKET_SUSPENDED): LiveView._market,
    str(EventKind.PREDICTION): LiveView._prediction,
    "PREMATCH_PREDICTION": LiveView._prematch_prediction,
    str(EventKind.OPPORTUNITY): LiveView._opportunity,
    str(EventKind.ORDER_REJECTED): LiveView._rejected,
    str(EventKind.MARKET_SETTLED): LiveView._settled,
    str(EventKind.MATCH_SUSPENDED): LiveView._suspension,
    str(EventKind.QUARANTINED): LiveView._quarantined,
    str(EventKind.MATCH_RESUMED): LiveView._suspension,
    **dict.fromkeys(ORDER_KINDS, LiveView._order),
}
