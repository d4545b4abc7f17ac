"""PaperExchange: Betfair rules of validation, bet delay, suspension, matching, duplicates, settlement."""

import pytest

from betting.clock import ManualClock
from betting.exchange import BaseExchange, UnknownOrder
from betting.market import MarketStatus
from betting.paper import PaperExchange, PaperExchangeConfig
from betting.records import EventKind, ExchangeError, LapseReason, OrderStatus, Persistence, Side
from betting.settlement import MatchResult
from tests.betting.builders import T0, market_book, request, runner

BOOK = (
    runner("A", back=[(2.04, 10), (2.02, 5), (2.0, 8), (1.98, 100)], lay=[(2.06, 40), (2.1, 60)]),
    runner("B", back=[(1.9, 50)], lay=[(1.95, 50)]),
)


def make(config: PaperExchangeConfig | None = None, *books, balance: float = 1000.0):
    clock = ManualClock(T0)
    exchange = PaperExchange(clock, config or PaperExchangeConfig(), balance=balance)
    for book in books or (market_book("m1", *BOOK),):
        exchange.on_market_book(book)
    return exchange, clock


def test_paper_exchange_is_the_port():
    exchange, _ = make()
    assert isinstance(exchange, BaseExchange)


# --- validation ---------------------------------------------------------------------------------
def test_off_ladder_price_is_rejected_as_invalid_odds():
    exchange, _ = make()
    order = exchange.place(request("r1", price=2.01))
    assert order.status is OrderStatus.REJECTED
    assert order.error_code is ExchangeError.INVALID_ODDS
    assert order.bet_id is None
    assert [u.kind for u in exchange.poll()] == [EventKind.ORDER_REJECTED]


@pytest.mark.parametrize(
    ("size", "price", "ok"),
    [
        (1.00, 2.0, True),
        (0.99, 2.0, False),  # minimum stake 1.00
        (0.50, 20.0, True),
        (0.49, 20.0, False),  # below it, a payout of at least 10 is enough
        (1.005, 2.0, False),
        (0.0, 2.0, False),
        (-5.0, 2.0, False),  # sizes are positive whole pennies
    ],
)
def test_minimum_stake_or_minimum_payout(size, price, ok):
    exchange, _ = make()
    order = exchange.place(request("r", size=size, price=price))
    assert (order.status is not OrderStatus.REJECTED) is ok
    if not ok:
        assert order.error_code is ExchangeError.INVALID_BET_SIZE


def test_minimum_payout_can_be_switched_off():
    exchange, _ = make(PaperExchangeConfig(min_payout=None))
    assert exchange.place(request("r", size=0.5, price=20.0)).error_code is ExchangeError.INVALID_BET_SIZE


def test_unknown_market_and_runner_are_rejected():
    exchange, _ = make()
    assert exchange.place(request("r1", market="nope")).error_code is ExchangeError.MARKET_NOT_FOUND
    assert exchange.place(request("r2", selection="Z")).error_code is ExchangeError.RUNNER_NOT_FOUND


# --- crossing and partial fills ----------------------------------------------------------------
def test_crossing_back_walks_the_visible_prices_to_its_limit():
    exchange, _ = make()
    order = exchange.place(request("r1", side=Side.BACK, price=2.0, size=30.0))
    assert order.size_matched == 23.0  # 10 @ 2.04 + 5 @ 2.02 + 8 @ 2.0, never 1.98
    assert order.average_price_matched == pytest.approx((10 * 2.04 + 5 * 2.02 + 8 * 2.0) / 23)
    assert order.status is OrderStatus.EXECUTABLE and order.size_remaining == 7.0
    fills = [(u.fill.price, u.fill.size, u.fill.crossed) for u in exchange.poll() if u.fill]
    assert fills == [(2.04, 10.0, True), (2.02, 5.0, True), (2.0, 8.0, True)]


def test_crossing_lay_walks_up_to_its_limit_and_taken_liquidity_is_gone():
    exchange, _ = make()
    first = exchange.place(request("r1", side=Side.LAY, price=2.06, size=25.0))
    assert (first.size_matched, first.average_price_matched, first.status) == (
        25.0,
        2.06,
        OrderStatus.EXECUTION_COMPLETE,
    )
    second = exchange.place(request("r2", side=Side.LAY, price=2.1, size=30.0))
    assert second.size_matched == 30.0  # 15 left at 2.06, then 15 at 2.1
    assert second.average_price_matched == pytest.approx((15 * 2.06 + 15 * 2.1) / 30)


