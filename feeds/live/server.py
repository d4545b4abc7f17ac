"""A WebSocket server that publishes prepared match and market messages as a live feed.

Messages are published on a replay clock: at their real timing (``speed`` = 1 is real time, 60 is a minute a
second) or at a fixed ``rate`` of messages per second, or as fast as possible (``rate`` = 0) — always in time
order, the messages of one instant together (what a heartbeat's time means, and what the deterministic
engine's ordering relies on: ``feeds.live.ordering``). Every published message gets the next sequence number
of its channel and is kept, so a client that reconnects with ``?since=N`` receives everything after N, then
the live tail; a client that is up to date receives a heartbeat every ``heartbeat_s``.

    ws://HOST:PORT/feeds/<feed>/<channel>?since=<seq>      channel: match | market

"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from feeds.live.protocol import Channel, Envelope, Heartbeat

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scheduled:
    """A message to publish at ``at`` seconds of replay time on a channel (payload: a protocol model)."""

    at: float
    channel: Channel
    payload: object


@dataclass
class _Channel:
    published: list[str | bytes] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class ReplayServer:
    """Publishes one schedule per feed and serves subscribers with resume by sequence number."""

    def __init__(
        self,
        feeds: dict[str, list[Scheduled]],
        speed: float = 1.0,
        rate: float | None = None,
        heartbeat_s: float = 1.0,
        loop_feeds: bool = False,
    ):
        self.schedules = {name: sorted(items, key=lambda s: s.at) for name, items in feeds.items()}
        self.speed = speed
        self.rate = rate
        self.heartbeat_s = heartbeat_s
        self.loop_feeds = loop_feeds
        self.channels: dict[tuple[str, str], _Channel] = {
            (name, ch): _Channel() for name in feeds for ch in ("match", "market")
        }
        self.event_time: dict[str, float] = dict.fromkeys(feeds, 0.0)
        self.done = asyncio.Event()
        self._connections: set[ServerConnection] = set()
        self._server: Server | None = None
        self._tasks: list[asyncio.Task] = []

    # --- publishing -------------------------------------------------------------------------
    def publish(self, feed: str, channel: Channel, payload, event_time: float) -> Envelope:
        """Publish one message now (assigns the channel's next sequence number)."""
        ch = self.channels[(feed, channel)]
        env = Envelope(feed=feed, channel=channel, seq=len(ch.published) + 1, event_time=event_time, data=payload)
        ch.published.append(env.model_dump_json())
        self.event_time[feed] = event_time
        ch.changed.set()
        ch.changed = asyncio.Event()
        return env

    def publish_raw(self, feed: str, channel: Channel, raw: str | bytes, event_time: float | None = None) -> None:
        """Publish a raw frame (text, or bytes for a binary frame) as the channel's next message, for
        recorded feeds and tests of bad input; ``event_time``: the feed's clock now (heartbeats say it)."""
        ch = self.channels[(feed, channel)]
        ch.published.append(raw)
        if event_time is not None:
            self.event_time[feed] = event_time
        ch.changed.set()
        ch.changed = asyncio.Event()

    async def _run_feed(self, name: str) -> None:
        while True:
            start = time.monotonic()
            offset = self.event_time[name]
            previous_at = None
            for i, item in enumerate(self.schedules[name]):
                if item.at != previous_at:  # messages of one instant go out together: a heartbeat (which says
                    if self.rate is None:  # "up to date as of this time") never falls between them
                        due = start + item.at / self.speed
                    elif self.rate > 0:
                        due = start + i / self.rate
                    else:
                        due = 0.0
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    elif i % 256 == 0:
                        await asyncio.sleep(0)  # flat out: still let subscribers run
                previous_at = item.at
                self.publish(name, item.channel, item.payload, offset + item.at)
            if not self.loop_feeds:
                return

    async def _run_all(self) -> None:
        await asyncio.gather(*(self._run_feed(n) for n in self.schedules))
        self.done.set()

    # --- serving ----------------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None  # set by the opening handshake, before the handler runs
        url = urlparse(ws.request.path)
        parts = [p for p in url.path.split("/") if p]
        if len(parts) != 3 or parts[0] != "feeds" or (parts[1], parts[2]) not in self.channels:
            await ws.send(
                json.dumps(
                    {
                        "type": "error",
                        "message": f"unknown path {url.path}; "
                        f"use /feeds/<feed>/<match|market>?since=N; feeds: {sorted(self.schedules)}",
                    }
                )
            )
            await ws.close(1008, "unknown feed")
            return
        feed, channel = parts[1], parts[2]
        try:
            since = int(parse_qs(url.query).get("since", ["0"])[0])
        except ValueError:
            await ws.close(1008, "since must be an integer")
            return
        ch = self.channels[(feed, channel)]
        pos = max(since, 0)
        self._connections.add(ws)
        try:
            while True:
                if pos < len(ch.published):
                    end = len(ch.published)
                    for raw in ch.published[pos:end]:
                        await ws.send(raw)
                    pos = end
                    continue
                waiter = ch.changed
                try:
                    await asyncio.wait_for(waiter.wait(), timeout=self.heartbeat_s)
                except TimeoutError:
                    if pos < len(ch.published):
                        continue  # published as the wait timed out: send it first, a heartbeat never runs ahead
                    hb = Heartbeat(feed=feed, channel=channel, last_seq=pos, event_time=self.event_time[feed])
                    await ws.send(hb.model_dump_json())
        except ConnectionClosed:
            pass
        finally:
            self._connections.discard(ws)

    async def drop_connections(self) -> int:
        """Close every subscriber's connection (clients must resume without loss)."""
        conns = list(self._connections)
        for ws in conns:
            await ws.close(1012, "server dropped the connection")
        return len(conns)

    async def start(self, host: str = "127.0.0.1", port: int = 0, publish: bool = True) -> int:
        """Start serving (and publishing); returns the port."""
        self._server = await serve(
            self._handler, host, port, compression=None, max_queue=None, ping_interval=20, ping_timeout=20
        )
        if publish:
            self._tasks.append(asyncio.create_task(self._run_all()))
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def feeds(self) -> Iterable[str]:
        return self.schedules.keys()
