"""The fault suite's moving parts, all real: a feed server publishing recorded frames over WebSocket, a TCP
proxy that can cut every connection, the engine as its own process (``python -m serving.engine``) that
can be killed with SIGKILL, and readers of what the engine left in its database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from feeds.live.protocol import Envelope
from feeds.live.replay import build_feed
from feeds.live.server import ReplayServer
from storage.db import make_engine, migrate
from tests.engine.fixtures import slam_rows
from tests.services import ROOT

FEED = "live"
CHANNELS = ("match", "market")


def full() -> bool:
    """``make chaos`` (``COURTSIDE_CHAOS_FULL=1``) runs the full suite; CI a bounded one."""
    return os.environ.get("COURTSIDE_CHAOS_FULL", "") in ("1", "true", "yes")


class Loop:
    """An asyncio loop in a thread of its own (servers and proxies live there while the test drives)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@dataclass(frozen=True)
class Published:
    """One frame of a recorded feed: its channel, position, bytes, and (for a valid message) the feed time."""

    channel: str
    seq: int
    raw: str | bytes
    event_time: float | None
    category: str
    """``valid``, or the kind of damage (what the suite counts by)."""


def real_frames(matches: int, year_slam: str = "2012-wimbledon", stagger_s: float = 300.0) -> list[Published]:
    """Real Grand Slam matches as the replay publishes them (positions per channel)."""
    schedule, skipped = build_feed(slam_rows(year_slam, matches), stagger_s=stagger_s)
    assert not skipped, skipped
    seq = dict.fromkeys(CHANNELS, 0)
    out = []
    for item in schedule:
        seq[item.channel] += 1
        env = Envelope(feed=FEED, channel=item.channel, seq=seq[item.channel], event_time=item.at, data=item.payload)
        out.append(Published(item.channel, env.seq, env.model_dump_json(), item.at, "valid"))
    return out


class FeedServer:
    """A ``ReplayServer`` publishing a recorded list of frames at ``rate`` frames a second."""

    def __init__(self, loop: Loop, frames: list[Published], rate: float, heartbeat_s: float = 0.2):
        self.loop = loop
        self.frames = frames
        self.rate = rate
        self.server = ReplayServer({FEED: []}, heartbeat_s=heartbeat_s)
        self.port = loop.run(self.server.start(publish=False))
        self.published = 0
        self._task: asyncio.Future | None = None

    def start_publishing(self) -> None:
        async def publish() -> None:
            start = time.monotonic()
            instant = None
            for i, f in enumerate(self.frames):
                # one instant's messages (and the bad frames among them) go out together, as the server does
                if f.event_time is not None and f.event_time != instant:
                    due = start + i / self.rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    elif i % 64 == 0:
                        await asyncio.sleep(0)
                    instant = f.event_time
                self.server.publish_raw(FEED, f.channel, f.raw, f.event_time)
                self.published = i + 1

        self._task = asyncio.run_coroutine_threadsafe(publish(), self.loop.loop)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def counts(self) -> dict[str, int]:
        return {c: sum(1 for f in self.frames if f.channel == c) for c in CHANNELS}

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.loop.run(self.server.stop())


class TcpProxy:
    """Forwards TCP connections to ``target_port``; ``cut()`` aborts every connection at once."""

    def __init__(self, loop: Loop, target_port: int):
        self.loop = loop
        self.target_port = target_port
        self.connections = 0
        """Connections accepted."""
        self.pairs: set[tuple[asyncio.BaseTransport, asyncio.BaseTransport]] = set()
        """(client side, server side) of every connection forwarding now."""
        self.cuts = 0
        self.server = loop.run(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer.transport, up_writer.transport)
        self.pairs.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.pairs.discard(pair)

    def cut(self) -> int:
        """Abort every open connection (both sides), as a network failure would."""

        async def cut() -> int:
            victims, self.pairs = self.pairs, set()
            for pair in victims:
                for t in pair:
                    t.abort()
            return len(victims)

        self.cuts += 1
        return self.loop.run(cut())

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def live(self) -> int:
        """Connections forwarding now."""
        return len(self.pairs)

    def stop(self) -> None:
        self.server.close()


@dataclass
class EngineProcess:
    """``python -m serving.engine --deterministic`` over a database, restartable, killable with SIGKILL."""

    database_url: str
    feed_url: str
    prediction_url: str
    home: Path
    deterministic: bool = True
    env: dict[str, str] = field(default_factory=dict)
    """More of the process's environment (e.g. the venue and its credentials)."""
    proc: subprocess.Popen | None = None
    starts: int = 0
    kills: int = 0
    exits: list[int] = field(default_factory=list)
    """Exit codes of runs that ended on their own (a crash would show here)."""

    def start(self) -> None:
        env = {
            **os.environ,
            "COURTSIDE_HOME": str(self.home),
            "COURTSIDE_DATABASE_URL": self.database_url,
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        log = (self.home / "engine.log").open("ab")
        args = [
            sys.executable,
            "-m",
            "serving.engine",
            "--feed-url",
            self.feed_url,
            "--prediction-url",
            self.prediction_url,
            "--report-s",
            "5",
        ] + (["--deterministic"] if self.deterministic else [])
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.starts += 1

    def alive(self) -> bool:
        if self.proc is None:
            return False
        code = self.proc.poll()
        if code is not None and self.proc is not None:
            self.exits.append(code)
            self.proc = None
        return code is None

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.kills += 1
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=30)
                self.exits.append(code)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None

    def log_tail(self, n: int = 3000) -> str:
        path = self.home / "engine.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""


def new_database(folder: Path, name: str) -> str:
    url = f"sqlite:///{folder / name}"
    migrate(url)
    return url


def cursors(db) -> dict[str, int]:
    with db.connect() as conn:
        return {c: s for c, s in conn.execute(text("select channel, last_seq from feed_cursors"))}


def wait_until(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    every: float = 0.2,
    alive: Callable[[], bool] | None = None,
    log: Callable[[], str] | None = None,
) -> float:
    """Seconds it took; fails with ``what`` (and the log) on a timeout or a dead process."""
    start = time.monotonic()
    while not check():
        if alive is not None and not alive():
            raise AssertionError(f"the engine died while waiting for {what}:\n{log() if log else ''}")
        if time.monotonic() - start > timeout:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what} (a stall?)\n{log() if log else ''}"
            )
        time.sleep(every)
    return time.monotonic() - start


def orders(db) -> list[tuple]:
    """The ledger's orders, every column that matters, by reference."""
    with db.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "select customer_order_ref, match_id, source, status, size_matched, payload from orders "
                    "order by customer_order_ref"
                )
            )
        ]


def events(db, kind: str) -> list[tuple[int, str | None, int | None, str | None, dict]]:
    """(id, feed, seq, match_id, payload) of the log entries of one kind, in log order."""
    with db.connect() as conn:
        return [
            (i, f, s, m, json.loads(p))
            for i, f, s, m, p in conn.execute(
                text("select id, feed, seq, match_id, payload from live_events where kind = :k order by id"),
                {"k": kind},
            )
        ]


def quarantined(db) -> list[tuple[str, int, str]]:
    with db.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text("select location, line, reason from quarantine where stage = 'live' order by id")
            )
        ]


def engine(url: str):
    return make_engine(url)
