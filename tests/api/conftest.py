"""Fixtures of the live API tests: a real prediction service, a real event log written by the real
engine over real Grand Slam matches (up to the point where the first match has finished and been
settled by the control plane's settlement function, the others still in play), and helpers to go on
trading on a copy of it."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from betting.policy import TradingPolicy
from feeds.live.replay import build_feed
from serving import control
from serving.engine.engine import EngineConfig, TradingEngine
from serving.engine.prediction import PredictionClient
from storage.db import make_engine, migrate
from tests.engine.fixtures import envelopes_of, slam_rows

MATCHES = 6
STAGGER_S = 1800.0
"""Feed seconds between match starts: when the first match ends the others are in play, with hours to go."""


@pytest.fixture(scope="session")
def envelopes():
    """The feed of six real Wimbledon 2012 matches starting half an hour apart."""
    schedule, skipped = build_feed(slam_rows("2012-wimbledon", MATCHES), stagger_s=STAGGER_S)
    assert not skipped
    return envelopes_of(schedule)


@pytest.fixture(scope="session")
def split(envelopes) -> int:
    """Envelopes before this index are in the session log: one match finished, the others in play."""
    end = next(i for i, e in enumerate(envelopes) if e.channel == "match" and e.data.kind == "match_end")
    return end + 30


async def trade(database_url: str, prediction_url: str, envelopes, batch: int = 7) -> TradingEngine:
    """Run a (restarted) engine over ``envelopes``: it recovers silently up to its cursors, then trades."""
    db = make_engine(database_url)
    async with PredictionClient(prediction_url, timeout_s=5) as client:
        engine = TradingEngine(EngineConfig(), db, client.predict_live)
        for i in range(0, len(envelopes), batch):
            await engine.process([(0.0, e) for e in envelopes[i : i + batch]])
            await engine.commit(wait=True)
        await engine.housekeeping()
        await engine.commit(wait=True)
        if engine._writer is not None:  # what engine.run does when it stops
            engine._writer.cancel()
            await asyncio.gather(engine._writer, return_exceptions=True)
    db.dispose()
    return engine


@pytest.fixture(scope="session")
def session_log(tmp_path_factory, prediction_service, envelopes, split) -> Path:
    """A SQLite application database with the engine's log of ``envelopes[:split]``, settled."""
    path = tmp_path_factory.mktemp("api-log") / "live.db"
    url = f"sqlite:///{path}"
    migrate(url)
    asyncio.run(trade(url, prediction_service, envelopes[:split]))
    db = make_engine(url)
    settled = control.settle_finished(db, TradingPolicy())
    assert settled.settled and not settled.unsettleable
    with db.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path


def match_ids(db) -> tuple[set[str], set[str]]:
    """(started, finished) match ids of an event log."""
    from betting.records import EventKind
    from storage import live as store

    started = {
        m
        for _, _, _, _, m, p in store.events_after(db, 0, kinds=[str(EventKind.FEED_MESSAGE)], limit=10**7)
        if p.get("kind") == "match_start"
    }
    finished = {m for *_, m, _ in store.events_after(db, 0, kinds=[str(EventKind.MATCH_FINISHED)], limit=10**7)}
    return started, finished


@pytest.fixture
def log_copy(session_log, tmp_path) -> str:
    """A private copy of the session log (for tests that trade on or change it): its URL."""
    path = tmp_path / "live.db"
    shutil.copyfile(session_log, path)
    return f"sqlite:///{path}"
