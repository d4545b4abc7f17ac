"""Real WebSocket server and client: resume after dropped connections with no lost or duplicated
message, bad messages quarantined with a reason, heartbeats, refused subscriptions."""

import asyncio
import json

import pytest

from feeds.live.client import Backoff, FeedClient, SubscriptionRefused
from feeds.live.server import ReplayServer, Scheduled
from tests.feeds.messages import point_event


def _schedule(n: int) -> list[Scheduled]:
    return [Scheduled(at=i * 0.001, channel="match", payload=point_event(i)) for i in range(n)]


async def _follow(
    server_port: int, received: list, rejected: list, stop: asyncio.Event, since: int = 0, **options
) -> FeedClient:
    async def on_frame(frame):
        if frame.valid:
            received.append(frame.seq)
        else:
            rejected.append((frame.seq, frame.reason))

    client = FeedClient(
        f"ws://127.0.0.1:{server_port}",
        "f1",
        "match",
        on_frame,
        last_seq=since,
        backoff=Backoff(base_s=0.01, cap_s=0.05),
        **options,
    )
    asyncio.get_running_loop().create_task(client.run(stop))
    return client


async def _until(cond, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


def test_resume_after_dropped_connections_loses_and_duplicates_nothing():
    async def scenario():
        server = ReplayServer({"f1": _schedule(3000)}, rate=3000, heartbeat_s=0.2)
        port = await server.start()
        received, rejected, stop = [], [], asyncio.Event()
        client = await _follow(port, received, rejected, stop)
        for _ in range(5):  # drop every subscriber five times while the feed is publishing
            await _until(lambda: len(received) > 0)
            await asyncio.sleep(0.1)
            await server.drop_connections()
        await _until(lambda: len(received) == 3000)
        stop.set()
        await server.stop()
        return received, client

    received, client = asyncio.run(scenario())
    assert received == list(range(1, 3001))  # every message once, in order
    assert client.stats.connects >= 6


def test_restart_from_a_persisted_sequence_number():
    async def scenario():
        server = ReplayServer({"f1": _schedule(200)}, rate=0)
        port = await server.start()
        await server.done.wait()
        received, rejected, stop = [], [], asyncio.Event()
        await _follow(port, received, rejected, stop, since=150)
        await _until(lambda: len(received) == 50)
        stop.set()
        await server.stop()
        return received

    assert asyncio.run(scenario()) == list(range(151, 201))


def test_bad_messages_are_quarantined_and_the_stream_goes_on():
    async def scenario():
        server = ReplayServer({"f1": []}, heartbeat_s=0.1)
        port = await server.start(publish=False)
        server.publish("f1", "match", point_event(1), 0.0)
        good = json.loads(server.channels[("f1", "match")].published[0])
        bad_score = {**good, "seq": 2, "data": {**good["data"], "event_final_result": "7-0"}}
        unknown_field = {**good, "seq": 3, "data": {**good["data"], "surprise": 1}}
        for raw in (json.dumps(bad_score), json.dumps(unknown_field), "not json at all {"):
            server.publish_raw("f1", "match", raw)
        server.publish("f1", "match", point_event(5), 1.0)  # seq 5 arrives after an unreadable seq 4
        received, rejected, stop = [], [], asyncio.Event()
        client = await _follow(port, received, rejected, stop)
        await _until(lambda: 5 in received or client.stats.gaps > 0)
        await _until(lambda: client.stats.heartbeats > 0)
        stop.set()
        await server.stop()
        return received, rejected, client

    received, rejected, client = asyncio.run(scenario())
    assert [seq for seq, _ in rejected] == [2, 3, 4]  # an unreadable frame holds its position too
    assert "data.point.event_final_result" in rejected[0][1] or "event_final_result" in rejected[0][1]
    assert "surprise" in rejected[1][1]
    assert rejected[2][1].startswith("invalid message")
    assert received == [1, 5] and client.stats.gaps == 0
    assert client.stats.frames == 5 and client.stats.connects == 1


def test_unknown_feed_is_refused_clearly():
    async def scenario():
        server = ReplayServer({"f1": []})
        port = await server.start(publish=False)

        async def noop(*_):
            return None

        client = FeedClient(f"ws://127.0.0.1:{port}", "nope", "match", noop)
        with pytest.raises(SubscriptionRefused, match="unknown path"):
            await asyncio.wait_for(client.run(asyncio.Event()), 5)
        await server.stop()

    asyncio.run(scenario())
