"""``BetfairExchange`` (the exchange port over the Betfair API) through betfairlightweight against the local Betfair
stand-in, which matches orders by the project's Betfair rules on the prices it plays: placing, filling, resting,
lapsing at a suspension, cancelling; a reference never placed twice — not on a retry, not by a restarted process
with an empty ledger (Betfair's duplicate window and the lookup), and a restart's reconciliation adopts what the
exchange has."""

from __future__ import annotations

import pytest

from adapters.betfair.exchange import BetfairExchange
from adapters.betfair.prices import BetfairCredentials, BetfairEndpoints, api_client, login
from adapters.betfair.standin import BetfairStandIn
from adapters.standins import played_match
from betting.clock import SystemClock
from betting.ladder import TICKS, tick_index
from betting.records import EventKind, OrderRequest, OrderStatus, Side
from tests.engine.fixtures import slam_rows

MARKET = "1.500000001"


@pytest.fixture()
def venue():
    row = slam_rows("2012-wimbledon", 1)[0]
    played = played_match(row, 77, MARKET, points=30)
    standin = BetfairStandIn([played.market]).start()
    base = f"https://127.0.0.1:{standin.https_port}"
    endpoints = BetfairEndpoints(
        f"{base}/api/", f"{base}/exchange/", "127.0.0.1", standin.stream_port, str(standin.cert)
    )
    credentials = BetfairCredentials(standin.app_key, standin.username, standin.password)
    (first, _), (second, _) = played.market.runners  # runners in label order: First Player, Second Player
    markets = {MARKET: ("at-77", {first: "First Player", second: "Second Player"})}

    def exchange() -> BetfairExchange:
        client = api_client(credentials, endpoints)
        login(client, credentials)
        return BetfairExchange(client, markets, SystemClock(), balance=1000.0)

    yield standin, played, exchange
    standin.stop()


def _request(ref: str, price: float, side: Side = Side.BACK, size: float = 5.0) -> OrderRequest:
    return OrderRequest(
        customer_order_ref=ref, market_id="bf-at-77", selection="First Player", side=side, price=price, size=size
    )


def test_orders_are_placed_filled_and_never_sent_twice(venue):
    standin, played, exchange = venue
    standin.advance(1)  # the pre-match book
    best_back = played.updates[0].runners[0].back_price
    ex = exchange()
    order = ex.place(_request("cs-000001", best_back))
    assert order.status is OrderStatus.EXECUTION_COMPLETE and order.size_matched == 5.0 and order.bet_id
    kinds = [u.kind for u in ex.poll()]
    assert kinds == [EventKind.ORDER_PLACED, EventKind.ORDER_FILLED]
    assert ex.place(_request("cs-000001", best_back)) == order  # the same reference: the same order
    # a restarted process with an empty ledger sends it again: Betfair refuses the repeated customerRef, the
    # order is looked up, nothing new is placed
    again = exchange().place(_request("cs-000001", best_back))
    assert again.bet_id == order.bet_id and again.size_matched == 5.0
    assert [p["customerOrderRef"] for p in standin.placed] == ["cs-000001"]
    assert standin.placed[0]["customerRef"] == "cs-000001"


def test_a_resting_order_lapses_at_a_suspension_and_another_is_cancelled(venue):
    standin, played, exchange = venue
    ex = exchange()
    turn = next(i for i, u in enumerate(played.updates) if u.in_play)
    standin.advance(turn + 1)  # in play, the market open
    top = played.updates[turn].runners[0]
    resting = ex.place(_request("cs-000002", TICKS[tick_index(top.back_price) + 5]))  # above the best: rests
    ex.poll()
    standin.advance(4)  # the bet delay passes on the market's clock, then a point suspends the market
    updates = ex.poll()
    lapsed = ex.order("cs-000002")
    assert resting.bet_id and lapsed.size_lapsed == 5.0 and lapsed.status is OrderStatus.EXECUTION_COMPLETE
    assert EventKind.ORDER_LAPSED in [u.kind for u in updates]
    persist = ex.place(
        OrderRequest(
            customer_order_ref="cs-000003",
            market_id="bf-at-77",
            selection="Second Player",
            side=Side.BACK,
            price=900.0,
            size=2.0,
            persistence="PERSIST",
        )
    )
    assert persist.status in (OrderStatus.PENDING, OrderStatus.EXECUTABLE)
    standin.advance(4)  # out of the bet delay; a PERSIST order stays through suspensions
    ex.poll()
    assert ex.order("cs-000003").status is OrderStatus.EXECUTABLE
    cancelled = ex.cancel("cs-000003")
    assert cancelled.size_cancelled == 2.0 and EventKind.ORDER_CANCELLED in [u.kind for u in ex.poll()]


def test_a_restart_reconciles_with_what_betfair_has(venue):
    standin, played, exchange = venue
    standin.advance(1)
    best_back = played.updates[0].runners[0].back_price
    first = exchange()
    placed = first.place(_request("cs-000004", best_back))
    # the process dies before its ledger kept the order: the restarted one knows nothing of it
    restarted = exchange()
    unknown = restarted.reconcile({})
    assert [u["customer_order_ref"] for u in unknown] == ["cs-000004"]
    assert restarted.order("cs-000004").bet_id == placed.bet_id  # adopted as Betfair has it
    assert restarted.place(_request("cs-000004", best_back)).bet_id == placed.bet_id
    assert len(standin.placed) == 1


def test_a_market_not_followed_is_refused_without_a_call(venue):
    standin, _, exchange = venue
    ex = exchange()
    order = ex.place(
        OrderRequest(
            customer_order_ref="cs-9",
            market_id="bf-other",
            selection="First Player",
            side=Side.BACK,
            price=2.0,
            size=2.0,
        )
    )
    assert order.status is OrderStatus.REJECTED and standin.placed == []
