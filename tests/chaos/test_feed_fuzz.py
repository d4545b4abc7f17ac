"""Feed fuzzing: a hostile feed server sends thousands of malformed frames interleaved with real replayed
Grand Slam matches to the engine, running as its own process (deterministic mode). Nothing may stop or
stall it; every bad frame is quarantined exactly once, at its position, with a reason; every real frame
is handled; no order comes from a bad frame."""

from __future__ import annotations

import time
from collections import Counter

from tests.chaos.harness import (
    CHANNELS,
    EngineProcess,
    FeedServer,
    Loop,
    cursors,
    engine,
    events,
    full,
    new_database,
    quarantined,
    real_frames,
    wait_until,
)
from tests.chaos.hostile import hostile


def test_a_hostile_feed_cannot_stop_stall_or_fool_the_engine(tmp_path, prediction_service, figures):
    matches, bad = (4, 10_000) if full() else (2, 2_500)
    frames = hostile(real_frames(matches), bad)
    loop = Loop()
    feed = FeedServer(loop, frames, rate=4000 if full() else 3000)
    url = new_database(tmp_path, "fuzz.db")
    proc = EngineProcess(url, feed.url, prediction_service, tmp_path)
    db = engine(url)
    try:
        proc.start()
        start = time.monotonic()
        feed.start_publishing()
        totals = feed.counts()
        wait_until(
            "the engine to handle every frame",
            lambda: cursors(db) == totals,
            timeout=600,
            alive=proc.alive,
            log=proc.log_tail,
        )
        seconds = time.monotonic() - start
        assert proc.alive(), proc.log_tail()
    finally:
        proc.stop()
        feed.stop()
        loop.close()

    bad_positions = {(f.channel, f.seq): f.category for f in frames if f.category != "valid"}
    rows = quarantined(db)
    by_position = Counter((location.split("/")[1], line) for location, line, _ in rows)
    assert all(reason for *_, reason in rows), "a quarantined frame without a reason"
    missing = {p: c for p, c in bad_positions.items() if by_position[p] == 0}
    twice = {p: n for p, n in by_position.items() if n > 1}
    wrongly = [p for p in by_position if p not in bad_positions]
    assert not missing, f"bad frames not quarantined: {list(missing.items())[:10]}"
    assert not twice, f"quarantined more than once: {list(twice.items())[:10]}"
    assert not wrongly, f"real frames quarantined: {wrongly[:10]}"

    valid = Counter(f.channel for f in frames if f.category == "valid")
    handled_match = len(events(db, "FEED_MESSAGE")) + len(events(db, "MATCH_FINISHED"))
    handled_market = len(events(db, "MARKET_UPDATE")) + len(events(db, "MARKET_SUSPENDED"))
    assert (handled_match, handled_market) == (valid["match"], valid["market"])
    assert len(events(db, "MATCH_FINISHED")) == matches

    placed = events(db, "ORDER_PLACED")
    triggers = [(p["trigger"]["channel"], p["trigger"]["seq"]) for *_, p in placed if "trigger" in p]
    assert len(triggers) == len(placed) and placed, "every in-play order names the frame that caused it"
    assert not [t for t in triggers if t in bad_positions], "an order caused by a bad frame"

    by_category = Counter(bad_positions.values())
    figures.update(
        {
            "matches replayed (real Grand Slam point logs)": matches,
            "real frames": sum(valid.values()),
            "malformed frames sent": len(bad_positions),
            "malformed categories": len(by_category),
            "engine process exits during the run / stalls": "0 / 0",
            "bad frames quarantined exactly once, with a reason": f"{len(bad_positions) - len(missing)}"
            f"/{len(bad_positions)}",
            "real frames handled / quarantined": f"{sum(valid.values())} / {len(wrongly)}",
            "orders placed / caused by a bad frame": f"{len(placed)} / 0",
            "matches suspended and resynchronised": f"{len(events(db, 'MATCH_SUSPENDED'))} / "
            f"{len(events(db, 'MATCH_RESUMED'))}",
            "seconds for the whole feed": round(seconds, 1),
            "channels": ", ".join(CHANNELS),
        }
    )
