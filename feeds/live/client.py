"""A resilient feed client: reconnects with exponential backoff and jitter, resumes after the last
sequence number it consumed (no loss, no duplicates), validates every frame and hands each one on —
valid or not — as exactly one ``Frame``, so nothing a server sends can stop or stall it.

Sequence numbers are positions (``feeds.live.protocol``): on a connection opened with ``?since=N``
the k-th data frame is message N+k. Every data frame consumes its position exactly once: a valid
message whose own ``seq`` is its position is delivered; anything else — not JSON, binary, the wrong
types, a repeat of an earlier number, another feed's or channel's message, a frame too large to
receive — is handed on with the reason (the engine quarantines it) and the position is consumed. A
reconnect asks for what follows the last consumed position, so a frame is never handed on twice.

A valid message claiming a *later* number than its position is either out of order (the next frame
carries the next position: it is quarantined at its position) or the server skipped numbers (the
next frame follows *its* number, or a heartbeat says the server has published that far): a gap. A
gap is re-requested from the last consumed position at most ``max_gap_retries`` times, then the
missing numbers are skipped with one ``Frame`` carrying ``gap_from`` (the engine logs
``GAP_SKIPPED``) and the stream goes on. A heartbeat saying the server has published more than
arrived is a gap too. Nothing here can livelock: every retry is counted and bounded, and every frame
moves the position or is decided by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from feeds.live.protocol import Envelope, ErrorMessage, Heartbeat, parse

log = logging.getLogger(__name__)

_TRANSIENT = (OSError, ConnectionClosed, InvalidHandshake, TimeoutError)
"""Failures a reconnect can cure."""
MESSAGE_TOO_BIG = 1009
"""Close code a client sends when a frame exceeds its ``max_size``."""
RECORD_LIMIT = 20_000
"""Characters of a bad frame kept with its reason."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One consumed position of a channel: a valid message, or the reason it is not one."""

    feed: str
    channel: str
    seq: int
    """Its position in the channel (for a gap: the last skipped number)."""
    raw: str
    """The frame as received (text; binary decoded with replacement characters)."""
    envelope: Envelope | None = None
    """The validated message; None when ``reason`` says why there is none."""
    reason: str | None = None
    gap_from: int | None = None
    """Set on a skipped gap: messages ``gap_from``..``seq`` never arrived."""
    received: float = 0.0
    """``time.perf_counter()`` when it was read (decision latency starts here)."""

    @property
    def valid(self) -> bool:
        return self.envelope is not None


