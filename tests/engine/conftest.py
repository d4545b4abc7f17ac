"""Fixtures of the engine tests (the prediction service they call is the session's: tests/conftest.py)."""

import pytest

from feeds.live.replay import build_feed
from tests.engine.fixtures import envelopes_of, slam_rows


@pytest.fixture(scope="module")
def envelopes():
    """Three real Wimbledon 2012 matches as the feed would publish them (all starting at once)."""
    schedule, skipped = build_feed(slam_rows("2012-wimbledon", 3), stagger_s=0)
    assert not skipped
    return envelopes_of(schedule)
