"""Order books from the feed's market messages, and back from the event log: the conversions between
the live protocol (``feeds.live.protocol.MarketUpdate``) and ``betting.market.MarketBook``."""

from __future__ import annotations

from datetime import datetime

from betting.market import MarketBook, MarketStatus, RunnerBook
from feeds.live.market import LABELS, Quotes
from feeds.live.protocol import MarketUpdate


def feed_book(update: MarketUpdate, at: datetime) -> MarketBook:
    """The order book of a feed's market update (top of book per runner)."""
    runners = tuple(
        RunnerBook.top_of_book(r.selection, r.back_price, r.back_size, r.lay_price, r.lay_size, r.traded_volume)
        for r in update.runners
    )
    return MarketBook(
        market_id=update.market_id,
        publish_time=at,
        status=MarketStatus(update.status),
        in_play=update.in_play,
        runners=runners,
    )


def quoted_book(market_id: str, at: datetime, status: MarketStatus, quotes: Quotes | None) -> MarketBook:
    """The in-play order book of the simulated market's quotes (``feeds.live.market``; None: no prices) —
    ``feed_book`` of the message those quotes make, without the message (a fast replay)."""
    if quotes is None:
        runners = tuple(RunnerBook.top_of_book(label, None, 0.0, None, 0.0) for label in LABELS)
    else:
        runners = tuple(RunnerBook.top_of_book(label, *q) for label, q in zip(LABELS, quotes, strict=True))
    return MarketBook(market_id=market_id, publish_time=at, status=status, in_play=True, runners=runners)


def update_payload(update: MarketUpdate) -> dict:
    """What the event log keeps of a market update (``MARKET_UPDATE`` / ``MARKET_SUSPENDED`` entries)."""
    prices = {r.selection: [r.back_price, r.lay_price] for r in update.runners}
    sizes = {r.selection: [r.back_size, r.lay_size] for r in update.runners}
    return {
        "market_id": update.market_id,
        "status": update.status,
        "in_play": update.in_play,
        "simulated": update.simulated,
        "source": update.source,
        "prices": prices,
        "sizes": sizes,
        "point_number": update.point_number,
    }


def logged_book(payload: dict, at: datetime) -> MarketBook:
    """The order book of a ``MARKET_UPDATE`` entry of the event log (top of book per runner)."""
    sizes = payload.get("sizes", {})
    runners = tuple(
        RunnerBook.top_of_book(
            selection, back, sizes.get(selection, [0.0, 0.0])[0], lay, sizes.get(selection, [0.0, 0.0])[1]
        )
        for selection, (back, lay) in payload["prices"].items()
    )
    return MarketBook(
        market_id=payload["market_id"],
        publish_time=at,
        status=MarketStatus(payload["status"]),
        in_play=bool(payload["in_play"]),
        runners=runners,
    )
