"""Engine workers' hand-overs on a real Postgres: a take-over adopts the orders in the same transaction as the
lease; a worker that is late (stalled, cut off) and lost a match only ever adds to what the others see (it
forgets the match's orders when it notices: ``tests/betting/test_paper_exchange.py``); a restarted worker renews
every lease it held before its replay reaches the matches; a late tick does not make the holder miss its own
match; the shared realised P&L of earlier weeks counts in the bankroll only; a fresh session empties the shared
tables; a call the database aborts for a passing reason is run again.

``test_workers.py`` drives the same code as three engine processes, one of them killed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from betting.records import OrderRequest, Side
from betting.risk import RiskBook
from serving.engine.workers import Partition, WorkerLimits
from storage import live as store
from storage import shared_risk
from tests.engine.test_shared_limits import LIMITS, RUNNERS  # the same limits and runners as the schedules there

pytestmark = [pytest.mark.postgres]

START = datetime(2026, 6, 3, 10, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture(scope="module")
def db(postgres_module_db):
    return postgres_module_db


@pytest.fixture(autouse=True)
def clean(db):
    store.reset_live(db)
    yield


def _reserve(shared: shared_risk.SharedRisk, ref: str, match_id: str, stake: float = 10.0):
    book = RiskBook(1000.0)
    book.register_market(f"mk-{match_id}", RUNNERS)
    request = OrderRequest(ref, f"mk-{match_id}", RUNNERS[0], Side.LAY, 3.0, stake, edge=0.1, confidence=0.7)
    return WorkerLimits(shared, 1000.0).reserve(request, match_id, START, book, LIMITS)


def _positions(db) -> set[tuple[str, str, float]]:
    with db.connect() as conn:
        rows = conn.execute(text("select market_id, worker, exposure from risk_positions"))
        return {(m, w, float(e)) for m, w, e in rows}


def test_a_take_over_adopts_the_orders_with_the_lease_in_one_transaction(db):
    a = shared_risk.SharedRisk(db, "wa", lease_s=0.3)
    b = shared_risk.SharedRisk(db, "wb", lease_s=5.0)
    assert a.acquire(["m1"]) and _reserve(a, "r1", "m1").approved
    assert _positions(db) == {("mk-m1", "wa", 20.0)}  # a lay of 10 at 3.0 risks 20
    time.sleep(0.4)  # a's lease runs out (a is dead or late)
    [lease] = b.acquire(["m1"])
    assert (lease.previous, lease.epoch, lease.adopted) == ("wa", 2, frozenset({"r1"}))
    assert {r["ref"]: r["worker"] for r in shared_risk.reservations(db)} == {"r1": "wb"}
    assert _positions(db) == {("mk-m1", "wb", 20.0)}  # until b publishes, a's figure is b's
    assert b.my_refs() == {"r1"} and a.my_refs() == set()


def test_a_late_worker_adds_its_stale_position_and_never_takes_the_holders_away(db):
    a = shared_risk.SharedRisk(db, "wa", lease_s=0.3)
    b = shared_risk.SharedRisk(db, "wb", lease_s=5.0)
    c = shared_risk.SharedRisk(db, "wc", lease_s=5.0)
    assert a.acquire(["m1"]) and _reserve(a, "r1", "m1").approved
    time.sleep(0.4)
    assert b.acquire(["m1"])
    # a has not noticed: it publishes the match's market again, then (having noticed) nothing
    a.publish({"mk-m1": ("m1", 20.0, 1)})
    assert _positions(db) == {("mk-m1", "wa", 20.0), ("mk-m1", "wb", 20.0)}
    with db.connect() as conn:  # a third worker counts both: above the truth, never below it
        assert c._figures(conn, START)["others_exposure"] == 40.0
    a.publish({})
    assert _positions(db) == {("mk-m1", "wb", 20.0)}
    # and a, without the lease, can place nothing on the match
    refused = _reserve(a, "r2", "m1")
    assert not refused.approved and str(refused.reason) == "MATCH_NOT_OWNED"


def test_a_restarted_worker_renews_every_lease_it_held(db):
    a = shared_risk.SharedRisk(db, "wa", lease_s=0.5)
    assert len(a.acquire(["m1", "m2"])) == 2
    time.sleep(0.7)  # expired while it was down; nobody took them yet
    again = Partition(shared_risk.SharedRisk(db, "wa", lease_s=5.0))
    again.resume()
    assert sorted(again.leases) == ["m1", "m2"]
    assert shared_risk.SharedRisk(db, "wb").acquire(["m1", "m2"]) == []  # valid again: nobody else's


def test_a_late_tick_does_not_make_the_holder_miss_its_own_match(db):
    part = Partition(shared_risk.SharedRisk(db, "wa", lease_s=1.0))
    part.alive = ["wa"]
    assert part.owns("m1")
    time.sleep(0.85)  # past the local deadline (80 %), before the lease runs out in the database
    assert part.owns("m1"), "the lease was still this worker's: renewed on its frame"
    time.sleep(1.2)  # run out in the database, and taken over meanwhile
    assert shared_risk.SharedRisk(db, "wb", lease_s=5.0).acquire(["m1"])
    assert not part.owns("m1")
    taken, lost = part.tick(["m1"])
    assert taken == [] and lost == {"m1"} and "m1" not in part.leases


def test_realised_pnl_of_earlier_weeks_counts_in_the_bankroll_only(db):
    a, b = shared_risk.SharedRisk(db, "wa"), shared_risk.SharedRisk(db, "wb")
    a.realise("mk-old", START - timedelta(days=8), -70.0)  # last week: past this week's stop-losses, if it counted
    a.realise("mk-new", START - timedelta(hours=1), -10.0)
    assert b.acquire(["m1"])
    decision = _reserve(b, "r1", "m1")
    assert decision.approved, decision
    checks = {c.check: c for c in decision.checks}
    assert "bankroll 920.00" in checks["BANKROLL_FLOOR"].detail  # both losses in the bankroll
    with db.connect() as conn:
        figures = b._figures(conn, START)
    assert figures["realised_before"] == -70.0 and [net for _, net in figures["realised"]] == [-10.0]


def test_a_fresh_session_empties_the_shared_tables(db):
    a = shared_risk.SharedRisk(db, "wa")
    a.heartbeat()
    assert a.acquire(["m1"]) and _reserve(a, "r1", "m1").approved
    a.realise("mk-x", START, 5.0)
    a.close("m1")
    store.reset_live(db)
    with db.connect() as conn:
        for table in ("engine_workers", "match_leases", "risk_reservations", "risk_positions", "risk_realised"):
            assert conn.execute(text(f"select count(*) from {table}")).scalar() == 0, table
    assert a.acquire(["m1"]), "a closed lease of the last session must not close the match in the next"


def test_a_call_the_database_aborts_for_a_passing_reason_runs_again(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(shared_risk.time, "sleep", lambda s: None)

    @shared_risk.retried
    def flaky() -> str:
        calls.append(1)
        if len(calls) < shared_risk.RETRIES:
            raise OperationalError("select 1", {}, Exception("server closed the connection unexpectedly"))
        return "done"

    assert flaky() == "done" and len(calls) == shared_risk.RETRIES

    @shared_risk.retried
    def broken() -> None:
        calls.append(1)
        raise IntegrityError("insert", {}, Exception("duplicate key"))

    calls.clear()
    with pytest.raises(IntegrityError):
        broken()
    assert len(calls) == 1  # a real error is not retried


def _order_state(ref: str, match_id: str) -> store.OrderState:
    from betting.records import Order, OrderStatus

    request = OrderRequest(ref, f"mk-{match_id}", RUNNERS[0], Side.LAY, 3.0, 10.0, edge=0.1, confidence=0.7)
    order = Order.from_request(request, bet_id="P1", status=OrderStatus.EXECUTABLE, placed_at=START, updated_at=START)
    return store.OrderState(ref, match_id, "inplay", order.to_dict())


def test_a_late_worker_writes_nothing_of_the_orders_another_worker_adopted(db):
    """The ledger's fence: ``commit_step`` of a worker leaves out the orders (and the log entries about them) whose
    reservation another worker holds now; ``realise`` books nothing of a market that is another worker's."""
    a = shared_risk.SharedRisk(db, "wa", lease_s=0.3)
    b = shared_risk.SharedRisk(db, "wb", lease_s=5.0)
    assert a.acquire(["m1", "m2"]) and _reserve(a, "r1", "m1").approved and _reserve(a, "r2", "m2").approved
    time.sleep(0.4)
    assert b.acquire(["m1"])  # m1 (and r1) are b's now; m2 stays a's
    step = store.Step(
        events=[
            store.EventEntry("ORDER_FILLED", START, {"order": {}}, match_id="m1", ref="r1"),
            store.EventEntry("ORDER_FILLED", START, {"order": {}}, match_id="m2", ref="r2"),
            store.EventEntry("ORDER_REJECTED", START, {"reason": "ORDER_RATE"}, match_id="m2", ref="r3"),  # unreserved
        ],
        orders={"r1": _order_state("r1", "m1"), "r2": _order_state("r2", "m2")},
    )
    assert store.commit_step(db, step, "wa") == {"r1"}
    assert {o["customer_order_ref"] for o in store.orders(db)} == {"r2"}
    assert [(p.get("reason"), m) for _, _, _, m, p in _log(db)] == [(None, "m2"), ("ORDER_RATE", "m2")]
    assert not a.realise("mk-m1", START, -15.0)  # b's market: b's settlement is the one booked
    assert b.realise("mk-m1", START, -5.0) and a.realise("mk-m2", START, 3.0)
    with db.connect() as conn:
        rows = dict(conn.execute(text("select market_id, net_profit from risk_realised")).all())
    assert rows == {"mk-m1": -5.0, "mk-m2": 3.0}


