"""kill -9 in ``live`` mode, for real: the engine runs as its own process (``python -m serving.engine`` with
``COURTSIDE_VENUE=betfair-live``, credentials and the explicit switch in its environment) against both stand-ins
playing a whole real match, and is killed with SIGKILL at the worst moment — its second order is on the Betfair
stand-in but the answer has not reached it, so its ledger cannot know. A new process starts from the ledger and
the feed's cursors; the stand-in's duplicate window is off, so nothing but the engine's own reconciliation stands
between the restart and a second bet. It must place no order twice and end with the stand-in's book."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import text

from adapters.standins import played_match
from tests.adapters.venues import Venues, exchange_book, ledger, until
from tests.chaos.harness import EngineProcess, cursors, engine, new_database
from tests.engine.fixtures import slam_rows

pytestmark = pytest.mark.slow


def test_a_live_engine_killed_between_betfair_accepting_an_order_and_its_ledger_places_it_once(
    tmp_path, prediction_service
):
    row = slam_rows("2012-wimbledon", 1)[0]
    played = played_match(row, 77, "1.400000001")
    url = new_database(tmp_path, "live.db")
    db = engine(url)

    async def scenario():
        async with Venues(played, hold_at=2, duplicate_window_s=0.0) as venues:
            bf = venues.bf
            proc = EngineProcess(
                url,
                venues.feed_url,
                prediction_service,
                tmp_path,
                deterministic=False,
                env={**venues.betfair_env(), "COURTSIDE_VENUE": "betfair-live", "COURTSIDE_FEED": "api-tennis"},
            )
            proc.start()
            state = proc.log_tail

            def caught_up() -> bool:
                return all(cursors(db).get(ch, 0) >= n for ch, n in venues.published().items())

            def held() -> bool:
                return bf.holding.is_set() and proc.kills == 0

            async def kill_if_held() -> None:
                assert proc.alive(), f"the engine died on its own:\n{proc.log_tail()}"
                if held():
                    ref = bf.placed[-1]["customerOrderRef"]
                    proc.kill9()  # Betfair has the order; the engine never heard back
                    assert ref not in {r[0] for r in ledger(db)}, "the ledger cannot have it yet"
                    bf.release()
                    proc.start()

            async def lockstep() -> None:  # the engine has handled what is out (or hangs on the held order)
                await kill_if_held()
                await until(lambda: held() or caught_up(), timeout_s=90, state=state)
                await kill_if_held()

            await until(lambda: "engine started" in proc.log_tail(100_000), timeout_s=90, state=state)
            try:
                await venues.play(lockstep, state=state)
                await lockstep()
                await until(lambda: ledger(db) == exchange_book(bf), timeout_s=20, state=state)
            finally:
                proc.stop()
            return proc, bf

    proc, bf = asyncio.run(scenario())
    assert proc.kills == 1 and proc.starts == 2 and proc.exits == [0], proc.log_tail()
    refs = [p["customerOrderRef"] for p in bf.placed]
    assert len(refs) >= 3 and len(set(refs)) == len(refs), "no order placed twice"
    assert bf.calls["placeOrders"] >= len(refs)
    held = refs[1]
    with db.connect() as conn:
        kept = dict(conn.execute(text("select customer_order_ref, status from orders")).all())
        finished = [
            json.loads(p)
            for (p,) in conn.execute(text("select payload from live_events where kind = 'MATCH_FINISHED'"))
        ]
    assert held in kept, "the held order was adopted from Betfair by the new process"
    assert ledger(db) == exchange_book(bf)
    assert len(finished) == 1 and finished[0]["outcome"] == "completed"
    log = proc.log_tail(200_000)
    assert "LIVE mode" in log and "REAL MONEY" in log
    assert "Betfair has an order the ledger does not know" in log and held in log
