"""The feed client against hostile and broken servers (real WebSocket connections): every frame is
counted exactly once whether or not it parses, nothing livelocks, a gap is re-requested a bounded number
of times then skipped (GAP_SKIPPED), a frame too large to receive is consumed, bad frames are never handed
on twice across reconnects."""

import asyncio
import json

from websockets.asyncio.server import serve

from feeds.live.client import Backoff, FeedClient
from feeds.live.protocol import Envelope, Heartbeat
from feeds.live.server import ReplayServer
from tests.feeds.messages import point_event


def _envelope(seq: int) -> str:
    return Envelope(feed="f1", channel="match", seq=seq, event_time=seq, data=point_event(seq)).model_dump_json()


class Recorder:
    def __init__(self):
        self.frames = []

    async def __call__(self, frame):
        self.frames.append(frame)

    @property
    def delivered(self):
        return [f.seq for f in self.frames if f.valid]

    @property
    def rejected(self):
        return [(f.seq, f.reason) for f in self.frames if not f.valid]


def _client(port: int, recorder: Recorder, **options) -> FeedClient:
    return FeedClient(f"ws://127.0.0.1:{port}", "f1", "match", recorder, backoff=Backoff(0.01, 0.05), **options)


async def _until(cond, timeout=15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


async def _run(server: ReplayServer, recorder: Recorder, until, **options) -> FeedClient:
    port = await server.start(publish=False)
    stop = asyncio.Event()
    client = _client(port, recorder, **options)
    task = asyncio.create_task(client.run(stop))
    try:
        await _until(until)
        await asyncio.sleep(0.3)  # a livelock would show as more connects or more frames meanwhile
    finally:
        stop.set()
        await task
        await server.stop()
    return client


def test_an_unreadable_frame_then_a_misnumbered_bad_frame_cannot_livelock():
    """The defect of issue 9: a frame without a readable seq followed by a bad frame whose seq is not
    last_seq+1 made the next valid frame look like a gap, re-requested from the same place forever."""

    async def scenario():
        server = ReplayServer({"f1": []}, heartbeat_s=0.05)
        server.publish("f1", "match", point_event(1), 1.0)
        server.publish_raw("f1", "match", "\x00\x01 not json")  # position 2
        server.publish_raw("f1", "match", json.dumps({"type": "event", "seq": 7}))  # position 3, bad, seq 7
        for i in (4, 5):
            server.publish("f1", "match", point_event(i), float(i))
        recorder = Recorder()
        client = await _run(server, recorder, lambda: len(recorder.frames) >= 5)
        return recorder, client

    recorder, client = asyncio.run(scenario())
    assert recorder.delivered == [1, 4, 5]
    assert [seq for seq, _ in recorder.rejected] == [2, 3]
    assert "it says seq 7, it is message 3" in recorder.rejected[1][1]
    assert client.stats.connects == 1 and client.stats.gaps == 0
    assert client.stats.frames == 5 == client.stats.delivered + client.stats.rejected


def test_a_valid_message_claiming_a_later_number_is_out_of_order_when_the_stream_goes_on():
    async def scenario():
        server = ReplayServer({"f1": []}, heartbeat_s=0.05)
        server.publish("f1", "match", point_event(1), 1.0)
        server.publish_raw("f1", "match", _envelope(40))  # position 2 claims 40
        server.publish_raw("f1", "match", _envelope(1))  # position 3 repeats 1
        for i in (4, 5, 6):
            server.publish("f1", "match", point_event(i), float(i))
        recorder = Recorder()
        client = await _run(server, recorder, lambda: len(recorder.frames) >= 6)
        return recorder, client

    recorder, client = asyncio.run(scenario())
    assert recorder.delivered == [1, 4, 5, 6]
    assert [seq for seq, _ in recorder.rejected] == [2, 3]
    assert recorder.rejected[0][1].startswith("out of order: it says seq 40")
    assert recorder.rejected[1][1].startswith("a repeat of seq 1")
    assert client.stats.gaps == 0 and client.stats.connects == 1


class NumberedServer:
    """A server whose numbering skips (it serves messages with seq > since; some never existed) and whose
    heartbeat may claim more than it has: what a lossy upstream looks like."""

    def __init__(self, seqs: list[int], heartbeat_last: int | None = None):
        self.seqs = seqs
        self.heartbeat_last = heartbeat_last if heartbeat_last is not None else max(seqs)
        self.connects = 0

    async def handler(self, ws):
        self.connects += 1
        since = int(ws.request.path.split("since=")[1])
        for seq in self.seqs:
            if seq > since:
                await ws.send(_envelope(seq))
        while True:
            await ws.send(
                Heartbeat(feed="f1", channel="match", last_seq=self.heartbeat_last, event_time=1.0).model_dump_json()
            )
            await asyncio.sleep(0.05)


async def _numbered(server: NumberedServer, recorder: Recorder, until) -> FeedClient:
    async with serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        stop = asyncio.Event()
        client = _client(port, recorder)
        task = asyncio.create_task(client.run(stop))
        try:
            await _until(until)
            await asyncio.sleep(0.3)
        finally:
            stop.set()
            await task
    return client


def test_a_gap_is_re_requested_a_bounded_number_of_times_then_skipped():
    async def scenario():
        server = NumberedServer([1, 2, 5, 6, 7])  # 3 and 4 never existed
        recorder = Recorder()
        client = await _numbered(server, recorder, lambda: 7 in recorder.delivered)
        return server, recorder, client

    server, recorder, client = asyncio.run(scenario())
    assert recorder.delivered == [1, 2, 5, 6, 7]
    gap = [f for f in recorder.frames if f.gap_from is not None]
    assert [(f.gap_from, f.seq) for f in gap] == [(3, 4)] and gap[0].reason.startswith("GAP_SKIPPED")
    assert client.stats.gaps == client.max_gap_retries == 3 and client.stats.gaps_skipped == 1
    assert server.connects == client.max_gap_retries + 1  # bounded: no reconnect after the skip


def test_a_heartbeat_claiming_messages_that_never_come_is_re_requested_then_not_believed():
    async def scenario():
        server = NumberedServer([1, 2, 3], heartbeat_last=2**53)  # a lie that would kill the channel
        recorder = Recorder()
        client = await _numbered(server, recorder, lambda: server.connects >= 4)
        return server, recorder, client

    server, recorder, client = asyncio.run(scenario())
    assert recorder.delivered == [1, 2, 3] and client.last_seq == 3  # the claim never moved the position
    assert not [f for f in recorder.frames if f.gap_from]
    assert server.connects == client.max_gap_retries + 1 and client.stats.server_ahead > 0


def test_two_messages_claiming_a_far_jump_are_out_of_order_not_a_gap():
    async def scenario():
        server = ReplayServer({"f1": []}, heartbeat_s=0.05)
        server.publish("f1", "match", point_event(1), 1.0)
        server.publish_raw("f1", "match", _envelope(10**9))  # two valid frames agreeing on a jump
        server.publish_raw("f1", "match", _envelope(10**9 + 1))
        for i in (4, 5, 6):
            server.publish("f1", "match", point_event(i), float(i))
        recorder = Recorder()
        client = await _run(server, recorder, lambda: 6 in recorder.delivered)
        return recorder, client

    recorder, client = asyncio.run(scenario())
    assert recorder.delivered == [1, 4, 5, 6]
    assert [seq for seq, _ in recorder.rejected] == [2, 3] and client.stats.gaps == 0


def test_an_error_message_in_the_middle_of_a_stream_is_a_bad_frame_not_a_refusal():
    async def scenario():
        server = ReplayServer({"f1": []}, heartbeat_s=0.05)
        server.publish("f1", "match", point_event(1), 1.0)
        server.publish_raw("f1", "match", json.dumps({"type": "error", "message": "go away"}))
        server.publish("f1", "match", point_event(3), 3.0)
        recorder = Recorder()
        client = await _run(server, recorder, lambda: 3 in recorder.delivered)
        return recorder, client

    recorder, client = asyncio.run(scenario())
    assert recorder.delivered == [1, 3] and recorder.rejected[0][0] == 2
    assert "error message in the middle" in recorder.rejected[0][1] and client.stats.connects == 1

    async def resumed():  # the same, as the first frame of a connection resuming after message 1
        server = ReplayServer({"f1": []}, heartbeat_s=0.05)
        server.publish("f1", "match", point_event(1), 1.0)
        server.publish_raw("f1", "match", json.dumps({"type": "error", "message": "go away"}))
        server.publish("f1", "match", point_event(3), 3.0)
        recorder = Recorder()
        client = await _run(server, recorder, lambda: 3 in recorder.delivered, last_seq=1)
        return recorder, client

    recorder, client = asyncio.run(resumed())
    assert recorder.delivered == [3] and [seq for seq, _ in recorder.rejected] == [2]


def test_a_stored_control_frame_that_shifts_the_numbering_heals_with_a_one_number_gap():
    async def scenario():
        server = ReplayServer({"f1": []}, heartbeat_s=0.05)
        server.publish("f1", "match", point_event(1), 1.0)
        server.publish_raw(
            "f1", "match", Heartbeat(feed="f1", channel="match", last_seq=1, event_time=1.0).model_dump_json()
        )  # holds position 2
        for i in range(3, 9):
            server.publish("f1", "match", point_event(i), float(i))
        recorder = Recorder()
        client = await _run(server, recorder, lambda: 8 in recorder.delivered)
        return recorder, client

    recorder, client = asyncio.run(scenario())
    assert recorder.delivered == [1, 3, 4, 5, 6, 7, 8]  # nothing real lost
    assert [(f.gap_from, f.seq) for f in recorder.frames if f.gap_from] == [(2, 2)]


def test_a_frame_too_large_to_receive_is_consumed_not_retried_forever():
    async def scenario():
        server = ReplayServer({"f1": []}, heartbeat_s=0.05)
        server.publish("f1", "match", point_event(1), 1.0)
        server.publish_raw("f1", "match", "x" * (2 << 20))  # 2 MB
        server.publish("f1", "match", point_event(3), 3.0)
        recorder = Recorder()
        client = await _run(server, recorder, lambda: 3 in recorder.delivered, max_size=1 << 20)
        return recorder, client

    recorder, client = asyncio.run(scenario())
    assert recorder.delivered == [1, 3]
    assert recorder.rejected == [(2, f"frame larger than {1 << 20} bytes (not received)")]
    assert client.stats.connects == 2


def test_bad_frames_are_handed_on_once_across_dropped_connections():
    async def scenario():
        server = ReplayServer({"f1": []}, heartbeat_s=0.05)
        port = await server.start(publish=False)
        recorder, stop = Recorder(), asyncio.Event()
        client = _client(port, recorder)
        task = asyncio.create_task(client.run(stop))
        for i in range(1, 301):
            if i % 10 == 0:
                server.publish_raw("f1", "match", f"bad frame {i}")
            else:
                server.publish("f1", "match", point_event(i), float(i))
            if i % 50 == 0:
                await asyncio.sleep(0.02)
                await server.drop_connections()
        await _until(lambda: len(recorder.frames) >= 300)
        stop.set()
        await task
        await server.stop()
        return recorder, client

    recorder, client = asyncio.run(scenario())
    assert [f.seq for f in recorder.frames] == list(range(1, 301))
    assert [seq for seq, _ in recorder.rejected] == list(range(10, 301, 10))
    assert client.stats.connects > 3
