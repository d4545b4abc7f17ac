"""Timeliness: how old is the newest record of each source? A results feed whose newest match is months old is
stale, however well-formed its rows — the product brief's fourth data-quality dimension.

``TIMELINESS`` (one place) names each dataset's date column and the age its newest record may reach; the ingest
step reports the age as the dataset's ``data_is_fresh`` check (a warning: old data still trains, but a person
should know). Sources without a per-record date (players, the Grand Slam point logs) are not judged here; their
ingest assets carry a materialization freshness policy instead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Timeliness:
    column: str
    max_age_days: int


TIMELINESS = {
    "atp_matches": Timeliness("tourney_date", 14),
    "atp_matches_qual_chall": Timeliness("tourney_date", 14),
    "odds_tour": Timeliness("Date", 14),
    "odds_slams": Timeliness("Date", 120),
    "wta_matches": Timeliness("tourney_date", 14),
    "wta_odds_slams": Timeliness("Date", 120),
    "pbp_matches": Timeliness("date", 60),
}
"""A tour week's results within two weeks; Grand Slams come four times a year; point logs lag the results."""


@dataclass(frozen=True)
class Freshness:
    dataset: str
    newest: str | None
    """The newest record's date (ISO), None when the source has none."""
    age_days: int | None
    max_age_days: int
    fresh: bool


def timeliness(dataset: str, frame: pd.DataFrame, today: dt.date | None = None) -> Freshness | None:
    """The age of ``dataset``'s newest record against its limit (None: the dataset has no per-record date)."""
    rule = TIMELINESS.get(dataset)
    if rule is None:
        return None
    today = today or dt.datetime.now(dt.UTC).date()
    dates = pd.to_datetime(frame[rule.column], errors="coerce").dropna() if rule.column in frame else pd.Series([])
    if dates.empty:
        return Freshness(dataset, None, None, rule.max_age_days, False)
    newest = dates.max().date()
    age = (today - newest).days
    return Freshness(dataset, newest.isoformat(), age, rule.max_age_days, age <= rule.max_age_days)


LIVE_LOG_MAX_AGE_S = 120.0
"""While a session runs, the live event log's newest entry should be younger than this (the engine logs every
message; a quiet feed still sends heartbeats, and the engine a heartbeat status)."""


def live_log_freshness(newest: dt.datetime | None, now: dt.datetime | None = None) -> dict:
    """The live event log's timeliness: its newest entry's age against ``LIVE_LOG_MAX_AGE_S``."""
    if newest is None:
        return {"newest_entry_at": None, "age_s": None, "max_age_s": LIVE_LOG_MAX_AGE_S, "fresh": False}
    now = now or dt.datetime.now(dt.UTC)
    newest = newest if newest.tzinfo else newest.replace(tzinfo=dt.UTC)
    age = max(0.0, (now - newest).total_seconds())
    return {
        "newest_entry_at": newest.isoformat(),
        "age_s": round(age, 1),
        "max_age_s": LIVE_LOG_MAX_AGE_S,
        "fresh": age <= LIVE_LOG_MAX_AGE_S,
    }
