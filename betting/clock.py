"""Clocks: where the trading core gets "now" from.

Time is *event time*: in a replay it is the time of the message being processed, live it is the
wall clock. The exchange and the risk checks only ever ask an injected ``Clock``; nothing in the
core calls ``time.time()`` or ``datetime.now()`` except ``SystemClock`` below.
All times are timezone-aware (UTC by convention).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Source of the current (event) time."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


def require_aware(moment: datetime) -> datetime:
    """The moment itself, or a ValueError when it has no timezone (naive times are ambiguous)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timezone-aware datetime required, got naive {moment!r}")
    return moment


class ManualClock:
    """A clock moved explicitly (replays and tests); it never goes backwards."""

    def __init__(self, start: datetime) -> None:
        self._now = require_aware(start)

    def now(self) -> datetime:
        """The time last set."""
        return self._now

    def set(self, moment: datetime) -> None:
        """Move to ``moment`` (not earlier than now: event time is monotonic)."""
        require_aware(moment)
        if moment < self._now:
            raise ValueError(f"clock cannot go back from {self._now.isoformat()} to {moment.isoformat()}")
        self._now = moment

    def advance(self, seconds: float) -> datetime:
        """Move forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError("clock cannot go back")
        self._now = self._now + timedelta(seconds=seconds)
        return self._now


class SystemClock:
    """Wall-clock time in UTC (live trading only)."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)
