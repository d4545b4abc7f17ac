"""Paper trading on live prices, end to end over real connections: a real Wimbledon match pushed by the API-Tennis
stand-in as the vendor's snapshots, its market played by the Betfair stand-in on the Exchange Stream API, both
through the adapters (the ingress; betfairlightweight's own client and stream) into one feed server, and the
engine — with the real BentoML prediction service — following it and trading on the paper exchange against
those prices: the market resolved to the match by the players' names, orders filled only at prices Betfair
showed, the whole match (every point, to match point) settled with its real winner. In ``live`` mode the orders
go to the stand-in through ``BetfairExchange`` (followed on the order stream) and the ledger ends equal to the
stand-in's own book, order by order, and the risk book's settlement to the stand-in's settlement of those bets.
(The kill -9 of a real engine process is ``test_live_kill.py``.)"""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import text

from adapters.betfair.exchange import live_exchange_factory
from adapters.standins import played_match
from betting.records import OrderStatus
from betting.settlement import MatchResult
from feeds.live.replay import points_of
from serving.engine.engine import EngineConfig, TradingEngine
from serving.engine.prediction import PredictionClient
from storage import live as store
from tests.adapters.venues import Venues, exchange_book, ledger, until
from tests.engine.fixtures import live_db, slam_rows

pytestmark = pytest.mark.slow


def _state(running: dict) -> str:
    task, stats = running["task"], running["engine"].stats
    error = task.exception() if task.done() and not task.cancelled() else None
    return f"engine task done={task.done()} error={error!r}, messages {stats.messages}, recovered {stats.recovered}"


class _Killed(BaseException):
    """The engine dies right after Betfair accepted an order, before the ledger committed it (in this process)."""


@pytest.mark.parametrize(
    ("live", "kill_after"), [(False, None), (True, None), (True, 2)], ids=["paper-live", "live", "live-killed"]
)
def test_the_engine_trades_a_real_match_on_betfair_prices_from_api_tennis_scores(
    tmp_path, prediction_service, live, kill_after
):
    """paper-live: the paper exchange fills against Betfair's prices; live: the orders go to Betfair (the stand-in)
    through ``BetfairExchange``, and the engine's ledger is what the exchange accepted; live-killed: the engine dies
    just after its second order reached Betfair and a new one takes over from the ledger — no order twice."""
    row = slam_rows("2012-wimbledon", 1)[0]
    played = played_match(row, 77, "1.400000001")  # the whole match, every point
    sent = played.updates
    db = live_db(tmp_path)

    async def scenario():
        running: dict = {}
        kills = [kill_after]
        async with Venues(played) as venues:
            bf, prices = venues.bf, venues.prices
            live_factory = live_exchange_factory(  # what the engine process builds for COURTSIDE_VENUE=betfair-live
                venues.betfair_env(),
                lambda: [
                    (k, m.event_date, *m.players)
                    for k, m in (running["engine"].core.matches.items() if running else ())
                ],
            )

            def betfair(clock, restored):  # live: the exchange port over the Betfair API, reconciled with the ledger
                exchange = live_factory(clock, restored)
                if kills[0]:
                    place, placed = exchange.place, []

                    def dying(request):
                        order = place(request)
                        if order.status is not OrderStatus.REJECTED:  # on the exchange: the ledger must learn of it
                            placed.append(order)
                        if len(placed) == kills[0]:
                            kills[0] = None  # the next engine lives
                            running["engine"]._step = store.Step()  # what was not committed dies with the engine
                            exchange.close()
                            raise _Killed
                        return order

                    exchange.place = dying
                return exchange

            async with PredictionClient(prediction_service, timeout_s=5) as client:

                def new_engine() -> TradingEngine:
                    return TradingEngine(
                        EngineConfig(feed_url=venues.feed_url, mode="live" if live else "paper-live"),
                        db,
                        client.predict_live,
                        exchange=betfair if live else None,
                    )

                stops = [asyncio.Event()]  # each engine its own: a dying one sets it on the way out
                running["engine"] = new_engine()
                running.update(task=asyncio.create_task(running["engine"].run(stops[0])), restarts=0)

                async def restart_if_killed() -> None:
                    task = running["task"]
                    if task.done() and isinstance(task.exception(), _Killed):
                        running["engine"] = new_engine()  # the restart: from the ledger and the feed's cursors
                        stops.append(asyncio.Event())
                        running["task"] = asyncio.create_task(running["engine"].run(stops[-1]))
                        running["restarts"] += 1

                try:
                    await venues.play(restart_if_killed, state=lambda: _state(running))
                    await asyncio.sleep(0.2)
                    await restart_if_killed()
                    published = sum(venues.published().values())
                    await until(lambda: running["engine"].stats.messages >= published, state=lambda: _state(running))
                    if live:  # the order stream's last changes (lapses at the close) reach the ledger
                        await until(lambda: ledger(db) == exchange_book(bf), timeout_s=10)
                    engine = running["engine"]
                finally:
                    for event in stops:
                        event.set()
                    running["task"].cancel()
                    await asyncio.gather(running["task"], return_exceptions=True)
            return engine, venues.ingress, prices, bf, running["restarts"]

    engine, ingress, prices, bf, restarts = asyncio.run(scenario())
    assert restarts == (1 if kill_after else 0)
    assert engine.stats.quarantined == 0 and ingress.translator.counts["resyncs"] == 0
    assert prices.published == len(sent) and prices.refused == 0
    with db.connect() as conn:
        orders = [
            dict(r._mapping)
            for r in conn.execute(
                text("select customer_order_ref, market_id, side, price, size, size_matched, status from orders")
            )
        ]
        finished = [
            json.loads(p)
            for (p,) in conn.execute(text("select payload from live_events where kind = 'MATCH_FINISHED'"))
        ]
    winner = ("First Player", "Second Player")[points_of(row)[0][-1].winner]  # who won the last point's match
    assert len(finished) == 1 and finished[0]["event_key"] == "at-77"
    assert finished[0]["outcome"] == "completed" and finished[0]["winner"] == winner
    assert engine.stats.predictions > 10 and orders, "the engine traded the match"
    assert {o["market_id"] for o in orders} == {"bf-at-77"}
    # orders at prices the Betfair market showed, and filled against them
    shown = {p for u in sent for r in u.runners for p in (r.back_price, r.lay_price) if p is not None}
    assert all(o["price"] in shown for o in orders)
    assert any(o["size_matched"] > 0 for o in orders)
    if live:  # every order the ledger has is one the exchange accepted, once, on the same terms
        terms = sorted(
            (o["customer_order_ref"], o["side"], o["price"], o["size"]) for o in orders if o["status"] != "REJECTED"
        )
        accepted = sorted((p["customerOrderRef"], p["side"], p["price"], p["size"]) for p in bf.placed)
        assert terms == accepted and len({p["customerOrderRef"] for p in bf.placed}) == len(bf.placed)
        # and every order ended as the exchange has it: matched, cancelled, lapsed to the penny
        assert ledger(db) == exchange_book(bf)
        # the match settled in the engine's risk book as the exchange's own book of those bets settles
        theirs = bf.exchange.settle_market(
            "1.400000001",
            MatchResult(
                winner=str(77 * 10 + (1 if winner == "First Player" else 2)), outcome="completed", sets_completed=3
            ),
        ).pnl
        assert engine.core.settled == {"bf-at-77"} and theirs.net_profit != 0
        assert engine.risk.bankroll - engine.cfg.policy.bankroll == pytest.approx(theirs.net_profit, abs=0.005)
    else:
        assert bf.placed == []  # paper: nothing reaches the exchange
