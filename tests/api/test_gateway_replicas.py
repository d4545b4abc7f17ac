"""Gateway replicas (issue 14): several real API processes over one event log while the real engine trades on.

- ``python -m serving.api --replicas 2``: two processes share both ports (SO_REUSEPORT), both answer, on
  127.0.0.1 only, with one session (derived from the log); exactly one of them delivers the webhooks, and each
  alert reaches the webhook once.
- A subscriber of replica A that is disconnected resumes on replica B (another process, here on ports of its
  own so the test can choose) with its ``last_seq``: it gets exactly the messages B has after it, never one it
  had, and ends with the same state as a subscriber that stayed on A; a resume B cannot serve is a gap said
  out loud, with a snapshot.
- An alert subscription made through A is learnt by B from the database.
- The delivery lease: one holder per database (a ``flock`` beside a SQLite file, a PostgreSQL advisory lock
  that goes with its session).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from serving.api.alerts import DeliveryLease
from serving.api.gateway import Gateway, GatewayConfig
from serving.api.views import Update
from storage import alerts as alert_store
from storage import live as store
from storage.db import make_engine
from tests.api.conftest import trade
from tests.api.services import TOKEN, api_server, get, listening_addresses, request

pytestmark = pytest.mark.slow

READ = "replica-read-token-5d0c8e2b7a41"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}
MATCH_TYPES = {"game_event", "odds_update", "prediction_update", "value_bet"}
BUFFER = 200


class Feed:
    """The rest of the replay, traded by a (restarted) engine piece by piece."""

    def __init__(self, url: str, prediction_url: str, envelopes, start: int):
        self.url, self.prediction_url, self.envelopes, self.pos = url, prediction_url, envelopes, start

    async def next(self, n: int) -> None:
        self.pos = min(self.pos + n, len(self.envelopes))
        await trade(self.url, self.prediction_url, self.envelopes[: self.pos])


class Reader:
    """Reads every message of a connection in the background."""

    def __init__(self, ws):
        self.ws, self.messages = ws, []
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.messages.append(json.loads(raw))
        except Exception:  # noqa: BLE001, S110 - the connection ended: what was read stays
            pass

    def of(self, room: str) -> list[dict]:
        return [m for m in self.messages if m.get("room") == room and m["type"] in MATCH_TYPES]

    async def ask(self, msg: dict) -> dict:
        """Send ``msg`` and wait for its answer (the first message after it that is not an update or heartbeat)."""
        n = len(self.messages)
        await self.ws.send(json.dumps(msg))
        for _ in range(200):
            answers = [m for m in self.messages[n:] if m["type"] not in ("heartbeat", *MATCH_TYPES)]
            if answers:
                return answers[0]
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no answer to {msg}")

    async def quiet(self, seconds: float = 1.5, timeout: float = 30.0) -> None:
        """Wait until no update (heartbeats aside) has arrived for ``seconds``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = sum(m["type"] != "heartbeat" for m in self.messages)
            await asyncio.sleep(seconds)
            if sum(m["type"] != "heartbeat" for m in self.messages) == n:
                return


async def _ask(ws, msg: dict) -> dict:
    await ws.send(json.dumps(msg))
    while True:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if reply["type"] not in ("heartbeat", *MATCH_TYPES):
            return reply


