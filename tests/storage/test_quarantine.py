"""The quarantine table, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from storage.models import Quarantine
from storage.quarantine import (
    QuarantinedRecord,
    quarantine_counts,
    quarantined_rows,
    replace_quarantine,
)


def _records(n: int, prefix: str = "row") -> list[QuarantinedRecord]:
    return [
        QuarantinedRecord(
            location="data/atp_matches_2024.csv",
            line=i + 2,
            record=f"{prefix},{i},abc",
            reason=f"winner_id: 'abc' is not an integer ({i})",
        )
        for i in range(n)
    ]


def _add_live_row(engine: Engine, source: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(Quarantine),
            {
                "source": source,
                "location": "ws://feed",
                "line": None,
                "record": "{}",
                "reason": "seq: missing",
                "stage": "live",
                "batch_id": "live-session",
            },
        )


def test_counts_of_an_empty_table(engine: Engine) -> None:
    assert quarantine_counts(engine) == {}
    assert quarantined_rows(engine, "atp_matches") == []


def test_replace_quarantine_replaces_only_that_source(engine: Engine) -> None:
    assert replace_quarantine(engine, "atp_matches", _records(3, "old")) == 3
    assert replace_quarantine(engine, "wta_matches", _records(2)) == 2
    _add_live_row(engine, "atp_matches")
    assert quarantine_counts(engine) == {"atp_matches": 4, "wta_matches": 2}

    assert replace_quarantine(engine, "atp_matches", _records(1, "new")) == 1

    assert quarantine_counts(engine) == {"atp_matches": 2, "wta_matches": 2}
    rows = quarantined_rows(engine, "atp_matches")
    assert [(row.stage, row.record) for row in rows] == [("live", "{}"), ("ingest", "new,0,abc")]
    assert [row.record for row in quarantined_rows(engine, "wta_matches")] == [
        "row,0,abc",
        "row,1,abc",
    ]


def test_replace_with_no_rows_clears_the_source(engine: Engine) -> None:
    replace_quarantine(engine, "atp_matches", _records(3))
    replace_quarantine(engine, "wta_matches", _records(1))
    assert replace_quarantine(engine, "atp_matches", []) == 0
    assert quarantine_counts(engine) == {"wta_matches": 1}


def test_one_batch_id_per_run(engine: Engine) -> None:
    replace_quarantine(engine, "atp_matches", _records(3))
    first = {row.batch_id for row in quarantined_rows(engine, "atp_matches")}
    replace_quarantine(engine, "atp_matches", _records(3))
    second = {row.batch_id for row in quarantined_rows(engine, "atp_matches")}
    assert len(first) == len(second) == 1
    assert first != second
    replace_quarantine(engine, "atp_matches", _records(1), batch_id="run-42")
    assert [row.batch_id for row in quarantined_rows(engine, "atp_matches")] == ["run-42"]


def test_rows_read_back_as_written(engine: Engine) -> None:
    rows = [
        QuarantinedRecord("a.csv", 7, "x,y", "bad"),
        QuarantinedRecord("https://example.org/b.csv", None, "z", "worse"),
    ]
    replace_quarantine(engine, "atp_matches", rows)
    stored = quarantined_rows(engine, "atp_matches")
    assert [(r.location, r.line, r.record, r.reason) for r in stored] == [
        ("a.csv", 7, "x,y", "bad"),
        ("https://example.org/b.csv", None, "z", "worse"),
    ]
    assert all(r.source == "atp_matches" and r.stage == "ingest" for r in stored)
    assert stored[0].id < stored[1].id


def test_limit(engine: Engine) -> None:
    replace_quarantine(engine, "atp_matches", _records(5))
    assert [row.line for row in quarantined_rows(engine, "atp_matches", limit=2)] == [2, 3]
    assert len(quarantined_rows(engine, "atp_matches", limit=None)) == 5


def test_unicode_and_very_long_records_survive(engine: Engine) -> None:
    long_record = "Đoković,Świątek,ß," + "x" * 2_000_000 + ",end"
    rows = [
        QuarantinedRecord(
            location="données/joueurs_ünïcode.csv",
            line=1,
            record="Stan Wawrinka 🇨🇭🎾, 錦織圭, Новак Ђоковић, نادال, 'quote' \"dq\" \\ ; --\u2028",
            reason="name: 'Ђоковић' не найден ✗",
        ),
        QuarantinedRecord(location="x.csv", line=2, record=long_record, reason="r" * 100_000),
    ]
    replace_quarantine(engine, "players", rows)
    stored = quarantined_rows(engine, "players")
    assert [(r.location, r.record, r.reason) for r in stored] == [
        (row.location, row.record, row.reason) for row in rows
    ]


def test_text_no_backend_can_store_is_escaped_not_lost(engine: Engine) -> None:
    """NUL (refused by Postgres) and lone surrogates (undecodable bytes) are escaped."""
    undecodable = b"caf\xe9".decode("utf-8", "surrogateescape")
    replace_quarantine(engine, "atp_matches", [QuarantinedRecord("f\x00.csv", 1, f"a\x00b,{undecodable}", "r")])
    [stored] = quarantined_rows(engine, "atp_matches")
    assert stored.location == "f\\x00.csv"
    assert stored.record == "a\\x00b,caf\\udce9"


def test_timestamps_are_timezone_aware_utc(engine: Engine) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    replace_quarantine(engine, "atp_matches", _records(1))
    after = datetime.now(UTC) + timedelta(seconds=5)
    [stored] = quarantined_rows(engine, "atp_matches")
    assert stored.created_at.tzinfo is not None
    assert stored.created_at.utcoffset() == timedelta(0)
    assert before <= stored.created_at <= after


def test_stage_is_checked_by_the_database(engine: Engine) -> None:
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            insert(Quarantine),
            {
                "source": "s",
                "location": "l",
                "record": "r",
                "reason": "r",
                "stage": "other",
                "batch_id": "b",
            },
        )


def test_bulk_replace_of_100k_rows_is_fast(engine: Engine) -> None:
    rows = _records(100_000)
    started = time.perf_counter()
    assert replace_quarantine(engine, "atp_matches", rows) == 100_000
    assert replace_quarantine(engine, "atp_matches", rows) == 100_000  # delete + insert
    elapsed = time.perf_counter() - started
    assert quarantine_counts(engine) == {"atp_matches": 100_000}
    assert elapsed < 30, f"two replaces of 100k rows took {elapsed:.1f}s"
