"""A local stand-in for the Betfair Exchange, for tests and demos: what betfairlightweight talks to, on 127.0.0.1.

- HTTPS (a self-signed certificate made at start): the identity endpoints (``/api/certlogin``, ``/api/login``,
  ``/api/keepAlive``, ``/api/logout``), answering in the shapes of the real payloads in
  ``../shared/data/betfair/`` (``login_success.json``, ``login_fail.json``, ``keep_alive_success.json``), and
  API-NG JSON-RPC (``/exchange/betting/json-rpc/v1``): ``listEventTypes`` and ``listMarketCatalogue`` of its
  tennis markets; any call needs the app key and a live session token (else the real ``APINGException``).
- The Exchange Stream API over TLS: CRLF-delimited JSON; ``connection`` on connect, ``authentication``
  (app key + session) answered by ``status``, ``marketSubscription`` answered by ``status`` and the markets'
  changes (``mcm``: a ``SUB_IMAGE``, then deltas as the stand-in plays the markets, each with its ``clk``);
  a subscription that gives ``initialClk``/``clk`` gets only what came after that ``clk`` (``RESUB_DELTA``),
  so a client that reconnects loses nothing; ``heartbeat`` is answered.

Its markets are Stream API messages (``historical.stream_messages``: built from real matches' prices) played
one message a market per ``advance()``. ``drop()`` closes every stream connection (a network cut).
Orders: ``placeOrders`` (a ``customerRef`` seen in the last ``duplicate_window_s`` is refused as
``DUPLICATE_TRANSACTION``, as Betfair does within its 60-second window), ``cancelOrders`` and
``listCurrentOrders``, matched by ``betting.paper.PaperExchange`` — the Betfair rules the project models (bet
delay, queues, lapses at suspension) — against the prices the stand-in plays, on the markets' own clock.
``placed`` is its ledger: every order it ever accepted.
The order stream: ``orderSubscription`` (optionally filtered by ``customerStrategyRefs``) is answered by an ``ocm``
image of every order (``SUB_IMAGE``; from a ``clk``: what changed after it, ``RESUB_DELTA``), then an ``ocm`` delta
for each order that changes (placed, matched, cancelled, lapsed), with its ``clk``. An order in its bet delay is
not on the book and not on the stream (as on Betfair) until the delay ends.
``hold_at=N`` (a fault knob): the N-th order accepted is on the exchange, but its ``placeOrders`` answer waits
until ``release()`` — the window in which a client killed never learns its order was placed (``holding`` is set).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import ssl
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

CRLF = b"\r\n"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 (cryptography), written to ``folder``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "standin.crt", folder / "standin.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class StandInMarket:
    """One market the stand-in plays: its catalogue entry and its stream messages (``mcm``) in order; ``books``,
    when given (one per message: its time and the feed's message of the same prices), are what the stand-in
    matches orders against."""

    market_id: str
    event_name: str
    runners: Sequence[tuple[int, str]]
    start: dt.datetime
    messages: list[dict]
    books: list[tuple[dt.datetime, Any]] = field(default_factory=list)
    played: int = 0


@dataclass
class _Subscriber:
    writer: asyncio.StreamWriter
    sub_id: int
    markets: set[str]


@dataclass
class _OrderSubscriber:
    writer: asyncio.StreamWriter
    sub_id: int
    strategies: set[str]
    """Empty: every order."""


@dataclass
class BetfairStandIn:
    markets: list[StandInMarket]
    app_key: str = "standin-app-key"
    username: str = "trader"
    password: str = "secret"
    sessions: set[str] = field(default_factory=set)
    logins: int = 0
    connections: int = 0
    subscriptions: list[dict] = field(default_factory=list)
    _clk: itertools.count = field(default_factory=lambda: itertools.count(1))
    _log: list[tuple[int, str, dict, int]] = field(default_factory=list)
    """Every market change played: (clk, market id, the change, its publish time in ms)."""
    _subscribers: list[_Subscriber] = field(default_factory=list)

    placed: list[dict] = field(default_factory=list)
    """Every order accepted: customerRef, customerOrderRef, betId, market, selection, side, price, size."""
    customer_refs: dict[str, float] = field(default_factory=dict)
    """customerRef -> when it was last seen (monotonic seconds)."""
    duplicate_window_s: float = 60.0
    """Betfair refuses a repeated ``customerRef`` within 60 seconds; 0: never (what a client must survive)."""
    order_subscriptions: list[dict] = field(default_factory=list)
    _order_subscribers: list[_OrderSubscriber] = field(default_factory=list)
    _order_log: list[tuple[int, str, str, dict]] = field(default_factory=list)
    """Every order change on the stream: (clk, market id, strategy ref, the order as ``uo``)."""
    _order_seen: dict[str, dict] = field(default_factory=dict)
    _strategy: dict[str, str] = field(default_factory=dict)
    hold_at: int | None = None
    calls: Counter = field(default_factory=Counter)
    """API-NG calls answered, by method."""

    def __post_init__(self) -> None:
        from betting.clock import ManualClock
        from betting.paper import PaperExchange

        self.clock = ManualClock(min((m.start for m in self.markets), default=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
        self.exchange = PaperExchange(self.clock, balance=10_000.0)
        self._folder = Path(tempfile.mkdtemp(prefix="betfair-standin-"))
        self.cert, self._key = self_signed(self._folder)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="betfair-standin", daemon=True)
        self.https_port = self.stream_port = 0
        self.holding = threading.Event()
        self._release: asyncio.Event | None = None

    # --- life -----------------------------------------------------------------------------------
    def start(self) -> BetfairStandIn:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self._key)
        # a client certificate is asked for (the certificate login needs one) and checked against the stand-in's
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(self.cert)
        return context

    @property
    def client_cert(self) -> tuple[Path, Path]:
        """A certificate and key the stand-in accepts for the certificate login (its own)."""
        return self.cert, self._key

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/certlogin", self._certlogin)
        app.router.add_post("/api/login", self._login)
        app.router.add_post("/api/keepAlive", self._keep_alive)
        app.router.add_post("/api/logout", self._logout)
        app.router.add_post("/exchange/betting/json-rpc/v1", self._rpc)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl())
        await site.start()
        self.https_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._stream_server = await asyncio.start_server(self._stream, "127.0.0.1", 0, ssl=self._ssl())
        self.stream_port = self._stream_server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self._drop()
        self._stream_server.close()
        await self._runner.cleanup()

    # --- identity and API-NG ----------------------------------------------------------------------
    def _new_session(self) -> str:
        token = f"standin-session-{len(self.sessions) + 1}"
        self.sessions.add(token)
        self.logins += 1
        return token

    async def _credentials(self, request: web.Request) -> bool:
        form = await request.post()
        return (
            request.headers.get("X-Application") == self.app_key
            and form.get("username") == self.username
            and form.get("password") == self.password
        )

    async def _certlogin(self, request: web.Request) -> web.Response:
        if request.transport is None or not request.transport.get_extra_info("peercert"):
            return web.json_response({"loginStatus": "CERT_AUTH_REQUIRED"})
        if not await self._credentials(request):
            return web.json_response({"loginStatus": "INVALID_USERNAME_OR_PASSWORD"})
        return web.json_response({"sessionToken": self._new_session(), "loginStatus": "SUCCESS"})

    async def _login(self, request: web.Request) -> web.Response:
        if not await self._credentials(request):
            return web.json_response(
                {"token": "", "product": self.app_key, "status": "FAIL", "error": "INVALID_USERNAME_OR_PASSWORD"}
            )
        return web.json_response(
            {"token": self._new_session(), "product": self.app_key, "status": "SUCCESS", "error": ""}
        )

    async def _keep_alive(self, request: web.Request) -> web.Response:
        token = request.headers.get("X-Authentication", "")
        if token not in self.sessions:
            return web.json_response({"token": token, "product": self.app_key, "status": "FAIL", "error": "NO_SESSION"})
        return web.json_response({"token": token, "product": self.app_key, "status": "SUCCESS", "error": ""})

    async def _logout(self, request: web.Request) -> web.Response:
        token = request.headers.get("X-Authentication", "")
        self.sessions.discard(token)
        return web.json_response({"token": token, "product": self.app_key, "status": "SUCCESS", "error": ""})

    def _authorised(self, request: web.Request) -> bool:
        return (
            request.headers.get("X-Application") == self.app_key
            and request.headers.get("X-Authentication") in self.sessions
        )

    async def _rpc(self, request: web.Request) -> web.Response:
        body = await request.json()
        call_id = body.get("id", 1)
        method = str(body.get("method", "")).split("/")[-1]
        if not self._authorised(request):
            return web.json_response(_rpc_error(call_id, "INVALID_SESSION_INFORMATION", method))
        params = body.get("params", {})
        self.calls[method] += 1
        if method in ("placeOrders", "cancelOrders", "listCurrentOrders"):
            before = len(self.placed)
            result = {"placeOrders": self._place, "cancelOrders": self._cancel, "listCurrentOrders": self._current}[
                method
            ](params)
            await self._orders_changed()
            if self.hold_at is not None and before < self.hold_at <= len(self.placed):
                self._release = asyncio.Event()
                self.holding.set()
                await self._release.wait()  # on the exchange; the caller hears nothing until release()
            return web.json_response({"jsonrpc": "2.0", "result": result, "id": call_id})
        if method == "listEventTypes":
            result: Any = [{"eventType": {"id": "2", "name": "Tennis"}, "marketCount": len(self.markets)}]
        elif method == "listMarketCatalogue":
            wanted = body.get("params", {}).get("filter", {})
            types = set(wanted.get("eventTypeIds") or ["2"])
            result = [self._catalogue(m) for m in self.markets if "2" in types]
        else:
            return web.json_response(_rpc_error(call_id, "INVALID_INPUT_DATA", method, "not served by the stand-in"))
        return web.json_response({"jsonrpc": "2.0", "result": result, "id": call_id})

    # --- orders ----------------------------------------------------------------------------------
    def _place(self, params: dict) -> dict:
        from betting.records import OrderRequest, OrderStatus, Persistence, Side

        market_id = str(params.get("marketId"))
        customer_ref = params.get("customerRef")
        seen = self.customer_refs.get(customer_ref) if customer_ref else None
        if seen is not None and time.monotonic() - seen < self.duplicate_window_s:
            return {
                "status": "FAILURE",
                "errorCode": "DUPLICATE_TRANSACTION",
                "marketId": market_id,
                "customerRef": customer_ref,
                "instructionReports": [],
            }
        if customer_ref:
            self.customer_refs[customer_ref] = time.monotonic()
        strategy = str(params.get("customerStrategyRef") or "")
        if market_id not in {m.market_id for m in self.markets}:
            return {
                "status": "FAILURE",
                "errorCode": "MARKET_NOT_FOUND",
                "marketId": market_id,
                "instructionReports": [],
            }
        reports = []
        for n, instruction in enumerate(params.get("instructions", [])):
            limit = instruction.get("limitOrder", {})
            ref = instruction.get("customerOrderRef") or f"standin-{len(self.placed) + n + 1}"
            order = self.exchange.place(
                OrderRequest(
                    customer_order_ref=ref,
                    market_id=market_id,
                    selection=str(instruction["selectionId"]),
                    side=Side(instruction["side"]),
                    price=float(limit["price"]),
                    size=float(limit["size"]),
                    persistence=Persistence(limit.get("persistenceType", "LAPSE")),
                )
            )
            ok = order.status is not OrderStatus.REJECTED
            if ok:
                self._strategy[str(order.bet_id)] = strategy
                self.placed.append(
                    {
                        "customerRef": customer_ref,
                        "customerOrderRef": ref,
                        "betId": order.bet_id,
                        "marketId": market_id,
                        "selectionId": instruction["selectionId"],
                        "side": instruction["side"],
                        "price": order.price,
                        "size": order.size,
                    }
                )
            reports.append(
                {
                    "status": "SUCCESS" if ok else "FAILURE",
                    **({} if ok else {"errorCode": str(order.error_code)}),
                    "instruction": instruction,
                    "betId": order.bet_id,
                    "placedDate": _iso(order.placed_at),
                    "averagePriceMatched": order.average_price_matched or 0.0,
                    "sizeMatched": order.size_matched,
                    "orderStatus": str(order.status),
                }
            )
        status = "SUCCESS" if all(r["status"] == "SUCCESS" for r in reports) else "FAILURE"
        return {"customerRef": customer_ref, "status": status, "marketId": market_id, "instructionReports": reports}

    def _by_bet(self, bet_id: str) -> Any:
        return next((o for o in self.exchange.orders() if o.bet_id == bet_id), None)

    def _cancel(self, params: dict) -> dict:
        reports = []
        for instruction in params.get("instructions", []):
            order = self._by_bet(str(instruction.get("betId")))
            if order is None:
                reports.append({"status": "FAILURE", "errorCode": "BET_TAKEN_OR_LAPSED", "instruction": instruction})
                continue
            before = order.size_cancelled
            after = self.exchange.cancel(order.customer_order_ref)
            reports.append(
                {
                    "status": "SUCCESS",
                    "instruction": instruction,
                    "sizeCancelled": after.size_cancelled - before,
                    "cancelledDate": _iso(self.clock.now()),
                }
            )
        return {"status": "SUCCESS", "marketId": params.get("marketId"), "instructionReports": reports}

    def _current(self, params: dict) -> dict:
        refs = set(params.get("customerOrderRefs") or [])
        bets = set(params.get("betIds") or [])
        markets = set(params.get("marketIds") or [])
        self.exchange.poll()
        out = []
        for o in self.exchange.orders():
            if (
                o.status.value == "REJECTED"
                or (refs and o.customer_order_ref not in refs)
                or (bets and o.bet_id not in bets)
            ):
                continue
            if markets and o.market_id not in markets:
                continue
            out.append(
                {
                    "betId": o.bet_id,
                    "marketId": o.market_id,
                    "selectionId": int(o.selection),
                    "handicap": 0.0,
                    "priceSize": {"price": o.price, "size": o.size},
                    "bspLiability": 0.0,
                    "side": str(o.side),
                    "status": str(o.status),
                    "persistenceType": str(o.persistence),
                    "orderType": "LIMIT",
                    "placedDate": _iso(o.placed_at),
                    "averagePriceMatched": o.average_price_matched or 0.0,
                    "sizeMatched": o.size_matched,
                    "sizeRemaining": o.size_remaining,
                    "sizeLapsed": o.size_lapsed,
                    "sizeCancelled": o.size_cancelled,
                    "sizeVoided": 0.0,
                    "regulatorCode": "MALTA LOTTERIES AND GAMBLING AUTHORITY",
                    "customerOrderRef": o.customer_order_ref,
                    "customerStrategyRef": "courtside",
                }
            )
        return {"currentOrders": out, "moreAvailable": False}

    @staticmethod
    def _catalogue(m: StandInMarket) -> dict:
        when = m.start.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return {  # the shape of the real answer (list_market_catalogue.json)
            "marketId": m.market_id,
            "marketName": "Match Odds",
            "marketStartTime": when,
            "description": {
                "priceLadderDescription": {"type": "CLASSIC"},
                "persistenceEnabled": True,
                "bspMarket": False,
                "marketTime": when,
                "suspendTime": when,
                "bettingType": "ODDS",
                "turnInPlayEnabled": True,
                "marketType": "MATCH_ODDS",
                "regulator": "MALTA LOTTERIES AND GAMBLING AUTHORITY",
                "marketBaseRate": 5.0,
                "discountAllowed": True,
                "wallet": "UK wallet",
                "rulesHasDate": True,
            },
            "totalMatched": 0.0,
            "runners": [
                {
                    "selectionId": sel,
                    "runnerName": name,
                    "handicap": 0.0,
                    "sortPriority": n,
                    "metadata": {"runnerId": str(sel)},
                }
                for n, (sel, name) in enumerate(m.runners, start=1)
            ],
            "eventType": {"id": "2", "name": "Tennis"},
            "competition": {"id": "2", "name": "Stand-in Open"},
            "event": {
                "id": m.market_id.replace(".", ""),
                "name": m.event_name,
                "countryCode": "GB",
                "timezone": "Europe/London",
                "openDate": when,
            },
        }

    # --- the Exchange Stream API ------------------------------------------------------------------
    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await self._send(writer, {"op": "connection", "connectionId": f"standin-{self.connections}"})
        authenticated = False
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                except ValueError:
                    continue
                op, rid = request.get("op"), request.get("id")
                if op == "authentication":
                    authenticated = request.get("appKey") == self.app_key and request.get("session") in self.sessions
                    status = {
                        "op": "status",
                        "id": rid,
                        "statusCode": "SUCCESS" if authenticated else "FAILURE",
                        "connectionClosed": not authenticated,
                    }
                    if not authenticated:
                        status.update(errorCode="NO_SESSION", errorMessage="the session token is not valid")
                    await self._send(writer, status)
                    if not authenticated:
                        break
                elif op == "heartbeat":
                    await self._send(
                        writer, {"op": "status", "id": rid, "statusCode": "SUCCESS", "connectionClosed": False}
                    )
                elif op == "marketSubscription" and authenticated:
                    await self._subscribe(writer, request)
                elif op == "orderSubscription" and authenticated:
                    await self._subscribe_orders(writer, request)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._subscribers = [s for s in self._subscribers if s.writer is not writer]
            self._order_subscribers = [s for s in self._order_subscribers if s.writer is not writer]
            writer.close()

    async def _subscribe(self, writer: asyncio.StreamWriter, request: dict) -> None:
        self.subscriptions.append(request)
        rid = request["id"]
        ids = set((request.get("marketFilter") or {}).get("marketIds") or [m.market_id for m in self.markets])
        await self._send(writer, {"op": "status", "id": rid, "statusCode": "SUCCESS", "connectionClosed": False})
        after = int(request["clk"]) if request.get("clk") else 0
        backlog = [(clk, change, pt) for clk, mid, change, pt in self._log if mid in ids and clk > after]
        ct = "RESUB_DELTA" if after else "SUB_IMAGE"
        if not backlog:  # nothing yet (or nothing missed): the image is empty, the clk where it stands
            latest = max((clk for clk, *_ in self._log), default=0)
            await self._send(
                writer,
                {"op": "mcm", "id": rid, "initialClk": "0", "clk": str(max(latest, after)), "ct": ct, "pt": _now_ms()},
            )
        for n, (clk, change, pt) in enumerate(backlog):
            message: dict[str, Any] = {"op": "mcm", "id": rid, "clk": str(clk), "pt": pt, "mc": [change]}
            if n == 0:
                message.update(initialClk="0", ct=ct)
            await self._send(writer, message)
        self._subscribers.append(_Subscriber(writer, rid, ids))

    # --- the order stream -------------------------------------------------------------------------
    def _uo(self, o: Any) -> dict:
        """One order as the order stream's ``uo`` (the shape of ``streaming_ocm_UPDATE.json``)."""
        ms = _ms(o.placed_at)
        uo = {
            "id": o.bet_id,
            "p": o.price,
            "s": o.size,
            "side": "B" if str(o.side) == "BACK" else "L",
            "status": "EC" if str(o.status) == "EXECUTION_COMPLETE" else "E",
            "pt": "P" if str(o.persistence) == "PERSIST" else "L",
            "ot": "L",
            "pd": ms,
            "sm": o.size_matched,
            "sr": o.size_remaining,
            "sl": o.size_lapsed,
            "sc": o.size_cancelled,
            "sv": 0.0,
            "rac": "",
            "rc": "REG_GGC",
            "rfo": o.customer_order_ref,
            "rfs": self._strategy.get(str(o.bet_id), ""),
        }
        if o.size_matched:
            uo.update(avp=o.average_price_matched, md=_ms(o.updated_at))
        if o.size_lapsed:
            uo.update(ld=_ms(o.updated_at), lsrc=str(o.lapse_reason or "MKT_UNKNOWN"))
        if o.size_cancelled:
            uo["cd"] = _ms(o.updated_at)
        return uo

    async def _orders_changed(self) -> None:
        """Every order whose state changed since the stream last told it: one ``ocm`` delta, with its clk."""
        changed: list[tuple[str, int, dict]] = []
        for o in self.exchange.orders():
            if str(o.status) in ("REJECTED", "PENDING") or o.bet_id is None:
                continue  # never on the book / still in its bet delay
            uo = self._uo(o)
            if self._order_seen.get(o.bet_id) != uo:
                self._order_seen[o.bet_id] = uo
                changed.append((o.market_id, int(o.selection), uo))
        if not changed:
            return
        clk = next(self._clk)
        for market_id, _, uo in changed:
            self._order_log.append((clk, market_id, uo["rfs"], uo))
        for sub in list(self._order_subscribers):
            oc = _order_changes([(m, sel, uo) for m, sel, uo in changed if _wanted(sub.strategies, uo)])
            if not oc:
                continue
            try:
                await self._send(
                    sub.writer, {"op": "ocm", "id": sub.sub_id, "clk": str(clk), "pt": _now_ms(), "oc": oc}
                )
            except ConnectionError:
                self._order_subscribers.remove(sub)

    async def _subscribe_orders(self, writer: asyncio.StreamWriter, request: dict) -> None:
        self.order_subscriptions.append(request)
        rid = request["id"]
        strategies = set((request.get("orderFilter") or {}).get("customerStrategyRefs") or [])
        await self._send(writer, {"op": "status", "id": rid, "statusCode": "SUCCESS", "connectionClosed": False})
        after = int(request["clk"]) if request.get("clk") else 0
        latest: dict[str, tuple[str, int, dict]] = {}  # bet id -> its latest state after the clk
        selection = {str(o.bet_id): int(o.selection) for o in self.exchange.orders() if o.bet_id}
        for clk, market_id, _, uo in self._order_log:
            if clk > after and _wanted(strategies, uo):
                latest[uo["id"]] = (market_id, selection[uo["id"]], uo)
        oc = _order_changes(list(latest.values()), full_image=not after)
        top = max((clk for clk, *_ in self._order_log), default=0)
        message: dict[str, Any] = {
            "op": "ocm",
            "id": rid,
            "initialClk": "0",
            "clk": str(max(top, after)),
            "ct": "RESUB_DELTA" if after else "SUB_IMAGE",
            "pt": _now_ms(),
        }
        if oc:
            message["oc"] = oc
        await self._send(writer, message)
        self._order_subscribers.append(_OrderSubscriber(writer, rid, strategies))

    def release(self) -> None:
        """Answer the held ``placeOrders`` call (``hold_at``)."""
        self.hold_at = None
        if self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    async def _send(self, writer: asyncio.StreamWriter, message: dict) -> None:
        writer.write(json.dumps(message).encode() + CRLF)
        await writer.drain()

    def advance(self, steps: int = 1) -> int:
        """Play each market's next ``steps`` messages to the subscribers; returns the messages played."""
        return asyncio.run_coroutine_threadsafe(self._advance(steps), self._loop).result(timeout=30)

    def advance_market(self, market_id: str) -> int:
        """Play only that market's next message (markets on their own timelines); returns 0 when none is left."""
        return asyncio.run_coroutine_threadsafe(self._advance(1, market_id), self._loop).result(timeout=30)

    async def _advance(self, steps: int, only: str | None = None) -> int:
        played = 0
        for _ in range(steps):
            for m in self.markets:
                if m.played >= len(m.messages) or (only is not None and m.market_id != only):
                    continue
                message = m.messages[m.played]
                if m.books:  # the stand-in's own exchange sees the same prices, on the market's clock
                    self._match_against(m, *m.books[m.played])
                    await self._orders_changed()  # fills and lapses reach the order stream first
                m.played += 1
                clk = next(self._clk)
                for change in message["mc"]:
                    self._log.append((clk, m.market_id, change, message["pt"]))
                    for sub in list(self._subscribers):
                        if m.market_id in sub.markets:
                            out = {"op": "mcm", "id": sub.sub_id, "clk": str(clk), "pt": message["pt"], "mc": [change]}
                            try:
                                await self._send(sub.writer, out)
                            except ConnectionError:
                                self._subscribers.remove(sub)
                played += 1
        return played

    def _match_against(self, m: StandInMarket, at: dt.datetime, update: Any) -> None:
        from betting.market import MarketBook, MarketStatus, RunnerBook

        if at > self.clock.now():
            self.clock.set(at)
        ids = {"First Player": str(m.runners[0][0]), "Second Player": str(m.runners[1][0])}
        runners = tuple(
            RunnerBook.top_of_book(
                ids[r.selection], r.back_price, r.back_size, r.lay_price, r.lay_size, r.traded_volume
            )
            for r in update.runners
        )
        self.exchange.on_market_book(
            MarketBook(
                market_id=m.market_id,
                publish_time=self.clock.now(),
                status=MarketStatus(update.status),
                in_play=update.in_play,
                runners=runners,
            )
        )

    @property
    def done(self) -> bool:
        return all(m.played >= len(m.messages) for m in self.markets)

    def drop(self) -> int:
        """Close every stream connection (a network cut); returns how many."""
        return asyncio.run_coroutine_threadsafe(self._drop(), self._loop).result(timeout=30)

    async def _drop(self) -> int:
        writers = {s.writer for s in self._subscribers} | {s.writer for s in self._order_subscribers}
        self._subscribers, self._order_subscribers = [], []
        for writer in writers:
            writer.close()
        return len(writers)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def _wanted(strategies: set[str], uo: dict) -> bool:
    return not strategies or uo["rfs"] in strategies


def _order_changes(changed: list[tuple[str, int, dict]], full_image: bool = False) -> list[dict]:
    """Orders as the order stream's ``oc``: per market, per runner (``orc``), its orders (``uo``)."""
    markets: dict[str, dict[int, list[dict]]] = {}
    for market_id, selection, uo in changed:
        markets.setdefault(market_id, {}).setdefault(selection, []).append(uo)
    out = []
    for market_id, runners in markets.items():
        orc = [{"id": sel, **({"fullImage": True} if full_image else {}), "uo": uos} for sel, uos in runners.items()]
        out.append({"id": market_id, **({"fullImage": True} if full_image else {}), "orc": orc})
    return out


def _now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


def _rpc_error(call_id: Any, code: str, method: str, detail: str = "") -> dict:
    """API-NG's error object (``APINGException``), as Betfair answers a refused call."""
    return {
        "jsonrpc": "2.0",
        "error": {
            "code": -32099,
            "message": "ANGX-0003",
            "data": {
                "APINGException": {"requestUUID": "standin", "errorCode": code, "errorDetails": detail or method},
                "exceptionname": "APINGException",
            },
        },
        "id": call_id,
    }
