"""A resilient feed client: reconnects with exponential backoff and jitter, resumes after the last
sequence number it consumed (no loss, no duplicates), validates every frame and hands each one on —
valid or not — as exactly one ``Frame``, so nothing a server sends can stop or stall it.

Sequence numbers are positions (``feeds.live.protocol``): on a connection opened with ``?since=N``
the k-th data frame is message N+k. Every data frame consumes its position exactly once: a valid
message whose own ``seq`` is its position is delivered; anything else — not JSON, binary, the wrong
types, a repeat of an earlier number, another feed's or channel's message, a frame too large to
receive — is handed on with the reason (the engine quarantines it) and the position is consumed. A
reconnect asks for what follows the last consumed position, so a frame is never handed on twice.

A valid message claiming a *later* number than its position is held: if ``confirm_gap`` consecutive
valid messages agree on the same jump, the server's numbering really skipped (a gap); if any other frame
comes first, they were out of order and are quarantined at their positions. A gap is re-requested from
the last consumed position at most ``max_gap_retries`` times, then the missing numbers (at most
``max_gap_skip``) are skipped with one ``Frame`` carrying ``gap_from`` (the engine logs ``GAP_SKIPPED``)
and the stream goes on — this also heals a stream that drifted from the positions (a server that stored a
control frame). A heartbeat saying the server has more than it sent is re-requested a bounded number of
times and then only counted: a claim never moves the position. An error message refuses a subscription
only as a connection's first frame; later it is a bad frame like any other. Nothing here can livelock:
every retry is counted and bounded, and every frame moves the position or is decided within a few more.
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
    server_ahead: int = 0
    """Heartbeats saying the server has more than it sends, after the bounded re-requests (not believed)."""
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
    connected: bool = False
    """A connection to the server is open now (readiness)."""
    """Largest frame received (bytes); a larger one is consumed as a bad frame."""
    max_gap_retries: int = 3
    max_gap_skip: int = 10_000
    """Most numbers a confirmed gap may skip; a larger jump is never believed (the frames are out of order)."""
    confirm_gap: int = 3
    """Consecutive valid messages that must agree on a jump in the numbering before it is a gap."""
    _gap_attempts: dict[int, int] = field(default_factory=dict)
    _attempt: int = 0
    _ahead: list[tuple[str, Envelope]] = field(default_factory=list)
    """Valid messages claiming later numbers than their positions, by the same offset: out of order, or
    the first after a gap — decided when ``confirm_gap`` of them agree, or when a frame breaks the run."""
    _error: tuple[str, ErrorMessage] | None = None
    """An error message just received: a refusal if the server closes the connection after it, else a frame
    at a position like any other (decided by what comes next)."""

    def _uri(self) -> str:
        return f"{self.url.rstrip('/')}/feeds/{self.feed}/{self.channel}?since={self.last_seq}"

    async def _consume(
        self,
        raw: str,
        envelope: Envelope | None,
        reason: str | None,
        gap_from: int | None = None,
        seq: int | None = None,
    ) -> None:
        position = self.last_seq + 1 if seq is None else seq
        frame = Frame(
            self.feed,
            self.channel,
            position,
            raw[:RECORD_LIMIT] if envelope is None else raw,
            envelope,
            reason,
            gap_from,
            time.perf_counter(),
        )
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
        if self._error is not None:  # something followed the error message: it was not a refusal
            await self._consume(
                self._error[0], None, f"an error message in the middle of the stream: {self._error[1].message[:200]!r}"
            )
            self._error = None
        try:
            msg = parse(text)
        except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError, or anything a hostile frame causes
            kind, claimed = _peek(text)
            if kind == "heartbeat":
                self.stats.bad_control_frames += 1  # not numbered: it holds no position
                log.warning("%s/%s: invalid heartbeat ignored: %s", self.feed, self.channel, _reason(exc))
                return True
            await self._settle_ahead()
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
            await self._settle_ahead()
            self._error = (text, msg)  # a refusal only if the server now closes the connection
            return True
        position = self.last_seq + 1 + len(self._ahead)
        if (msg.feed, msg.channel) != (self.feed, self.channel):
            await self._settle_ahead()
            await self._consume(text, None, f"a message of {msg.feed}/{msg.channel} on {self.feed}/{self.channel}")
        elif msg.seq > position and self._joins_ahead(msg.seq - position):
            self._ahead.append((text, msg))  # out of order, or the numbering jumped: the next frames tell
            if len(self._ahead) >= self.confirm_gap:
                return await self._decide_gap()
        else:
            await self._settle_ahead()
            position = self.last_seq + 1
            if msg.seq > position:
                self._ahead.append((text, msg))
            elif msg.seq < position:
                self.stats.duplicates += 1
                await self._consume(text, None, f"a repeat of seq {msg.seq}, it is message {position} of the channel")
            else:
                await self._consume(text, msg, None)
        return True

    def _joins_ahead(self, offset: int) -> bool:
        """Whether a message ``offset`` numbers ahead of its position continues the held run."""
        if not self._ahead:
            return True
        _, first = self._ahead[0]
        return first.seq - (self.last_seq + 1) == offset

    async def _settle_ahead(self) -> None:
        """The held run ended before enough messages agreed on a jump: they were out of order. Each is
        consumed at its position with the reason."""
        held, self._ahead = self._ahead, []
        for text, msg in held:
            self.stats.out_of_order += 1
            await self._consume(
                text, None, f"out of order: it says seq {msg.seq}, it is message {self.last_seq + 1} of the channel"
            )

    async def _decide_gap(self) -> bool:
        """``confirm_gap`` consecutive messages agree the numbering jumped: re-request the missing ones (a
        bounded number of times), then skip them (``GAP_SKIPPED``) and deliver the run. A jump larger than
        ``max_gap_skip`` is not believed. False: re-request."""
        first = self._ahead[0][1].seq
        missing = first - (self.last_seq + 1)
        if missing > self.max_gap_skip:
            log.error(
                "%s/%s: %d messages claim to be %d numbers ahead (more than %d): out of order, not a gap",
                self.feed,
                self.channel,
                len(self._ahead),
                missing,
                self.max_gap_skip,
            )
            await self._settle_ahead()
            return True
        attempts = self._gap_attempts.get(self.last_seq, 0)
        if attempts < self.max_gap_retries:
            self._gap_attempts[self.last_seq] = attempts + 1
            self.stats.gaps += 1
            log.warning(
                "%s/%s: messages %d-%d missing; re-requesting (%d/%d)",
                self.feed,
                self.channel,
                self.last_seq + 1,
                first - 1,
                attempts + 1,
                self.max_gap_retries,
            )
            self._ahead = []
            return False
        gap_from = self.last_seq + 1
        self.stats.gaps_skipped += 1
        self.stats.skipped_messages += missing
        log.error(
            "%s/%s: messages %d-%d never arrived after %d re-requests: skipped",
            self.feed,
            self.channel,
            gap_from,
            first - 1,
            self.max_gap_retries,
        )
        await self._consume(
            "",
            None,
            f"GAP_SKIPPED: messages {gap_from}-{first - 1} never arrived after {self.max_gap_retries} re-requests",
            gap_from=gap_from,
            seq=first - 1,
        )
        held, self._ahead = self._ahead, []
        for text, msg in held:
            await self._consume(text, msg, None, seq=msg.seq)
        self._gap_attempts.clear()
        return True

    async def _heartbeat(self, hb: Heartbeat) -> bool:
        self.stats.heartbeats += 1
        self.stats.last_seq_seen_on_server = hb.last_seq
        await self._settle_ahead()  # the server has nothing more: a held run is not confirmed
        if hb.last_seq < self.last_seq:
            self.stats.server_behind += 1
            if self.stats.server_behind == 1:
                log.error(
                    "%s/%s: the server has %d messages, this client consumed %d: a different or reset feed",
                    self.feed,
                    self.channel,
                    hb.last_seq,
                    self.last_seq,
                )
        elif hb.last_seq > self.last_seq:
            # The server says it published more than it sent: ask again, a bounded number of times. A
            # heartbeat's claim never moves the position (it may be wrong; the frames are what count).
            attempts = self._gap_attempts.get(-self.last_seq - 1, 0)
            if attempts < self.max_gap_retries:
                self._gap_attempts[-self.last_seq - 1] = attempts + 1
                self.stats.gaps += 1
                log.warning(
                    "%s/%s: the server has %d messages, %d arrived; re-requesting (%d/%d)",
                    self.feed,
                    self.channel,
                    hb.last_seq,
                    self.last_seq,
                    attempts + 1,
                    self.max_gap_retries,
                )
                return False
            self.stats.server_ahead += 1
            if attempts == self.max_gap_retries:
                self._gap_attempts[-self.last_seq - 1] = attempts + 1
                log.error(
                    "%s/%s: the server keeps saying it has %d messages but sends none after %d: following on",
                    self.feed,
                    self.channel,
                    hb.last_seq,
                    self.last_seq,
                )
        if self.on_heartbeat is not None:
            await self.on_heartbeat(hb)
        return True

    async def _follow(self) -> None:
        try:
            self._ahead, self._error = [], None  # not consumed: they come again after a reconnect
            async with connect(self._uri(), compression=None, max_size=self.max_size, open_timeout=5) as ws:
                self.stats.connects += 1
                self._attempt = 0
                self.connected = True
                try:
                    async for raw in ws:
                        if not await self._handle(raw):
                            return  # a gap: reconnect with ?since=last_seq
                finally:
                    self.connected = False
            self._refused()
        except ConnectionClosed as exc:
            self._refused()
            if exc.sent is not None and exc.sent.code == MESSAGE_TOO_BIG:
                # The next frame is larger than max_size: it can never be received. Consume its position
                # (a message held for the next frame's verdict was out of order: this one has no number).
                await self._settle_ahead()
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

    def _refused(self) -> None:
        """The connection ended right after an error message: the server refused the subscription."""
        if self._error is not None:
            message = self._error[1].message
            self._error = None
            raise SubscriptionRefused(f"feed server refused the subscription: {message}")


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
