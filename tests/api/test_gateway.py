"""The WebSocket gateway of a running API process while the real engine trades on: rooms, message
types and sequence numbers (the log entry each message carries), snapshots, heartbeats, coalescing,
resume from the last seen sequence (or a gap said out loud), a client that stops reading dropped with
a reason while the others get everything, value alerts."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import shutil
import socket
import time

import pytest
from websockets.asyncio.client import connect

from serving.api.views import ORDER_KINDS
from storage import live as store
from storage.db import make_engine
from tests.api.conftest import trade
from tests.api.services import api_server, get, request

RATE_HZ = 5.0
BUFFER = 20
MATCH_TYPES = {"game_event", "odds_update", "prediction_update", "value_bet"}
READ_TOKEN = "gateway-read-token-3b9e61f0d4a2"
"""Opens the ledger and alert rooms (tests/api/test_gateway_access.py tests who may enter them)."""


class Feed:
    """The rest of the replay, fed to a (restarted) engine piece by piece."""

    def __init__(self, url: str, prediction_url: str, envelopes, start: int):
        self.url, self.prediction_url, self.envelopes, self.pos = url, prediction_url, envelopes, start

    async def next(self, n: int) -> None:
        self.pos = min(self.pos + n, len(self.envelopes))
        await trade(self.url, self.prediction_url, self.envelopes[: self.pos])


@pytest.fixture(scope="module")
def db_url(session_log, tmp_path_factory):
    path = tmp_path_factory.mktemp("gateway") / "live.db"
    shutil.copyfile(session_log, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def api(db_url, tmp_path_factory):
    with api_server(
        db_url,
        tmp_path_factory.mktemp("gateway-api"),
        "--rate-hz",
        str(RATE_HZ),
        "--heartbeat-s",
        "0.5",
        "--buffer-size",
        str(BUFFER),
        "--max-lag-bytes",
        "4096",
        "--send-buffer-bytes",
        "8192",
        "--poll-s",
        "0.05",
        env={"COURTSIDE_READ_TOKEN": READ_TOKEN},
    ) as server:
        yield server


@pytest.fixture(scope="module")
def feed(db_url, prediction_service, envelopes, split):
    return Feed(db_url, prediction_service, envelopes, split)


@pytest.fixture(scope="module")
def in_play(api) -> list[dict]:
    return get(f"{api.url}/live/games/active")[1]["matches"]


class Reader:
    """Reads every message of a connection in the background."""

    def __init__(self, ws):
        self.ws, self.messages, self.close = ws, [], None
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.messages.append(json.loads(raw))
        except Exception as exc:  # noqa: BLE001 - recorded for the assertions
            self.close = exc
        self.close = self.close or (self.ws.close_code, self.ws.close_reason)

    def of(self, room: str, types=None) -> list[dict]:
        return [m for m in self.messages if m.get("room") == room and (types is None or m["type"] in types)]

    def _updates(self) -> int:
        return sum(1 for m in self.messages if m["type"] != "heartbeat")

    async def quiet(self, seconds: float = 1.0, timeout: float = 20.0) -> None:
        """Wait until no update (heartbeats aside) has arrived for ``seconds``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self._updates()
            await asyncio.sleep(seconds)
            if self._updates() == n:
                return


async def _ask(ws, msg: dict) -> dict:
    await ws.send(json.dumps(msg))
    while True:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if reply["type"] != "heartbeat":
            return reply


