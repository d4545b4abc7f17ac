"""Real matches from the shared data as replay-catalog rows (without the pipeline), for engine tests."""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

from feeds.live.catalog import SLAM_NAMES, SLAM_SURFACES, _seconds
from feeds.live.protocol import Envelope
from storage.db import make_engine, migrate
from tests.real_data import data_dir


@lru_cache(maxsize=4)
def slam_rows(year_slam: str = "2012-wimbledon", n: int = 3) -> tuple[dict, ...]:
    """The first ``n`` men's singles matches of one slam's point log, as catalog rows."""
    matches = pd.read_csv(data_dir() / "slam_pbp" / f"{year_slam}-matches.csv.gz")
    points = pd.read_csv(data_dir() / "slam_pbp" / f"{year_slam}-points.csv.gz", low_memory=False)
    men = matches[matches["match_num"] < 2000].head(n)
    rows = []
    for m in men.itertuples():
        p = points[
            (points["match_id"] == m.match_id) & (points["PointNumber"] > 0) & points["PointWinner"].isin([1, 2])
        ].sort_values("PointNumber")
        year, slam = year_slam.split("-")
        rows.append(
            {
                "source": "slam",
                "event_key": m.match_id,
                "event_date": f"{year}-06-25",
                "tournament": SLAM_NAMES[slam],
                "season": int(year),
                "round": "R128",
                "surface": SLAM_SURFACES[slam],
                "best_of": 5,
                "player1": m.player1,
                "player2": m.player2,
                "player1_id": None,
                "player2_id": None,
                "sackmann_match_id": None,
                "first_server": int(p["PointServer"].iloc[0]),
                "winner": None if pd.isna(m.winner) else int(m.winner),
                "status": m.status,
                "prematch_p1": 0.62,
                "prematch_source": "test",
                "close_p1": 1.55,
                "close_p2": 2.6,
                "close_source": "pinnacle-close",
                "pbp": None,
                "point_winner": p["PointWinner"].astype(int).tolist(),
                "point_server": p["PointServer"].astype(int).tolist(),
                "elapsed_s": list(_seconds(p["ElapsedTime"].astype(str))),
            }
        )
    return tuple(rows)


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