OnFrame = Callable[[Frame], Awaitable[None]]
OnHeartbeat = Callable[[Heartbeat], Awaitable[None]]


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: a delay drawn uniformly from [0, min(cap, base * 2**attempt)]."""

    base_s: float = 0.1
    cap_s: float = 10.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.cap_s, self.base_s * 2 ** min(attempt, 30)))


@dataclass
class ClientStats:
    connects: int = 0
    frames: int = 0
    """Positions consumed (delivered + rejected): every data frame counted exactly once."""
    delivered: int = 0
    rejected: int = 0
    duplicates: int = 0
    """Of the rejected: frames claiming a number already consumed (a repeat)."""
    out_of_order: int = 0
    """Of the rejected: frames claiming a number that is not their position."""
    gaps: int = 0
    """Re-requests after the server said it had more than it sent."""
    gaps_skipped: int = 0
    skipped_messages: int = 0
    heartbeats: int = 0
    bad_control_frames: int = 0
    """Heartbeats or errors that did not validate (not numbered: ignored, counted)."""
    server_behind: int = 0
    """Heartbeats saying the server has fewer messages than this client consumed (another feed?)."""
    last_seq_seen_on_server: int = 0


@dataclass
class FeedClient:
    """Follows one channel of one feed from ``last_seq`` (the last position already consumed)."""

    url: str
    """Server base, e.g. ``ws://127.0.0.1:8765``."""
    feed: str
    channel: str
    on_frame: OnFrame
    on_heartbeat: OnHeartbeat | None = None
    last_seq: int = 0
    backoff: Backoff = field(default_factory=Backoff)
    rng: random.Random = field(default_factory=random.Random)
    stats: ClientStats = field(default_factory=ClientStats)
    max_size: int = 2**22
    """Largest frame received (bytes); a larger one is consumed as a bad frame."""
    max_gap_retries: int = 3
    _gap_attempts: dict[int, int] = field(default_factory=dict)
    _attempt: int = 0
    _ahead: tuple[str, Envelope] | None = None
    """A valid message claiming a later number than its position, waiting for the next frame to tell
    whether it is out of order or the first after a gap."""

    def _uri(self) -> str:
        return f"{self.url.rstrip('/')}/feeds/{self.feed}/{self.channel}?since={self.last_seq}"

    async def _consume(self, raw: str, envelope: Envelope | None, reason: str | None,
                       gap_from: int | None = None, seq: int | None = None) -> None:
        position = self.last_seq + 1 if seq is None else seq
        frame = Frame(self.feed, self.channel, position, raw[:RECORD_LIMIT] if envelope is None else raw,
                      envelope, reason, gap_from, time.perf_counter())
        await self.on_frame(frame)
        self.last_seq = position
        if gap_from is None:
            self.stats.frames += 1
            if envelope is not None:
                self.stats.delivered += 1
            else:
                self.stats.rejected += 1

    async def _handle(self, raw: str | bytes) -> bool:
        """Process one frame; returns False when the stream must be re-requested (a gap)."""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            msg = parse(text)
        except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError, or anything a hostile frame causes
            kind, claimed = _peek(text)
            if kind in ("heartbeat", "error"):
                self.stats.bad_control_frames += 1  # not numbered: it holds no position
                log.warning("%s/%s: invalid %s frame ignored: %s", self.feed, self.channel, kind, _reason(exc))
                return True
            if not await self._settle_ahead(claimed):
                return False
            reason = f"invalid message: {_reason(exc)}"
            if isinstance(raw, bytes):
                reason = f"binary frame ({len(raw)} bytes); {reason}"
            if claimed is not None and claimed != self.last_seq + 1:
                reason += f"; it says seq {claimed}, it is message {self.last_seq + 1} of the channel"
            await self._consume(text, None, reason)
            return True
        if isinstance(msg, Heartbeat):
            return await self._heartbeat(msg)
        if isinstance(msg, ErrorMessage):
            raise SubscriptionRefused(f"feed server refused the subscription: {msg.message}")
        if not await self._settle_ahead(msg.seq):
            return False
        position = self.last_seq + 1
        if (msg.feed, msg.channel) != (self.feed, self.channel):
            await self._consume(text, None, f"a message of {msg.feed}/{msg.channel} on {self.feed}/{self.channel}")
        elif msg.seq > position:
            self._ahead = (text, msg)  # out of order, or the first message after a gap: the next frame tells
        elif msg.seq < position:
            self.stats.duplicates += 1
            await self._consume(text, None, f"a repeat of seq {msg.seq}, it is message {position} of the channel")
        else:
            await self._consume(text, msg, None)
        return True

    async def _settle_ahead(self, next_claim: int | None, server_has: int | None = None) -> bool:
        """Decide a message that claimed a later number than its position, now that the next frame claims
        ``next_claim`` (or a heartbeat says the server has published ``server_has``). False: re-request."""
        if self._ahead is None:
            return True
        text, msg = self._ahead
        self._ahead = None
        jumped = next_claim == msg.seq + 1 or (server_has is not None and server_has >= msg.seq)
        if not jumped:  # the stream goes on at the positions: that message was out of order
            self.stats.out_of_order += 1
            await self._consume(text, None, f"out of order: it says seq {msg.seq}, "
                                            f"it is message {self.last_seq + 1} of the channel")
            return True
        if not await self._gap(msg.seq - 1):
            return False
        await self._consume(text, msg, None, seq=msg.seq)
        return True

    async def _gap(self, last_missing: int) -> bool:
        """Messages last_seq+1..``last_missing`` are missing: False to re-request them (a bounded number of
        times), then True once they are skipped (``GAP_SKIPPED``)."""
        attempts = self._gap_attempts.get(self.last_seq, 0)
        if attempts < self.max_gap_retries:
            self._gap_attempts[self.last_seq] = attempts + 1
            self.stats.gaps += 1
            log.warning("%s/%s: messages %d-%d missing; re-requesting (%d/%d)", self.feed, self.channel,
                        self.last_seq + 1, last_missing, attempts + 1, self.max_gap_retries)
            return False
        first = self.last_seq + 1
        self.stats.gaps_skipped += 1
        self.stats.skipped_messages += last_missing - self.last_seq
        log.error("%s/%s: messages %d-%d never arrived after %d re-requests: skipped", self.feed, self.channel,
                  first, last_missing, self.max_gap_retries)
        await self._consume("", None, f"GAP_SKIPPED: messages {first}-{last_missing} never arrived after "
                            f"{self.max_gap_retries} re-requests", gap_from=first, seq=last_missing)
        self._gap_attempts.clear()
        return True

    async def _heartbeat(self, hb: Heartbeat) -> bool:
        self.stats.heartbeats += 1
        self.stats.last_seq_seen_on_server = hb.last_seq
        if not await self._settle_ahead(None, server_has=hb.last_seq):
            return False
        if hb.last_seq < self.last_seq:
            self.stats.server_behind += 1
            if self.stats.server_behind == 1:
                log.error("%s/%s: the server has %d messages, this client consumed %d: a different or reset feed",
                          self.feed, self.channel, hb.last_seq, self.last_seq)
        elif hb.last_seq > self.last_seq and not await self._gap(hb.last_seq):
            return False  # the server says it published more than it sent us: ask again
        if self.on_heartbeat is not None:
            await self.on_heartbeat(hb)
        return True

    async def _follow(self) -> None:
        try:
            self._ahead = None  # not consumed: it comes again after a reconnect
            async with connect(self._uri(), compression=None, max_size=self.max_size, open_timeout=5) as ws:
                self.stats.connects += 1
                self._attempt = 0
                async for raw in ws:
                    if not await self._handle(raw):
                        return  # a gap: reconnect with ?since=last_seq
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == MESSAGE_TOO_BIG:
                # The next frame is larger than max_size: it can never be received. Consume its position
                # (a message held for the next frame's verdict was out of order: this one has no number).
                await self._settle_ahead(None)
                await self._consume("", None, f"frame larger than {self.max_size} bytes (not received)")
            raise

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


def _reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in errors()[:5])
        except Exception:  # noqa: BLE001 - a reason must always come out
            pass
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _peek(text: str) -> tuple[str | None, int | None]:
    """The ``type`` and ``seq`` a frame claims, if it is a JSON object that says them."""
    try:
        value = json.loads(text)
    except Exception:  # noqa: BLE001 - not JSON (or nested too deep): it claims nothing
        return None, None
    if not isinstance(value, dict):
        return None, None
    kind = value.get("type") if isinstance(value.get("type"), str) else None
    seq = value.get("seq")
    return kind, seq if isinstance(seq, int) and not isinstance(seq, bool) else None