def test_bad_messages_get_errors_and_the_connection_stays(api, in_play):
    async def scenario():
        async with connect(api.ws_url) as ws:
            await ws.send("not json")
            assert json.loads(await ws.recv())["code"] == "bad_json"
            for msg, code in (
                ({"type": "dance"}, "unknown_type"),
                ({"type": "subscribe"}, "bad_match_id"),
                ({"type": "subscribe", "match_id": "no-such-match"}, "unknown_match"),
                ({"type": "subscribe", "match_id": in_play[0]["match_id"], "last_seq": -3}, "bad_last_seq"),
            ):
                reply = await _ask(ws, msg)
                assert reply["type"] == "error" and reply["code"] == code and reply["message"], msg
            assert (await _ask(ws, {"type": "ping"}))["type"] == "pong"
            ack = await _ask(ws, {"type": "subscribe", "match_id": in_play[0]["match_id"]})
            assert ack["type"] == "subscribed"
            assert (await _ask(ws, {"type": "unsubscribe", "match_id": in_play[0]["match_id"]}))[
                "type"
            ] == "unsubscribed"

    asyncio.run(scenario())
    status, _, _ = get(api.url.replace("http", "http") + "/health")
    assert status == 200


def test_rooms_deliver_numbered_coalesced_updates_and_heartbeats(api, feed, in_play, db_url):
    match_id = in_play[0]["match_id"]
    db = make_engine(db_url)
    before = store.last_event_id(db)

    async def scenario():
        async with connect(api.ws_url) as ws_match, connect(api.ws_url) as ws_all:
            ack = await _ask(ws_match, {"type": "subscribe", "match_id": match_id})
            ack_all = await _ask(ws_all, {"type": "subscribe", "match_id": "*"})
            ack_ledger = await _ask(ws_all, {"type": "subscribe", "match_id": "ledger", "token": READ_TOKEN})
            match, everything = Reader(ws_match), Reader(ws_all)
            started = time.monotonic()
            await feed.next(200)
            await match.quiet()
            await everything.quiet()
            return ack, ack_all, ack_ledger, match, everything, time.monotonic() - started

    ack, ack_all, ack_ledger, match, everything, seconds = asyncio.run(scenario())
    # the snapshot is the state the REST API shows
    assert ack["resumed"] is False and ack["gap"] is None and ack["session"]
    game = next(m for m in ack["snapshot"] if m["type"] == "game_event")
    assert game["data"]["players"] == in_play[0]["players"] and game["data"]["score_text"] == in_play[0]["score_text"]
    assert {m["match_id"] for m in ack_all["snapshot"]} >= {m["match_id"] for m in in_play}
    assert ack_ledger["snapshot"][0]["type"] == "bankroll_update"
    # every message: its room, the match, a timestamp, the send time, data; seq: the id of the log entry it carries,
    # strictly increasing in each room (not consecutive: other rooms' entries and coalesced states lie between)
    newest = store.last_event_id(db)
    updates = match.of(match_id, MATCH_TYPES)
    assert updates and {m["type"] for m in updates} >= {"game_event", "odds_update", "prediction_update"}
    seqs = [m["seq"] for m in updates]
    assert seqs == sorted(set(seqs)) and ack["seq"] < seqs[0] and before < seqs[0] and seqs[-1] <= newest
    assert all(m["match_id"] == match_id and m["ts"] and m["sent"] > 0 and m["data"] for m in updates)
    for room, first in (("*", ack_all["seq"]), ("ledger", ack_ledger["seq"])):
        seqs = [m["seq"] for m in everything.messages if m.get("room") == room and "sent" in m]
        assert seqs == sorted(set(seqs)) and all(first < seq <= newest for seq in seqs), room
    # the same update has the same seq in every room
    in_all = {(m["type"], m["seq"]): m["data"] for m in everything.of("*", MATCH_TYPES) if m["match_id"] == match_id}
    assert all(in_all.get((m["type"], m["seq"]), m["data"]) == m["data"] for m in updates)
    # order events are delivered one by one, never coalesced; each message's seq is its own entry's id
    orders = store.events_after(db, before, kinds=sorted(ORDER_KINDS))
    db.dispose()
    assert [m["seq"] for m in everything.of("ledger", {"bet_update"})] == [i for i, *_ in orders]
    bets = everything.of("ledger", {"bet_update"})
    assert [(m["data"]["event"], m["data"]["customer_order_ref"]) for m in bets] == [
        (kind, p["order"]["customer_order_ref"]) for _, kind, _, _, _, p in orders
    ]
    assert {m["match_id"] for m in everything.of("*", MATCH_TYPES)} >= {m["match_id"] for m in in_play}
    # coalescing: at most RATE_HZ flushes a second per room, and never two states of one kind in a flush
    flushes = {}
    for m in updates:
        flushes.setdefault(m["sent"], []).append(m["type"])
    assert len(flushes) <= seconds * RATE_HZ + 2
    assert all(types.count("game_event") <= 1 and types.count("odds_update") <= 1 for types in flushes.values())
    points = sum(
        1 for e in feed.envelopes[feed.pos - 200 : feed.pos] if e.channel == "match" and e.data.event_key == match_id
    )
    assert sum(m["type"] == "game_event" for m in updates) < points  # points were coalesced, not queued
    # the last state sent is the state REST shows now
    assert [m for m in updates if m["type"] == "game_event"][-1]["data"]["score_text"] == get(
        f"{api.url}/live/games/{match_id}/state"
    )[1]["match"]["score_text"]
    beats = match.of(match_id, {"heartbeat"})
    assert len(beats) >= 2 and all(b["seq"] >= ack["seq"] for b in beats)


