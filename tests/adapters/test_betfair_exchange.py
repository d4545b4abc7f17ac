"""``BetfairExchange`` (the exchange port over the Betfair API) through betfairlightweight against the local Betfair
stand-in, which matches orders by the project's Betfair rules on the prices it plays: placing, filling, resting,
lapsing at a suspension, cancelling; a reference never placed twice — not on a retry, not by a restarted process
with an empty ledger (Betfair's duplicate window and the lookup), and a restart's reconciliation adopts what the
exchange has."""

from __future__ import annotations

import random
import time

import pytest
from betfairlightweight.resources import CurrentOrders

from adapters.betfair.exchange import BetfairExchange, order_stream
from adapters.betfair.prices import BetfairCredentials, BetfairEndpoints, api_client, login
from adapters.betfair.standin import BetfairStandIn
from adapters.standins import played_match
from betting.clock import SystemClock
from betting.ladder import TICKS, tick_index
from betting.records import EventKind, ExchangeError, OrderRequest, OrderStatus, Side
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

    made: list[BetfairExchange] = []

    def exchange(stream: bool = False, followed: dict | None = None, **kwargs) -> BetfairExchange:
        client = api_client(credentials, endpoints)
        login(client, credentials)
        ex = BetfairExchange(client, markets if followed is None else followed, SystemClock(), balance=1000.0, **kwargs)
        if stream:  # the order stream, as live_exchange_factory starts it
            ex.orders_stream = order_stream(client, endpoints, rng=random.Random(0), backoff_base_s=0.05).start()
            _until(lambda: standin._order_subscribers)  # subscribed, its image sent
        made.append(ex)
        return ex

    yield standin, played, exchange
    for ex in made:
        ex.close()
    standin.stop()


def _until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


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


def test_a_restart_reconciles_a_market_when_it_resolves_before_sending_to_it(venue):
    """A restarted engine follows no match at first (the feed replays them): the market is resolved only when an
    order names it, and its orders on Betfair are adopted then, before anything is sent — without Betfair's
    duplicate window (60 s, which a slow restart outlives), the order is still not placed twice."""
    standin, played, exchange = venue
    standin.duplicate_window_s = 0.0
    standin.advance(1)
    best_back = played.updates[0].runners[0].back_price
    placed = exchange().place(_request("cs-000005", best_back))
    (first, _), (second, _) = played.market.runners
    followed: dict = {}
    restarted = exchange(
        followed=followed,
        refresh_markets=lambda: followed.update({MARKET: ("at-77", {first: "First Player", second: "Second Player"})}),
    )
    assert restarted.reconcile({}) == []  # nothing followed yet
    again = restarted.place(_request("cs-000005", best_back))
    assert again.bet_id == placed.bet_id and again.size_matched == 5.0
    assert [u["customer_order_ref"] for u in restarted.unknown] == ["cs-000005"]
    assert len(standin.placed) == 1 and standin.calls["placeOrders"] == 1


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


def test_order_changes_come_on_the_order_stream_and_a_cut_loses_none(venue):
    """Fills and lapses reach the exchange port on the order stream (``ocm``), not by asking: while it is up, no
    ``listCurrentOrders`` is made. The stream is cut while an order lapses; it subscribes again from its clk and
    the lapse arrives in the ``RESUB_DELTA``."""
    standin, played, exchange = venue
    ex = exchange(stream=True)
    assert standin.order_subscriptions[0]["orderFilter"] == {"customerStrategyRefs": ["courtside"]}
    standin.advance(1)
    filled = ex.place(_request("cs-000010", played.updates[0].runners[0].back_price))  # pre-match: matched now
    assert filled.size_matched == 5.0
    _until(lambda: not ex.orders_stream.output.empty())  # the same order, on the stream
    assert [u.kind for u in ex.poll()] == [EventKind.ORDER_PLACED, EventKind.ORDER_FILLED]  # once, not again
    assert ex.order("cs-000010").size_matched == 5.0
    standin.advance(3)  # in play; the market open again after the first point
    top = played.updates[3].runners[0]
    ex.place(_request("cs-000011", TICKS[tick_index(top.back_price) + 5]))  # above the best: it would rest
    ex.orders_stream.backoff_base_s = 1.0  # the first wait is 0.84 s with this rng: time to play a book
    assert standin.drop() >= 1  # the network cut
    _until(lambda: not standin._order_subscribers)
    standin.advance(1)  # while it is down, the next point suspends the market: the resting order lapses
    lapse = next(clk for clk, _, _, o in standin._order_log if o["rfo"] == "cs-000011" and o["sl"])
    _until(lambda: _lapsed_seen(ex, "cs-000011"))
    resubscribed = [s for s in standin.order_subscriptions if s.get("clk")]
    assert len(resubscribed) == 1 and int(resubscribed[0]["clk"]) < lapse, "the lapse came in the RESUB_DELTA"
    assert EventKind.ORDER_LAPSED in [u.kind for u in ex.poll()]
    assert ex.order("cs-000011").size_lapsed == 5.0
    assert standin.calls["listCurrentOrders"] == 0, "nothing was asked: the stream told it"


def _lapsed_seen(ex: BetfairExchange, ref: str) -> bool:
    ex._drain()
    order = ex.order(ref)
    return order is not None and order.size_lapsed > 0


def test_an_older_order_state_never_takes_a_fill_back(venue):
    """A stream message older than a REST answer (both can arrive in either order) leaves the newer state."""
    standin, played, exchange = venue
    ex = exchange(stream=True)
    standin.advance(1)
    order = ex.place(_request("cs-000020", played.updates[0].runners[0].back_price))
    assert order.size_matched == 5.0
    ex.poll()
    stale = standin._current({"customerOrderRefs": ["cs-000020"]})["currentOrders"][0]
    stale.update(sizeMatched=0.0, sizeRemaining=5.0, status="EXECUTABLE", averagePriceMatched=0.0)
    ex.orders_stream.output.put([CurrentOrders(currentOrders=[stale], moreAvailable=False)])
    assert ex.poll() == [] and ex.order("cs-000020").size_matched == 5.0


def test_placements_stay_within_the_transactions_per_hour(venue):
    """Over the limit set, an order is refused here with why and never sent; an hour later there is room again."""
    standin, played, exchange = venue
    clock = [0.0]
    ex = exchange(max_transactions_per_hour=2, monotonic=lambda: clock[0])
    standin.advance(1)
    far = 900.0  # far from the book: rests, never matched
    assert ex.place(_request("cs-000030", far)).status is not OrderStatus.REJECTED
    clock[0] = 1800.0
    assert ex.place(_request("cs-000031", far)).status is not OrderStatus.REJECTED
    refused = ex.place(_request("cs-000032", far))
    assert refused.status is OrderStatus.REJECTED and refused.error_code is ExchangeError.TRANSACTION_LIMIT
    assert [p["customerOrderRef"] for p in standin.placed] == ["cs-000030", "cs-000031"]
    clock[0] = 3600.0  # the first placement is an hour old: one more fits
    assert ex.place(_request("cs-000033", far)).status is not OrderStatus.REJECTED
    assert ex.place(_request("cs-000034", far)).status is OrderStatus.REJECTED and ex.over_limit == 2
