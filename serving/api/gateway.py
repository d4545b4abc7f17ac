"""The WebSocket gateway: rooms per match, coalesced updates, heartbeats, slow clients dropped,
resume by sequence number. Runs in the API process on its own port (``ws://HOST:8001/ws``).

Protocol (JSON text frames; full description in docs/API.md)
-----------------------------------------------------------
Client -> server::

    {
        "type": "subscribe",
        "match_id": "<match id>" | "*" | "ledger" | "alert:<id>",
        "last_seq": 41,
        "session": "<session>",  # last_seq/session only to resume
        "token": "<read or operator token>",
    }  # for "ledger" and "alert:<id>" only
    {"type": "unsubscribe", "match_id": "..."}
    {"type": "ping"}  # answered with {"type": "pong"}

Server -> client::

    {"type": "subscribed", "room", "match_id", "session", "seq", "resumed": bool, "replayed": n,
     "gap": null | {"from", "to", "reason"}, "snapshot": [message, ...]}
    {"type": "odds_update" | "game_event" | "prediction_update" | "value_bet"      (match rooms, "*")
            | "bet_update" | "bankroll_update",                                   ("ledger")
     "room", "match_id", "seq", "ts", "sent", "data"}
    {"type": "heartbeat", "room", "seq", "ts"}        # every heartbeat_s per room (and to idle clients)
    {"type": "unsubscribed", "match_id"} | {"type": "pong"} | {"type": "reset", "reason"}
    {"type": "error", "code", "message"}

- ``room`` is the room a message was sent to (the match id, ``*``, ``ledger``, ``alert:<id>``): the
  same update reaches a client once per room it is in, each time with that room's ``seq``.
- ``seq`` counts the messages of one room (1, 2, ...) within one gateway ``session`` (a client
  ignores a message whose seq it has seen: after an unsubscribe/subscribe race one can repeat); ``ts`` is the
  event time of the update (the feed's clock), ``sent`` the server's wall clock (Unix seconds) when the
  message left, for measuring delivery.
- Coalescing: a room sends at most ``rate_hz`` flushes a second. Within a flush, ``game_event``,
  ``odds_update`` and ``prediction_update`` carry the *latest* state of their match (intermediate
  states are replaced, never queued); ``value_bet``, ``bet_update`` and ``bankroll_update`` are each
  delivered.
- Fan-out: each message is serialized once as a WebSocket frame (no compression, server frames are
  not masked, so the bytes are the same for every subscriber) and a flush is one socket write per
  subscriber, in slices of ``WRITE_SLICE`` subscribers with the event loop free in between (the REST
  API in the same process keeps answering during a fan-out to 10,000).
- Slow clients: updates are written to every subscriber without waiting. A client whose unsent data
  exceeds ``max_lag_bytes`` is dropped: removed from its rooms at once and closed with code 4008 and
  the reason, so it never slows the others. It can reconnect and resume.
- Resume: subscribe with the ``last_seq`` (and ``session``) seen; the messages after it are replayed
  from the room's buffer (the last ``buffer_size`` messages). When they are no longer buffered, or the
  gateway restarted (another session), ``gap`` says what is missing and why and a ``snapshot`` of the
  current state follows instead (fetch histories over REST).
- Access: the handshake of a browser page whose ``Origin`` is not an allowed origin is refused (403,
  ``handshake_check``); a client sending no ``Origin`` is not a browser page and may connect. Match
  rooms and ``*`` are public; ``ledger`` and ``alert:<id>`` need one of ``GatewayConfig.tokens`` (the
  read token, the operator token), given as ``"token"`` in a subscribe message or as
  ``Authorization: Bearer`` on the handshake; once shown, it holds for the connection. With no token
  configured those rooms are closed. Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State

from serving.api.views import Update
from serving.errors import error_content, excerpt

log = logging.getLogger(__name__)

SLOW_CLIENT_CLOSE = 4008
"""Close code of a client dropped for falling behind (application range 4000-4999)."""
TOO_MANY_ERRORS_CLOSE = 1008
MAX_ROOMS_PER_CLIENT = 64
MAX_ERRORS = 20
WRITE_SLICE = 500
"""Subscribers written to before the event loop gets a turn (a slice takes a few milliseconds)."""


@dataclass(frozen=True)
class GatewayConfig:
    """The gateway's behaviour, field by field."""

    rate_hz: float = 4.0
    """Flushes a second per room at most (coalescing)."""
    heartbeat_s: float = 5.0
    """Seconds between heartbeats of a room (and to clients in no room)."""
    buffer_size: int = 512
    """Messages kept per room for resuming clients."""
    max_lag_bytes: int = 256 << 10
    """Unsent bytes (beyond what the kernel's socket buffer holds) after which a client is dropped as
    too slow: a few seconds of a busy room. Bounds the memory a stalled client can take."""
    send_buffer_bytes: int | None = 64 << 10
    """Kernel send buffer of each connection (SO_SNDBUF; None: the kernel's autotuning, up to MBs): what
    a stalled client can hold in the kernel before it counts as behind."""
    tokens: tuple[str, ...] = field(default=(), repr=False)
    """Tokens that open the ``ledger`` and ``alert:<id>`` rooms (the read token, the operator token);
    none: those rooms are closed."""