def test_resume_replays_what_was_missed_or_says_why_it_cannot(api, feed):
    active = [m["match_id"] for m in get(f"{api.url}/live/games/active")[1]["matches"]]
    ahead = feed.envelopes[feed.pos :]
    match_id = max(active, key=lambda k: sum(e.channel == "match" and e.data.event_key == k for e in ahead))

    async def scenario():
        async with connect(api.ws_url) as ws_ref:
            await _ask(ws_ref, {"type": "subscribe", "match_id": match_id})
            reference = Reader(ws_ref)
            async with connect(api.ws_url) as ws:
                first = await _ask(ws, {"type": "subscribe", "match_id": match_id})
            # disconnected while a few points are played

            def after(seq: int) -> list[dict]:
                return [m for m in reference.of(match_id, MATCH_TYPES) if m["seq"] > seq]

            for _ in range(10):
                await feed.next(8)
                await reference.quiet(0.5)
                if len(after(first["seq"])) >= 3:
                    break
            missed = after(first["seq"])
            assert 0 < len(missed) <= BUFFER
            async with connect(api.ws_url) as ws:
                resumed = await _ask(
                    ws,
                    {"type": "subscribe", "match_id": match_id, "last_seq": first["seq"], "session": first["session"]},
                )
                replayed = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(resumed["replayed"])]
            # far behind: more than the buffer was sent since
            for _ in range(15):
                await feed.next(40)
                await reference.quiet(0.5)
                if len(after(first["seq"])) > BUFFER + 1:
                    break
            async with connect(api.ws_url) as ws:
                behind = await _ask(
                    ws,
                    {"type": "subscribe", "match_id": match_id, "last_seq": first["seq"], "session": first["session"]},
                )
                other = await _ask(ws, {"type": "subscribe", "match_id": "*", "last_seq": 3, "session": "restarted"})
            return first, missed, resumed, replayed, behind, other, reference.of(match_id, MATCH_TYPES)

    first, missed, resumed, replayed, behind, other, sent = asyncio.run(scenario())
    assert resumed["resumed"] is True and resumed["gap"] is None and resumed["snapshot"] == []
    assert resumed["replayed"] == len(missed)
    assert [(m["seq"], m["type"], m["data"]) for m in replayed] == [(m["seq"], m["type"], m["data"]) for m in missed]
    assert behind["resumed"] is False and behind["gap"]["from"] == first["seq"] + 1
    assert "no longer buffered" in behind["gap"]["reason"] and behind["snapshot"]
    assert behind["gap"]["from"] <= behind["gap"]["to"] < behind["seq"]
    # the buffer holds the room's last BUFFER messages, those after the gap
    assert sum(behind["gap"]["to"] < m["seq"] <= behind["seq"] for m in sent) == BUFFER
    assert other["resumed"] is False and "restarted" in other["gap"]["reason"] and other["snapshot"]


