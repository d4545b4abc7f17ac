"""One set of risk limits over several engine workers, each trading the matches it owns.

Live engines are partitioned by match (``owner``: a stable rendezvous hash of the match over the live workers,
so a dead worker's matches spread over the others and no other match moves). The limits of one match
(selection and market exposure, stake, price, edge, confidence) need only that match's orders, which one worker
holds. The limits that span matches - total exposure, open orders, orders per hour, the daily and weekly
stop-losses, the bankroll floor, the kill switch - need every worker's. They are checked by the same
``betting.risk.check``, on a ``CombinedBook``: the worker's own ``RiskBook`` plus ``SharedFigures``, what the
other workers hold, read by the caller under one lock shared by every worker (``storage.shared_risk``: a
Postgres advisory lock, so two workers never decide at once), and the order reserved before the lock is
released. What a worker publishes for the others is never lower than the truth (an order raises it inside
the lock; fills, cancellations and settlements lower it later), so no limit can be exceeded by workers
deciding at the same time.

Pure: no storage, no framework. The caller passes ``shared_check`` as the decision made under the lock.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from betting.money import round_money
from betting.records import Order, OrderRequest, OrderStatus
from betting.risk import (
    ORDER_RATE_WINDOW,
    PnlPeriods,
    RiskBook,
    RiskDecision,
    RiskLimits,
    check,
)


def owner(match_id: str, workers: Iterable[str]) -> str | None:
    """The worker that should trade ``match_id`` among ``workers`` (rendezvous hashing: the highest hash of
    (worker, match) wins; None when there is no worker). Stable: removing a worker moves only its matches."""
    best: tuple[bytes, str] | None = None
    for worker in workers:
        score = hashlib.blake2b(f"{worker}\x00{match_id}".encode(), digest_size=8).digest()
        if best is None or (score, worker) > best:
            best = (score, worker)
    return None if best is None else best[1]


@dataclass(frozen=True)
class SharedFigures:
    """What the other workers hold, and what all of them realised, read under the shared lock."""

    starting_bankroll: float
    others_exposure: float = 0.0
    """Sum of the other workers' published market exposures."""
    others_live_orders: int = 0
    others_placed: Sequence[datetime] = ()
    """Placement times (event time) of the other workers' orders in the rate window, sorted."""
    realised: Sequence[tuple[datetime, float]] = ()
    """The settled markets' (settled_at, net profit), every worker's, in settlement order: at least those of the
    trading week of the decision (the daily and weekly stop-losses read only that week)."""
    realised_before: float = 0.0
    """The net profit of every settled market not in ``realised`` (the bankroll only)."""
    kill_switch: bool = False
    """The operator's kill switch as committed when the lock was taken."""


@dataclass
class CombinedBook:
    """A ``RiskBook`` for ``betting.risk.check`` that sees the worker's own markets exactly and the others'
    through ``SharedFigures``: the same checks, the same messages, every limit that spans matches summed."""

    local: RiskBook
    shared: SharedFigures
    _periods: PnlPeriods = field(default_factory=PnlPeriods)

    def __post_init__(self) -> None:
        bankroll = round_money(self.shared.starting_bankroll + self.shared.realised_before)
        for at, net in self.shared.realised:
            bankroll = round_money(bankroll + net)
            self._periods.add(at, net)
        self._bankroll = round_money(bankroll)

    @property
    def bankroll(self) -> float:
        return self._bankroll

    def order(self, customer_order_ref: str) -> Order | None:
        return self.local.order(customer_order_ref)

    def live_order_count(self) -> int:
        return self.local.live_order_count() + self.shared.others_live_orders

    def orders_placed_in_window(self, now: datetime, window: timedelta = ORDER_RATE_WINDOW) -> int:
        placed = self.shared.others_placed
        others = bisect.bisect_right(placed, now) - bisect.bisect_right(placed, now - window)
        return self.local.orders_placed_in_window(now, window) + others

    def selection_exposure(self, market_id: str, selection: str, extra: Order | None = None) -> float:
        return self.local.selection_exposure(market_id, selection, extra)

    def market_exposure(self, market_id: str, extra: Order | None = None) -> float:
        return self.local.market_exposure(market_id, extra)

    def total_exposure(self, extra: Order | None = None, extra_market: float | None = None) -> float:
        return round_money(self.local.total_exposure(extra, extra_market) + self.shared.others_exposure)

    def day_low(self, now: datetime) -> float:
        return self._periods.day(now).low

    def day_high(self, now: datetime) -> float:
        return self._periods.day(now).high

    def week_low(self, now: datetime) -> float:
        return self._periods.week(now).low


@dataclass(frozen=True)
class SharedVerdict:
    """``shared_check``'s answer: the decision, and (approved) what the worker's market then holds, which the
    caller publishes in the same transaction as the reservation."""

    decision: RiskDecision
    market_exposure: float = 0.0
    market_live_orders: int = 0
    total_exposure: float = 0.0
    live_orders: int = 0
    orders_in_hour: int = 0


def shared_check(
    request: OrderRequest, local: RiskBook, shared: SharedFigures, now: datetime, limits: RiskLimits
) -> SharedVerdict:
    """``betting.risk.check`` of one worker's order against every worker's figures (called under the lock)."""
    if shared.kill_switch and not limits.kill_switch:
        limits = dataclasses.replace(limits, kill_switch=True)
    book = CombinedBook(local, shared)
    decision = check(request, book, now, limits)  # type: ignore[arg-type]  # a RiskBook by its reading methods
    if not decision.approved or local.order(request.customer_order_ref) is not None:
        return SharedVerdict(decision)
    candidate = Order.from_request(request, bet_id=None, status=OrderStatus.PENDING, placed_at=now, updated_at=now)
    market_live = sum(1 for o in local.open_orders(request.market_id) if o.is_live) + 1
    return SharedVerdict(
        decision,
        market_exposure=local.market_exposure(request.market_id, candidate),
        market_live_orders=market_live,
        total_exposure=book.total_exposure(candidate),
        live_orders=book.live_order_count() + 1,
        orders_in_hour=book.orders_placed_in_window(now) + 1,
    )


def published_markets(local: RiskBook) -> dict[str, tuple[float, int]]:
    """What a worker publishes for the others: each of its open markets' worst-case loss and live orders."""
    out: dict[str, tuple[float, int]] = {}
    for order in local.open_orders():
        out.setdefault(order.market_id, (local.market_exposure(order.market_id), 0))
        if order.is_live:
            exposure_, live = out[order.market_id]
            out[order.market_id] = (exposure_, live + 1)
    return out


class SharedLimits(Protocol):
    """The port ``TradingCore.submit`` decides an order through when several workers share the limits: it runs
    ``shared_check`` under the lock every worker takes and reserves the order before the lock is released
    (``serving.engine.workers`` over ``storage.shared_risk``)."""

    def reserve(
        self, request: OrderRequest, match_id: str, now: datetime, local: RiskBook, limits: RiskLimits
    ) -> RiskDecision: ...

    def bankroll(self, local: RiskBook) -> float:
        """The account's realised bankroll, every worker's settlements included (stakes are sized on it)."""
        ...
