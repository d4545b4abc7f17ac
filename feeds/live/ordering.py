"""The feed's own order: frames of a feed's channels merged by the feed's clock and sequence numbers,
never by when they happened to arrive. What the deterministic engine (audits, backtests, restart
replays) consumes, so the same recorded feed always gives the same decisions whatever the delivery
timing, reconnects or batching.

Order: (event time, channel rank, sequence number). Each channel's frames arrive in sequence order;
a frame is released once no channel can still deliver an earlier one: every other channel has a
frame waiting, or has delivered one with a later time, or its heartbeat says it is up to date
(``last_seq`` = what arrived) as of a time at least as late. A frame without a valid time (a bad
frame, a skipped gap) or a time leaping more than ``max_jump_s`` ahead takes its channel's previous
time, and a channel's time never goes back: a hostile time cannot hold the other channels back (after
a real pause that long, the quiet channel's frames sort at its old time until its clock is reached —
still one order, whatever the arrival). The order depends only on each channel's own frames, so it is
the same however they arrive.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from feeds.live.client import Frame
from feeds.live.protocol import Heartbeat

Key = tuple[str, str]


class FeedMerger:
    """Merges the frames of several (feed, channel) streams into the feed's own order."""

    def __init__(self, channels: Iterable[Key], max_jump_s: float):
        self.rank = {c: i for i, c in enumerate(sorted(channels))}
        self.max_jump_s = max_jump_s
        self._queues: dict[Key, deque[tuple[float, Frame]]] = {c: deque() for c in self.rank}
        self._time: dict[Key, float | None] = dict.fromkeys(self.rank)
        """Time of each channel's last frame (its frames' key times never decrease)."""
        self._mark: dict[Key, tuple[float, bool]] = {c: (float("-inf"), False) for c in self.rank}
        """Per channel: every frame with a time below (or, when True, at) this has arrived."""
        self._last_seq: dict[Key, int] = dict.fromkeys(self.rank, 0)

    def _key_time(self, channel: Key, frame: Frame) -> float:
        """The time a frame is ordered by: its own, except that a channel's time never goes back, and a
        frame without a valid time, or whose time leaps more than ``max_jump_s`` ahead, takes the channel's
        time (the engine decides whether a leap was real; here it must not hold the other channels back)."""
        previous = self._time[channel]
        if frame.envelope is None:
            return 0.0 if previous is None else previous
        t = frame.envelope.event_time
        if previous is None:
            return t
        return previous if t > previous + self.max_jump_s else max(previous, t)

    def push(self, frame: Frame) -> list[Frame]:
        """A frame arrived; returns the frames now released, in order."""
        channel = (frame.feed, frame.channel)
        t = self._key_time(channel, frame)
        self._time[channel] = t
        self._last_seq[channel] = frame.seq
        self._queues[channel].append((t, frame))
        self._mark[channel] = max(self._mark[channel], (t, False))
        return self._release()

    def heartbeat(self, hb: Heartbeat) -> list[Frame]:
        """A channel's heartbeat arrived; returns the frames now released, in order."""
        channel = (hb.feed, hb.channel)
        if channel in self.rank and hb.last_seq <= self._last_seq[channel]:
            self._mark[channel] = max(self._mark[channel], (hb.event_time, True))
        return self._release()

    def pending(self) -> int:
        """Frames waiting for another channel to move on."""
        return sum(len(q) for q in self._queues.values())

    def _release(self) -> list[Frame]:
        out: list[Frame] = []
        while True:
            heads = [(q[0][0], self.rank[c], q[0][1].seq, c) for c, q in self._queues.items() if q]
            if not heads:
                return out
            t, rank, _, channel = min(heads)
            for other, queue in self._queues.items():
                if other == channel or queue:
                    continue
                mark, inclusive = self._mark[other]
                if not (mark > t or (mark == t and (inclusive or self.rank[other] > rank))):
                    return out  # that channel may still deliver an earlier frame
            out.append(self._queues[channel].popleft()[1])
