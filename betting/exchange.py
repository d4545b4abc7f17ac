"""The exchange port: what the trading core needs from any exchange, real or simulated.

Adapters: ``betting.paper.PaperExchange`` (Betfair rules, simulated matching); a live Betfair
adapter would implement the same methods over the Betfair API and stream.

Every change to an order is reported once as an ``OrderUpdate`` (placement, fill, cancel, lapse,
settlement), returned by the next ``on_market_book`` or ``poll``; the caller appends them to the
event log and feeds the orders to the ``RiskBook``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from betting.codec import JsonRecord
from betting.market import MarketBook
from betting.records import EventKind, Fill, Order, OrderRequest, Settlement
from betting.settlement import MatchResult


@dataclass(frozen=True)
class OrderUpdate(JsonRecord):
    """Something that happened to one order, with the order as it is afterwards."""

    kind: EventKind
    """ORDER_PLACED, ORDER_REJECTED, ORDER_FILLED, ORDER_CANCELLED, ORDER_LAPSED or BET_SETTLED."""
    order: Order
    at: datetime
    fill: Fill | None = None
    """The match, for ORDER_FILLED."""


class UnknownOrder(KeyError):
    """No order with this customer reference was ever placed."""


class BaseExchange(ABC):
    """Port to an exchange: orders in, order states and settlements out."""

    @abstractmethod
    def place(self, request: OrderRequest) -> Order:
        """Send a limit order; a reference already used returns the existing order (no second bet)."""

    @abstractmethod
    def cancel(self, customer_order_ref: str) -> Order:
        """Cancel the unmatched remainder of an order; returns the order afterwards."""

    @abstractmethod
    def order(self, customer_order_ref: str) -> Order | None:
        """The current state of an order (None if never placed)."""

    @abstractmethod
    def orders(self, market_id: str | None = None) -> tuple[Order, ...]:
        """Every order, of one market or all."""

    @abstractmethod
    def on_market_book(self, book: MarketBook) -> list[OrderUpdate]:
        """Take one market-data update; returns the order updates produced since the last call."""

    @abstractmethod
    def poll(self) -> list[OrderUpdate]:
        """Bring orders up to the clock's time; returns the order updates since the last call."""

    @abstractmethod
    def settle_market(self, market_id: str, result: MatchResult) -> Settlement:
        """Settle a finished market: unmatched orders lapse, matched bets are paid, commission charged."""

    def close(self) -> None:  # noqa: B027 - a hook: most exchanges hold nothing to release
        """Release what the exchange holds open (a venue's connections); the engine calls it when it stops."""
