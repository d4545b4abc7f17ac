"""``BetfairExchange``: the exchange port (``betting.exchange.BaseExchange``) over the Betfair API (betfairlightweight).
REAL MONEY: nothing builds it unless a user asks for live trading explicitly (see the README, "Trading for real").

- ``place``: ``placeOrders`` with our deterministic reference as the order's ``customerOrderRef`` and as the call's
  ``customerRef`` (Betfair refuses a repeated ``customerRef`` within its window, ``DUPLICATE_TRANSACTION``: the
  order is then looked up, never sent twice), ``customerStrategyRef`` ``courtside``, LIMIT orders with their
  persistence. A reference the exchange already knows returns that order.
- ``cancel``: ``cancelOrders`` by bet id. ``poll``: the order changes the Exchange Stream API's order stream
  (``ocm``, ``orders_stream``) brought since the last call — or, while that stream is down (or not used),
  ``listCurrentOrders`` of the open orders; every change (placed, filled, cancelled, lapsed) comes back once as an
  ``OrderUpdate``, as the paper exchange reports them. An order's state only moves forward: a stale answer (an
  older stream message after a newer REST answer) never takes a fill back.
- Transaction limit: at most ``max_transactions_per_hour`` order placements are sent in any sliding hour (Betfair
  charges for transactions above its hourly threshold; set the number your account allows). An order over it is
  refused here (``TRANSACTION_LIMIT``) and never sent. Cancels are not counted.
- ``reconcile``: at start, ``listCurrentOrders`` of the followed markets: orders Betfair has are adopted as they
  are (an order the ledger thought open but Betfair lapsed is corrected), and orders Betfair has that the ledger
  does not know are reported (``unknown``) — never placed again.
- ``settle_market``: Betfair settles; the settlement booked here is the one the project's rules compute from the
  matched bets (``betting.settlement``), as the paper exchange books it, after one ``listCurrentOrders`` of the
  market (the latest matched sizes, whatever the stream has delivered).

Markets are the feed's (``bf-<event key>``); ``markets`` maps Betfair's market ids to (event key, selection id ->
"First Player"/"Second Player"), as ``prices.BetfairPrices.followed`` resolves them.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from betfairlightweight import filters
from betfairlightweight.exceptions import BetfairError

from adapters.betfair.streaming import ResubscribingStream
from betting.clock import Clock
from betting.exchange import BaseExchange, OrderUpdate, UnknownOrder
from betting.market import MarketBook
from betting.money import round_money
from betting.records import (
    EventKind,
    ExchangeError,
    Fill,
    LapseReason,
    Order,
    OrderRequest,
    OrderStatus,
    Persistence,
    Settlement,
    Side,
)
from betting.settlement import MatchResult, SettlementConfig, settle_market

log = logging.getLogger(__name__)

STRATEGY = "courtside"
MAX_TRANSACTIONS_PER_HOUR = 1000
"""The default guard; set ``BETFAIR_MAX_TRANSACTIONS_PER_HOUR`` to what your account allows."""


def order_stream(client: Any, endpoints: Any = None, **kwargs: Any) -> ResubscribingStream:
    """Our orders on the Exchange Stream API (``orderSubscription`` of strategy ``courtside``; ``ocm``), resumed
    from its clk after a drop. ``start()`` it; its ``output`` holds betfairlightweight's ``CurrentOrders``."""

    def subscribe(stream: Any, initial_clk: str | None, clk: str | None) -> None:
        stream.subscribe_to_orders(
            order_filter=filters.streaming_order_filter(customer_strategy_refs=[STRATEGY]),
            initial_clk=initial_clk,
            clk=clk,
        )

    host, port = (endpoints.stream_host, endpoints.stream_port) if endpoints is not None else (None, 443)
    return ResubscribingStream(client, subscribe, "orders", host, port, order_updates_only=True, first_id=50, **kwargs)