def _log(db):
    return [(i, k, t, m, p) for i, k, t, _, m, p in store.events_after(db, 0)]


def test_the_first_tick_keeps_the_leases_a_restart_renewed(db):
    a = shared_risk.SharedRisk(db, "wa", lease_s=5.0)
    assert len(a.acquire(["m1", "m2"])) == 2
    again = Partition(shared_risk.SharedRisk(db, "wa", lease_s=5.0))
    again.resume()
    taken, lost = again.tick(set())  # before the feed has shown either match
    assert (taken, lost) == ([], set()) and sorted(again.leases) == ["m1", "m2"]


def test_a_match_taken_over_and_closed_by_another_worker_is_lost(db):
    part = Partition(shared_risk.SharedRisk(db, "wa", lease_s=0.3))
    part.alive = ["wa"]
    assert part.owns("m1")
    time.sleep(0.4)
    b = shared_risk.SharedRisk(db, "wb", lease_s=5.0)
    assert b.acquire(["m1"])
    b.close("m1")  # it finished under b
    taken, lost = part.tick(["m1"])
    assert lost == {"m1"} and "m1" in part.closed and "m1" not in part.leases


def test_a_take_over_whose_answer_was_lost_is_still_a_take_over(db):
    """``acquire`` retried after its take-over committed (the answer lost with the connection) sees the lease as
    the caller's own and returns it renewed; the tick still reports it taken over (a lease it did not hold a moment
    ago, handed over before), so its orders are restored."""
    a = shared_risk.SharedRisk(db, "wa", lease_s=0.3)
    assert a.acquire(["m1"]) and _reserve(a, "r1", "m1").approved
    time.sleep(0.4)
    b = shared_risk.SharedRisk(db, "wb", lease_s=5.0)
    assert b.acquire(["m1"])[0].previous == "wa"  # the take-over commits; its caller never hears of it
    part = Partition(shared_risk.SharedRisk(db, "wb", lease_s=5.0))
    part.alive = ["wb"]
    taken, lost = part.tick(["m1"])
    assert [(t.match_id, t.previous, t.epoch) for t in taken] == [("m1", None, 2)] and lost == set()
    assert part.shared.refs_of("m1") == {"r1"}


