"""The core of ``benchmarks/log_delivery_bench.py`` on a tiny case (issue 14): 2 writer processes committing with the
engine's ``storage.live.commit_step`` on a real PostgreSQL log, 2 reader processes following it -- by tailing
(``next_event_rows`` every poll), woken by Postgres LISTEN/NOTIFY (a statement trigger notifies at commit), or woken by
Redis pub/sub (published after the commit) -- with reader 1's connections ended from the server side in the middle.

Each reader must read every committed id exactly once, in increasing order (the log is the truth; a wake-up only says
"read now"). A woken reader whose listening connection dropped must notice it, listen again and read by id at once:
every entry committed while it was not listening (no wake-up reached it) is read by that read, none by the fallback
read. For NOTIFY: notifications name increasing ids, and once a reader has read after a notification it has the id the
notification named (a notification never arrives before its rows are visible)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.log_delivery_bench import MECHANISMS, Case, run_case
from storage.db import migrate

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


TINY = Case(
    mechanism="tail",
    writers=2,
    readers=2,
    rate=60.0,  # entries/s: 90 in the steady phase, then a burst of 40
    steady_s=1.5,
    burst=40,
    idle_s=0.3,
    gap_s=0.3,
    backoff_s=0.3,
    fallback_s=2.0,
    poll_s=0.1,
    timeout_s=30.0,
)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_every_reader_reads_every_committed_entry_once_in_order(
    mechanism: str, postgres_database_url: str, request: pytest.FixtureRequest
) -> None:
    redis = request.getfixturevalue("redis_url") if mechanism == "redis" else None
    migrate(postgres_database_url)
    figures = run_case(replace(TINY, mechanism=mechanism), postgres_database_url, redis)

    assert figures["entries"] >= 60 and figures["entries_by_phase"]["burst"] == 40
    assert figures["unmatched_entries"] == 0  # every row in the log is one a writer committed
    for index, reader in enumerate(figures["readers_detail"]):
        assert not reader["timed_out"], reader
        # a read in flight when reader 1's connections were ended fails once (it is read again, from the same id)
        assert all("OperationalError" in e for e in reader["errors"]) if index == 0 else not reader["errors"], reader
        assert (reader["lost"], reader["duplicates"], reader["out_of_order"], reader["foreign"]) == (0, 0, 0, 0)
        assert reader["exact"]  # the committed ids, each once, in id order
    assert figures["all_exact"]
    assert figures["latency_ms"]["steady"] is not None and figures["latency_ms"]["burst"] is not None

    drop = figures["drop"]
    assert drop["killed"]["postgres_backends"] >= 1  # reader 1's connections really were ended
    assert drop["back_after_s"] is not None
    # what reader 1 had not read when its connections ended, or was committed until it was back: read by a read
    # already begun then (a retry), or by its first read once back -- none left for a later read
    assert drop["none_left_after_first_read_once_back"], drop
    if mechanism == "tail":
        assert all(r["wakeups"] == 0 for r in figures["readers_detail"])
        return
    assert drop["drops_seen"] == 1  # the reader saw its listening connection fail, and listened again
    assert drop["back_after_s"] >= TINY.backoff_s
    for reader in figures["readers_detail"]:
        assert reader["wakeups"] > 0
        assert reader["fallback_rows"] == 0  # every entry came with a wake-up (or the read after listening again)
        assert reader["reads_per_s"]["idle"] == 0  # no query while nothing is written
    if mechanism == "notify":
        assert all(r["payload_disorder"] == 0 and r["notified_unseen"] == 0 for r in figures["readers_detail"])
    if mechanism == "redis":
        assert drop["killed"]["redis_connections"] == 1
