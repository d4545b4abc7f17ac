"""The streaming engine on real point-by-point matches, with a real BentoML prediction service:
it trades under its limits, quarantines what cannot be right, and survives being killed at any
moment without placing a bet twice."""

import asyncio
import json

import pytest
from sqlalchemy import text

from betting.records import EventKind
from feeds.live.replay import build_feed
from feeds.live.server import ReplayServer
from serving.engine.engine import EngineConfig, TradingEngine
from serving.engine.prediction import PredictionClient
from storage import live as store
from tests.engine.fixtures import live_db, slam_rows


async def _run(db, url, envelopes, stop_after=None, batch=7):
    """Drive an engine in process over envelopes[start:]; 'crash' (drop uncommitted work) after ``stop_after``."""
    async with PredictionClient(url, timeout_s=5) as client:
        engine = TradingEngine(EngineConfig(), db, client.predict_live)
        # a restart replays from the beginning: the engine recovers silently up to its cursors
        for n, i in enumerate(range(0, len(envelopes), batch), start=1):
            await engine.process([(0.0, e) for e in envelopes[i : i + batch]])
            await engine.commit(wait=True)
            if stop_after is not None and n >= stop_after:
                engine._step = store.Step()  # anything not yet committed is lost, as in a kill -9
                return engine
        return engine


def _orders(db):
    with db.connect() as conn:
        return {
            r[0]: (r[1], r[2], r[3])
            for r in conn.execute(text("select customer_order_ref, selection, side, size from orders"))
        }


def _placed(db):
    with db.connect() as conn:
        return [
            json.loads(p)["order"]["customer_order_ref"]
            for (p,) in conn.execute(text("select payload from live_events where kind = 'ORDER_PLACED'"))
        ]


def test_engine_trades_within_limits_and_logs_every_step(tmp_path, prediction_service, envelopes):
    db = live_db(tmp_path)
    engine = asyncio.run(_run(db, prediction_service, envelopes))
    s = engine.stats
    assert s.messages == len(envelopes) and s.quarantined == 0
    assert s.predictions > 100 and s.orders > 0
    with db.connect() as conn:
        kinds = dict(conn.execute(text("select kind, count(*) from live_events group by kind")).all())
        exposures = conn.execute(text("select market_id, sum(size) from orders group by market_id")).all()
    for kind in (
        EventKind.FEED_MESSAGE,
        EventKind.PREDICTION,
        EventKind.OPPORTUNITY,
        EventKind.ORDER_PLACED,
        EventKind.MARKET_UPDATE,
        EventKind.MATCH_FINISHED,
    ):
        assert kinds.get(str(kind), 0) > 0, kind
    assert kinds[str(EventKind.MATCH_FINISHED)] == 3
    limits = EngineConfig().policy.risk
    assert all(size <= limits.max_stake for *_, size in _orders(db).values())
    assert exposures  # orders are in the table, keyed by market
    cursors = store.cursors(db)
    assert cursors[("live", "match")][0] == sum(1 for e in envelopes if e.channel == "match")


@pytest.mark.parametrize("crash_after", [1, 9, 40, 77])
def test_restart_after_a_kill_places_no_bet_twice(tmp_path, prediction_service, envelopes, crash_after):
    reference_db = live_db(tmp_path, "reference.db")
    asyncio.run(_run(reference_db, prediction_service, envelopes))
    expected = _orders(reference_db)

    db = live_db(tmp_path, "crashed.db")
    asyncio.run(_run(db, prediction_service, envelopes, stop_after=crash_after))
    before = set(_orders(db))
    asyncio.run(_run(db, prediction_service, envelopes))  # restart: recover from the cursors, go on
    placed = _placed(db)
    assert len(placed) == len(set(placed)), "an order was placed twice"
    assert _orders(db) == expected  # the same bets as a run that never crashed
    assert before <= set(_orders(db))


def test_impossible_scores_and_unknown_matches_are_quarantined(tmp_path, prediction_service, envelopes):
    db = live_db(tmp_path)
    first_point = next(i for i, e in enumerate(envelopes) if e.channel == "match" and e.data.kind == "point")
    good = envelopes[first_point]
    jump = good.data.model_copy(update={"event_game_result": "40 - 30"})  # 0-0 -> 40-30 in one point
    ghost = good.data.model_copy(update={"event_key": "no-such-match"})
    bad = [good.model_copy(update={"data": jump}), good.model_copy(update={"data": ghost})]
    stream = envelopes[:first_point] + bad + envelopes[first_point : first_point + 5]
    seq = {"match": 0, "market": 0}
    renumbered = []
    for e in stream:
        seq[e.channel] += 1
        renumbered.append(e.model_copy(update={"seq": seq[e.channel]}))
    engine = asyncio.run(_run(db, prediction_service, renumbered))
    assert engine.stats.quarantined == 2
    with db.connect() as conn:
        reasons = [r for (r,) in conn.execute(text("select reason from quarantine where stage = 'live'"))]
    assert any(r.startswith("impossible score") for r in reasons)
    assert any("unknown match no-such-match" in r for r in reasons)
    # the match went on: the good point after the bad one was applied (resynchronised)
    assert engine.stats.predictions > 0


def test_engine_follows_a_real_websocket_feed(tmp_path, prediction_service):
    schedule, _ = build_feed(slam_rows("2012-wimbledon", 1), stagger_s=0)

    async def scenario():
        server = ReplayServer({"live": schedule}, rate=2000)
        port = await server.start()
        db = live_db(tmp_path)
        async with PredictionClient(prediction_service, timeout_s=5) as client:
            engine = TradingEngine(EngineConfig(feed_url=f"ws://127.0.0.1:{port}"), db, client.predict_live)
            stop = asyncio.Event()
            task = asyncio.create_task(engine.run(stop))
            dropped = False
            while engine.stats.messages < len(schedule):
                await asyncio.sleep(0.02)
                if not dropped and engine.stats.messages > len(schedule) // 2:
                    await server.drop_connections()
                    dropped = True
            stop.set()
            await task
        await server.stop()
        return engine, db

    engine, db = asyncio.run(scenario())
    assert engine.stats.messages == len(schedule)
    cursors = store.cursors(db)
    assert sum(seq for seq, _ in cursors.values()) == len(schedule)


def test_a_gap_in_the_feed_is_quarantined_once_then_followed(tmp_path, prediction_service, envelopes):
    db = live_db(tmp_path)
    key = envelopes[0].data.event_key
    envelopes = [e for e in envelopes if e.data.event_key == key]  # one match
    points = [i for i, e in enumerate(envelopes) if e.channel == "match" and e.data.kind == "point"]
    dropped = points[10]
    stream = [e for i, e in enumerate(envelopes[: points[20]]) if i != dropped]
    seq = {"match": 0, "market": 0}
    renumbered = []
    for e in stream:
        seq[e.channel] += 1
        renumbered.append(e.model_copy(update={"seq": seq[e.channel]}))
    engine = asyncio.run(_run(db, prediction_service, renumbered))
    assert engine.stats.quarantined == 1  # the point after the gap; the next one follows from it
    match = next(iter(engine.matches.values()))
    assert match.points_played == 18  # 20 points minus the lost one minus the quarantined one
    last = envelopes[points[19]].data
    assert match.score.display().event_game_result == last.event_game_result
    assert match.score.display().event_final_result == last.event_final_result