def protected(room: str) -> bool:
    """Rooms with the ledger's or an alert subscriber's data: they need a token."""
    return room == "ledger" or room.startswith("alert:")


def _http_error(status: int, reason: str, message: str, *extra: tuple[str, str]) -> Response:
    body = json.dumps(error_content(status, message)).encode()
    return Response(
        status,
        reason,
        Headers([*extra, ("Content-Type", "application/json"), ("Content-Length", str(len(body)))]),
        body,
    )


def handshake_check(path: str, origins: Iterable[str]) -> Callable[[ServerConnection, Request], Response | None]:
    """The gateway's ``process_request``: its one path, and no browser page of a foreign origin (a
    cross-site page could otherwise read the rooms with the visitor's network position)."""
    allowed = frozenset(origins)

    def check(_: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?")[0] != path:
            return _http_error(404, "Not Found", f"the WebSocket gateway is at {path}")
        sent = request.headers.get_all("Origin")
        if sent and (len(sent) > 1 or sent[0] not in allowed):
            return _http_error(
                403,
                "Forbidden",
                f"origin {excerpt(', '.join(sent))} may not open the gateway; "
                "allowed origins are set by COURTSIDE_ALLOWED_ORIGINS",
            )
        if "websocket" not in ",".join(request.headers.get_all("Upgrade")).lower():
            return _http_error(
                426,
                "Upgrade Required",
                f"this is the WebSocket gateway: open ws://HOST:PORT{path}",
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
            )
        return None

    return check


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def encode(message: dict[str, Any]) -> bytes:
    """One message as a complete WebSocket text frame (JSON, UTF-8, unmasked: server to client)."""
    payload = json.dumps(message, default=_default, separators=(",", ":")).encode()
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, deque | set | tuple):
        return list(value)
    return str(value)


@dataclass(eq=False)
class Client:
    """One WebSocket connection and the rooms it is in."""

    conn: ServerConnection
    rooms: set[str] = field(default_factory=set)
    errors: int = 0
    dropped: str | None = None
    authorized: bool = False
    """Has shown a token: may enter the protected rooms."""

    @property
    def address(self) -> str:
        peer = self.conn.remote_address
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


@dataclass(eq=False)
class Room:
    """Subscribers of one match (or ``*``, ``ledger``, an alert) and its numbered messages."""

    name: str
    buffer_size: int
    seq: int = 0
    subscribers: set[Client] = field(default_factory=set)
    buffer: deque[tuple[int, bytes]] = field(default_factory=deque)
    """(seq, frame) of the latest messages."""
    pending: dict[tuple[str, str | None], Update] = field(default_factory=dict)
    """Coalesced updates waiting for the next flush (latest per type and match)."""
    queued: list[Update] = field(default_factory=list)
    """Updates delivered one by one at the next flush (value bets, bets, settlements)."""
    next_flush: float = 0.0
    scheduled: asyncio.TimerHandle | None = None
    writing: asyncio.Task | None = None
    """A flush still being written to a large room (the next one waits for it: order per client)."""


@dataclass
class GatewayStats:
    """Figures of the gateway since it started (the latency windows keep the last 10,000 values)."""

    connections: int = 0
    dropped_slow: int = 0
    messages: int = 0
    frames_written: int = 0
    lag_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    """Log commit -> message sent (the delivery clock inside the server), per message."""
    fanout_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    """Time to write one flush to every subscriber of its room."""


