"""Paper trading on live prices, end to end over real connections: a real Wimbledon match pushed by the API-Tennis
stand-in as the vendor's snapshots, its market played by the Betfair stand-in on the Exchange Stream API, both
through the adapters (the ingress; betfairlightweight's own client and stream) into one feed server, and the
engine — with the real BentoML prediction service — following it and trading on the paper exchange against
those prices: the market resolved to the match by the players' names, orders filled only at prices Betfair
showed, the match settled with its real winner."""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest
from sqlalchemy import text

from adapters.api_tennis.live import ApiTennisIngress, ApiTennisSettings
from adapters.api_tennis.standin import ApiTennisStandIn
from adapters.betfair.prices import BetfairCredentials, BetfairEndpoints, BetfairPrices, resolve_by_players
from adapters.betfair.standin import BetfairStandIn
from adapters.standins import played_match
from feeds.live.server import ReplayServer
from serving.engine.engine import EngineConfig, TradingEngine
from serving.engine.prediction import PredictionClient
from tests.engine.fixtures import live_db, slam_rows

pytestmark = pytest.mark.slow
POINTS = 60
"""The first points of the match, then its end (the test stays short)."""


def test_the_engine_trades_a_real_match_on_betfair_prices_from_api_tennis_scores(tmp_path, prediction_service):
    row = slam_rows("2012-wimbledon", 1)[0]
    played = played_match(row, 77, "1.400000001", points=POINTS)
    snaps, market, order, sent = played.snapshots, played.market, played.order, played.updates
    db = live_db(tmp_path)

    async def scenario():
        now = [0.0]  # the feed's clock: the match's own timeline (the bet delay runs between its points)
        feed = ReplayServer({"live": []}, heartbeat_s=0.2)
        feed_port = await feed.start(publish=False)
        at_standin = ApiTennisStandIn([snaps])
        at_port = await at_standin.start()
        ingress = ApiTennisIngress(
            ApiTennisSettings(
                key="test-key", ws_url=f"ws://127.0.0.1:{at_port}/live", rest_url=f"http://127.0.0.1:{at_port}/tennis/"
            ),
            lambda m, _t: feed.publish("live", "match", m, now[0]),
            rng=random.Random(0),
        )
        bf = BetfairStandIn([market]).start()
        base = f"https://127.0.0.1:{bf.https_port}"
        followed = lambda: [  # noqa: E731 - what the score feed follows, for the market's resolution
            (f.key, f.event.event_date, f.event.event_first_player, f.event.event_second_player)
            for f in ingress.translator.matches.values()
        ]
        prices = BetfairPrices(
            BetfairCredentials(bf.app_key, bf.username, bf.password),
            resolve_by_players(followed),
            lambda u, _t: feed.publish("live", "market", u, now[0]),
            BetfairEndpoints(f"{base}/api/", f"{base}/exchange/", "127.0.0.1", bf.stream_port, str(bf.cert)),
        )
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        async with PredictionClient(prediction_service, timeout_s=5) as client:
            engine = TradingEngine(EngineConfig(feed_url=f"ws://127.0.0.1:{feed_port}"), db, client.predict_live)
            tasks = [asyncio.create_task(ingress.run()), asyncio.create_task(engine.run(stop))]

            async def until(condition, timeout_s: float = 30.0) -> None:
                deadline = time.monotonic() + timeout_s
                while not condition():
                    assert time.monotonic() < deadline, "timed out"
                    await asyncio.sleep(0.01)

            await until(lambda: at_standin.clients)
            played_at = played_bf = 0
            try:
                for at, kind in order:
                    now[0] = max(now[0], 100.0 + at)
                    if kind == "at":
                        await at_standin.tick()
                        played_at += 1
                        await until(lambda n=played_at: ingress.pushes >= n)
                        if played_at == 1:  # the match is followed: now its market resolves to it
                            await loop.run_in_executor(None, prices.discover)
                            assert prices.followed and not prices.unresolved
                            tasks.append(asyncio.create_task(prices.run()))
                            await until(lambda: bf.subscriptions)
                    else:
                        await loop.run_in_executor(None, bf.advance, 1)
                        played_bf += 1
                        if prices.followed and bf.subscriptions:
                            await until(lambda n=played_bf: prices.published >= n)
                await until(lambda: prices.published >= len(sent))
                published = sum(len(c.published) for c in feed.channels.values())
                await until(lambda: engine.stats.messages >= published)
            finally:
                stop.set()
                prices.stop()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await feed.stop()
                await at_standin.stop()
                bf.stop()
        return engine, ingress, prices

    engine, ingress, prices = asyncio.run(scenario())
    assert engine.stats.quarantined == 0 and ingress.translator.counts["resyncs"] == 0
    assert prices.published == len(sent) and prices.refused == 0
    with db.connect() as conn:
        orders = [
            dict(r._mapping) for r in conn.execute(text("select market_id, price, size_matched, status from orders"))
        ]
        finished = [
            json.loads(p)
            for (p,) in conn.execute(text("select payload from live_events where kind = 'MATCH_FINISHED'"))
        ]
    assert finished and finished[0]["event_key"] == "at-77" and finished[0]["outcome"] == "retired"
    assert engine.stats.predictions > 10 and orders, "the engine traded the match"
    assert {o["market_id"] for o in orders} == {"bf-at-77"}
    # orders at prices the Betfair market showed, and filled against them
    shown = {p for u in sent for r in u.runners for p in (r.back_price, r.lay_price) if p is not None}
    assert all(o["price"] in shown for o in orders)
    assert any(o["size_matched"] > 0 for o in orders)