class BetfairExchange(BaseExchange):
    def __init__(
        self,
        client: Any,
        markets: Mapping[str, tuple[str, dict[int, str]]],
        clock: Clock,
        settlement: SettlementConfig | None = None,
        commission: float = 0.05,
        balance: float = 0.0,
        refresh_markets: Callable[[], None] | None = None,
        orders_stream: ResubscribingStream | None = None,
        max_transactions_per_hour: int = MAX_TRANSACTIONS_PER_HOUR,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.markets = markets
        self.clock = clock
        self.settlement = settlement or SettlementConfig()
        self.commission = commission
        self._balance = round_money(balance)
        self._refresh_markets = refresh_markets
        """Lists the markets again when an order names one not resolved yet (a match just started)."""
        self._settled: set[str] = set()
        self._orders: dict[str, Order] = {}
        self._outbox: list[OrderUpdate] = []
        self.unknown: list[dict] = []
        """Orders Betfair has in our markets that the ledger does not know (``reconcile``): reported, never touched."""
        self.orders_stream = orders_stream
        self.max_transactions_per_hour = max_transactions_per_hour
        self._monotonic = monotonic
        self._sent: deque[float] = deque()
        """When each placement of the last hour was sent (the transaction limit)."""
        self.over_limit = 0

    # --- ids ----------------------------------------------------------------------------------------
    def _betfair(self, market_id: str, selection: str) -> tuple[str, int]:
        found = self._find(market_id, selection)
        if found is None and self._refresh_markets is not None:
            before = set(self.markets)
            self._refresh_markets()
            self._reconcile_markets(sorted(set(self.markets) - before))
            found = self._find(market_id, selection)
        if found is None:
            raise KeyError(f"{selection} of market {market_id} is not a runner of a followed Betfair market")
        return found

    def _find(self, market_id: str, selection: str) -> tuple[str, int] | None:
        for bf_id, (key, labels) in self.markets.items():
            if f"bf-{key}" == market_id:
                return next(((bf_id, sel) for sel, label in labels.items() if label == selection), None)
        return None

    def _ours(self, bf_market: str, selection_id: int) -> tuple[str, str] | None:
        found = self.markets.get(bf_market)
        if found is None or selection_id not in found[1]:
            return None
        return f"bf-{found[0]}", found[1][selection_id]

    # --- the port -----------------------------------------------------------------------------------
    def place(self, request: OrderRequest) -> Order:
        known = self._orders.get(request.customer_order_ref)
        if known is not None:
            return known
        now = self.clock.now()
        try:
            bf_market, selection_id = self._betfair(request.market_id, request.selection)
        except KeyError as exc:
            return self._rejected(request, ExchangeError.MARKET_NOT_FOUND, now, str(exc))
        known = self._orders.get(request.customer_order_ref)
        if known is not None:  # on Betfair already (found when its market was resolved): never sent again
            return known
        if not self._within_limit():
            self.over_limit += 1
            return self._rejected(
                request,
                ExchangeError.TRANSACTION_LIMIT,
                now,
                f"{self.max_transactions_per_hour} placements in the last hour (BETFAIR_MAX_TRANSACTIONS_PER_HOUR)",
            )
        instruction = filters.place_instruction(
            order_type="LIMIT",
            selection_id=selection_id,
            side=str(request.side),
            handicap=0.0,
            limit_order=filters.limit_order(
                price=request.price,
                size=request.size,
                persistence_type=str(request.persistence),
                **(
                    {"time_in_force": "FILL_OR_KILL", "min_fill_size": request.min_fill_size}
                    if request.fill_or_kill
                    else {}
                ),
            ),
            customer_order_ref=request.customer_order_ref,
        )
        try:
            answer = self.client.betting.place_orders(
                market_id=bf_market,
                instructions=[instruction],
                customer_ref=request.customer_order_ref,
                customer_strategy_ref=STRATEGY,
            )
        except BetfairError as exc:
            # the call may have reached Betfair: look before anything else is done with this reference
            log.error("placeOrders %s failed: %s; looking it up", request.customer_order_ref, exc)
            return self._looked_up(request, now) or self._rejected(request, None, now, str(exc))
        if getattr(answer, "error_code", None) == "DUPLICATE_TRANSACTION":
            return self._looked_up(request, now) or self._rejected(request, None, now, "duplicate, not found")
        report = answer.place_instruction_reports[0] if answer.place_instruction_reports else None
        if report is None or report.status != "SUCCESS":
            code = getattr(report, "error_code", None) or getattr(answer, "error_code", None)
            return self._rejected(request, _error(code), now, str(code))
        matched = float(report.size_matched or 0.0)
        order = Order.from_request(
            request,
            bet_id=str(report.bet_id),
            status=OrderStatus(str(getattr(report, "order_status", None) or "EXECUTABLE")),
            placed_at=now,
            updated_at=now,
            size_matched=matched,
            average_price_matched=float(report.average_price_matched) if matched else None,
        )
        self._orders[order.customer_order_ref] = order
        self._outbox.append(OrderUpdate(EventKind.ORDER_PLACED, order, now))
        if order.size_matched:
            self._outbox.append(
                OrderUpdate(EventKind.ORDER_FILLED, order, now, self._fill(order, order.size_matched, now))
            )
        return order

    def _within_limit(self) -> bool:
        """Room for one more placement in the sliding hour (and, if so, it is counted as sent)."""
        t = self._monotonic()
        while self._sent and t - self._sent[0] >= 3600.0:
            self._sent.popleft()
        if len(self._sent) >= self.max_transactions_per_hour:
            return False
        self._sent.append(t)
        return True

    def _rejected(self, request: OrderRequest, code: ExchangeError | None, now: datetime, why: str) -> Order:
        log.warning("order %s refused: %s", request.customer_order_ref, why)
        order = Order.from_request(
            request, bet_id=None, status=OrderStatus.REJECTED, placed_at=now, updated_at=now, error_code=code
        )
        self._outbox.append(OrderUpdate(EventKind.ORDER_REJECTED, order, now))
        return order

    def _looked_up(self, request: OrderRequest, now: datetime) -> Order | None:
        current = self._current(customer_order_refs=[request.customer_order_ref])
        if not current:
            return None
        self._adopt(current[0], now)
        return self._orders.get(request.customer_order_ref)

    def cancel(self, customer_order_ref: str) -> Order:
        order = self._orders.get(customer_order_ref)
        if order is None:
            raise UnknownOrder(customer_order_ref)
        if order.bet_id is None or order.status in (OrderStatus.EXECUTION_COMPLETE, OrderStatus.REJECTED):
            return order
        bf_market, _ = self._betfair(order.market_id, order.selection)
        try:
            self.client.betting.cancel_orders(
                market_id=bf_market, instructions=[filters.cancel_instruction(bet_id=order.bet_id)]
            )
        except BetfairError as exc:
            log.error("cancelOrders %s failed: %s", customer_order_ref, exc)
        self._refresh([order.customer_order_ref])
        return self._orders[customer_order_ref]

    def order(self, customer_order_ref: str) -> Order | None:
        return self._orders.get(customer_order_ref)

    def orders(self, market_id: str | None = None) -> tuple[Order, ...]:
        return tuple(o for o in self._orders.values() if market_id is None or o.market_id == market_id)

    @property
    def idle(self) -> bool:
        return not any(o.is_live for o in self._orders.values())

    def on_market_book(self, book: MarketBook) -> list[OrderUpdate]:
        return self.poll()

    def poll(self) -> list[OrderUpdate]:
        streaming = self.orders_stream is not None and self.orders_stream.subscribed.is_set()
        if self.orders_stream is not None:
            self._drain()
        if not streaming:  # no order stream (or it is down): ask for the open orders
            live = [o.customer_order_ref for o in self._orders.values() if o.is_live]
            if live:
                self._refresh(live)
        out, self._outbox = self._outbox, []
        return out

    def _drain(self) -> None:
        """What the order stream brought since the last call."""
        assert self.orders_stream is not None
        now = self.clock.now()
        while True:
            try:
                resources = self.orders_stream.output.get_nowait()
            except queue.Empty:
                return
            for current_orders in resources:
                for current in current_orders.orders:
                    self._adopt(current, now)

    def close(self) -> None:
        """Stop the order stream (the engine's end)."""
        if self.orders_stream is not None:
            self.orders_stream.stop()

    @property
    def balance(self) -> float:
        """The starting balance plus the settlements booked here (Betfair's own account is the truth)."""
        return self._balance

    def settle_market(self, market_id: str, result: MatchResult) -> Settlement:
        if market_id in self._settled:
            raise ValueError(f"market {market_id} is already settled")
        now = self.clock.now()
        if self.orders_stream is not None:
            self._drain()
        bf_market = next((bf for bf, (key, _) in self.markets.items() if f"bf-{key}" == market_id), None)
        if bf_market is not None:  # the latest matched sizes, whatever the stream has delivered yet
            for current in self._current(market_ids=[bf_market]):
                self._adopt(current, now)
        # what changed stays in the outbox: the next poll() reports it (the ledger and the risk book see it)
        orders = [o for o in self._orders.values() if o.market_id == market_id]
        settlement = settle_market(
            market_id,
            orders,
            result,
            commission=self.commission,
            bankroll=self._balance,
            settled_at=now,
            config=self.settlement,
        )
        self._balance = settlement.pnl.bankroll_after
        self._settled.add(market_id)
        for o in orders:
            settled = self._orders[o.customer_order_ref] = o.evolve(settled=True, updated_at=now)
            self._outbox.append(OrderUpdate(EventKind.BET_SETTLED, settled, now))
        return settlement

    # --- Betfair's view -----------------------------------------------------------------------------
    def _current(self, **query: Any) -> list[Any]:
        try:
            answer = self.client.betting.list_current_orders(**query)
        except BetfairError as exc:
            log.error("listCurrentOrders failed: %s", exc)
            return []
        return list(answer.orders)

    def _refresh(self, refs: list[str]) -> None:
        now = self.clock.now()
        for current in self._current(customer_order_refs=refs):
            self._adopt(current, now)

    def _adopt(self, current: Any, now: datetime) -> None:
        """Betfair's state of one order into ours, with the updates the change makes."""
        ref = current.customer_order_ref
        ours = self._ours(current.market_id, int(current.selection_id))
        if not ref or ours is None:
            return
        market_id, selection = ours
        before = self._orders.get(ref)
        size_matched = float(current.size_matched or 0.0)
        order = Order(
            customer_order_ref=ref,
            bet_id=str(current.bet_id),
            market_id=market_id,
            selection=selection,
            side=Side(current.side),
            price=float(current.price_size.price),
            size=float(current.price_size.size),
            persistence=Persistence(current.persistence_type)
            if current.persistence_type in ("LAPSE", "PERSIST")
            else Persistence.LAPSE,
            status=OrderStatus(current.status) if current.status in OrderStatus.__members__ else OrderStatus.EXECUTABLE,
            placed_at=before.placed_at if before else _aware(current.placed_date) or now,
            updated_at=now,
            size_matched=size_matched,
            average_price_matched=float(current.average_price_matched) if size_matched else None,
            size_cancelled=float(current.size_cancelled or 0.0),
            size_lapsed=float(current.size_lapsed or 0.0),
            lapse_reason=(before.lapse_reason if before else None)
            or (LapseReason.MARKET_SUSPENDED if current.size_lapsed else None),
        )
        if before == order:
            return
        if before is not None and _progress(order) < _progress(before):
            return  # an older state (a stream message behind a REST answer): never a fill taken back
        self._orders[ref] = order
        if before is None:
            self._outbox.append(OrderUpdate(EventKind.ORDER_PLACED, order, now))
        if size_matched > (before.size_matched if before else 0.0):
            fill = self._fill(order, round_money(size_matched - (before.size_matched if before else 0.0)), now)
            self._outbox.append(OrderUpdate(EventKind.ORDER_FILLED, order, now, fill))
        if order.size_cancelled > (before.size_cancelled if before else 0.0):
            self._outbox.append(OrderUpdate(EventKind.ORDER_CANCELLED, order, now))
        if order.size_lapsed > (before.size_lapsed if before else 0.0):
            self._outbox.append(OrderUpdate(EventKind.ORDER_LAPSED, order, now))

    def _fill(self, order: Order, size: float, now: datetime) -> Fill:
        return Fill(
            fill_id=f"{order.bet_id}-{order.size_matched}",
            customer_order_ref=order.customer_order_ref,
            bet_id=order.bet_id or "",
            market_id=order.market_id,
            selection=order.selection,
            side=order.side,
            price=order.average_price_matched or order.price,
            size=size,
            matched_at=now,
            crossed=True,
        )

    def reconcile(self, known: Mapping[str, Order]) -> list[dict]:
        """At start: Betfair's orders in the followed markets, against ``known`` (the ledger's). Betfair's state
        wins for the orders both know; the ledger's orders Betfair does not have stay as the ledger says; orders
        only Betfair has are listed in ``unknown`` (and returned) and never placed again. A market resolved later
        (a restarted engine follows its matches again as the feed replays) is reconciled the same way then,
        before any order is sent to it — so a restart never relies on Betfair's 60-second duplicate window."""
        self._orders.update(known)
        self.unknown = []
        if self.markets:
            self._reconcile_markets(sorted(self.markets))
        return self.unknown

    def _reconcile_markets(self, bf_markets: list[str]) -> None:
        if not bf_markets:
            return
        now = self.clock.now()
        for current in self._current(market_ids=bf_markets):
            ref = current.customer_order_ref
            if not (ref and ref in self._orders):
                self.unknown.append(
                    {"bet_id": current.bet_id, "customer_order_ref": ref, "market_id": current.market_id}
                )
                log.warning("Betfair has an order the ledger does not know: %s", self.unknown[-1])
            # ours by its reference but not in the ledger (a crash before the commit): adopted, never resent
            if ref:
                self._adopt(current, now)


def _progress(order: Order) -> float:
    """How far an order has gone: its matched, cancelled and lapsed sizes never go down."""
    return order.size_matched + order.size_cancelled + order.size_lapsed


def _error(code: Any) -> ExchangeError | None:
    try:
        return ExchangeError(str(code))
    except ValueError:
        return None


def _aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


REAL_MONEY_SWITCH = "COURTSIDE_REAL_MONEY"
REAL_MONEY_YES = "yes-real-orders"


def require_real_money(env: Mapping[str, str]) -> None:
    """The explicit switch of real orders, or ``SystemExit`` saying what it does and how to set it."""
    if env.get(REAL_MONEY_SWITCH) != REAL_MONEY_YES:
        raise SystemExit(
            f"COURTSIDE_VENUE=betfair-live places REAL orders with real money: set {REAL_MONEY_SWITCH}="
            f"{REAL_MONEY_YES} to confirm (betfair-paper-live trades the same prices on the paper exchange)"
        )


def live_exchange_factory(
    env: Mapping[str, str],
    followed: Callable[[], Iterable[tuple[str, str, str, str]]],
    endpoints: Any = None,
    use_order_stream: bool = True,
) -> Callable[[Clock, list[Order]], BetfairExchange]:
    """The engine's exchange for real orders (``COURTSIDE_VENUE=betfair-live``): refused unless
    ``COURTSIDE_REAL_MONEY=yes-real-orders`` is set too and the Betfair credentials are in the environment. The markets
    are resolved against the matches the engine follows (``followed()``: event key, date, players), listed again
    whenever an order names a market not resolved yet. Reconciles with the ledger at start, then follows the
    orders on the order stream (``use_order_stream``; else by polling)."""
    from adapters.betfair.prices import (
        BetfairCredentials,
        BetfairEndpoints,
        api_client,
        login,
        resolve_by_players,
        tennis_markets,
    )

    require_real_money(env)
    credentials = BetfairCredentials.from_env(env)
    endpoints = endpoints or BetfairEndpoints.from_env(env)
    limit = int(env.get("BETFAIR_MAX_TRANSACTIONS_PER_HOUR") or MAX_TRANSACTIONS_PER_HOUR)
    resolve = resolve_by_players(followed)

    def build(clock: Clock, restored: list[Order]) -> BetfairExchange:
        client = api_client(credentials, endpoints)
        login(client, credentials)
        markets: dict[str, tuple[str, dict[int, str]]] = {}

        def refresh() -> None:
            for market in tennis_markets(client):
                found = resolve(market)
                if not isinstance(found, str):
                    markets[market.market_id] = found

        refresh()
        exchange = BetfairExchange(client, markets, clock, refresh_markets=refresh, max_transactions_per_hour=limit)
        unknown = exchange.reconcile({o.customer_order_ref: o for o in restored})
        if unknown:
            log.warning("Betfair has %d order(s) the ledger does not know: %s", len(unknown), unknown)
        if use_order_stream:
            exchange.orders_stream = order_stream(client, endpoints).start()
        return exchange

    return build
