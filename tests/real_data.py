"""Access to the real shared data for tests (read from ../shared/data, never copied in)."""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path

import pandas as pd
import pytest

from courtside.settings import Settings
from feeds.historical import ingest
from feeds.sources import LocalDataSource


def data_dir() -> Path:
    path = Path(Settings.from_env().data_dir)
    if not (path / "atp").is_dir():
        pytest.fail(f"the real tennis data is not at {path}; set COURTSIDE_DATA_DIR")
    return path


@cache
def raw(dataset: str) -> pd.DataFrame:
    """The ingested real dataset (cached for the session; callers must not modify it)."""
    return ingest(LocalDataSource(data_dir()), dataset).frame


@lru_cache(maxsize=1)
def clean() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The clean match table and players built from the real data."""
    from features.matches import clean_matches, clean_players

    table, _ = clean_matches(raw("atp_matches"), raw("atp_matches_qual_chall"))
    return table, clean_players(raw("atp_players"))
