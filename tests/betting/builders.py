"""Small builders of market books, requests and orders shared by the betting tests."""

from __future__ import annotations

from datetime import UTC, datetime

from betting.market import MarketBook, MarketStatus, PriceSize, RunnerBook
from betting.records import (
    Order,
    OrderRequest,
    OrderStatus,
    Persistence,
    PnL,
    Settlement,
    Side,
)

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
"""A Monday, noon UTC."""


def runner(selection: str, back=(), lay=(), traded=()) -> RunnerBook:
    """A runner from (price, size) pairs: back = available to back, lay = available to lay."""
    return RunnerBook(
        selection=selection,
        available_to_back=tuple(PriceSize(p, s) for p, s in back),
        available_to_lay=tuple(PriceSize(p, s) for p, s in lay),
        traded_volume=tuple(PriceSize(p, s) for p, s in traded),
    )


def market_book(
    market_id: str = "m1",
    *runners: RunnerBook,
    status: MarketStatus = MarketStatus.OPEN,
    in_play: bool = False,
    at: datetime = T0,
) -> MarketBook:
    """A market update (default runners A and B with nothing on the book)."""
    return MarketBook(
        market_id=market_id,
        publish_time=at,
        status=status,
        in_play=in_play,
        runners=runners or (runner("A"), runner("B")),
    )


def request(
    ref: str,
    *,
    market: str = "m1",
    selection: str = "A",
    side: Side = Side.BACK,
    price: float = 2.0,
    size: float = 10.0,
    edge: float | None = 0.05,
    confidence: float | None = 0.6,
    **kw,
) -> OrderRequest:
    """An order request with a comfortable edge and confidence."""
    return OrderRequest(
        customer_order_ref=ref,
        market_id=market,
        selection=selection,
        side=side,
        price=price,
        size=size,
        edge=edge,
        confidence=confidence,
        **kw,
    )


def _order(
    ref: str,
    status: OrderStatus,
    matched: bool,
    market: str,
    selection: str,
    side: Side,
    price: float,
    size: float,
    at: datetime,
) -> Order:
    return Order(
        customer_order_ref=ref,
        bet_id=f"B-{ref}",
        market_id=market,
        selection=selection,
        side=side,
        price=price,
        size=size,
        persistence=Persistence.LAPSE,
        status=status,
        placed_at=at,
        updated_at=at,
        size_matched=size if matched else 0.0,
        average_price_matched=price if matched else None,
    )


def matched(
    ref: str,
    *,
    market: str = "m1",
    selection: str = "A",
    side: Side = Side.BACK,
    price: float = 2.0,
    size: float = 10.0,
    at: datetime = T0,
) -> Order:
    """A fully matched order snapshot."""
    return _order(ref, OrderStatus.EXECUTION_COMPLETE, True, market, selection, side, price, size, at)


def resting(
    ref: str,
    *,
    market: str = "m1",
    selection: str = "A",
    side: Side = Side.BACK,
    price: float = 2.0,
    size: float = 10.0,
    at: datetime = T0,
) -> Order:
    """An unmatched order on the book."""
    return _order(ref, OrderStatus.EXECUTABLE, False, market, selection, side, price, size, at)


def settlement(market_id: str, net: float, at: datetime, bankroll_before: float = 1000.0) -> Settlement:
    """A settlement with the given net P&L (bets omitted: the risk book only reads the P&L)."""
    pnl = PnL(
        market_id=market_id,
        gross_profit=net,
        commission=0.0,
        net_profit=net,
        bankroll_before=bankroll_before,
        bankroll_after=round(bankroll_before + net, 2),
        settled_at=at,
    )
    return Settlement(
        market_id=market_id, outcome="completed", sets_completed=2, winner="A", void=False, bets=(), pnl=pnl
    )