def test_a_non_crossing_order_rests_unmatched():
    exchange, _ = make()
    order = exchange.place(request("r1", side=Side.BACK, price=2.1, size=10.0))
    assert (order.status, order.size_matched, order.size_remaining) == (OrderStatus.EXECUTABLE, 0.0, 10.0)


# --- queue position from traded volume ---------------------------------------------------------
def queue_book(
    traded_at_2: float, *, waiting_at_2: float = 50.0, traded_better: float = 0.0, traded_worse: float = 0.0
):
    return market_book(
        "m1",
        runner(
            "A",
            back=[(1.98, 100)],
            lay=[(2.0, waiting_at_2), (2.02, 30)],
            traded=[(2.0, traded_at_2), (2.02, traded_better), (1.98, traded_worse)],
        ),
        runner("B"),
    )


def test_resting_order_fills_only_after_the_volume_ahead_has_traded():
    exchange, _ = make(None, queue_book(0.0))
    order = exchange.place(request("r1", side=Side.BACK, price=2.0, size=20.0))
    assert order.status is OrderStatus.EXECUTABLE
    assert exchange.queue_ahead("r1") == 50.0  # the backers already waiting at 2.0

    exchange.on_market_book(queue_book(30.0))
    assert exchange.order("r1").size_matched == 0.0
    assert exchange.queue_ahead("r1") == 20.0

    exchange.on_market_book(queue_book(30.0, traded_worse=500.0))  # trading at 1.98 is not our queue
    assert exchange.order("r1").size_matched == 0.0

    updates = exchange.on_market_book(queue_book(60.0))  # 30 more: 20 clear the queue, 10 reach us
    assert exchange.order("r1").size_matched == 10.0
    fill = [u.fill for u in updates if u.fill][0]
    assert (fill.price, fill.size, fill.crossed) == (2.0, 10.0, False)

    exchange.on_market_book(queue_book(60.0, traded_better=5.0))  # traded at a better price: ours too
    assert exchange.order("r1").size_matched == 15.0


def test_queue_shrinks_when_the_visible_volume_ahead_is_cancelled():
    exchange, _ = make(None, queue_book(0.0))
    exchange.place(request("r1", side=Side.BACK, price=2.0, size=20.0))
    exchange.on_market_book(queue_book(0.0, waiting_at_2=12.0))  # only 12 left at 2.0: at most 12 ahead
    assert exchange.queue_ahead("r1") == 12.0
    exchange.on_market_book(queue_book(15.0, waiting_at_2=12.0))
    assert exchange.order("r1").size_matched == 3.0


def test_our_own_orders_at_one_price_fill_first_in_first_out():
    exchange, _ = make(None, queue_book(0.0, waiting_at_2=5.0))
    exchange.place(request("r1", side=Side.BACK, price=2.0, size=3.0))
    exchange.place(request("r2", side=Side.BACK, price=2.0, size=4.0))
    assert (exchange.queue_ahead("r1"), exchange.queue_ahead("r2")) == (5.0, 8.0)
    exchange.on_market_book(queue_book(10.0, waiting_at_2=5.0))
    assert (exchange.order("r1").size_matched, exchange.order("r2").size_matched) == (3.0, 2.0)


def test_cancelling_an_order_moves_our_later_orders_up():
    exchange, _ = make(None, queue_book(0.0, waiting_at_2=5.0))
    exchange.place(request("r1", side=Side.BACK, price=2.0, size=3.0))
    exchange.place(request("r2", side=Side.BACK, price=2.0, size=4.0))
    cancelled = exchange.cancel("r1")
    assert (cancelled.status, cancelled.size_cancelled) == (OrderStatus.EXECUTION_COMPLETE, 3.0)
    assert exchange.queue_ahead("r2") == 5.0
    with pytest.raises(UnknownOrder):
        exchange.cancel("never-placed")


