"""Timeliness of the sources: the newest record's age against its limit (``expectations.freshness``)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from expectations.freshness import TIMELINESS, timeliness
from tests.real_data import raw


def test_the_shared_results_are_old_and_say_how_old():
    found = timeliness("atp_matches", raw("atp_matches"), today=dt.date(2026, 12, 7))
    assert found is not None and not found.fresh
    assert found.newest.startswith("2021-") and found.age_days > 1800 and found.max_age_days == 14


def test_a_source_with_last_weeks_results_is_fresh_and_one_without_dates_is_not_judged():
    frame = pd.DataFrame({"tourney_date": pd.to_datetime(["2026-11-01", "2026-11-30"])})
    found = timeliness("atp_matches", frame, today=dt.date(2026, 12, 7))
    assert found.fresh and found.age_days == 7 and found.newest == "2026-11-30"
    assert timeliness("atp_players", frame) is None and "atp_players" not in TIMELINESS
    empty = timeliness("odds_tour", pd.DataFrame({"Date": []}))
    assert empty is not None and not empty.fresh and empty.newest is None
