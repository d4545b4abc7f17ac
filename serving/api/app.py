"""The live REST API (FastAPI): matches, predictions, value bets, bets, trading figures, value alerts,
the operator's controls, and the dashboard page. Served by ``python -m serving.api`` (port 8000) with
the WebSocket gateway on its own port in the same process.
"""

import asyncio
import dataclasses
import hmac
import logging
import time
from collections import deque
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Receive, Scope, Send

from betting.risk import RiskLimits
from expectations.freshness import live_log_freshness
from serving.api import alerts as alerting
from serving.api import prom, schemas
from serving.api.gateway import percentiles
from serving.api.lineage import bet_lineage as bet_lineage_of
from serving.api.lineage import exposure_report, selection_name
from serving.api.live import LiveService
from serving.api.proxies import ClientAddressMiddleware, TrustedProxies
from serving.api.ratelimit import RateLimit, RateLimitMiddleware, SlidingWindowLimiter
from serving.api.status import ServiceStatus
from serving.body_limit import API_MAX_BODY_BYTES, BodyLimitMiddleware
from serving.docs import install_offline_docs
from serving.errors import ErrorBody, install_error_handlers
from storage import alerts as alert_store
from storage import identity as identities
from storage import live as store

log = logging.getLogger(__name__)
READY_LAG_ENTRIES = 5_000
"""``/readyz``: a replica this many log entries (one read) or fewer behind the newest is ready."""

STATIC_DIR = Path(__file__).resolve().parent / "static"
SURFACE_PATTERN = r"^(?i:hard|clay|grass|carpet)$"
MAX_OFFSET = 1_000_000_000
"""Largest ``offset`` of ``/bets`` (a bound keeps the database's 64-bit integers from overflowing)."""

DESCRIPTION = """
Live tennis matches, predictions, value bets and the paper-trading ledger, read from the engine's
durable event log; operator controls for the live engine. Errors are JSON: `{"error", "message",
"detail"}` (404 unknown match, 422 invalid parameters with the fields in `detail` (at most 10, inputs
as short excerpts), 401/403 token, 413 body over the size limit, 429 rate limit with `Retry-After`,
500 `internal_error`). Values are taken as their schema says: a number given as a string, `0` for
`false`, NaN or Infinity are refused (422), never converted. Every client (the socket's peer, or the
`X-Forwarded-For` client when the peer is a configured proxy) may make a limited number of requests
in any sliding window (default 300 per 60 s).

**Operator endpoints** (`/control...`) need `Authorization: Bearer <token>` (the token of
`COURTSIDE_API_TOKEN` / `COURTSIDE_API_TOKEN_FILE`); the engine applies a change within about a
second and acknowledges it (`GET /control`: `engines[].in_force`).

**WebSocket gateway** (`GET /live/config` gives its URL, default `ws://HOST:8001/ws`): rooms per
match. Send `{"type": "subscribe", "match_id": "<id>"}` (or `"*"` for every match, `"ledger"` for bets
and bankroll, `"alert:<id>"` for a value-alert subscription: these two need `"token"`, the read or
operator token); receive `odds_update`, `game_event`, `prediction_update`, `value_bet` (and
`bet_update`, `bankroll_update` in `ledger`), each `{"type", "match_id", "seq", "ts", "sent", "data"}`
with a per-room sequence number; heartbeats every few seconds; at most a few flushes a second per
room (latest state wins); a client that falls behind is closed with code 4008 and the reason; resume
with `{"type": "subscribe", "match_id", "last_seq", "session"}`. Full protocol: docs/API.md.

**Value alerts** (`POST /live/alerts/subscribe`): matches and players must be known to the live view
(422 with the closest names otherwise; a player by full name or a whole word of it, resolved to full
names). Subscriptions are stored in the database for 24 h (they survive restarts of the API; `GET` /
`DELETE /live/alerts/{id}`). Matching value bets go to the room `alert:<id>` and, with `webhook_url`
(http or https; needs the operator token as a bearer token, and so do `GET`/`DELETE` of such a
subscription), are POSTed as `{"alert_id", "event_id", "value_bet", "sent_at"}` with
`X-Courtside-Signature: sha256=<hex HMAC-SHA256 of the exact body>` keyed by the `secret` shown once in
the answer, `X-Courtside-Delivery` (the same on a retry) and `X-Courtside-Alert`; a 2xx answer delivers,
anything else is retried after 1, 2, 4 ... s (at most 60 s) up to 8 attempts, then `failed`. Each value
bet is queued once per subscription, those logged while the API was down included; every attempt is in
the delivery log of `GET /live/alerts/{id}`.
"""