def test_traded_volume_counted_on_both_sides_is_halved():
    exchange, _ = make(PaperExchangeConfig(traded_volume_counts_both_sides=True), queue_book(0.0, waiting_at_2=0.0))
    exchange.place(request("r1", side=Side.BACK, price=2.0, size=20.0))
    exchange.on_market_book(queue_book(10.0, waiting_at_2=0.0))
    assert exchange.order("r1").size_matched == 5.0


# --- fill-or-kill ------------------------------------------------------------------------------
def test_fill_or_kill_with_minimum_fill_matches_what_it_can_and_lapses_the_rest():
    exchange, _ = make()
    order = exchange.place(request("r1", price=2.02, size=20.0, fill_or_kill=True, min_fill_size=12.0))
    assert (order.size_matched, order.size_lapsed) == (15.0, 5.0)  # 10 @ 2.04 + 5 @ 2.02
    assert order.status is OrderStatus.EXECUTION_COMPLETE
    assert order.lapse_reason is LapseReason.FILL_OR_KILL


def test_fill_or_kill_below_its_minimum_matches_nothing():
    exchange, _ = make()
    order = exchange.place(request("r1", price=2.02, size=20.0, fill_or_kill=True, min_fill_size=16.0))
    assert (order.size_matched, order.size_lapsed, order.status) == (0.0, 20.0, OrderStatus.EXECUTION_COMPLETE)
    whole = exchange.place(request("r2", price=2.02, size=16.0, fill_or_kill=True))  # no minimum: all or nothing
    assert whole.size_matched == 0.0 and whole.lapse_reason is LapseReason.FILL_OR_KILL
    # the liquidity is untouched by the killed orders
    assert exchange.place(request("r3", price=2.02, size=15.0, fill_or_kill=True)).size_matched == 15.0


def test_min_fill_size_needs_fill_or_kill_and_fits_the_size():
    exchange, _ = make()
    assert exchange.place(request("r1", min_fill_size=5.0)).error_code is ExchangeError.INVALID_MIN_FILL_SIZE
    assert exchange.place(request("r2", size=5.0, fill_or_kill=True, min_fill_size=6.0)).error_code is (
        ExchangeError.INVALID_MIN_FILL_SIZE
    )


# --- bet delay ---------------------------------------------------------------------------------
def in_play(*runners, status=MarketStatus.OPEN):
    return market_book("m1", *(runners or BOOK), in_play=True, status=status)


def test_in_play_orders_wait_the_bet_delay_on_the_injected_clock():
    exchange, clock = make(PaperExchangeConfig(in_play_delay_seconds=3.0), in_play())
    order = exchange.place(request("r1", price=2.0, size=10.0))
    assert order.status is OrderStatus.PENDING and order.bet_delay_seconds == 3.0
    assert order.placed_at == T0  # event time from the clock, not the wall clock
    clock.advance(2.9)
    exchange.poll()
    assert exchange.order("r1").status is OrderStatus.PENDING and exchange.order("r1").size_matched == 0.0
    clock.advance(0.1)
    exchange.poll()
    assert exchange.order("r1").size_matched == 10.0


def test_delayed_order_meets_the_book_as_it_is_when_the_delay_ends():
    exchange, clock = make(PaperExchangeConfig(in_play_delay_seconds=3.0), in_play())
    exchange.place(request("r1", price=2.0, size=10.0))
    clock.advance(1.0)
    exchange.on_market_book(in_play(runner("A", back=[(1.9, 100)], lay=[(1.95, 100)]), runner("B")))  # price moved
    clock.advance(2.5)
    exchange.poll()
    order = exchange.order("r1")
    assert (order.status, order.size_matched) == (OrderStatus.EXECUTABLE, 0.0)


def test_pre_play_orders_have_no_delay():
    exchange, _ = make(PaperExchangeConfig(in_play_delay_seconds=3.0))
    assert exchange.place(request("r1", price=2.0, size=10.0)).size_matched == 10.0


# --- suspension and persistence ----------------------------------------------------------------
def test_orders_are_rejected_while_suspended():
    exchange, _ = make(None, market_book("m1", *BOOK, status=MarketStatus.SUSPENDED))
    assert exchange.place(request("r1")).error_code is ExchangeError.MARKET_SUSPENDED


