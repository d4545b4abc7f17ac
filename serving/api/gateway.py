"""The WebSocket gateway: rooms per match, coalesced updates, heartbeats, slow clients dropped,
resume by sequence number -- on any replica. Runs in the API process on its own port
(``ws://HOST:8001/ws``); ``python -m serving.api --replicas N`` runs N such processes on the same ports.

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
    {"type": "unsubscribed", "match_id"} | {"type": "pong"} | {"type": "reset", "reason", "session"}
    {"type": "error", "code", "message"}

- ``room`` is the room a message was sent to (the match id, ``*``, ``ledger``, ``alert:<id>``): the
  same update reaches a client once per room it is in.
- ``seq`` is the id of the event-log entry whose update the message carries (for a coalesced message,
  the newest entry it carries). It is the same in every replica and every room that sends that update,
  strictly increasing within a room, and NOT consecutive: the ids in between are entries of other
  rooms, or intermediate states replaced by coalescing. A client keeps the largest ``seq`` it has of
  each room and ignores a message whose ``seq`` is not larger (the gateway does not send one, but after
  an unsubscribe/subscribe race one can repeat). ``ts`` is the event time of the update (the feed's
  clock), ``sent`` the server's wall clock (Unix seconds) when the message left, for measuring delivery.
- ``session`` names the event log the seqs are of: derived from the log's first entry (its id and
  commit time), so every replica over one log, and a restarted gateway, has the same one; a reset of
  the log (a new paper-trading session) gives a new one (and a ``reset`` message). An empty log has
  the session ``EMPTY_LOG_SESSION``.
- Coalescing: a room sends at most ``rate_hz`` flushes a second. Within a flush, ``game_event``,
  ``odds_update`` and ``prediction_update`` carry the *latest* state of their match (intermediate
  states are replaced, never queued); ``value_bet``, ``bet_update`` and ``bankroll_update`` are each
  delivered. A flush carries every update of the log up to the entry the gateway has read (a cut of
  the log), in log order. Replicas read the log at their own pace, so they flush different batches;
  what they agree on is each message's seq and what it carries: the state as of that log entry.
- Fan-out: each message is serialized once as a WebSocket frame (no compression, server frames are
  not masked, so the bytes are the same for every subscriber) and a flush is one socket write per
  subscriber, in slices of ``WRITE_SLICE`` subscribers with the event loop free in between (the REST
  API in the same process keeps answering during a fan-out to 10,000).
- Slow clients: updates are written to every subscriber without waiting. A client whose unsent data
  exceeds ``max_lag_bytes`` is dropped: removed from its rooms at once and closed with code 4008 and
  the reason, so it never slows the others. It can reconnect and resume.
- Resume (on this gateway or any replica of the log): subscribe with the ``last_seq`` and ``session``
  seen. Every message of the room after ``last_seq`` that this gateway has is replayed from the room's
  buffer, and what it sends later starts after ``last_seq`` too (a replica that has not read the log
  as far as the client's ``last_seq`` yet skips, for that client, its messages up to it). This is
  exact across replicas: a flush is a cut of the log in log order, so a client that has the messages
  up to ``last_seq`` (of any replica) has every update up to that entry, and for every update after it
  any replica sends a message with a larger seq carrying that state or a newer one. When the buffer
  does not reach back to ``last_seq`` (the room's last ``buffer_size`` messages are kept, and a replica
  started later has none from before it followed the log) or the session is another log's, ``gap``
  says what is missing and why and a ``snapshot`` of the current state follows instead (fetch
  histories over REST).
- Capacity: a replica accepts at most ``max_clients`` connections (each is an open file); beyond, the
  handshake is answered 503 with ``Retry-After: 1``, so a client connects again (and may land on
  another replica).
- Garbage collection: a full collection of the process stops every flush; it scans ~77 objects per
  connection, so the long-lived connections are frozen out of it (``Gateway.tend_gc``); the pauses are
  in the figures (``gc_pause_ms``, ``gc_full_pauses``).
- Access: the handshake of a browser page whose ``Origin`` is not an allowed origin is refused (403,
  ``handshake_check``); a client sending no ``Origin`` is not a browser page and may connect. Match
  rooms and ``*`` are public; ``ledger`` and ``alert:<id>`` need one of ``GatewayConfig.tokens`` (the
  read token, the operator token), given as ``"token"`` in a subscribe message or as
  ``Authorization: Bearer`` on the handshake; once shown, it holds for the connection. With no token
  configured those rooms are closed. Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import json
import logging
import os
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
FREEZE_MIN_CLIENTS = 1_000
"""Clients from which the gateway keeps its connections out of the cyclic garbage collector's scans."""
EMPTY_LOG_SESSION = "000000000000"
"""The session of an empty event log (a log's session is derived from its first entry)."""


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
    max_clients: int | None = None
    """Connections this gateway holds at most (each is an open file: keep it under the process's limit);
    beyond, the handshake is answered 503 with ``Retry-After``. None: no limit."""
    replica: str | None = None
    """Which replica of ``python -m serving.api --replicas N`` this is ("1/3"), shown in the figures."""
    gc_freeze: bool = True
    """Keep long-lived connections out of the cyclic garbage collector's full collections (``Gateway.tend_gc``)."""


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


