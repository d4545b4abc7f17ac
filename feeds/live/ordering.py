"""The feed's own order: frames of a feed's channels merged by the feed's clock and sequence numbers, never by
when they happened to arrive. What the deterministic engine (audits, backtests, restart replays) consumes, so
the same recorded feed always gives the same decisions whatever the delivery timing, reconnects or batching.

Order: (event time, channel rank, sequence number). Each channel's frames arrive in sequence order; a frame is
released once no channel can still deliver an earlier one: every other channel has a frame waiting, or has
delivered one with a later time, or its heartbeat says it is up to date (``last_seq`` = what arrived) as of a
time at least as late. For a server that publishes in time order, the messages of one instant together
(the protocol's contract, and what ``feeds.live.server`` does) this is exact, so the order depends only on
the frames.

A frame without a valid time (a bad frame, a skipped gap) takes its channel's time, and a channel's time
never goes back; bad frames carry no decision (the engine counts messages only), so where they fall does not
matter. A frame whose time the server's own clock contradicts — a heartbeat sent after it on the same
connection says the clock is earlier — is released at once rather than waited for, and the channel's time
returns to the server's: a lying frame can neither stall the merge nor push the channel's later frames out
of order (around the lie itself the order follows arrival; for a truthful server this never happens).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from feeds.live.client import Frame
from feeds.live.protocol import Heartbeat

Key = tuple[str, str]


class FeedMerger:
    """Merges the frames of several (feed, channel) streams into the feed's own order."""

    def __init__(self, channels: Iterable[Key]):
        self.rank = {c: i for i, c in enumerate(sorted(channels))}
        self._queues: dict[Key, deque[list]] = {c: deque() for c in self.rank}
        """[key time, frame, free] waiting per channel; ``free``: its time is a lie (released without waiting)."""
        self._time: dict[Key, float | None] = dict.fromkeys(self.rank)
        """Time of each channel's last frame."""
        self._mark: dict[Key, tuple[float, bool]] = {c: (float("-inf"), False) for c in self.rank}
        """Per channel: every frame with a time below (or, when True, at) this has arrived."""
        self._last_seq: dict[Key, int] = dict.fromkeys(self.rank, 0)

    def _key_time(self, channel: Key, frame: Frame) -> float:
        # only the channel's own frames decide its times: the order must not depend on which channel came first
        previous = self._time[channel]
        if frame.envelope is None:
            return previous if previous is not None else 0.0
        t = frame.envelope.event_time
        return t if previous is None else max(previous, t)

    def push(self, frame: Frame) -> list[Frame]:
        """A frame arrived; returns the frames now released, in order."""
        channel = (frame.feed, frame.channel)
        t = self._key_time(channel, frame)
        self._time[channel] = t
        self._last_seq[channel] = frame.seq
        self._queues[channel].append([t, frame, False])
        self._mark[channel] = max(self._mark[channel], (t, False))
        return self._release()

    def heartbeat(self, hb: Heartbeat) -> list[Frame]:
        """A channel's heartbeat arrived; returns the frames now released, in order."""
        channel = (hb.feed, hb.channel)
        if channel in self.rank and hb.last_seq <= self._last_seq[channel]:
            for entry in self._queues[channel]:
                if entry[0] > hb.event_time:  # sent before this heartbeat, yet later than the server's clock
                    entry[2] = True
            current = self._time[channel]
            if current is not None and current > hb.event_time:
                # the lie is over: the channel's time and mark are the server's again
                self._time[channel] = hb.event_time
                self._mark[channel] = (hb.event_time, True)
            else:
                self._mark[channel] = max(self._mark[channel], (hb.event_time, True))
        return self._release()

    def pending(self) -> int:
        """Frames waiting for another channel to move on."""
        return sum(len(q) for q in self._queues.values())

    def _may_still_precede(self, other: Key, t: float, rank: int) -> bool:
        """Whether channel ``other`` (nothing waiting) may still deliver a frame ordered before (t, rank)."""
        mark, inclusive = self._mark[other]
        return not (mark > t or (mark == t and (inclusive or self.rank[other] > rank)))

    def _release(self) -> list[Frame]:
        out: list[Frame] = []
        while True:
            for queue in self._queues.values():  # lying frames go at once, and constrain nobody
                while queue and queue[0][2]:
                    out.append(queue.popleft()[1])
            heads = [(q[0][0], self.rank[c], q[0][1].seq, c) for c, q in self._queues.items() if q]
            if not heads:
                return out
            t, rank, _, channel = min(heads)
            for other, queue in self._queues.items():
                if other != channel and not queue and self._may_still_precede(other, t, rank):
                    return out
            out.append(self._queues[channel].popleft()[1])
