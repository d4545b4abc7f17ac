"""When a match state deserves a new prediction: match start, a score change (game or set),
break point, set point, a momentum shift, or periodically every few points."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from features.scoring import Score


class Trigger(StrEnum):
    MATCH_START = "MATCH_START"
    SCORE_CHANGE = "SCORE_CHANGE"
    BREAK_POINT = "BREAK_POINT"
    SET_POINT = "SET_POINT"
    MOMENTUM_SHIFT = "MOMENTUM_SHIFT"
    PERIODIC = "PERIODIC"


@dataclass(frozen=True)
class TriggerConfig:
    """Which triggers are on and their parameters."""

    enabled: frozenset[Trigger] = frozenset(Trigger)
    periodic_points: int = 4
    """PERIODIC fires after this many points without any prediction."""
    momentum_window: int = 6
    """MOMENTUM_SHIFT looks at the last this-many points ..."""
    momentum_share: float = 5 / 6
    """... and fires when one player won at least this share of them and had not before."""


def momentum_leader(recent: deque[int], config: TriggerConfig) -> int | None:
    """The player (0/1) who won most of the recent points, when the share reaches the threshold."""
    if len(recent) < config.momentum_window:
        return None
    won_a = sum(1 for w in recent if w == 0)
    for player, won in ((0, won_a), (1, len(recent) - won_a)):
        if won / len(recent) >= config.momentum_share:
            return player
    return None


def fired(
    prev: Score | None,
    new: Score,
    points_since: int,
    momentum_before: int | None,
    momentum_now: int | None,
    config: TriggerConfig,
) -> list[Trigger]:
    """The triggers the transition ``prev`` -> ``new`` fires (``prev`` None: the match starts)."""
    on = config.enabled
    out: list[Trigger] = []
    if prev is None:
        return [Trigger.MATCH_START] if Trigger.MATCH_START in on else []
    if new.is_over:
        return out
    if Trigger.SCORE_CHANGE in on and (new.games != prev.games or len(new.sets) != len(prev.sets)):
        out.append(Trigger.SCORE_CHANGE)
    if Trigger.BREAK_POINT in on and new.is_break_point and not prev.is_break_point:
        out.append(Trigger.BREAK_POINT)
    if Trigger.SET_POINT in on and new.is_set_point and not prev.is_set_point:
        out.append(Trigger.SET_POINT)
    if Trigger.MOMENTUM_SHIFT in on and momentum_now is not None and momentum_now != momentum_before:
        out.append(Trigger.MOMENTUM_SHIFT)
    if Trigger.PERIODIC in on and not out and points_since >= config.periodic_points:
        out.append(Trigger.PERIODIC)
    return out