def test_the_trading_week_starts_monday_midnight_utc():
    sunday = datetime(2026, 6, 7, 23, 59, 59, tzinfo=UTC)
    monday = datetime(2026, 6, 8, 0, 0, tzinfo=UTC)
    assert shared_risk.week_start(sunday) == datetime(2026, 6, 1, tzinfo=UTC)
    assert shared_risk.week_start(monday) == monday
    from betting.risk import trading_week

    assert trading_week(sunday) != trading_week(monday) == trading_week(shared_risk.week_start(monday))


def test_two_workers_leasing_a_new_match_at_once_get_it_once(db):
    """Both insert the lease at the same moment: one insert wins, and only its worker is told it holds the match
    (an ``INSERT ... ON CONFLICT DO NOTHING`` reports a row count of -1 here whether it inserted or not)."""
    import threading

    barrier = threading.Barrier(2)
    got: dict[str, list] = {}

    def lease(worker: str) -> None:
        shared = shared_risk.SharedRisk(db, worker, lease_s=5.0)
        barrier.wait()
        got[worker] = shared.acquire(["m-race"], take_over=False)

    for _ in range(5):
        store.reset_live(db)
        threads = [threading.Thread(target=lease, args=(w,)) for w in ("wa", "wb")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [w for w, held in got.items() if held]
        assert len(winners) == 1, got
        assert shared_risk.leases(db)["m-race"]["worker"] == winners[0]
    # and one after the other: the second is refused
    store.reset_live(db)
    assert shared_risk.SharedRisk(db, "wa").acquire(["m2"]) and not shared_risk.SharedRisk(db, "wb").acquire(
        ["m2"], take_over=False
    )