def percentiles(values: Iterable[float]) -> dict[str, float | int] | None:
    """n, p50, p99, max of a sample (None when empty)."""
    v = sorted(values)
    if not v:
        return None
    return {
        "n": len(v),
        "p50": round(v[len(v) // 2], 3),
        "p99": round(v[int(0.99 * (len(v) - 1))], 3),
        "max": round(v[-1], 3),
    }


class Gateway:
    """Rooms, coalescing and delivery. ``publish`` takes updates from the log tailer; ``handler``
    serves one WebSocket connection (give it to ``websockets.asyncio.server.serve``)."""

    def __init__(
        self, config: GatewayConfig, room_exists: Callable[[str], bool], snapshot: Callable[[str], list[dict[str, Any]]]
    ):
        self.cfg = config
        self.room_exists = room_exists
        self.snapshot = snapshot
        self.session = secrets.token_hex(6)
        self.rooms: dict[str, Room] = {}
        self.clients: set[Client] = set()
        self.stats = GatewayStats()
        self._heartbeats: asyncio.Task | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._heartbeats = asyncio.get_running_loop().create_task(self._heartbeat_loop())

    async def stop(self) -> None:
        if self._heartbeats is not None:
            self._heartbeats.cancel()
        for room in self.rooms.values():
            if room.scheduled is not None:
                room.scheduled.cancel()
            if room.writing is not None:
                room.writing.cancel()

    def reset(self, reason: str) -> None:
        """The log was reset: new session, empty rooms (subscribers stay), everyone told."""
        self.session = secrets.token_hex(6)
        frame = encode({"type": "reset", "reason": reason, "session": self.session})
        for room in self.rooms.values():
            room.seq, room.pending, room.queued = 0, {}, []
            room.buffer.clear()
        for client in list(self.clients):
            self._write(client, frame)

    # --- publishing ---------------------------------------------------------------------------
    def _room(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name, self.cfg.buffer_size)
        return room

    def publish(self, update: Update, extra_rooms: Iterable[str] = ()) -> None:
        """Queue an update for its rooms; each room flushes when its rate allows."""
        for name in (*update.rooms, *extra_rooms):
            room = self._room(name)
            if update.coalesce:
                room.pending[update.key] = update
            else:
                room.queued.append(update)
            self._schedule(room)

    def _schedule(self, room: Room) -> None:
        if room.scheduled is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, room.next_flush - time.monotonic())
        room.scheduled = loop.call_later(delay, self.flush, room)

    def flush(self, room: Room) -> None:
        """Number, buffer and send the room's waiting updates (coalesced first, then one by one)."""
        room.scheduled = None
        if room.writing is not None and not room.writing.done():
            room.writing.add_done_callback(lambda _: self._schedule(room))
            return
        room.next_flush = time.monotonic() + 1.0 / self.cfg.rate_hz
        updates = [*room.pending.values(), *room.queued]
        room.pending, room.queued = {}, []
        if not updates:
            return
        started = time.perf_counter()
        now = time.time()
        frames = []
        for u in sorted(updates, key=lambda u: u.ts):
            room.seq += 1
            frame = encode(
                {
                    "type": u.type,
                    "room": room.name,
                    "match_id": u.match_id,
                    "seq": room.seq,
                    "ts": u.ts,
                    "sent": now,
                    "data": u.data,
                }
            )
            room.buffer.append((room.seq, frame))
            frames.append(frame)
            if u.recorded_at is not None:
                self.stats.lag_ms.append((now - u.recorded_at.timestamp()) * 1000)
        while len(room.buffer) > room.buffer_size:
            room.buffer.popleft()
        self.stats.messages += len(frames)
        blob = b"".join(frames)
        subscribers = list(room.subscribers)
        if len(subscribers) <= WRITE_SLICE:
            for client in subscribers:
                self._write(client, blob, len(frames))
            if subscribers:
                self.stats.fanout_ms.append((time.perf_counter() - started) * 1000)
            return
        room.writing = asyncio.get_running_loop().create_task(
            self._write_slices(subscribers, blob, len(frames), started)
        )

    async def _write_slices(self, subscribers: list[Client], blob: bytes, count: int, started: float) -> None:
        for i in range(0, len(subscribers), WRITE_SLICE):
            if i:
                await asyncio.sleep(0)
            for client in subscribers[i : i + WRITE_SLICE]:
                self._write(client, blob, count)
        self.stats.fanout_ms.append((time.perf_counter() - started) * 1000)

    # --- writing ------------------------------------------------------------------------------
    def _write(self, client: Client, frames: bytes, count: int = 1) -> bool:
        """Write serialized frames without waiting; drop the client when its unsent data passes the limit.

        The frames go straight to the transport, as ``websockets.broadcast`` would write them but
        serialized once for everyone: no extension is negotiated (``compression=None``) and no
        message is ever fragmented, so the connection's protocol state is not affected."""
        conn = client.conn
        if client.dropped is not None or conn.protocol.state is not State.OPEN:
            return False
        transport = conn.transport
        backlog = transport.get_write_buffer_size()
        if backlog > self.cfg.max_lag_bytes:
            self.drop(
                client,
                SLOW_CLIENT_CLOSE,
                f"slow consumer: {backlog} bytes unsent (limit {self.cfg.max_lag_bytes}); "
                "reconnect and resume with last_seq",
            )
            return False
        try:
            transport.write(frames)
        except Exception as exc:  # noqa: BLE001 - a broken connection must not stop the fan-out
            log.debug("write to %s failed: %s", client.address, exc)
            return False
        self.stats.frames_written += count
        return True

    def _send(self, client: Client, message: dict[str, Any]) -> None:
        self._write(client, encode(message))

    def drop(self, client: Client, code: int, reason: str) -> None:
        """Take the client out of every room now and close its connection with the reason."""
        if client.dropped is not None:
            return
        client.dropped = reason
        for name in client.rooms:
            room = self.rooms.get(name)
            if room is not None:
                room.subscribers.discard(client)
        client.rooms.clear()
        if code == SLOW_CLIENT_CLOSE:
            self.stats.dropped_slow += 1
        log.info("dropping %s: %s", client.address, reason)
        asyncio.get_running_loop().create_task(client.conn.close(code, reason[:120]))

    # --- serving a connection -------------------------------------------------------------------
    async def handler(self, conn: ServerConnection) -> None:
        if self.cfg.send_buffer_bytes:
            sock = conn.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.cfg.send_buffer_bytes)
        client = Client(conn)
        sent = conn.request.headers.get_all("Authorization") if conn.request is not None else []
        scheme, _, credentials = (sent[0] if len(sent) == 1 else "").partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            client.authorized = self._valid_token(credentials.strip())
        self.clients.add(client)
        self.stats.connections += 1
        try:
            async for raw in conn:
                self.on_message(client, raw)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            for name in client.rooms:
                room = self.rooms.get(name)
                if room is not None:
                    room.subscribers.discard(client)

    def _error(self, client: Client, code: str, message: str) -> None:
        client.errors += 1
        self._send(client, {"type": "error", "code": code, "message": message})
        if client.errors >= MAX_ERRORS:
            self.drop(client, TOO_MANY_ERRORS_CLOSE, f"{client.errors} protocol errors")

    def on_message(self, client: Client, raw: str | bytes) -> None:
        """Handle one client message (synchronously: nothing is sent in between)."""
        try:
            msg = json.loads(raw)
        except ValueError:
            return self._error(client, "bad_json", "messages must be JSON objects")
        if not isinstance(msg, dict):
            return self._error(client, "bad_message", "messages must be JSON objects")
        kind = msg.get("type")
        if kind == "ping":
            return self._send(client, {"type": "pong", "ts": _iso(datetime.now(UTC))})
        if kind not in ("subscribe", "unsubscribe"):
            return self._error(
                client, "unknown_type", f"unknown message type {kind!r}: use subscribe, unsubscribe or ping"
            )
        name = msg.get("match_id")
        if not isinstance(name, str) or not name or len(name) > 128:
            return self._error(client, "bad_match_id", "match_id must be a non-empty string (<= 128 chars)")
        if kind == "unsubscribe":
            client.rooms.discard(name)
            if name in self.rooms:
                self.rooms[name].subscribers.discard(client)
            return self._send(client, {"type": "unsubscribed", "room": name, "match_id": name})
        if protected(name) and not client.authorized:
            refused = self._authorize(client, msg.get("token"))
            if refused is not None:
                return self._error(client, *refused)
        if not self.room_exists(name):
            return self._error(client, "unknown_match", f"no match {name!r} in the event log (nor a known room)")
        if name not in client.rooms and len(client.rooms) >= MAX_ROOMS_PER_CLIENT:
            return self._error(client, "too_many_rooms", f"at most {MAX_ROOMS_PER_CLIENT} rooms per connection")
        last_seq = msg.get("last_seq")
        if last_seq is not None and (not isinstance(last_seq, int) or isinstance(last_seq, bool) or last_seq < 0):
            return self._error(client, "bad_last_seq", "last_seq must be a non-negative integer")
        self.subscribe(client, name, last_seq, msg.get("session"))

    def _valid_token(self, token: str) -> bool:
        valid = False
        for known in self.cfg.tokens:  # every one compared, in constant time
            valid |= hmac.compare_digest(token.encode(), known.encode())
        return valid

    def _authorize(self, client: Client, token: Any) -> tuple[str, str] | None:
        """None when ``token`` opens the protected rooms (for the rest of the connection), else (code, why)."""
        if not self.cfg.tokens:
            return (
                "room_closed",
                "the ledger and alert rooms are closed: the server has no COURTSIDE_READ_TOKEN "
                "(nor an operator token) configured",
            )
        if token is None:
            return (
                "token_required",
                'the ledger and alert rooms need a token: send it as "token" in the subscribe '
                "message (or as Authorization: Bearer on the handshake)",
            )
        if not isinstance(token, str) or not self._valid_token(token):
            return ("bad_token", "invalid token")
        client.authorized = True
        return None

    def subscribe(self, client: Client, name: str, last_seq: int | None, session: str | None) -> None:
        """Join a room: replay what the client missed (or say why not, with a snapshot), then live."""
        room = self._room(name)
        ack: dict[str, Any] = {
            "type": "subscribed",
            "room": name,
            "match_id": name,
            "session": self.session,
            "seq": room.seq,
            "resumed": False,
            "replayed": 0,
            "gap": None,
            "snapshot": [],
        }
        replay: list[bytes] = []
        if last_seq is not None:
            oldest = room.buffer[0][0] if room.buffer else room.seq + 1
            if session is not None and session != self.session:
                ack["gap"] = {
                    "from": last_seq + 1,
                    "to": None,
                    "reason": "the gateway restarted (another session): sequence numbers started again",
                }
            elif last_seq > room.seq:
                ack["gap"] = {
                    "from": room.seq + 1,
                    "to": last_seq,
                    "reason": f"last_seq {last_seq} is ahead of this room ({room.seq})",
                }
            elif last_seq + 1 < oldest:
                ack["gap"] = {
                    "from": last_seq + 1,
                    "to": oldest - 1,
                    "reason": f"messages {last_seq + 1}..{oldest - 1} are no longer buffered (the last "
                    f"{self.cfg.buffer_size} of each room are kept)",
                }
            else:
                replay = [frame for seq, frame in room.buffer if seq > last_seq]
                ack["resumed"], ack["replayed"] = True, len(replay)
        if not ack["resumed"]:
            ack["snapshot"] = [{**m, "room": name, "seq": room.seq} for m in self.snapshot(name)]
        self._send(client, ack)
        if replay and not self._write(client, b"".join(replay), len(replay)):
            return
        if client.dropped is None:
            client.rooms.add(name)
            room.subscribers.add(client)

    # --- heartbeats -----------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.heartbeat_s)
            try:
                self.heartbeat()
            except Exception:  # noqa: BLE001 - heartbeats must go on
                log.exception("heartbeat failed")

    def heartbeat(self) -> None:
        """One heartbeat per room to its subscribers, and a bare one to clients in no room."""
        now = _iso(datetime.now(UTC))
        for room in list(self.rooms.values()):
            # not while a flush is being written: a heartbeat must never announce a seq before its message
            if room.subscribers and (room.writing is None or room.writing.done()):
                frame = encode({"type": "heartbeat", "room": room.name, "seq": room.seq, "ts": now})
                for client in list(room.subscribers):
                    self._write(client, frame)
        idle = encode({"type": "heartbeat", "room": None, "seq": None, "ts": now})
        for client in [c for c in self.clients if not c.rooms]:
            self._write(client, idle)

    def figures(self) -> dict[str, Any]:
        """Connections, rooms and delivery figures (for /metrics and /health)."""
        s = self.stats
        return {
            "session": self.session,
            "clients": len(self.clients),
            "connections_total": s.connections,
            "rooms": sum(1 for r in self.rooms.values() if r.subscribers),
            "subscriptions": sum(len(r.subscribers) for r in self.rooms.values()),
            "dropped_slow": s.dropped_slow,
            "messages": s.messages,
            "frames_written": s.frames_written,
            "log_to_send_ms": percentiles(s.lag_ms),
            "fanout_ms": percentiles(s.fanout_ms),
        }