def test_suspension_lapses_lapse_orders_and_keeps_persist_orders():
    exchange, _ = make(PaperExchangeConfig(in_play_delay_seconds=0.0), in_play())
    exchange.place(request("lapse", price=2.2, size=10.0, persistence=Persistence.LAPSE))
    exchange.place(request("persist", price=2.2, size=10.0, persistence=Persistence.PERSIST))
    updates = exchange.on_market_book(in_play(status=MarketStatus.SUSPENDED))
    lapsed, kept = exchange.order("lapse"), exchange.order("persist")
    assert (lapsed.status, lapsed.size_lapsed, lapsed.lapse_reason) == (
        OrderStatus.EXECUTION_COMPLETE,
        10.0,
        LapseReason.MARKET_SUSPENDED,
    )
    assert (kept.status, kept.size_remaining) == (OrderStatus.EXECUTABLE, 10.0)
    assert [u.order.customer_order_ref for u in updates if u.kind is EventKind.ORDER_LAPSED] == ["lapse"]


def test_an_order_in_its_bet_delay_lapses_if_the_market_suspends():
    exchange, clock = make(PaperExchangeConfig(in_play_delay_seconds=3.0), in_play())
    exchange.place(request("r1", price=2.0, size=10.0, persistence=Persistence.PERSIST))
    clock.advance(1.0)
    exchange.on_market_book(in_play(status=MarketStatus.SUSPENDED))
    order = exchange.order("r1")
    assert (order.size_matched, order.size_lapsed, order.lapse_reason) == (
        0.0,
        10.0,
        LapseReason.SUSPENDED_DURING_DELAY,
    )
    assert exchange.cancel("r1") == order  # finished orders are returned unchanged


def test_an_order_in_its_bet_delay_cannot_be_cancelled():
    exchange, _ = make(PaperExchangeConfig(in_play_delay_seconds=3.0), in_play())
    exchange.place(request("r1"))
    assert exchange.cancel("r1").status is OrderStatus.PENDING


def test_lapse_orders_lapse_when_the_market_turns_in_play():
    exchange, _ = make()
    exchange.place(request("lapse", price=2.2, size=10.0))
    exchange.place(request("persist", price=2.2, size=10.0, persistence=Persistence.PERSIST))
    exchange.on_market_book(in_play())
    assert exchange.order("lapse").lapse_reason is LapseReason.TURNED_IN_PLAY
    assert exchange.order("persist").status is OrderStatus.EXECUTABLE


def test_closing_the_market_lapses_everything_unmatched():
    exchange, _ = make()
    exchange.place(request("r1", price=2.2, size=10.0, persistence=Persistence.PERSIST))
    exchange.on_market_book(market_book("m1", *BOOK, status=MarketStatus.CLOSED))
    assert exchange.order("r1").lapse_reason is LapseReason.MARKET_CLOSED
    assert exchange.place(request("r2")).error_code is ExchangeError.MARKET_CLOSED


# --- duplicate protection ----------------------------------------------------------------------
def test_resubmitting_a_reference_returns_the_existing_order():
    exchange, _ = make()
    first = exchange.place(request("r1", price=2.0, size=5.0))
    again = exchange.place(request("r1", price=2.0, size=5.0))
    assert again == first
    assert len(exchange.orders()) == 1
    assert exchange.order("r1").size_matched == 5.0  # matched once, not twice


def test_duplicate_protection_survives_a_restart_from_persisted_orders():
    exchange, clock = make(None, queue_book(0.0, waiting_at_2=5.0))
    exchange.place(request("r1", side=Side.BACK, price=2.0, size=10.0))
    persisted = [o.to_dict() for o in exchange.orders()]

    from betting.records import Order

    rebuilt = PaperExchange(
        clock, PaperExchangeConfig(), balance=1000.0, orders=[Order.from_dict(d) for d in persisted]
    )
    rebuilt.on_market_book(queue_book(0.0, waiting_at_2=5.0))
    again = rebuilt.place(request("r1", side=Side.BACK, price=2.0, size=10.0))
    assert again.bet_id == exchange.order("r1").bet_id
    assert len(rebuilt.orders()) == 1
    fresh = rebuilt.place(request("r2", side=Side.BACK, price=2.2, size=10.0))
    assert fresh.bet_id != again.bet_id
    # the rebuilt resting order rejoined the back of its queue and still fills from traded volume
    assert rebuilt.queue_ahead("r1") == 5.0
    rebuilt.on_market_book(queue_book(8.0, waiting_at_2=5.0))
    assert rebuilt.order("r1").size_matched == 3.0


