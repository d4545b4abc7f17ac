"""Real matches played through both local stand-ins together: the API-Tennis stand-in pushes each match's snapshots
and the Betfair stand-in plays its match-odds market, in the order of the match's own timeline (the real closing
odds before play, the in-play prices around each point: ``feeds.live.replay.match_messages``'s market messages as
one Betfair market that turns in-play). For the tests and for a demonstration of paper trading on live prices
without credentials (``python -m adapters --standin N``).

The in-play prices are the SIMULATED market's (``feeds.live.market``), not recorded Betfair prices: the stand-in
proves the protocol and the plumbing, not the strategy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from adapters.api_tennis.vendor import VendorMatch, snapshots, vendor_name
from adapters.betfair.historical import stream_messages
from adapters.betfair.standin import StandInMarket
from features.scoring import Score
from feeds.live.protocol import MarketUpdate
from feeds.live.replay import match_messages, points_of


@dataclass(frozen=True)
class PlayedMatch:
    """One match for both stand-ins: the vendor's snapshots, the Betfair market, and the order to play them in."""

    snapshots: list[dict]
    market: StandInMarket
    updates: list[MarketUpdate]
    """The market's updates as the feed's messages (what a subscriber must end up with)."""
    order: list[tuple[float, str]]
    """(seconds on the match's timeline, "at" for the next snapshot or "bf" for the next market message)."""


def played_match(row: dict, event_key: int, market_id: str, points: int | None = None) -> PlayedMatch:
    """A replay-catalog row as both stand-ins play it (the first ``points`` points, then a retirement; all: None)."""
    scores, _, times = points_of(row)
    cut = scores if points is None or points >= len(scores) else scores[:points]
    day = str(row["event_date"])[:10]
    vm = VendorMatch(
        event_key,
        day,
        vendor_name(str(row["player1"])),
        event_key * 10 + 1,
        vendor_name(str(row["player2"])),
        event_key * 10 + 2,
        "Atp Singles",
        str(row["tournament"]),
        event_key % 1000,
        day[:4],
    )
    first = int(row["first_server"]) - 1 if row.get("source") == "slam" else 0
    snaps = snapshots(vm, Score.start(scores[0].fmt, first), cut, retired_by=None if cut is scores else 1)
    start = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(hours=12)
    updates = []
    for m in match_messages(row, 0.0):
        if m.channel != "market" or (m.payload.status == "CLOSED" and not m.payload.in_play):
            continue  # one Betfair market: it turns in-play instead of closing before play
        if points is not None and m.payload.point_number is not None and m.payload.point_number > points:
            continue
        updates.append((m.at, start + timedelta(seconds=m.at), m.payload))
    runners = {
        "First Player": (event_key * 10 + 1, str(row["player1"])),
        "Second Player": (event_key * 10 + 2, str(row["player2"])),
    }
    name = f"{row['player1']} v {row['player2']}"
    lines = stream_messages([(t, u) for _, t, u in updates], market_id, name, runners, start)
    market = StandInMarket(market_id, name, list(runners.values()), start, lines, [(t, u) for _, t, u in updates])
    order = sorted(
        [(at, 0, "bf") for at, _, _ in updates]
        + [(-1.0 if j == 0 else times[j - 1], 1, "at") for j in range(len(snaps))]
    )
    return PlayedMatch(snaps, market, [u for *_, u in updates], [(at, kind) for at, _, kind in order])


Step = Callable[[], Awaitable[None]]


async def play(match: PlayedMatch, push_snapshot: Step, play_market: Step, at: Callable[[float], None]) -> None:
    """Play one match in its order: ``at(seconds)`` first (the feed's clock), then the next snapshot or the next
    market message."""
    for seconds, kind in match.order:
        at(seconds)
        await (push_snapshot() if kind == "at" else play_market())
