"""Reading the live event log after a new session (``reset_live``), on SQLite and on PostgreSQL: on Postgres the
ids go on from the old sequence, so a reader that starts again from 0 must still find the new entries."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from storage import live as store


def _append(engine: Engine, n: int) -> None:
    at = datetime(2026, 12, 7, tzinfo=UTC)
    store.append_events(engine, [store.EventEntry("FEED_MESSAGE", at, {"i": i}, "live", i, "m") for i in range(n)])


def test_a_reader_from_zero_finds_the_new_session_whatever_its_ids(engine: Engine) -> None:
    _append(engine, 7)
    store.reset_live(engine)
    _append(engine, 3)
    newest = store.last_event_id(engine)
    rows = store.next_event_rows(engine, 0, 2)
    assert [r["payload"]["i"] for r in rows] == [0, 1]  # the first two of the new session, wherever ids start
    assert [r["id"] for r in store.next_event_rows(engine, rows[-1]["id"], 10)] == [newest]
    assert store.event_rows(engine, 0, newest)[-1]["id"] == newest  # an id range still means a range
