"""A data-quality score for each live match message, in the product brief's four dimensions, and its running
aggregate per match.

- **completeness**: the share of the optional fields a message can carry that it does carry (the server, both
  players' keys, the tournament's key, the match's elapsed time, and for a point the point itself);
- **validity**: the message passed the feed protocol. Every message scored here did: a frame refused as malformed
  cannot be attributed to a match, and is counted in the engine's quarantine instead (the dimension is kept so a
  producer that scores raw frames can say 0);
- **consistency**: it applied cleanly to the match's exact state (1); it jumped points the feed skipped
  (``resync``: 0.5); or it broke the state and was refused (0);
- **timeliness**: its delay against the fastest delivery seen on its feed (the offset between the engine's clock
  and the feed's clock, minus the smallest such offset so far): 1 within ``ON_TIME_S``, falling linearly to 0 at
  ``LATE_S``; unknown (left out of the score) when not measured.

The score is the mean of the dimensions known. ``QualityTally`` keeps the per-match running means and minimum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DIMENSIONS = ("completeness", "validity", "consistency", "timeliness")
OPTIONAL = ("event_serve", "first_player_key", "second_player_key", "tournament_key", "elapsed_s")
ON_TIME_S = 1.0
LATE_S = 10.0


def completeness(event: Any) -> float:
    """Share of the optional fields present (and, for a point, its point record)."""
    present = sum(getattr(event, name, None) is not None for name in OPTIONAL)
    total = len(OPTIONAL)
    if getattr(event, "kind", None) == "point":
        present += bool(getattr(event, "pointbypoint", None))
        total += 1
    return round(present / total, 4)


def timeliness(delay_s: float | None) -> float | None:
    if delay_s is None:
        return None
    if delay_s <= ON_TIME_S:
        return 1.0
    return round(max(0.0, 1.0 - (delay_s - ON_TIME_S) / (LATE_S - ON_TIME_S)), 4)


def message_quality(event: Any, applied: str, delay_s: float | None) -> dict[str, float | None]:
    """One message's dimensions and score. ``applied``: ``point`` / ``status`` / ``match_start`` (clean), ``resync``
    (points skipped) or ``refused`` (it broke the match's state)."""
    dims: dict[str, float | None] = {
        "completeness": completeness(event),
        "validity": 1.0,
        "consistency": 0.0 if applied == "refused" else 0.5 if applied == "resync" else 1.0,
        "timeliness": timeliness(delay_s),
    }
    known = [v for v in dims.values() if v is not None]
    dims["score"] = round(sum(known) / len(known), 4)
    return dims


@dataclass
class QualityTally:
    """Running data quality of one match's messages."""

    messages: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    worst: float | None = None

    def add(self, dq: dict[str, Any]) -> None:
        self.messages += 1
        for name in (*DIMENSIONS, "score"):
            value = dq.get(name)
            if value is not None:
                self.sums[name] = self.sums.get(name, 0.0) + float(value)
                self.counts[name] = self.counts.get(name, 0) + 1
        score = dq.get("score")
        if score is not None:
            self.worst = float(score) if self.worst is None else min(self.worst, float(score))

    def as_dict(self) -> dict[str, Any] | None:
        if not self.messages:
            return None
        means = {name: round(self.sums[name] / self.counts[name], 4) for name in self.sums}
        return {"messages": self.messages, "min_score": self.worst, **means}