def handshake_check(
    path: str, origins: Iterable[str], admit: Callable[[ServerConnection], Response | None] | None = None
) -> Callable[[ServerConnection, Request], Response | None]:
    """The gateway's ``process_request``: its one path, and no browser page of a foreign origin (a
    cross-site page could otherwise read the rooms with the visitor's network position); then ``admit``
    (``Gateway.admit``: room for one more connection), when given."""
    allowed = frozenset(origins)

    def check(conn: ServerConnection, request: Request) -> Response | None:
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
        return admit(conn) if admit is not None else None

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
    floor: int = 0
    """The buffer holds every message of this room with a seq above this: older ones were evicted, or were
    sent before this gateway followed the log (its newest update then)."""
    evicted: int = 0
    """Seq of the newest message evicted from the buffer (0: none)."""
    seq: int = 0
    """Seq of the newest message sent (0: none yet)."""
    subscribers: set[Client] = field(default_factory=set)
    buffer: deque[tuple[int, bytes]] = field(default_factory=deque)
    """(seq, frame) of the latest messages."""
    pending: dict[tuple[str, str | None], tuple[int, Update]] = field(default_factory=dict)
    """Coalesced updates waiting for the next flush (latest per type and match), with their seq."""
    queued: list[tuple[int, Update]] = field(default_factory=list)
    """Updates delivered one by one at the next flush (value bets, bets, settlements), with their seq."""
    skips: dict[Client, int] = field(default_factory=dict)
    """Clients resumed ahead of this gateway (from a replica that had read further): their last_seq. Messages up
    to it are not written to them."""
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
    gc_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    """Pauses of the process's cyclic garbage collector (every generation): they stop the fan-out too."""
    gc_full: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=50))
    """(wall clock, pause ms) of the latest full (generation 2) collections: each scans every object, ~77 a
    WebSocket connection."""


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
    """Rooms, coalescing and delivery. ``publish`` takes updates from the log tailer, each with its seq (the id of
    the log entry that caused it); ``handler`` serves one WebSocket connection (give it to
    ``websockets.asyncio.server.serve``)."""

    def __init__(
        self,
        config: GatewayConfig,
        room_exists: Callable[[str], bool],
        snapshot: Callable[[str], list[dict[str, Any]]],
        session: str = EMPTY_LOG_SESSION,
    ):
        self.cfg = config
        self.room_exists = room_exists
        self.snapshot = snapshot
        self.session = session
        """The event log's session (``LiveService`` derives it from the log's first entry)."""
        self.floors: dict[str, int] = {}
        """Room -> its newest update before this gateway followed the log (the floor of a room made later)."""
        self.rooms: dict[str, Room] = {}
        self.clients: set[Client] = set()
        self.stats = GatewayStats()
        self._heartbeats: asyncio.Task | None = None
        self._gc_started: float | None = None
        self._frozen_clients = 0
        self._closed_since_freeze = 0

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._heartbeats = asyncio.get_running_loop().create_task(self._heartbeat_loop())
        gc.callbacks.append(self._gc_timer)

    def _gc_timer(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started is not None:
            pause = (time.perf_counter() - self._gc_started) * 1000
            self.stats.gc_ms.append(pause)
            if info.get("generation") == 2:
                self.stats.gc_full.append((round(time.time(), 3), round(pause, 1)))
            self._gc_started = None

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._gc_timer)
        if self._heartbeats is not None:
            self._heartbeats.cancel()
        for room in self.rooms.values():
            if room.scheduled is not None:
                room.scheduled.cancel()
            if room.writing is not None:
                room.writing.cancel()

    def follow(self, session: str, floors: dict[str, int]) -> None:
        """The log's session, and each room's newest update (seq) in the part of the log read before following it:
        messages up to those were never sent by this gateway, so a resume from before them is a gap here."""
        self.session = session
        self.floors = dict(floors)
        for name, room in self.rooms.items():
            room.floor = max(room.floor, self.floors.get(name, 0))

    def open_room(self, name: str, floor: int) -> None:
        """A room this gateway starts sending to now (an alert learnt from the database): messages up to ``floor``
        may have been sent by a replica that knew it before, not by this one."""
        self.floors[name] = max(self.floors.get(name, 0), floor)
        room = self.rooms.get(name)
        if room is None:
            self._room(name)
        elif not room.buffer and not room.pending and not room.queued:
            room.floor = max(room.floor, floor)

    def reset(self, reason: str, session: str = EMPTY_LOG_SESSION) -> None:
        """The log was reset: the new log's session, empty rooms (subscribers stay), everyone told."""
        self.session = session
        self.floors = {}
        frame = encode({"type": "reset", "reason": reason, "session": self.session})
        for room in self.rooms.values():
            room.seq, room.floor, room.evicted, room.pending, room.queued = 0, 0, 0, {}, []
            room.buffer.clear()
            room.skips.clear()
        for client in list(self.clients):
            self._write(client, frame)

    # --- publishing ---------------------------------------------------------------------------
    def _room(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name, self.cfg.buffer_size, floor=self.floors.get(name, 0))
        return room

    def publish(self, update: Update, extra_rooms: Iterable[str] = (), *, seq: int) -> None:
        """Queue an update for its rooms; each room flushes when its rate allows. ``seq`` is the id of the log
        entry that caused it: updates come in log order, and one entry causes at most one update per room."""
        for name in (*update.rooms, *extra_rooms):
            room = self._room(name)
            if update.coalesce:
                room.pending[update.key] = (seq, update)
            else:
                room.queued.append((seq, update))
            self._schedule(room)

    def _schedule(self, room: Room) -> None:
        if room.scheduled is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, room.next_flush - time.monotonic())
        room.scheduled = loop.call_later(delay, self.flush, room)

    def flush(self, room: Room) -> None:
        """Number, buffer and send the room's waiting updates, in log order (their seq)."""
        room.scheduled = None
        if room.writing is not None and not room.writing.done():
            room.writing.add_done_callback(lambda _: self._schedule(room))
            return
        room.next_flush = time.monotonic() + 1.0 / self.cfg.rate_hz
        updates = sorted([*room.pending.values(), *room.queued], key=lambda e: e[0])
        room.pending, room.queued = {}, []
        if not updates:
            return
        started = time.perf_counter()
        now = time.time()
        frames: list[tuple[int, bytes]] = []
        for seq, u in updates:
            frame = encode(
                {
                    "type": u.type,
                    "room": room.name,
                    "match_id": u.match_id,
                    "seq": seq,
                    "ts": u.ts,
                    "sent": now,
                    "data": u.data,
                }
            )
            room.buffer.append((seq, frame))
            frames.append((seq, frame))
            if u.recorded_at is not None:
                self.stats.lag_ms.append((now - u.recorded_at.timestamp()) * 1000)
        room.seq = max(room.seq, frames[-1][0])
        while len(room.buffer) > room.buffer_size:
            room.evicted = room.buffer.popleft()[0]
            room.floor = max(room.floor, room.evicted)
        self.stats.messages += len(frames)
        blob = b"".join(f for _, f in frames)
        special = self._skipped(room, frames) if room.skips else {}
        subscribers = list(room.subscribers)
        if len(subscribers) <= WRITE_SLICE:
            self._write_all(subscribers, blob, len(frames), special)
            if subscribers:
                self.stats.fanout_ms.append((time.perf_counter() - started) * 1000)
            return
        room.writing = asyncio.get_running_loop().create_task(
            self._write_slices(subscribers, blob, len(frames), special, started)
        )

    @staticmethod
    def _skipped(room: Room, frames: list[tuple[int, bytes]]) -> dict[Client, tuple[bytes, int]]:
        """What the flush sends to the clients resumed ahead of this gateway: the frames after their last_seq."""
        special: dict[Client, tuple[bytes, int]] = {}
        for client, skip in list(room.skips.items()):
            if skip >= frames[0][0]:
                part = [f for s, f in frames if s > skip]
                special[client] = (b"".join(part), len(part))
            if room.seq >= skip:  # this gateway has caught up with the client
                del room.skips[client]
        return special

    def _write_all(
        self, clients: list[Client], blob: bytes, count: int, special: dict[Client, tuple[bytes, int]]
    ) -> None:
        if not special:
            for client in clients:
                self._write(client, blob, count)
            return
        for client in clients:
            own = special.get(client)
            if own is None:
                self._write(client, blob, count)
            elif own[1]:
                self._write(client, *own)

    async def _write_slices(
        self,
        subscribers: list[Client],
        blob: bytes,
        count: int,
        special: dict[Client, tuple[bytes, int]],
        started: float,
    ) -> None:
        for i in range(0, len(subscribers), WRITE_SLICE):
            if i:
                await asyncio.sleep(0)
            self._write_all(subscribers[i : i + WRITE_SLICE], blob, count, special)
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

    def admit(self, conn: ServerConnection) -> Response | None:
        """None when there is room for one more connection (``max_clients``), else the 503 to answer."""
        limit = self.cfg.max_clients
        if limit is None:
            return None
        held = len(conn.server.handler_tasks)  # every connection accepted, this one and those in a handshake too
        if held <= limit:
            return None
        return _http_error(
            503,
            "Service Unavailable",
            f"this gateway is full ({held - 1} connections, at most {limit}): connect again "
            "(behind a load balancer another replica may answer)",
            ("Retry-After", "1"),
        )

    def _send(self, client: Client, message: dict[str, Any]) -> None:
        self._write(client, encode(message))

    def drop(self, client: Client, code: int, reason: str) -> None:
        """Take the client out of every room now and close its connection with the reason."""
        if client.dropped is not None:
            return
        client.dropped = reason
        for name in list(client.rooms):
            self._leave(client, name)
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
            self._closed_since_freeze += 1
            for name in list(client.rooms):
                self._leave(client, name)

    def _leave(self, client: Client, name: str) -> None:
        client.rooms.discard(name)
        room = self.rooms.get(name)
        if room is not None:
            room.subscribers.discard(client)
            room.skips.pop(client, None)

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
            self._leave(client, name)
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
            if session is not None and session != self.session:
                ack["gap"] = {
                    "from": last_seq + 1,
                    "to": None,
                    "reason": f"session {excerpt(str(session))[:40]!r} is not this event log's ({self.session}): the "
                    "log was reset (a new paper-trading session) or the gateway restarted on another log since, "
                    "so sequence numbers do not compare",
                }
            elif last_seq < room.floor:
                if room.evicted > last_seq:
                    reason = (
                        f"messages {last_seq + 1}..{room.floor} are no longer buffered (the last "
                        f"{self.cfg.buffer_size} of each room are kept)"
                    )
                else:
                    reason = (
                        f"this gateway has not got the room's messages {last_seq + 1}..{room.floor}: it started "
                        "following the event log (or the alert) after them"
                    )
                ack["gap"] = {"from": last_seq + 1, "to": room.floor, "reason": reason}
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
            if ack["resumed"] and last_seq is not None and last_seq > room.seq:
                # resumed from a replica that had read the log further: what this one sends up to last_seq, the
                # client has (the state as of those entries, or newer)
                room.skips[client] = last_seq
            else:
                room.skips.pop(client, None)

    # --- heartbeats -----------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.heartbeat_s)
            try:
                self.heartbeat()
                self.tend_gc()
            except Exception:  # noqa: BLE001 - heartbeats must go on
                log.exception("heartbeat failed")

    def tend_gc(self) -> None:
        """Python's cyclic garbage collector now and then runs a full collection that scans every object, ~77 per
        WebSocket connection: at 16,000 connections ~1.3 million objects, a pause of 0.3-2 s in which nothing is
        sent, every 10-20 s while pings and flushes run. The connections live long and are freed by reference
        counting, so once the clients grew by a fifth (from ``FREEZE_MIN_CLIENTS``) what is there is frozen
        (``gc.freeze``: out of every later scan; the cost of a freeze is nothing). What closed connections leave in
        reference cycles is reclaimed once a fifth of those frozen have closed: one full collection then."""
        if not self.cfg.gc_freeze:
            return
        clients = len(self.clients)
        if self._frozen_clients and self._closed_since_freeze > max(FREEZE_MIN_CLIENTS, self._frozen_clients // 5):
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._frozen_clients, self._closed_since_freeze = clients, 0
        elif clients >= FREEZE_MIN_CLIENTS and clients > self._frozen_clients * 1.2:
            gc.collect(1)  # the young generations' garbage is not frozen with the rest
            gc.freeze()
            self._frozen_clients = clients

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
            "replica": self.cfg.replica,
            "pid": os.getpid(),
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
            "gc_pause_ms": percentiles(s.gc_ms),
            "gc_full_pauses": [list(p) for p in s.gc_full],
        }
