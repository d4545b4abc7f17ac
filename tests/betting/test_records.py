"""Records: JSON round trips, deterministic client references, event kinds."""

import json

import pytest

from betting.exchange import OrderUpdate
from betting.market import MarketBook, MarketStatus
from betting.records import (
    EventKind,
    Fill,
    LedgerEvent,
    Order,
    Settlement,
    Side,
    customer_order_ref,
)
from betting.risk import RejectReason, RiskDecision
from betting.settlement import MatchResult, settle_market
from betting.value import ValueConfig, detect_value
from tests.betting.builders import T0, market_book, matched, runner


def roundtrip(record):
    restored = type(record).from_dict(json.loads(json.dumps(record.to_dict())))
    assert restored == record
    return restored


def test_orders_fills_settlements_and_decisions_survive_json():
    order = matched("r1", side=Side.LAY, price=2.5, size=12.34)
    assert roundtrip(order).placed_at.tzinfo is not None
    fill = Fill(
        fill_id="P1:0",
        customer_order_ref="r1",
        bet_id="P1",
        market_id="m1",
        selection="A",
        side=Side.LAY,
        price=2.5,
        size=12.34,
        matched_at=T0,
        crossed=True,
    )
    roundtrip(fill)
    s = settle_market(
        "m1", [order], MatchResult.from_score("B", "6-1 6-1"), commission=0.05, bankroll=100.0, settled_at=T0
    )
    assert isinstance(roundtrip(s), Settlement) and roundtrip(s).bets[0].side is Side.LAY
    roundtrip(RiskDecision("r1", False, RejectReason.ORDER_RATE, "too many"))
    roundtrip(OrderUpdate(kind=EventKind.ORDER_FILLED, order=order, at=T0, fill=fill))
    roundtrip(LedgerEvent(kind=EventKind.OPPORTUNITY, at=T0, payload={"edge": 0.1}))
    roundtrip(detect_value("m", "A", 0.65, back_price=1.85, lay_price=None, config=ValueConfig())[0])


def test_market_books_survive_json_and_sort_their_levels():
    book = market_book(
        "m1",
        runner("A", back=[(1.9, 5), (2.0, 3)], lay=[(2.1, 1), (2.02, 2)], traded=[(2.0, 9)]),
        status=MarketStatus.SUSPENDED,
        in_play=True,
    )
    assert [lv.price for lv in book.runner("A").available_to_back] == [2.0, 1.9]
    assert [lv.price for lv in book.runner("A").available_to_lay] == [2.02, 2.1]
    assert roundtrip(book) == book and isinstance(book, MarketBook)


def test_order_snapshot_knows_what_is_left():
    order = matched("r1", size=10.0)
    assert not order.is_live and order.size_remaining == 0.0
    assert Order.from_dict(order.to_dict()).size_matched == 10.0


def test_client_reference_is_deterministic_and_fits_betfair():
    a = customer_order_ref("match-1", 1042, "A", Side.BACK)
    assert a == customer_order_ref("match-1", 1042, "A", Side.BACK)
    assert a != customer_order_ref("match-1", 1043, "A", Side.BACK)
    assert len(a) == 32


def test_event_kinds_cover_the_message_flow():
    names = {k.name for k in EventKind}
    assert {
        "FEED_MESSAGE",
        "QUARANTINED",
        "PREDICTION",
        "OPPORTUNITY",
        "ORDER_REJECTED",
        "ORDER_PLACED",
        "ORDER_FILLED",
        "ORDER_CANCELLED",
        "MARKET_SUSPENDED",
        "MATCH_FINISHED",
        "BET_SETTLED",
    } <= names


def test_a_feeds_top_of_book_is_the_runner_the_constructor_builds():
    """``RunnerBook.top_of_book`` skips the constructor's level sorting (one level a side at most): the same
    runner, equal and hashing alike, for every kind of side a feed sends (a price, none, a zero or no size)."""
    from betting.market import PriceSize, RunnerBook

    for back, back_size, lay, lay_size, traded in [
        (2.0, 10.0, 2.02, 5.5, 100.0),
        (None, 0.0, 1.5, 3.0, 0.0),
        (3.05, 0.0, None, 0.0, 12.5),
        (None, 0.0, None, 0.0, 0.0),
        (1000.0, 1.0, 1000.0, 0.0, 0.0),
    ]:
        fast = RunnerBook.top_of_book("First Player", back, back_size, lay, lay_size, traded)

        def level(price, size):
            return [PriceSize(price, size)] if price is not None and size > 0 else []

        built = RunnerBook(
            "First Player",
            available_to_back=level(back, back_size),
            available_to_lay=level(lay, lay_size),
            traded_volume=level(back, traded),
        )
        assert fast == built and hash(fast) == hash(built)
        assert type(fast.available_to_back) is tuple and fast.best_back == built.best_back
        assert roundtrip(fast) == built
    with pytest.raises(ValueError, match="not on the ladder"):  # prices are still checked against the ladder
        RunnerBook.top_of_book("First Player", 2.03, 1.0, None, 0.0)