@dataclasses.dataclass(frozen=True)
class ApiConfig:
    """What the HTTP app needs besides the live service."""

    token: str | None = dataclasses.field(default=None, repr=False)
    """Bearer token of the operator endpoints; None disables them (503)."""
    rate: RateLimit = RateLimit()
    ws_url: str = ""
    """The gateway's URL as clients should reach it; "" = ws://<the host the request was sent to>:ws_port/ws."""
    ws_port: int = 8001
    run_service: bool = True
    """Start and stop the live service with the app (False when the caller runs it)."""
    trusted_proxies: tuple[str, ...] = ()
    """Reverse proxies whose ``X-Forwarded-For`` names the client (rate limit, operator audit); none: the peer."""
    max_body_bytes: int = API_MAX_BODY_BYTES
    """Largest request body; 413 beyond."""


class _Timing:
    """Keeps the handling time of the last 10,000 HTTP requests (for /metrics)."""

    def __init__(self, app: ASGIApp, window: deque[float]):
        self.app = app
        self.window = window

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.window.append((time.perf_counter() - start) * 1000)


def create_app(service: LiveService, status: ServiceStatus, config: ApiConfig) -> FastAPI:
    """The HTTP app over a live service (started and stopped with the app unless ``run_service`` is off)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if config.run_service:
            await service.start()
        try:
            yield
        finally:
            if config.run_service:
                await service.stop()
            await status.close()

    errors = {404: {"model": ErrorBody}}
    app = FastAPI(
        title="Courtside live API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served offline below (serving.docs)
        redoc_url=None,
        responses={code: {"model": ErrorBody} for code in (400, 413, 422, 429, 500)},
    )
    install_offline_docs(app, "/docs", "Courtside live API", redoc="/redoc")
    request_ms: deque[float] = deque(maxlen=10_000)
    # outermost last: who the client is -> its rate limit -> the body's size -> timing of what is served
    app.add_middleware(_Timing, window=request_ms)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(RateLimitMiddleware, limiter=SlidingWindowLimiter(config.rate))
    app.add_middleware(ClientAddressMiddleware, proxies=TrustedProxies(config.trusted_proxies))
    install_error_handlers(app, docs="/docs")

    def match_or_404(match_id: str):
        m = service.view.match(match_id)
        if m is None:
            raise HTTPException(404, f"no match {match_id!r} in the event log")
        return m

    MatchId = Annotated[str, PathParam(min_length=1, max_length=128, description="the feed's event key")]

    # --- live matches ------------------------------------------------------------------------------
    @app.get("/health", tags=["service"], responses={503: {"model": ErrorBody}})
    async def health() -> JSONResponse:
        """Liveness: database reachable, how far the log has been read, the gateway, the engine's heartbeat."""
        try:
            newest = await asyncio.to_thread(store.last_event_id, service.db)
            engines = await asyncio.to_thread(store.engine_statuses, service.db)
            services = await asyncio.to_thread(status.services, service.db)
            database = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            newest, engines, services, database = None, [], None, f"error: {type(exc).__name__}: {exc}"[:300]
        view = service.view
        body = {
            "status": "ok" if database == "ok" else "degraded",
            "database": database,
            "last_event_id": newest,
            "read_up_to": view.last_id,
            "last_recorded_at": view.last_recorded_at,
            "matches": len(view.matches),
            "in_play": len(view.active()),
            "tail_errors": service.tail_errors,
            "last_tail_error": service.last_tail_error,
            "gateway": service.gateway.figures(),
            "webhooks": {  # whether this process (replica) sends the webhooks; no error text: /health is public
                k: v for k, v in service.deliverer.figures().items() if k != "last_error"
            },
            "engines": [_engine_ack(e, None) for e in engines],
            "services": services,
        }
        return JSONResponse(jsonable(body), status_code=200 if database == "ok" else 503)

    @app.get("/live/games/active", response_model=schemas.ActiveGames, tags=["live"])
    async def active_games(
        tournament: Annotated[str | None, Query(max_length=128, description="e.g. Wimbledon")] = None,
        surface: Annotated[str | None, Query(pattern=SURFACE_PATTERN, description="Hard, Clay, Grass, Carpet")] = None,
    ) -> dict:
        """Matches in play (started, not finished), optionally of one tournament and/or surface."""
        matches = [m.summary() for m in service.view.active(tournament, surface)]
        return {"count": len(matches), "matches": matches}

    @app.get("/live/games/{match_id}/state", response_model=schemas.MatchState, tags=["live"], responses=errors)
    async def game_state(match_id: MatchId) -> dict:
        """Score, odds and the latest prediction of one match."""
        m = match_or_404(match_id)
        return {
            "match": m.summary(),
            "odds": m.markets,
            "last_prediction": m.prediction(),
            "last_event_id": service.view.last_id,
        }

    @app.get("/live/games/{match_id}/predictions", response_model=schemas.Predictions, tags=["live"], responses=errors)
    async def game_predictions(
        match_id: MatchId, limit: Annotated[int, Query(ge=1, le=5000, description="the latest N")] = 1000
    ) -> dict:
        """The in-play model's predictions of one match, oldest first, each with the market's view then."""
        m = match_or_404(match_id)
        points = list(m.predictions)[-limit:]
        return {"match_id": match_id, "count": len(points), "predictions": points}

    @app.get("/live/value-bets/{match_id}", response_model=schemas.ValueBets, tags=["live"], responses=errors)
    async def value_bets(
        match_id: MatchId,
        min_edge: Annotated[float, Query(ge=0.0, le=10.0, allow_inf_nan=False, description="least edge")] = 0.0,
        limit: Annotated[int, Query(ge=1, le=2000)] = 200,
    ) -> dict:
        """Value bets detected in one match (edge after commission >= ``min_edge``), newest first."""
        m = match_or_404(match_id)
        bets = [b for b in reversed(m.value_bets) if float(b.get("edge", 0.0)) >= min_edge][:limit]
        return {"match_id": match_id, "min_edge": min_edge, "count": len(bets), "value_bets": bets}

    @app.get("/live/value-bets", response_model=list[schemas.ValueBet], tags=["live"])
    async def recent_value_bets(
        min_edge: Annotated[float, Query(ge=0.0, le=10.0, allow_inf_nan=False)] = 0.0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list:
        """The latest value bets of every match, newest first."""
        bets = [b for m in service.view.matches.values() for b in m.value_bets if float(b.get("edge", 0)) >= min_edge]
        return sorted(bets, key=lambda b: b["id"], reverse=True)[:limit]

    @app.get("/live/bankroll", tags=["ledger"])
    async def bankroll() -> dict:
        """The bankroll now and after each settled market (the P&L curve)."""
        return {**service.bankroll_now(), "curve": service.view.bankroll_curve}

    @app.get("/bets", response_model=schemas.BetsPage, tags=["ledger"])
    async def bets(
        state: Annotated[str, Query(pattern="^(open|settled|all)$")] = "all",
        match_id: Annotated[str | None, Query(max_length=128, pattern=r"^[^\x00]*$")] = None,
        source: Annotated[str | None, Query(pattern="^(inplay|prematch)$")] = None,
        side: Annotated[str | None, Query(pattern="^(BACK|LAY)$")] = None,
        status: Annotated[str | None, Query(pattern="^(PENDING|EXECUTABLE|EXECUTION_COMPLETE|REJECTED)$")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> dict:
        """Orders of the paper-trading ledger, newest first: ``open`` (live or matched, not settled),
        ``settled`` (matched, market settled: with result and profit), or ``all`` (also orders that never
        matched); filters combine."""
        total, rows = await asyncio.to_thread(
            store.order_page,
            service.db,
            state=state,
            match_id=match_id,
            source=source,
            side=side,
            status=status,
            limit=limit,
            offset=offset,
        )
        settled = await asyncio.to_thread(
            store.settlements_of, service.db, sorted({r["market_id"] for r in rows if r.get("settled")})
        )
        results = {b["customer_order_ref"]: b for s in settled.values() for b in s.get("bets", [])}
        for r in rows:
            bet = results.get(r["customer_order_ref"])
            r["result"], r["profit"] = (bet["result"], bet["profit"]) if bet else (None, None)
            players = players_of(r["match_id"])
            r["players"], r["selection_name"] = players, selection_name(r["selection"], players)
        return {"total": total, "limit": limit, "offset": offset, "bets": rows}

    def players_of(match_id: str | None) -> list[str] | None:
        m = service.view.match(match_id or "")
        return list(m.players) if m is not None and all(m.players) else None

    @app.get("/bets/{ref}", tags=["ledger"], responses=errors)
    async def bet_lineage(
        ref: Annotated[str, PathParam(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_.:-]+$")],
    ) -> dict:
        """The lineage of one order (placed, rejected or only decided): the feed message that triggered it (feed,
        channel, sequence), the prediction (model, version, data version, its probability and the market's
        margin-free one), the decision (side, price, edge, the stake and the rule that sized it), every risk
        check with its value and limit, and its fate (placed, rejected with the reason, matched, lapsed,
        cancelled, settled with result and profit), with the log entries in order."""
        raw = await asyncio.to_thread(store.lineage_rows, service.db, ref)
        match_id = next((e["match_id"] for e in raw["entries"] if e["match_id"]), None)
        match_id = match_id or (raw["order"] or raw["request"] or {}).get("match_id")
        found = bet_lineage_of(raw, ref, players_of(match_id))
        if found is None:
            raise HTTPException(404, f"no order, rejection or opportunity with reference {ref!r} in the event log")
        return jsonable(found)

    @app.get("/live/exposure", tags=["ledger"])
    async def exposure() -> dict:
        """Exposure and P&L per match and runner (matched stakes, worst-case liability, P&L if each player wins,
        open orders), the totals against each exposure limit in force with the room left, and the rejections by
        reason, in total and per hour of event time. Computed from the ledger with the risk checks' rules."""
        orders, settled_list, engines, controls = await asyncio.gather(
            asyncio.to_thread(store.order_rows, service.db),
            asyncio.to_thread(store.settlements, service.db),
            asyncio.to_thread(store.engine_statuses, service.db),
            asyncio.to_thread(store.current_controls, service.db),
        )
        in_force = next((e["payload"].get("risk_limits") for e in engines if e["payload"].get("risk_limits")), None)
        limits = in_force or dataclasses.asdict(_limits(controls["risk_limits"], controls["kill_switch"]))
        rows = [{**payload, "match_id": match_id, "source": source} for match_id, source, payload in orders]
        report = exposure_report(
            rows,
            {s["market_id"]: s for s in settled_list},
            {m.match_id: list(m.players) for m in service.view.matches.values() if all(m.players)},
            limits,
            list(service.view.rejection_times),
        )
        return jsonable({**report, "limits_source": "engine" if in_force else "defaults and operator overrides"})

    @app.get("/metrics", tags=["service"])
    async def metrics() -> dict:
        """Trading performance of the session (bets, stake, P&L, ROI, hit rate, drawdown) and latency of
        the live path: the engine's decision latency (its heartbeat), the gateway's log-to-send and
        fan-out times, this API's request handling time."""
        trading = await service.trading_metrics()
        engines = await asyncio.to_thread(store.engine_statuses, service.db)
        return jsonable(
            {
                "trading": trading,
                "latency": {
                    "engine_decision_ms": {e["engine"]: e["payload"].get("decision_latency") for e in engines},
                    "gateway_log_to_send_ms": service.gateway.figures()["log_to_send_ms"],
                    "gateway_fanout_ms": service.gateway.figures()["fanout_ms"],
                    "api_request_ms": percentiles(request_ms),
                },
                "gateway": service.gateway.figures(),
                "log": {"read_up_to": service.view.last_id, "entries_by_kind": dict(service.view.kinds)},
            }
        )

    @app.get(
        "/metrics/prometheus",
        tags=["service"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "Prometheus text"}},
    )
    async def metrics_prometheus() -> Response:
        """This replica's figures in Prometheus' text format (``serving.api.prom``; scraped by
        deploy/prometheus/prometheus.yml): subscribers, rooms, messages and frames sent, slow clients dropped,
        latency percentiles, how far this replica has read the log and how far behind it is, webhooks."""
        try:
            newest: int | None = await asyncio.to_thread(store.last_event_id, service.db)
        except Exception:  # noqa: BLE001 - the figures that do not need the database are still worth having
            newest = None
        figures = {
            "gateway": service.gateway.figures(),
            "read_up_to": service.view.last_id,
            "newest": newest,
            "tail_errors": service.tail_errors,
            "log_listener": service.listener_up,
            "webhooks": service.deliverer.figures(),
            "request_ms": percentiles(request_ms),
        }
        return Response(prom.exposition(lambda: figures), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/readyz", response_model=schemas.Readiness, tags=["service"], responses={503: {"model": schemas.Readiness}}
    )
    async def readyz() -> JSONResponse:
        """Readiness, for a load balancer in front of replicas: the database answers and this replica has read
        the event log to within one read of its newest entry (a replica still catching up gets no clients)."""
        replica = service.gateway.figures().get("replica")
        try:
            newest = await asyncio.to_thread(store.last_event_id, service.db)
        except Exception as exc:  # noqa: BLE001 - not ready, and why
            body = {"ready": False, "reason": f"database: {type(exc).__name__}"[:200], "replica": replica}
            return JSONResponse({**body, "read_up_to": service.view.last_id, "newest": None}, status_code=503)
        behind = max(0, newest - service.view.last_id)
        ready = behind <= READY_LAG_ENTRIES
        reason = "reading the log as it grows" if ready else f"catching up: {behind} log entries behind"
        body = {"ready": ready, "reason": reason, "replica": replica, "read_up_to": service.view.last_id}
        return JSONResponse({**body, "newest": newest}, status_code=200 if ready else 503)

    @app.get("/live/status", tags=["service"])
    async def live_status() -> dict:
        """The serving model, the in-play model, the data-quality status of the live log, the engine."""
        model, quality = await asyncio.gather(status.model(), status.data_quality())
        engines = await asyncio.to_thread(store.engine_statuses, service.db)
        controls = await asyncio.to_thread(store.current_controls, service.db)
        services = await asyncio.to_thread(status.services, service.db)
        return jsonable(
            {
                "serving_model": model,
                "inplay_model": service.view.inplay_model,
                "prematch_scan_model": service.view.serving_model,
                "data_quality": {**quality, "live_log": live_log_freshness(service.view.last_recorded_at)},
                "engines": [_engine_ack(e, controls["version"]) for e in engines],
                "controls": {k: controls[k] for k in ("version", "paused", "kill_switch")},
                "services": services,
                "replay": service.view.replay_state(),
            }
        )

    def ws_url(request: Request) -> str:
        return config.ws_url or f"ws://{request.url.hostname or '127.0.0.1'}:{config.ws_port}/ws"

    @app.get("/live/config", tags=["service"])
    async def live_config(request: Request) -> dict:
        """What the dashboard needs: where the WebSocket gateway is and how it behaves."""
        g = service.gateway.cfg
        return {
            "ws_url": ws_url(request),
            "ws_port": config.ws_port,
            "rate_hz": g.rate_hz,
            "heartbeat_s": g.heartbeat_s,
            "buffer_size": g.buffer_size,
            "session": service.gateway.session,
            "bankroll": service.bankroll,
        }

    def webhook_operator(request: Request) -> None:
        """A webhook makes this server call out to a URL of the subscriber's choosing: only the operator may.

        The header is read here, not declared as the endpoints' security scheme: a subscription without a webhook
        needs no token, and the OpenAPI document says so."""
        if config.token is None:
            raise HTTPException(503, "webhooks are disabled: no COURTSIDE_API_TOKEN configured")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        credentials = given.strip() if scheme.lower() == "bearer" and given.strip() else None
        if credentials is None:
            raise HTTPException(
                401,
                "a subscription with a webhook needs the operator token (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(credentials.encode(), config.token.encode()):
            raise HTTPException(403, "invalid token")

    @app.post(
        "/live/alerts/subscribe",
        response_model=schemas.AlertSubscribed,
        status_code=201,
        tags=["live"],
        responses={code: {"model": ErrorBody} for code in (401, 403, 503)},
    )
    async def subscribe_alerts(
        criteria: schemas.AlertRequest,
        request: Request,
    ) -> Any:
        """Value alerts: value bets of the chosen matches / players with at least ``min_edge`` go to a room of
        their own (subscribe to it over the WebSocket) and, with ``webhook_url``, are POSTed there signed with the
        ``secret`` of the answer (shown once). Matches and players must be known to the live view (422 with the
        closest names otherwise). Stored for 24 h: the subscription survives restarts of the API, and the value
        bets logged while it was down are delivered to the webhook after it. A webhook makes this server call out:
        it needs ``Authorization: Bearer <token>`` (the read token of the alert rooms, or the operator token)."""
        if criteria.webhook_url:
            webhook_operator(request)
        view = service.view
        players, problems = alerting.resolve_players(
            criteria.players, alerting.player_index(p for m in view.matches.values() for p in m.players)
        )
        problems = alerting.unknown_matches(criteria.match_ids, view.matches.keys()) + problems
        if problems:
            return alerting.criteria_response(problems)
        try:
            alert, secret = await service.alerts.add(
                criteria.match_ids,
                players,
                criteria.min_edge,
                criteria.webhook_url,
                created_by=request.client.host if request.client else "unknown",
                after_id=view.last_id,
            )
        except OverflowError as exc:
            raise HTTPException(503, str(exc)) from None
        return {
            "alert_id": alert.alert_id,
            "room": alert.room,
            "ws_url": ws_url(request),
            "criteria": {"match_ids": criteria.match_ids, "players": players, "min_edge": criteria.min_edge},
            "webhook_url": alert.webhook_url,
            "secret": secret,
            "created_at": alert.created_at,
            "expires_at": alert.expires_at,
        }

    AlertId = Annotated[
        str, PathParam(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$", description="the subscription's id")
    ]

    webhook_errors = {**errors, **{code: {"model": ErrorBody} for code in (401, 403, 503)}}

    @app.get("/live/alerts/{alert_id}", response_model=schemas.AlertState, tags=["live"], responses=webhook_errors)
    async def alert_state(alert_id: AlertId, request: Request) -> dict:
        """A subscription (without its secret) and its webhook delivery log, newest first (at most 100): each
        delivery's status (pending, delivered, failed), attempts, last HTTP status and error, next attempt."""
        sub = await asyncio.to_thread(alert_store.subscription, service.db, alert_id)
        if sub is None:
            raise HTTPException(404, f"no alert subscription {alert_id!r} (never made, deleted or expired)")
        if sub.get("webhook_url"):  # its URL and the answers of the host it calls: the operator's
            webhook_operator(request)
        deliveries = await asyncio.to_thread(alert_store.delivery_log, service.db, alert_id, 100)
        return {**sub, "room": f"alert:{alert_id}", "deliveries": deliveries}

    @app.delete("/live/alerts/{alert_id}", status_code=204, tags=["live"], responses=webhook_errors)
    async def delete_alert(alert_id: AlertId, request: Request) -> Response:
        """End a subscription: nothing more is sent to its room or webhook; its delivery log is deleted. One with a
        webhook needs the operator token."""
        known = service.alerts.alerts.get(alert_id)
        if known is not None:
            webhook = bool(known.webhook_url)
        else:  # made through another replica and not learnt here yet: the database says if it has a webhook
            stored = await asyncio.to_thread(alert_store.subscription, service.db, alert_id)
            webhook = bool(stored and stored.get("webhook_url"))
        if webhook:
            webhook_operator(request)
        if not await service.alerts.delete(alert_id):
            raise HTTPException(404, f"no alert subscription {alert_id!r}")
        return Response(status_code=204)

    @app.api_route(
        "/live/alerts/{alert_id}", methods=["POST", "PUT", "PATCH", "OPTIONS", "TRACE"], include_in_schema=False
    )
    async def alert_other_methods(alert_id: str) -> None:
        # a 405 naming every method of the path: with a route per method the router would name one only (POST
        # /live/alerts/subscribe is the route above: registered first, it is matched first)
        allow = "POST" if alert_id == "subscribe" else "GET, DELETE"
        raise HTTPException(405, "method not allowed on this endpoint", headers={"Allow": allow})

    # --- operator controls ---------------------------------------------------------------------
    bearer = HTTPBearer(auto_error=False, description="the operator token")

    def operator(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
        if config.token is None:
            raise HTTPException(503, "operator controls are disabled: no COURTSIDE_API_TOKEN configured")
        if credentials is None:
            raise HTTPException(
                401, "missing bearer token (Authorization: Bearer <token>)", headers={"WWW-Authenticate": "Bearer"}
            )
        if not hmac.compare_digest(credentials.credentials.encode(), config.token.encode()):
            raise HTTPException(403, "invalid token")
        return request.client.host if request.client else "unknown"

    Operator = Annotated[str, Depends(operator)]
    guarded = {401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 503: {"model": ErrorBody}}

    async def change(who: str, what: str, **fields: Any) -> dict:
        new = await asyncio.to_thread(store.change_controls, service.db, who, **fields)
        log.warning(
            "operator controls v%d (%s) by %s: paused=%s kill_switch=%s risk overrides=%s",
            new["version"],
            what,
            who,
            new["paused"],
            new["kill_switch"],
            new["risk_limits"],
        )
        return await control_state()

    async def control_state() -> dict:
        controls, engines, history = await asyncio.gather(
            asyncio.to_thread(store.current_controls, service.db),
            asyncio.to_thread(store.engine_statuses, service.db),
            asyncio.to_thread(store.control_history, service.db, 20),
        )
        effective = dataclasses.asdict(_limits(controls["risk_limits"], controls["kill_switch"]))
        return {
            "controls": controls,
            "effective_risk_limits": effective,
            "engines": [_engine_ack(e, controls["version"]) for e in engines],
            "history": history,
        }

    @app.get("/control", response_model=schemas.ControlState, tags=["operator"], responses=guarded)
    async def get_controls(_: Operator) -> dict:
        """The controls in force, whether each engine applies them, and the latest changes."""
        return await control_state()

    @app.post("/control/pause", response_model=schemas.ControlState, tags=["operator"], responses=guarded)
    async def pause(who: Operator, body: schemas.ControlReason | None = None) -> dict:
        """Stop placing new orders (decisions and value bets are still computed and shown)."""
        return await change(who, "pause", paused=True, reason=body.reason if body else None)

    @app.post("/control/resume", response_model=schemas.ControlState, tags=["operator"], responses=guarded)
    async def resume(who: Operator, body: schemas.ControlReason | None = None) -> dict:
        """Place orders again (a pulled kill switch still stops everything)."""
        return await change(who, "resume", paused=False, reason=body.reason if body else None)

    @app.post("/control/kill-switch", response_model=schemas.ControlState, tags=["operator"], responses=guarded)
    async def kill_switch(who: Operator, body: schemas.KillSwitchRequest) -> dict:
        """Engage: nothing is accepted (hedges included) and resting orders are cancelled; survives restarts
        of the engine and the API until released."""
        return await change(
            who,
            "kill switch " + ("engaged" if body.engaged else "released"),
            kill_switch=body.engaged,
            reason=body.reason,
        )

    @app.put("/control/risk-limits", response_model=schemas.ControlState, tags=["operator"], responses=guarded)
    async def risk_limits(who: Operator, body: schemas.RiskLimitsRequest) -> dict:
        """Override risk limits (fields given; null removes an override). Rejected with 422 when the
        resulting limits are invalid."""
        current = await asyncio.to_thread(store.current_controls, service.db)
        overrides = dict(current["risk_limits"])
        for name in body.model_fields_set - {"reason"}:
            value = getattr(body, name)
            if value is None:
                overrides.pop(name, None)
            else:
                overrides[name] = value
        try:
            _limits(overrides, False)
        except (TypeError, ValueError) as exc:
            raise RequestValidationError([{"loc": ("body",), "msg": str(exc), "type": "value_error"}]) from None
        return await change(who, "risk limits", risk_limits=overrides, reason=body.reason)

    @app.get("/live/identity/review", tags=["live"])
    async def identity_review() -> list[dict]:
        """Players an outside venue named (API-Tennis) that no identity rule resolved for certain: their matches are
        followed without trading until an operator says who they are (``POST /control/identity``)."""
        return jsonable(await asyncio.to_thread(identities.review_list, service.db))

    @app.post("/control/identity", tags=["operator"], responses={**guarded, 404: {"model": ErrorBody}})
    async def set_identity(who: Operator, body: schemas.IdentityRequest) -> dict:
        """Say who a venue's player is; the answer stands against the rules from then on."""
        try:
            row = await asyncio.to_thread(
                identities.set_player, service.db, body.venue, body.venue_key, body.player_id, who
            )
        except KeyError as exc:
            raise HTTPException(status_code=404, detail=str(exc).strip("'\"")) from None
        return jsonable(row)

    # --- the dashboard -------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    app.mount("/dashboard", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")
    return app


def _limits(overrides: dict[str, Any], kill_switch: bool) -> RiskLimits:
    """The engine's default limits with the operator's overrides (validated by RiskLimits itself)."""
    return dataclasses.replace(RiskLimits(), **overrides, kill_switch=kill_switch)


def _engine_ack(row: dict[str, Any], version: int | None) -> dict[str, Any]:
    from datetime import UTC, datetime

    age = (datetime.now(UTC) - row["updated_at"]).total_seconds()
    return {
        "engine": row["engine"],
        "controls_version": row["controls_version"],
        "in_force": version is None or row["controls_version"] == version,
        "updated_at": row["updated_at"],
        "age_s": round(age, 1),
        "status": row["payload"],
    }


def jsonable(value: Any) -> Any:
    """Datetimes and containers as JSON-ready values."""
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(value)