def _raw_subscriber(ws_url: str, room: str) -> socket.socket:
    """A WebSocket client that subscribes and then never reads (a tiny receive window)."""
    host, port = ws_url.removeprefix("ws://").split("/")[0].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect((host, int(port)))
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert b" 101 " in head
    payload = json.dumps({"type": "subscribe", "match_id": room}).encode()
    mask = secrets.token_bytes(4)
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return sock


def _close_frame(sock: socket.socket, timeout: float = 15.0) -> tuple[int, str] | None:
    """Read everything the server sent until its close frame (code, reason), or None at EOF."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        while len(buf) >= 2:
            n, off = buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, off = int.from_bytes(buf[2:4], "big"), 4
            if len(buf) < off + n:
                break
            opcode, payload, buf = buf[0] & 0x0F, buf[off : off + n], buf[off + n :]
            if opcode == 8:
                return int.from_bytes(payload[:2], "big"), payload[2:].decode()
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk


def test_a_client_that_stops_reading_is_dropped_with_a_reason_and_the_others_are_not(api, feed):
    slow = _raw_subscriber(api.ws_url, "*")

    async def scenario():
        async with connect(api.ws_url) as ws:
            ack = await _ask(ws, {"type": "subscribe", "match_id": "*"})
            fast = Reader(ws)
            for _ in range(15):
                await feed.next(30)
                await asyncio.sleep(0.3)
                if get(f"{api.url}/health")[1]["gateway"]["dropped_slow"] >= 1:
                    break
            closed = await asyncio.to_thread(_close_frame, slow)
            await feed.next(100)  # the others go on
            await fast.quiet()
            return ack, fast, closed

    try:
        ack, fast, closed = asyncio.run(scenario())
    finally:
        slow.close()
    assert get(f"{api.url}/health")[1]["gateway"]["dropped_slow"] == 1
    assert closed is not None, "the server closed without a close frame"
    code, reason = closed
    assert code == 4008 and reason.startswith("slow consumer") and "last_seq" in reason
    seqs = [m["seq"] for m in fast.of("*") if "sent" in m]
    assert len(seqs) > 20 and seqs == sorted(set(seqs)) and ack["seq"] < seqs[0]
    assert "dropping" in api.output() and "slow consumer" in api.output()


def test_value_alerts_reach_their_room_only_when_they_match(api, feed):
    active = get(f"{api.url}/live/games/active")[1]["matches"]
    assert len(active) >= 2
    chosen, left_out = active[:-1], active[-1]
    players = [m["players"][0].split()[-1].upper() for m in chosen]  # a fragment, in any case
    status, alert, _ = request("POST", f"{api.url}/live/alerts/subscribe", {"players": players, "min_edge": 0.05})
    assert status == 201

    async def scenario():
        async with connect(alert["ws_url"]) as ws:
            ack = await _ask(ws, {"type": "subscribe", "match_id": alert["room"], "token": READ_TOKEN})
            assert ack["type"] == "subscribed"
            assert (await _ask(ws, {"type": "subscribe", "match_id": "*"}))["type"] == "subscribed"
            reader = Reader(ws)
            # in steps: this module's gateway drops a client more than 4 KiB behind (the slow-consumer test), and
            # 400 messages' worth of log read at once would be a burst bigger than that
            for _ in range(8):
                await feed.next(50)
                await asyncio.sleep(0.2)
            await reader.quiet()
            return reader

    reader = asyncio.run(scenario())
    alerted = reader.of(alert["room"], {"value_bet"})
    everything = reader.of("*", {"value_bet"})
    wanted = {m["match_id"] for m in chosen}
    expected = [m["data"]["id"] for m in everything if m["match_id"] in wanted and m["data"]["edge"] >= 0.05]
    assert expected, "no value bet to alert in this stretch of the matches"
    assert [m["data"]["id"] for m in alerted] == expected
    assert all(m["data"]["players"][0].split()[-1].upper() in players for m in alerted)
    assert len(everything) > len(alerted)  # the others (another match, a smaller edge) were not alerted
    assert left_out["match_id"] not in {m["match_id"] for m in alerted}
