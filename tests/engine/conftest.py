"""A real ``bentoml serve`` of the prediction service for the engine tests (one per session)."""

import pytest

from feeds.live.replay import build_feed
from tests.engine.fixtures import envelopes_of, slam_rows
from tests.services import prediction_service as serve


@pytest.fixture(scope="session")
def prediction_service(tmp_path_factory):
    """URL of a running prediction service (no champion needed for /predict_live with a prior)."""
    with serve(tmp_path_factory.mktemp("service-home")) as url:
        yield url


@pytest.fixture(scope="module")
def envelopes():
    """Three real Wimbledon 2012 matches as the feed would publish them (all starting at once)."""
    schedule, skipped = build_feed(slam_rows("2012-wimbledon", 3), stagger_s=0)
    assert not skipped
    return envelopes_of(schedule)