# --- settlement --------------------------------------------------------------------------------
def test_commission_is_charged_on_net_market_winnings_at_settlement():
    exchange, _ = make(PaperExchangeConfig(commission=0.05), balance=1000.0)
    exchange.place(request("a", selection="A", side=Side.BACK, price=2.04, size=10.0))  # +10.40 if A wins
    exchange.place(request("b", selection="B", side=Side.BACK, price=1.9, size=4.0))  # -4.00 if A wins
    settlement = exchange.settle_market("m1", MatchResult.from_score("A", "6-4 6-4"))
    assert settlement.pnl.gross_profit == 6.40
    assert settlement.pnl.commission == 0.32  # 5% of the net 6.40, not of the 10.40 won
    assert settlement.pnl.net_profit == 6.08
    assert exchange.balance == 1006.08
    assert all(o.settled for o in exchange.orders("m1"))
    with pytest.raises(ValueError):
        exchange.settle_market("m1", MatchResult.from_score("A", "6-4 6-4"))


def test_a_losing_market_pays_no_commission_and_unmatched_orders_lapse():
    exchange, _ = make(PaperExchangeConfig(commission=0.05), balance=100.0)
    exchange.place(request("a", selection="A", side=Side.BACK, price=2.04, size=10.0))
    exchange.place(request("rest", selection="A", side=Side.BACK, price=3.0, size=10.0))
    settlement = exchange.settle_market("m1", MatchResult.from_score("B", "6-4 6-4"))
    assert (settlement.pnl.gross_profit, settlement.pnl.commission, settlement.pnl.net_profit) == (-10.0, 0.0, -10.0)
    assert exchange.balance == 90.0
    assert exchange.order("rest").lapse_reason is LapseReason.MARKET_CLOSED
    assert [b.customer_order_ref for b in settlement.bets] == ["a"]


def test_walkover_voids_every_bet():
    exchange, _ = make(balance=100.0)
    exchange.place(request("a", selection="A", side=Side.BACK, price=2.04, size=10.0))
    settlement = exchange.settle_market("m1", MatchResult.from_score(None, "W/O"))
    assert settlement.void and settlement.pnl.net_profit == 0.0 and exchange.balance == 100.0


def test_released_markets_leave_exchange_and_risk_book_without_an_update():
    """Several engine workers: a worker that was late finds its match taken over (and its orders adopted by the
    new holder); ``PaperExchange.release`` and ``RiskBook.forget_market`` (``TradingCore.release_match``) drop
    them without an update, exposure and order rate with them; the other markets are untouched."""
    from betting.risk import RiskBook

    books = (market_book("m1", *BOOK, in_play=True), market_book("m2", *BOOK, in_play=True))
    exchange, clock = make(PaperExchangeConfig(in_play_delay_seconds=3.0), *books)
    risk = RiskBook(1000.0)
    for book in books:
        risk.record_market_book(book)
        risk.record_order(exchange.place(request(f"r-{book.market_id}", market=book.market_id, size=5.0)))
    exchange.poll()
    assert risk.live_order_count() == 2 and risk.orders_placed_in_window(T0) == 2
    gone = exchange.release(["m1"])
    risk.forget_market("m1")
    assert [o.customer_order_ref for o in gone] == ["r-m1"]
    assert exchange.order("r-m1") is None and exchange.orders("m1") == ()
    assert risk.order("r-m1") is None and risk.open_orders("m1") == ()
    assert risk.live_order_count() == 1 and risk.orders_placed_in_window(T0) == 1
    assert risk.total_exposure() == risk.market_exposure("m2") == 5.0
    clock.advance(3.0)  # the bet delays end: only the kept order comes out
    assert {u.order.customer_order_ref for u in exchange.poll()} == {"r-m2"}
