"""A resilient feed client: reconnects with exponential backoff and jitter, resumes after the last
sequence number it delivered (no loss, no duplicates), validates every message and hands bad
ones to a quarantine callback with the reason instead of stopping."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import ValidationError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from feeds.live.protocol import Envelope, ErrorMessage, Heartbeat, parse

log = logging.getLogger(__name__)

_TRANSIENT = (OSError, ConnectionClosed, InvalidHandshake, TimeoutError)
"""Failures a reconnect can cure."""

Deliver = Callable[[Envelope], Awaitable[None]]
Reject = Callable[[str, str, int | None], Awaitable[None]]
"""(raw message, reason, sequence number if readable) -> None."""


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: a delay drawn uniformly from [0, min(cap, base * 2**attempt)]."""

    base_s: float = 0.1
    cap_s: float = 10.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.cap_s, self.base_s * 2 ** attempt))


@dataclass
class ClientStats:
    connects: int = 0
    delivered: int = 0
    duplicates: int = 0
    rejected: int = 0
    gaps: int = 0
    heartbeats: int = 0
    last_seq_seen_on_server: int = 0


@dataclass
class FeedClient:
    """Follows one channel of one feed from ``last_seq`` (the last message already processed)."""

    url: str
    """Server base, e.g. ``ws://127.0.0.1:8765``."""
    feed: str
    channel: str
    deliver: Deliver
    reject: Reject
    last_seq: int = 0
    backoff: Backoff = field(default_factory=Backoff)
    rng: random.Random = field(default_factory=random.Random)
    stats: ClientStats = field(default_factory=ClientStats)
    _unreadable: int = 0

    def _uri(self) -> str:
        return f"{self.url.rstrip('/')}/feeds/{self.feed}/{self.channel}?since={self.last_seq}"

    async def _handle(self, raw: str | bytes) -> bool:
        """Process one frame; returns False when the stream must be re-requested (a gap)."""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            msg = parse(text)
        except ValidationError as exc:
            seq = _readable_seq(text)
            reason = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in exc.errors()[:5])
            await self.reject(text, f"invalid message: {reason}", seq)
            self.stats.rejected += 1
            if seq is not None and seq == self.last_seq + 1:
                self.last_seq = seq  # consumed (quarantined): do not ask for it again
            elif seq is None:
                self._unreadable += 1  # it held the next sequence number(s): do not wait for them
            return True
        if isinstance(msg, Heartbeat):
            self.stats.heartbeats += 1
            self.stats.last_seq_seen_on_server = msg.last_seq
            return True
        if isinstance(msg, ErrorMessage):
            raise SubscriptionRefused(f"feed server refused the subscription: {msg.message}")
        if msg.seq <= self.last_seq:
            self.stats.duplicates += 1
            return True
        if msg.seq == self.last_seq + 1 + self._unreadable:
            self.last_seq = msg.seq - 1  # the unreadable frames just before were those numbers
        elif msg.seq > self.last_seq + 1:
            self.stats.gaps += 1
            log.warning("%s/%s: gap after %d (got %d); re-requesting", self.feed, self.channel, self.last_seq, msg.seq)
            return False
        self._unreadable = 0
        await self.deliver(msg)
        self.last_seq = msg.seq
        self.stats.delivered += 1
        return True

    async def _follow(self) -> None:
        async with connect(self._uri(), compression=None, max_size=2**22, open_timeout=5) as ws:
            self.stats.connects += 1
            self._unreadable = 0
            self._attempt = 0
            async for raw in ws:
                if not await self._handle(raw):
                    return  # a gap: reconnect with ?since=last_seq

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the channel until ``stop`` is set, reconnecting as needed."""
        self._attempt = 0
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                follow = asyncio.ensure_future(self._follow())
                await asyncio.wait({follow, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if not follow.done():
                    follow.cancel()
                    await asyncio.gather(follow, return_exceptions=True)
                    return
                exc = follow.exception()
                if exc is not None and not isinstance(exc, _TRANSIENT):
                    raise exc  # a refused subscription or a bug: not something a reconnect fixes
                if exc is not None:
                    log.info("%s/%s: connection lost (%s)", self.feed, self.channel, exc)
                delay = self.backoff.delay(self._attempt, self.rng)
                self._attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(stopper), timeout=delay)
        finally:
            stopper.cancel()


class SubscriptionRefused(RuntimeError):
    """The server does not serve the requested feed or channel."""


def _readable_seq(text: str) -> int | None:
    try:
        value = json.loads(text).get("seq")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None
