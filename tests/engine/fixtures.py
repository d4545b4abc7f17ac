"""Real matches from the shared data as replay-catalog rows (without the pipeline), for engine tests."""

from __future__ import annotations

from functools import lru_cache
from itertools import islice

from feeds.live.catalog import slam_log_rows
from feeds.live.protocol import Envelope
from storage.db import make_engine, migrate
from tests.real_data import data_dir


@lru_cache(maxsize=4)
def slam_rows(year_slam: str = "2012-wimbledon", n: int = 3) -> tuple[dict, ...]:
    """The first ``n`` men's singles matches of one slam's point log, as catalog rows."""
    return tuple(islice(slam_log_rows(data_dir(), year_slam, month_day="06-25", prematch_source="test"), n))


def envelopes_of(schedule, feed: str = "live") -> list[Envelope]:
    """A feed schedule as the envelopes a server would publish (sequence numbers per channel)."""
    seq = {"match": 0, "market": 0}
    out = []
    for item in schedule:
        seq[item.channel] += 1
        out.append(
            Envelope(feed=feed, channel=item.channel, seq=seq[item.channel], event_time=item.at, data=item.payload)
        )
    return out


def live_db(folder, name: str = "live.db"):
    """A migrated SQLite application database in ``folder``."""
    db = make_engine(f"sqlite:///{folder / name}")
    migrate(db)
    return db