class Receiver:
    """A webhook receiver on 127.0.0.1 that records every POST and answers 200."""

    def __init__(self):
        self.posts: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.posts.append({"headers": dict(self.headers), "body": json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _wait_for(condition, timeout: float = 60.0, every: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    return condition()


def _copy(session_log, folder) -> str:
    shutil.copyfile(session_log, folder / "live.db")
    return f"sqlite:///{folder / 'live.db'}"


# --- two replicas behind one port -----------------------------------------------------------------------------
def test_replicas_share_the_ports_follow_one_log_and_one_of_them_delivers_the_webhooks(
    session_log, tmp_path, prediction_service, envelopes, split
):
    url = _copy(session_log, tmp_path)
    feed = Feed(url, prediction_service, envelopes, split)
    receiver = Receiver()
    try:
        with api_server(
            url,
            tmp_path,
            *("--replicas", "2", "--poll-s", "0.05", "--rate-limit", "100000/60"),  # the test asks /health often
            env={"COURTSIDE_READ_TOKEN": READ},
        ) as api:

            def replicas() -> dict[int, dict] | None:
                seen: dict[int, dict] = {}
                for _ in range(30):  # a new connection each: the kernel hashes it to either replica
                    status, body, _ = get(f"{api.url}/health")
                    if status == 200:
                        seen[body["gateway"]["pid"]] = body
                    if len(seen) == 2:
                        break
                return seen if len(seen) == 2 else None

            seen = _wait_for(replicas, timeout=120)
            assert seen, f"the second replica never answered:\n{api.output()[-3000:]}"
            assert {b["gateway"]["replica"] for b in seen.values()} == {"1/2", "2/2"}
            sessions = {b["gateway"]["session"] for b in seen.values()}
            assert len(sessions) == 1 and "000000000000" not in sessions
            ws_port = int(api.ws_url.split(":")[-1].split("/")[0])
            for port in (int(api.url.rsplit(":", 1)[1]), ws_port):
                assert listening_addresses(port) == {"127.0.0.1"}

            def holders() -> list[int] | None:
                found = replicas() or {}
                held = [pid for pid, b in found.items() if b["webhooks"]["delivering"]]
                return held if len(found) == 2 and held else None

            assert len(_wait_for(holders, timeout=30) or []) == 1

            async def acks() -> set[str]:
                out = set()
                for _ in range(6):
                    async with connect(api.ws_url) as ws:
                        out.add((await _ask(ws, {"type": "subscribe", "match_id": "*"}))["session"])
                return out

            assert asyncio.run(acks()) == sessions

            active = get(f"{api.url}/live/games/active")[1]["matches"]
            surnames = [m["players"][0].split()[-1] for m in active]
            status, alert, _ = request(
                "POST",
                f"{api.url}/live/alerts/subscribe",
                {"players": surnames, "min_edge": 0.0, "webhook_url": receiver.url},
                OPERATOR,
            )
            assert status == 201, alert
            for _ in range(6):
                asyncio.run(feed.next(60))
            db = make_engine(url)

            def settled() -> list[dict] | None:
                log = alert_store.delivery_log(db, alert["alert_id"], 10_000)
                return log if log and all(d["status"] == "delivered" for d in log) else None

            deliveries: list[dict] = []
            for _ in range(60):  # until every delivery is made and no new one came for 2 s
                time.sleep(2.0)
                now = settled() or []
                if now and len(now) == len(deliveries):
                    break
                deliveries = now
            db.dispose()
            assert deliveries, "no value bet was alerted"
            with receiver.lock:
                posts = list(receiver.posts)
            ids = [p["headers"]["X-Courtside-Delivery"] for p in posts]
            assert len(ids) == len(set(ids)), "a delivery was sent twice"
            assert sorted(ids) == sorted(str(d["id"]) for d in deliveries)
            assert sorted(p["body"]["event_id"] for p in posts) == sorted(d["event_id"] for d in deliveries)
            assert "replica 1/2" in api.output() and "replica 2/2" in api.output()
    finally:
        receiver.close()


# --- resuming on another replica ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def log_url(session_log, tmp_path_factory) -> str:
    return _copy(session_log, tmp_path_factory.mktemp("replicas-log"))


@pytest.fixture(scope="module")
def pair(log_url, tmp_path_factory):
    """Replica A (reads the log every 0.05 s) and replica B (every 0.5 s: often behind A), on ports of their own."""
    common = ("--rate-hz", "5", "--heartbeat-s", "0.5", "--buffer-size", str(BUFFER))
    env = {"COURTSIDE_READ_TOKEN": READ}
    folders = tmp_path_factory.mktemp("replica-a"), tmp_path_factory.mktemp("replica-b")
    with (
        api_server(log_url, folders[0], *common, "--poll-s", "0.05", env=env) as a,
        api_server(log_url, folders[1], *common, "--poll-s", "0.5", env=env) as b,
    ):
        yield a, b


@pytest.fixture(scope="module")
def feed(log_url, prediction_service, envelopes, split) -> Feed:
    return Feed(log_url, prediction_service, envelopes, split)


def test_a_subscriber_resumes_on_another_replica_with_exactly_what_it_missed(pair, feed):
    a, b = pair
    session = get(f"{a.url}/live/config")[1]["session"]
    assert session == get(f"{b.url}/live/config")[1]["session"]
    active = [m["match_id"] for m in get(f"{a.url}/live/games/active")[1]["matches"]]
    ahead = feed.envelopes[feed.pos :]
    match_id = max(active, key=lambda k: sum(e.channel == "match" and e.data.event_key == k for e in ahead))

    async def scenario():
        async with connect(a.ws_url) as ws_ref_a, connect(b.ws_url) as ws_ref_b:
            for ws in (ws_ref_a, ws_ref_b):
                assert (await _ask(ws, {"type": "subscribe", "match_id": match_id}))["resumed"] is False
            ref_a, ref_b = Reader(ws_ref_a), Reader(ws_ref_b)
            async with connect(a.ws_url) as ws:
                first = await _ask(ws, {"type": "subscribe", "match_id": match_id})
                on_a = Reader(ws)
                for _ in range(10):
                    await feed.next(10)
                    await on_a.quiet(0.6)
                    if len(on_a.of(match_id)) >= 5:
                        break
            # disconnected from A while more points are played
            last = on_a.of(match_id)[-1]["seq"]
            for _ in range(10):
                await feed.next(10)
                await ref_a.quiet(0.6)
                if sum(m["seq"] > last for m in ref_a.of(match_id)) >= 5:
                    break
            # resumed on B at once (B reads the log every 0.5 s: it may not have read as far as last_seq yet)
            async with connect(b.ws_url) as ws:
                resumed = await _ask(
                    ws, {"type": "subscribe", "match_id": match_id, "last_seq": last, "session": first["session"]}
                )
                on_b = Reader(ws)
                for _ in range(4):
                    await feed.next(10)
                await asyncio.sleep(1.0)
                for reader in (on_b, ref_a, ref_b):
                    await reader.quiet()
                # what B cannot serve: another log's session, a message from before B followed the log
                other = await on_b.ask(
                    {"type": "subscribe", "match_id": match_id, "last_seq": last, "session": "0123456789ab"}
                )
            async with connect(b.ws_url) as ws:
                early = await _ask(ws, {"type": "subscribe", "match_id": match_id, "last_seq": 1, "session": session})
        return first, last, on_a, resumed, on_b, ref_a, ref_b, other, early

    first, last, on_a, resumed, on_b, ref_a, ref_b, other, early = asyncio.run(scenario())
    assert first["session"] == session and resumed["session"] == session
    assert resumed["resumed"] is True and resumed["gap"] is None and resumed["snapshot"] == []
    got_a, got_b = on_a.of(match_id), on_b.of(match_id)
    seqs = [m["seq"] for m in got_a + got_b]
    assert seqs == sorted(set(seqs)), "a message came twice, or out of order"
    assert got_b and all(m["seq"] > last for m in got_b)
    # exactly what B sent its own subscriber after last_seq: the replayed ones, then the live ones
    sent_b = [m for m in ref_b.of(match_id) if m["seq"] > last]
    assert len(sent_b) < BUFFER
    assert [(m["seq"], m["type"], m["data"]) for m in got_b] == [(m["seq"], m["type"], m["data"]) for m in sent_b]
    assert resumed["replayed"] == sum(m["seq"] <= resumed["seq"] for m in sent_b)
    # the client that moved knows what the one that stayed on A knows: every value bet once, the same last states
    stayed = [m for m in ref_a.of(match_id) if m["seq"] > first["seq"]]
    moved = got_a + got_b

    def bets(messages):
        return [(m["seq"], m["data"]["id"], m["data"]["fate"]["status"]) for m in messages if m["type"] == "value_bet"]

    assert bets(moved) == bets(stayed)
    for kind in ("game_event", "odds_update", "prediction_update"):
        mine, theirs = [m for m in moved if m["type"] == kind], [m for m in stayed if m["type"] == kind]
        assert mine and theirs and mine[-1]["data"] == theirs[-1]["data"], kind
    # replicas flush their own batches, but what they say of one log entry is the same
    by_seq = {(m["type"], m["seq"]): m["data"] for m in ref_a.of(match_id)}
    assert all(by_seq.get((m["type"], m["seq"]), m["data"]) == m["data"] for m in ref_b.of(match_id))
    # honest gaps
    assert other["resumed"] is False and other["gap"]["to"] is None and other["snapshot"]
    assert "not this event log's" in other["gap"]["reason"]
    assert early["resumed"] is False and early["gap"]["from"] == 2 and early["snapshot"]
    assert "started following the event log" in early["gap"]["reason"]


def test_an_alert_made_through_one_replica_is_served_by_the_other(pair, feed):
    a, b = pair
    active = get(f"{a.url}/live/games/active")[1]["matches"]
    status, alert, _ = request(
        "POST", f"{a.url}/live/alerts/subscribe", {"match_ids": [m["match_id"] for m in active], "min_edge": 0.0}
    )
    assert status == 201, alert
    room = alert["room"]

    async def scenario():
        async with connect(a.ws_url) as ws_a, connect(b.ws_url) as ws_b:
            assert (await _ask(ws_a, {"type": "subscribe", "match_id": room, "token": READ}))["type"] == "subscribed"
            deadline = time.monotonic() + 10
            while True:  # B learns it from the database within serving.api.live.REFRESH_S
                ack = await _ask(ws_b, {"type": "subscribe", "match_id": room, "token": READ})
                if ack["type"] == "subscribed" or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            on_a, on_b = Reader(ws_a), Reader(ws_b)
            for _ in range(6):
                await feed.next(40)
            await asyncio.sleep(1.0)
            await on_a.quiet()
            await on_b.quiet()
            return ack, on_a, on_b

    ack, on_a, on_b = asyncio.run(scenario())
    assert ack["type"] == "subscribed", ack
    alerted_a = [(m["seq"], m["data"]["id"]) for m in on_a.messages if m.get("room") == room and "sent" in m]
    alerted_b = [(m["seq"], m["data"]["id"]) for m in on_b.messages if m.get("room") == room and "sent" in m]
    assert alerted_a, "no value bet was alerted"
    assert alerted_a == alerted_b


def test_a_reset_of_the_log_gives_every_replica_the_same_new_session(pair, feed, log_url):
    """Last of the pair's tests: it empties their log."""
    a, b = pair
    old = get(f"{a.url}/live/config")[1]["session"]
    db = make_engine(log_url)

    async def scenario():
        async with connect(a.ws_url) as ws_a, connect(b.ws_url) as ws_b:
            on = []
            for ws in (ws_a, ws_b):
                await _ask(ws, {"type": "subscribe", "match_id": "*"})
                on.append(Reader(ws))
            store.reset_live(db)  # a new paper-trading session
            await trade(log_url, feed.prediction_url, feed.envelopes[:400])  # its first entries
            for _ in range(100):
                if all(any(m["type"] == "reset" for m in r.messages) for r in on):
                    break
                await asyncio.sleep(0.1)
            return [next((m for m in r.messages if m["type"] == "reset"), None) for r in on]

    resets = asyncio.run(scenario())
    assert all(r is not None and r["session"] != old for r in resets), resets

    def sessions() -> set[str] | None:
        found = {get(f"{x.url}/live/config")[1]["session"] for x in (a, b)}
        return found if len(found) == 1 and not found & {old, "000000000000"} else None

    new = _wait_for(sessions, timeout=20)
    assert new, {get(f"{x.url}/live/config")[1]["session"] for x in (a, b)}
    assert get(f"{a.url}/health")[1]["read_up_to"] == get(f"{b.url}/health")[1]["read_up_to"] or _wait_for(
        lambda: get(f"{a.url}/health")[1]["read_up_to"] == get(f"{b.url}/health")[1]["read_up_to"], timeout=10
    )
    db.dispose()


def test_a_replica_that_has_read_less_than_the_client_sends_it_nothing_it_has():
    """The gateway alone (no API): a client resumes with last_seq 20 (from a replica that had read further) on a
    gateway that has sent up to 10; what this one then reads up to entry 20 is not written to that client, the
    rest is, and a client that stayed gets everything."""

    def update(seq: int, coalesce: bool = True) -> Update:
        kind = "game_event" if coalesce else "value_bet"
        return Update(kind, ("m", "*"), "m", datetime.now(UTC), {"entry": seq}, None, coalesce)

    async def scenario():
        gateway = Gateway(GatewayConfig(rate_hz=50, heartbeat_s=60), lambda room: True, lambda room: [], "s1")
        gateway.follow("s1", {"m": 4})
        async with serve(gateway.handler, "127.0.0.1", 0, compression=None) as server:
            url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            gateway.start()
            async with connect(url) as ws_stayed, connect(url) as ws_moved:
                await _ask(ws_stayed, {"type": "subscribe", "match_id": "m", "last_seq": 4, "session": "s1"})
                stayed = Reader(ws_stayed)
                gateway.publish(update(10), seq=10)
                await asyncio.sleep(0.1)
                ack = await _ask(ws_moved, {"type": "subscribe", "match_id": "m", "last_seq": 20, "session": "s1"})
                moved = Reader(ws_moved)
                for seq, coalesce in ((15, False), (18, True)):
                    gateway.publish(update(seq, coalesce), seq=seq)
                await asyncio.sleep(0.1)
                for seq, coalesce in ((19, False), (21, False), (23, True)):
                    gateway.publish(update(seq, coalesce), seq=seq)
                await asyncio.sleep(0.1)
                gateway.publish(update(30), seq=30)
                await asyncio.sleep(0.2)
                early = await moved.ask({"type": "subscribe", "match_id": "m", "last_seq": 2, "session": "s1"})
            await gateway.stop()
        return ack, stayed.of("m"), moved.of("m"), early

    ack, stayed, moved, early = asyncio.run(scenario())
    assert ack["resumed"] is True and ack["seq"] == 10 and ack["replayed"] == 0 and ack["gap"] is None
    assert [m["seq"] for m in stayed] == [10, 15, 18, 19, 21, 23, 30]
    assert [m["seq"] for m in moved] == [21, 23, 30]
    assert [m["data"]["entry"] for m in moved] == [21, 23, 30]
    # before the room's floor (its newest update before this gateway followed the log): a gap, said
    assert early["resumed"] is False and early["gap"]["from"] == 3 and early["gap"]["to"] == 4


# --- the delivery lease ---------------------------------------------------------------------------------------
def test_one_process_holds_the_delivery_lease_of_a_sqlite_database(tmp_path):
    db = make_engine(f"sqlite:///{tmp_path / 'live.db'}")
    first, second = DeliveryLease(db), DeliveryLease(db)
    try:
        assert first.acquire() and first.check()
        assert not second.acquire() and not second.held
        first.release()
        assert second.acquire() and not first.acquire()
    finally:
        first.release()
        second.release()
        db.dispose()


@pytest.mark.postgres
def test_one_process_holds_the_delivery_lease_of_a_postgres_database_until_its_session_ends(postgres_database_url):
    db = make_engine(postgres_database_url)
    first, second = DeliveryLease(db), DeliveryLease(db)
    try:
        assert first.acquire() and first.check()
        assert not second.acquire()
        backend = first._conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with db.connect() as conn:  # the holder's session ends (a crash, a network cut): its lock goes with it
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(backend)})")
            conn.commit()
        assert not first.check() and not first.held
        assert _wait_for(second.acquire, timeout=10)
        assert not first.acquire()
    finally:
        first.release()
        second.release()
        db.dispose()
