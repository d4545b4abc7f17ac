"""The streaming engine: one asyncio process that follows the live feed point by point and trades.

    feed frame (position n) -> validation (bad -> quarantine) -> match state (exact scoring, impossible
    score -> quarantine, match suspended) -> triggers -> /predict_live (BentoML) -> value after
    commission -> fractional Kelly -> risk limits -> paper exchange -> ledger

Every step is appended to the durable event log. All effects of a batch of frames — log entries, order
states, feed cursors, quarantined frames — are committed in one transaction (``storage.live.commit_step``).

Nothing a feed sends can stop the engine: every frame goes through one guarded step (``_handle``).
A frame that fails validation is quarantined with its reason; one that breaks a rule of the match's
state (an impossible score, another match's players, a second match end) is quarantined too; any
other exception while handling a frame makes it a *poison* message, quarantined with the exception.
In every case the cursor moves past the frame (it is never handled twice, even after a restart) and,
when the match's state can no longer be trusted, the match is suspended from trading
(``MATCH_SUSPENDED``, with the reason) until a later message of the same channel applies cleanly
(``MATCH_RESUMED``). Other matches trade on.

Two ways to run (``EngineConfig.deterministic``):

- **live** (default): frames are handled as they arrive, predictions batched across matches, a
  prediction the service does not give in time means no bet. A restart reads the cursors, restores
  the orders and settlements, replays the feed up to the cursors *silently* (rebuilding match state
  without trading), shows the exchange every open market as it was at the cursors once *every*
  channel is recovered, and only then trades on.
- **deterministic** (audits, backtests, fault tests): frames are handled in the feed's own order
  (``feeds.live.ordering``: event time, channel, sequence number — never arrival), one at a time,
  each decision waits for its prediction, the clock starts at a fixed epoch. The same recorded feed
  with the same configuration and model gives the same orders, byte for byte, however it is
  delivered. A restart re-executes every frame up to the cursors with the predictions recorded in
  the log and the external inputs (``ENGINE_INPUT``: operator controls, control-plane order requests,
  kill-switch cancellations) at the positions they took effect, commits nothing of it, and checks
  that the orders it arrives at are exactly the committed ones (``RECOVERED``: mismatches).

Order references are derived from (match, point, selection, side), so a decision made again after a
restart gets the same reference and the exchange's duplicate protection returns the existing order.

Operator controls (pause, kill switch, risk limits) arrive through the database: the live API appends
them to ``operator_controls`` and the engine reads the newest one at start and every housekeeping
tick, so a kill switch pulled while the engine was down is in force from its first message. The
engine answers with a heartbeat in ``engine_status`` (controls version applied, figures).

Several workers (``EngineConfig.worker``, ``serving.engine.workers``): N engine processes on one Postgres database
follow the whole feed; each trades only the matches whose lease it holds (``SHADOW`` frames of the others' matches
keep their state, for a take-over, and log nothing), and every order is decided under one Postgres lock against
every worker's figures (``betting.shared_limits``). A dead worker's matches are taken over with their orders when its
leases run out. Each worker keeps its own cursors (channel ``<channel>@<worker>``) and restarts as one engine does.

The engine settles its own risk book when a match ends (``betting.settlement``, the rule the control
plane persists with ``settle_live``): the bankroll and loss limits see a result at the feed position
where it happened, not whenever the control plane gets to it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine as DbEngine
from sqlalchemy.exc import InterfaceError, OperationalError

from betting.clock import ManualClock
from betting.exchange import BaseExchange
from betting.paper import PaperExchange
from betting.policy import TradingPolicy
from betting.records import EventKind, Order, OrderRequest, Settlement
from betting.risk import RiskBook
from betting.shared_limits import owner, published_markets
from betting.trading import TradingCore, TradingCounts
from features.live_match import BadMessage, LiveMatch
from features.live_quality import message_quality
from features.triggers import Trigger
from feeds.live.books import feed_book, update_payload
from feeds.live.client import RECORD_LIMIT, FeedClient, Frame
from feeds.live.ordering import FeedMerger
from feeds.live.protocol import Envelope, Heartbeat, MarketUpdate, MatchEvent, market_event_key
from serving.engine.prediction import PredictionRefused, PredictionUnavailable
from serving.engine.workers import Partition, WorkerLimits
from storage import live as store
from storage.shared_risk import Lease, SharedRisk

log = logging.getLogger(__name__)

PredictLive = Callable[[list[dict]], Awaitable[list[dict]]]
"""Prediction requests (``TradingCore.state``) -> the service's answers, in order."""
DETERMINISTIC_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""Where the feed clock starts in deterministic mode (unless ``EngineConfig.epoch`` says otherwise)."""
CONFIRM_LEAP, REFUTE_LEAP, RECOVERY_CHECK = "confirm-leap", "refute-leap", "recovery-check"
"""Reasons of the marker frames (position 0) ``run`` queues after a heartbeat."""


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine's behaviour depends on: the trading policy (``betting.policy``, the same the
    backtests and the control plane use) and the few settings of the engine process itself."""

    feed_url: str = "ws://127.0.0.1:8765"
    feeds: tuple[str, ...] = ("live",)
    policy: TradingPolicy = field(default_factory=TradingPolicy)
    max_batch: int = 256
    """Most frames processed (and committed) together when they queue up."""
    session: str = "paper"
    """Names this trading session in the quarantine table."""
    mode: str = "paper"
    """How orders are filled: ``paper`` (the simulated market) or ``paper-live`` (real prices, paper exchange);
    shown in the heartbeat, the API and the dashboard. Real orders (``live``) are not built."""
    venue: str = "replay"
    """Where the feed comes from: ``replay``, ``api-tennis``, ``api-tennis+betfair`` or ``standin``."""
    housekeeping_s: float = 1.0
    """How often order requests from the control plane, new settlements and operator controls are picked up."""
    status_s: float = 5.0
    """How often the engine writes its heartbeat (``engine_status``)."""
    deterministic: bool = False
    """Handle frames in the feed's own order, one at a time, each decision waiting for its prediction
    (audits, backtests, fault tests); see the module docstring. Live trading keeps it off."""
    epoch: datetime | None = None
    """The date the feed clock counts from; None: the wall clock at a feed's first message (live, kept in
    the cursors), or ``DETERMINISTIC_EPOCH`` in deterministic mode."""
    max_clock_jump_s: float = 86400.0
    """A message more than this (feed seconds) ahead of its channel's previous one waits for the next message
    of the channel: if that one is back near the old time, the leap is refused (quarantined); if it follows
    on, or the server says nothing came after it, the feed really was quiet that long. A message behind its
    channel's time is handled; the clock never goes back."""
    max_gap_retries: int = 3
    """Re-requests of missing feed messages before they are skipped (``GAP_SKIPPED``)."""
    prediction_retry_s: float = 0.5
    """Deterministic mode: pause between attempts when the prediction service does not answer."""
    worker: str | None = None
    """One of several engine workers on one Postgres database (``serving.engine.workers``): this worker's id
    (1 to 8 letters, digits or '-'). It trades only the matches it holds the lease of, under limits shared by
    every worker. None: the only engine (the default)."""
    lease_s: float = 5.0
    """Several workers: how long a match's lease lasts without renewal (a dead worker's matches wait this long)."""
    workers: int = 1
    """Several workers: how many to wait for at the start (each sees the others before its first message, so the
    matches spread over all of them and, in deterministic mode, none runs ahead of the others)."""


ExchangeFactory = Callable[[ManualClock, list[Order]], BaseExchange]
"""Builds the engine's exchange from its clock and the ledger's orders (live mode restores them; deterministic
mode: none). The default builds the paper exchange."""


@dataclass
class EngineStats(TradingCounts):
    messages: int = 0
    recovered: int = 0
    replayed: int = 0
    """Deterministic mode: frames re-executed after a restart (nothing committed)."""
    quarantined: int = 0
    poison: int = 0
    """Of the quarantined: frames whose handling raised an unexpected exception."""
    gaps_skipped: int = 0
    skipped_messages: int = 0
    held: int = 0
    """Live mode: frames that arrived while another channel was still recovering (handled after it)."""
    replay_mismatches: int = 0
    prediction_failures: int = 0
    commit_retries: int = 0
    housekeeping_errors: int = 0
    shadowed: int = 0
    """Several workers: frames of other workers' matches (state followed, nothing traded or logged)."""
    takeovers: int = 0
    released: int = 0
    """Several workers: matches another worker took over while this one was late (their orders forgotten here)."""
    decision_ms: list[float] = field(default_factory=list)
    """Feed message received -> trading decision made (order submitted, or no bet), per triggered message."""

    def decision_summary(self, last: int = 5000) -> dict[str, float | int] | None:
        """Median, p99 and max of the last ``last`` decision latencies (ms); None before the first."""
        lat = sorted(self.decision_ms[-last:])
        if not lat:
            return None
        return {
            "n": len(lat),
            "p50_ms": round(lat[len(lat) // 2], 3),
            "p99_ms": round(lat[int(0.99 * (len(lat) - 1))], 3),
            "max_ms": round(lat[-1], 3),
        }


def check_prediction(answer: dict) -> float:
    """The probability of a prediction service answer; ``PredictionUnavailable`` when it is not one."""
    try:
        p = float(answer["probability"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PredictionUnavailable(f"unusable prediction {str(answer)[:200]}: {exc}") from None
    if not (math.isfinite(p) and 0.0 <= p <= 1.0):
        raise PredictionUnavailable(f"prediction {p!r} is not a probability")
    return p


# Phases of a frame: live (trade and commit), recovering (live mode: rebuild state silently), replaying
# (deterministic mode: re-execute without committing), shadow (several workers: another worker's match, its
# state followed silently so it can be taken over; the cursor moves past it).
LIVE, RECOVERING, REPLAYING, SHADOW = "live", "recovering", "replaying", "shadow"


_LINEAGE_KINDS = frozenset(
    {
        EventKind.OPPORTUNITY,
        EventKind.ORDER_REJECTED,
        EventKind.ORDER_PLACED,
        EventKind.ORDER_FILLED,
        EventKind.ORDER_CANCELLED,
        EventKind.ORDER_LAPSED,
        EventKind.BET_SETTLED,
    }
)
"""Entries about one order: their ``ref`` column is its reference (``GET /bets/{ref}`` reads them by it)."""


def _ref_of(payload: dict) -> str | None:
    """The order reference an opportunity, a rejection or an order state is about."""
    ref = payload.get("ref") or (payload.get("order") or payload.get("request") or {}).get("customer_order_ref")
    return str(ref)[:32] if ref else None


class TradingEngine:
    """The data plane. Feed it frames with ``process``; ``run`` follows the feed server."""

    def __init__(
        self, config: EngineConfig, db: DbEngine, predict: PredictLive, exchange: ExchangeFactory | None = None
    ):
        self.cfg = config
        self.db = db
        self.predict = predict
        self.stats = EngineStats()
        self.clock = ManualClock(datetime(1970, 1, 1, tzinfo=UTC))
        self.shared = SharedRisk(db, config.worker, config.lease_s) if config.worker else None
        """Several workers: the shared tables (leases, the limits that span matches); None for the only engine."""
        self.partition = Partition(self.shared) if self.shared is not None else None
        self._published: dict[str, tuple[str, float, int]] = {}
        self.cursors = self._own_cursors(store.cursors(db))
        self.recover_upto = {k: seq for k, (seq, _) in self.cursors.items()}
        self.epochs = {feed: epoch for (feed, _), (_, epoch) in self.cursors.items()}
        if config.deterministic:
            self.epochs = dict.fromkeys(config.feeds, config.epoch or DETERMINISTIC_EPOCH)
        elif config.epoch is not None:
            self.epochs = {**dict.fromkeys(config.feeds, config.epoch), **self.epochs}
        committed = [Order.from_dict(o) for o in store.orders(db)]
        if self.shared is not None and exchange is not None:
            raise ValueError(
                "engine workers trade on the paper exchange only: a venue's order stream would show every worker "
                "the others' orders (run one engine with a real venue)"
            )
        if self.shared is not None and self.partition is not None:
            if config.deterministic and any(self.recover_upto.values()):
                raise ValueError("a deterministic engine worker cannot restart (run it again on a fresh log)")
            # a worker restores the orders it holds, not the other workers': its leases renewed first (all of them,
            # not only the matches its replay will reach in time), then the references it holds under them
            self.partition.resume()
            mine = self.shared.my_refs()
            committed = [o for o in committed if o.customer_order_ref in mine]
        # Deterministic mode rebuilds the exchange and the risk book by re-executing the feed; live mode
        # restores the persisted orders and settlements.
        restored = [] if config.deterministic else committed
        self._committed_orders = {o.customer_order_ref: o for o in committed}
        policy = config.policy
        if exchange is None:  # the default: the paper exchange, its orders restored from the ledger
            port: BaseExchange = PaperExchange(self.clock, policy.exchange, balance=policy.bankroll, orders=restored)
        else:  # another venue through the port (``adapters.betfair.exchange``): it reconciles with the ledger
            port = exchange(self.clock, restored)
        self.core = TradingCore(
            policy,
            self.clock,
            port,
            RiskBook(policy.bankroll),
            emit=self._emit,
            on_order=self._order_state,
            counts=self.stats,
            market_key=market_event_key,
            on_settlement=self._realised,
        )
        """The trading rules (``betting.trading``): match states, risk book, exchange, decisions."""
        self.core.restore_orders(restored)
        self.worker_limits = WorkerLimits(self.shared, policy.bankroll, config.deterministic) if self.shared else None
        self.core.shared = self.worker_limits
        if not config.deterministic:
            self._apply_settlements()
        self.core.saved_predictions = store.latest_payloads(db, str(EventKind.PREDICTION))
        self._phase_now = LIVE
        """The phase of the frame being handled (what the log sink says of suspensions)."""
        self._feed_time: dict[tuple[str, str], float] = {}
        self._best_offset: dict[str, float] = {}
        """Per feed: the smallest (engine wall clock - feed clock) seen, the on-time delivery (data quality)."""
        """Time of the last message handled per channel."""
        self._leaps: dict[tuple[str, str], list[Frame]] = {}
        """Per channel: a message whose time leaps ahead (and the frames without a time behind it), waiting
        for the next message with a time to confirm or refute the leap."""
        self._done_seq: dict[tuple[str, str], int] = {}
        """Last position handled per channel (whatever its phase)."""
        self._held: list[Frame] = []
        self._recovery_done = not any(self.recover_upto.values())
        self._unreachable: set[tuple[str, str]] = set()
        self.position = 0
        """Valid messages handled, in this session's order (deterministic mode: the feed's own order, so the
        journal of external inputs refers to the same point of every re-execution)."""
        self._journal: dict[int, list[dict]] = {}
        self._logged_predictions: dict[tuple[str, int], dict] = {}
        self._step = store.Step()
        self._decisions: list[float] = []
        """Receive times of market messages that led to a trading decision in the current batch."""
        self._pending: asyncio.Queue[store.Step] = asyncio.Queue()
        self._writer: asyncio.Task | None = None
        self.base_risk = config.policy.risk
        """The configured limits; the operator's overrides apply on top of them."""
        self.controls_version = 0
        self.controls_error: str | None = None
        self.started_at = datetime.now(UTC)
        self._next_status = 0.0
        self.clients: list[FeedClient] = []
        if config.deterministic and not self._recovery_done:
            # the controls in force at each position come from the journal; the newest ones are read when
            # the replay ends (_end_recovery)
            self._load_replay_inputs()
        else:
            self.apply_controls()

    # --- the core's state, for readers -------------------------------------------------------------
    @property
    def recovered(self) -> bool:
        """The start's recovery is complete (live frames are handled, not held)."""
        return self._recovery_done

    def feed_lag_s(self) -> float:
        """Wall clock minus the feed clock of the newest message handled (0 before the first): how far behind the
        feed the engine trades (a replay's clock is its own, so the figure is meaningful for live feeds)."""
        if not self._feed_time:
            return 0.0
        newest = max(self._feed_time.items(), key=lambda kv: kv[1])
        return (datetime.now(UTC) - (self._epoch(newest[0][0]) + timedelta(seconds=newest[1]))).total_seconds()

    @property
    def matches(self) -> dict[str, LiveMatch]:
        return self.core.matches

    @property
    def risk(self) -> RiskBook:
        return self.core.risk

    @property
    def exchange(self) -> BaseExchange:
        return self.core.exchange

    @property
    def suspended(self) -> dict[str, tuple[str, str]]:
        return self.core.suspended

    @property
    def paused(self) -> bool:
        return self.core.paused

    @property
    def limits(self):
        """The risk limits in force (configured, with the operator's overrides)."""
        return self.core.limits

    # --- helpers --------------------------------------------------------------------------------
    def _epoch(self, feed: str, event_time: float = 0.0) -> datetime:
        """When the feed's clock started: fixed in deterministic mode, else found at its first message."""
        epoch = self.epochs.get(feed)
        if epoch is None and self.shared is not None and not self.cfg.deterministic:
            # several workers: one feed clock for all (order times and trading days are compared across them);
            # a worker that starts after another takes the epoch that one keeps in its cursors
            theirs = [e for (f, _), (_, e) in store.cursors(self.db).items() if f == feed]
            if theirs:
                epoch = self.epochs[feed] = min(theirs)
        if epoch is None:
            epoch = self.epochs[feed] = (
                self.cfg.epoch or DETERMINISTIC_EPOCH
                if self.cfg.deterministic
                else datetime.now(UTC) - timedelta(seconds=event_time)
            )
        return epoch

    def _now_for(self, env: Envelope) -> datetime:
        at = self._epoch(env.feed, env.event_time) + timedelta(seconds=env.event_time)
        if at > self.clock.now():
            self.clock.set(at)
        return self.clock.now()

    def _phase(self, frame: Frame) -> str:
        if frame.seq > self.recover_upto.get((frame.feed, frame.channel), 0):
            return LIVE if self.partition is None or self._mine(frame) else SHADOW
        return REPLAYING if self.cfg.deterministic else RECOVERING

    # --- several workers ----------------------------------------------------------------------------
    def _mine(self, frame: Frame) -> bool:
        """Several workers: this worker trades the frame's match (holds its lease); a frame that names no match
        (unreadable, a gap) is the business of the worker the hash gives its channel."""
        assert self.partition is not None
        key = getattr(frame.envelope.data, "event_key", None) if frame.envelope is not None else None
        if key is None:
            return owner(f"{frame.feed}/{frame.channel}", self.partition.alive) == self.partition.worker
        return self.partition.owns(key)

    def _own_cursors(self, stored: dict) -> dict:
        """This engine's feed cursors: a worker keeps its own, stored under the channel ``<channel>@<worker>``."""
        if self.cfg.worker is None:
            return {k: v for k, v in stored.items() if "@" not in k[1]}
        suffix = f"@{self.cfg.worker}"
        return {(f, c.removesuffix(suffix)): v for (f, c), v in stored.items() if c.endswith(suffix)}

    def _cursor_key(self, key: tuple[str, str]) -> tuple[str, str]:
        return key if self.cfg.worker is None else (key[0], f"{key[1]}@{self.cfg.worker}")

    def _realised(self, settlement: Settlement, match_id: str) -> None:
        """The core settled a market: a worker that trades the match books its P&L for every worker's limits."""
        if self.shared is not None and self.partition is not None and match_id in self.partition.leases:
            pnl = settlement.pnl
            if not self.shared.realise(settlement.market_id, pnl.settled_at, pnl.net_profit):
                return  # another worker's now (it took the match over): its settlement is the one booked
            if self.worker_limits is not None:
                self.worker_limits.refresh()

    async def _lockstep(self, deciding: bool) -> None:
        """Deterministic mode with several workers: a message is handled once every other live worker has handled
        the ones before it; the worker that trades the message's match (``deciding``) waits until they have handled
        this one too. A message changes the others' orders only before any decision (``_message``: the orders
        whose bet delay ended reach the book first), so each decision sees every worker's orders and settlements
        exactly as one engine handling the feed alone would: the same stakes from the same bankroll, and the same
        room under the limits that span matches."""
        assert self.partition is not None and self.shared is not None
        target = self.position + 1 if deciding else self.position
        next_beat = time.monotonic() + 0.5
        while True:
            slowest = self.shared.slowest_other(self.partition.alive)
            if slowest is None or slowest >= target:
                return
            await asyncio.sleep(0.002)
            if time.monotonic() >= next_beat:  # still alive while waiting; a worker that died is not waited for
                self.shared.heartbeat()
                self.partition.renew()  # and still holding its matches, however long the others take
                self.partition.alive = self.shared.alive()
                next_beat = time.monotonic() + 0.5

    def worker_tick(self) -> None:
        """Several workers: heartbeat, leases (renew, take orphaned matches, adopt their orders, give up finished
        ones) and this worker's open positions published for the others' limits."""
        if self.partition is None or self.shared is None:
            return
        known = set(self.matches) | set(self.core.markets_of)
        taken, lost = self.partition.tick(known)
        for match_id in sorted(lost):
            gone = self.core.release_match(match_id)
            self.stats.released += 1
            log.warning(
                "worker %s: match %s was taken over by another worker while this one was late; its %d orders are "
                "that worker's now (forgotten here)",
                self.cfg.worker,
                match_id,
                len(gone),
            )
        for lease in taken:
            self._adopt(lease)
        for key in [k for k in self.partition.leases if k in self.matches and self.matches[k].finished]:
            self.partition.finished(key)
        self._publish_positions(force=True)
        if self.worker_limits is not None:
            self.worker_limits.refresh()

    def _publish_positions(self, force: bool = False) -> None:
        """This worker's open markets (worst case, live orders) for the others' limits, when they changed."""
        assert self.shared is not None
        positions = {m: (self.core.match_of_market(m), e, n) for m, (e, n) in published_markets(self.risk).items()}
        if force or positions != self._published:
            self.shared.publish(positions)
            self._published = positions

    def _adopt(self, lease: Lease) -> None:
        """A match taken over (its reservations adopted with the lease, ``SharedRisk.acquire``): the orders the other
        worker committed for it join this worker's risk book and exchange (what it had not committed never reached
        the ledger: its references stay reserved, never placed again)."""
        assert self.shared is not None
        match_id, previous, epoch = lease.match_id, lease.previous or "unknown", lease.epoch
        refs = self.shared.refs_of(match_id)  # adopted with the lease (and any this worker already held)
        orders = [Order.from_dict(o) for o in store.orders(self.db) if o["customer_order_ref"] in refs]
        new = [o for o in orders if self.risk.order(o.customer_order_ref) is None]
        self.core.restore_orders(new)
        for order in new:
            self.core.order_match[order.customer_order_ref] = (match_id, "adopted")
        adopt = getattr(self.exchange, "adopt", None)
        if adopt is not None:  # the paper exchange: what had not matched died with the other worker's book
            adopt(new)
            self.core.poll()
        self.stats.takeovers += 1
        self._log(
            EventKind.MATCH_TAKEN_OVER,
            {
                "from": previous,
                "worker": self.cfg.worker,
                "epoch": epoch,
                "orders": sorted(o.customer_order_ref for o in new),
            },
            match_id,
        )
        log.warning(
            "worker %s took match %s over from %s (%d orders adopted)", self.cfg.worker, match_id, previous, len(new)
        )
        ended = self.core.results.get(match_id)
        if ended is not None:  # it ended while its worker was dead: settle what was adopted, say it ended
            result, said = ended
            self.core.settle_risk(sorted(self.core.markets_of.get(match_id, ())), result)
            if not store.match_events(self.db, match_id, str(EventKind.MATCH_FINISHED)):
                self._log(EventKind.MATCH_FINISHED, dict(said), match_id)

    def _log(self, kind: EventKind | str, payload: dict, match_id: str | None = None, env: Envelope | None = None):
        self._step.events.append(
            store.EventEntry(
                str(kind),
                self.clock.now(),
                payload,
                env.feed if env else None,
                env.seq if env else None,
                match_id,
                _ref_of(payload) if kind in _LINEAGE_KINDS else None,
            )
        )

    def _emit(self, kind: EventKind | str, payload: dict, match_id: str | None, env: Envelope | None) -> None:
        """The core's event-log sink: entries join the batch's step (a recovered frame's step is thrown away)."""
        if kind in _LINEAGE_KINDS and env is not None:
            payload["trigger"] = {"feed": env.feed, "channel": env.channel, "seq": env.seq}
        elif kind is EventKind.MATCH_SUSPENDED and self._phase_now == LIVE:
            log.warning("match %s suspended from trading: %s", match_id, payload["reason"])
        elif kind is EventKind.MATCH_RESUMED and self._phase_now == LIVE:
            log.info("match %s resynchronised: trading again", match_id)
        elif kind is EventKind.FEED_MESSAGE and env is not None and env.channel == "match" and self._phase_now == LIVE:
            payload["dq"] = message_quality(env.data, payload.get("kind", ""), self._delay(env))
        self._log(kind, payload, match_id, env)

    def _delay(self, env: Envelope) -> float | None:
        """How late this message is against the fastest delivery seen on its feed (``features.live_quality``); not
        measured in deterministic mode (a replay of the log must give the same entries)."""
        if self.cfg.deterministic:
            return None
        offset = time.time() - env.event_time
        best = self._best_offset.get(env.feed)
        if best is None or offset < best:
            self._best_offset[env.feed] = best = offset
        return offset - best

    def _order_state(self, order: Order, match_id: str, source: str) -> None:
        self._step.orders[order.customer_order_ref] = store.OrderState(
            order.customer_order_ref, match_id, source, order.to_dict()
        )

    def _record_updates(self, updates, env: Envelope | None = None) -> None:
        self.core.record(updates, env)

    def quarantine(
        self,
        raw: str,
        reason: str,
        seq: int | None,
        feed: str,
        channel: str,
        match_id: str | None = None,
        dq: dict | None = None,
    ) -> None:
        """A frame that failed validation or a rule of the match's state: keep it with the reason (and the match
        and data quality, when the frame names a match)."""
        self.stats.quarantined += 1
        self._step.quarantined.append(
            {
                "source": f"live:{feed}",
                "location": f"{feed}/{channel}",
                "line": seq,
                "record": raw[:RECORD_LIMIT],
                "reason": reason[:2000],
                "batch_id": self.cfg.session,
            }
        )
        self._step.events.append(
            store.EventEntry(
                str(EventKind.QUARANTINED),
                self.clock.now(),
                {"reason": reason[:2000], "channel": channel, **({"dq": dq} if dq is not None else {})},
                feed,
                seq,
                match_id,
            )
        )

    # --- frames: one guarded step each ---------------------------------------------------------------
    def _frames(self, batch: Iterable[Frame | tuple[float, Envelope]]) -> list[Frame]:
        out = []
        for item in batch:
            if isinstance(item, Frame):
                out.append(item)
            else:
                received, env = item
                out.append(Frame(env.feed, env.channel, env.seq, "", env, None, None, received))
        return out

    def _admit(self, frame: Frame) -> list[Frame]:
        """The frames to handle now, in order, once ``frame`` arrived: a message whose time leaps ahead
        waits for the next of its channel (``max_clock_jump_s``); in live mode a live frame waits until
        every channel is recovered (the exchange must have seen every open market before the engine
        trades)."""
        ready = self._leap_check(frame)
        if self._recovery_done or self.cfg.deterministic:
            return ready
        out = []
        for f in ready:
            if self._phase(f) in (LIVE, SHADOW):
                self._held.append(f)
                self.stats.held += 1
            else:
                out.append(f)
        return out

    def _leap_check(self, frame: Frame) -> list[Frame]:
        key = (frame.feed, frame.channel)
        held = self._leaps.get(key)
        if frame.seq == 0:  # a marker: a heartbeat said nothing came after the leap, and where the feed's clock is
            if frame.reason not in (CONFIRM_LEAP, REFUTE_LEAP) or not held:
                return []
            leap, *behind = self._leaps.pop(key)
            return [leap if frame.reason == CONFIRM_LEAP else self._refuted(leap, key, None), *behind]
        t = frame.envelope.event_time if frame.envelope is not None else None
        previous = self._feed_time.get(key)
        if previous is None:  # a channel's first message: measured against the feed's other channels
            previous = max((v for (f, _), v in self._feed_time.items() if f == frame.feed), default=None)
        out: list[Frame] = []
        if held is not None:
            if t is None:  # a frame without a time says nothing about the leap: it waits behind it, in order
                held.append(frame)
                return []
            leap, *behind = self._leaps.pop(key)
            leapt = leap.envelope.event_time
            if t < leapt - self.cfg.max_clock_jump_s:
                out.append(self._refuted(leap, key, t))
            else:
                out.append(leap)
                previous = leapt
            out += behind
        if t is not None and previous is not None and t > previous + self.cfg.max_clock_jump_s:
            self._leaps[key] = [frame]
            return out
        return [*out, frame]

    def leap_verdict(self, key: tuple[str, str], hb: Heartbeat) -> str | None:
        """After a heartbeat that says nothing followed a held leap: confirm it when the server's clock is
        there too, else refute it (the same verdict the next message would give when the clock is truthful)."""
        held = self._leaps.get(key)
        if not held or hb.last_seq > held[-1].seq:
            return None
        return CONFIRM_LEAP if hb.event_time >= held[0].envelope.event_time - self.cfg.max_clock_jump_s else REFUTE_LEAP

    def _refuted(self, leap: Frame, key: tuple[str, str], back_at: float | None) -> Frame:
        leapt, before = leap.envelope.event_time, self._feed_time.get(key, 0.0)
        why = (
            f"the next message is back at {back_at:.3f} s" if back_at is not None else "the server's clock is not there"
        )
        return dataclasses.replace(
            leap,
            envelope=None,
            raw=leap.raw or leap.envelope.model_dump_json(),
            reason=f"event time {leapt:.3f} s leaps {leapt - before:.0f} s ahead of the "
            f"channel ({before:.3f} s) and {why}",
        )

    def _recovery_complete(self) -> bool:
        return all(self._done_seq.get(k, 0) >= seq or k in self._unreachable for k, seq in self.recover_upto.items())

    def _end_recovery(self) -> list[Frame]:
        """Every channel is back at its cursor: the exchange sees the markets as they were there (live
        mode) or the re-executed orders are checked against the committed ones (deterministic mode);
        the operator's newest controls apply. Returns the frames held meanwhile."""
        self._recovery_done = True
        payload: dict[str, Any] = {
            "mode": "deterministic" if self.cfg.deterministic else "live",
            "recovered_messages": self.stats.recovered + self.stats.replayed,
            "cursors": {f"{f}/{c}": s for (f, c), s in self.recover_upto.items()},
        }
        if self.cfg.deterministic:
            mismatches = self._check_replay()
            self.stats.replay_mismatches = len(mismatches)
            payload.update(orders=len(self._committed_orders), mismatches=mismatches[:50])
            if mismatches:
                log.error(
                    "the replay did not reproduce %d committed orders (first: %s): decisions after a restart "
                    "may differ from an uninterrupted run",
                    len(mismatches),
                    mismatches[0],
                )
            self._journal.clear()
            self._logged_predictions.clear()
        else:
            self.core.resume_exchange()
            payload["orders"] = len(self.exchange.orders())
        if self._unreachable:
            payload["unreachable"] = sorted(f"{f}/{c}" for f, c in self._unreachable)
        self._log(EventKind.RECOVERED, payload)
        log.info("recovered after a restart: %s", payload)
        self.apply_controls()
        if self.limits.kill_switch:  # before a held frame can fill a restored resting order
            self._cancel_live_orders()
        held, self._held = self._held, []
        return held

    async def process(self, batch: Iterable[Frame | tuple[float, Envelope]]) -> None:
        """Handle a batch of frames (or ``(received, envelope)`` pairs) and commit their effects."""
        wanted: dict[str, tuple[float, Envelope, list[Trigger]]] = {}
        queue = list(self._frames(batch))
        if not self._recovery_done and self._recovery_complete():
            queue = self._end_recovery() + queue  # a channel's cursor turned out to be unreachable
        i = 0
        while i < len(queue):
            frame = queue[i]
            i += 1
            for ready in self._admit(frame):
                if ready.seq > 0:
                    await self._handle(ready, wanted)
                if not self._recovery_done and self._recovery_complete():
                    queue[i:i] = self._end_recovery()
        if wanted:
            await self._predict_batch(wanted)
        self._record_updates(self.exchange.poll())
        done = time.perf_counter()
        self.stats.decision_ms.extend((done - r) * 1000 for r in self._decisions)
        self._decisions.clear()
        await self.commit()

    async def _handle(self, frame: Frame, wanted: dict) -> None:
        """One frame, guarded: whatever happens, it is handled once and the cursor moves past it."""
        key = (frame.feed, frame.channel)
        phase = self._phase(frame)
        if self._done_seq.get(key, 0) >= frame.seq:
            return  # handled already (a repeat delivery in one session)
        self.stats.messages += 1
        if phase == RECOVERING:
            self.stats.recovered += 1
        elif phase == REPLAYING:
            self.stats.replayed += 1
        elif phase == SHADOW:
            self.stats.shadowed += 1
        committed_step = self._step
        self._phase_now = phase
        if phase in (RECOVERING, REPLAYING):
            self._step = store.Step()  # nothing of a recovered frame is committed again
        lockstep = self.partition is not None and self.cfg.deterministic and frame.envelope is not None
        if lockstep and phase != REPLAYING:
            # only a message of a match decides (one without a match is the hash's, and two workers that disagree
            # on who is alive must not wait for each other)
            keyed = getattr(frame.envelope.data, "event_key", None) is not None if frame.envelope else False
            await self._lockstep(deciding=phase == LIVE and keyed)
        # another worker's match (SHADOW): what the core logs of that match is dropped at the end, but not the
        # changes of this worker's own orders the frame causes (a bet delay ending on the clock it moved)
        shadow_from = len(self._step.events)
        try:
            if frame.gap_from is not None:
                self._gap_skipped(frame, phase)
            elif frame.envelope is None:
                if phase == LIVE:
                    self.quarantine(frame.raw, frame.reason or "invalid message", frame.seq, frame.feed, frame.channel)
            else:
                await self._message(frame, frame.envelope, phase, wanted)
        except BadMessage as exc:
            self._reject(frame, str(exc), phase, suspend=exc.suspend)
        except Exception as exc:  # noqa: BLE001 - a poison message must never stop the engine
            self.stats.poison += 1
            if phase == LIVE:
                log.error(
                    "poison message %s/%s #%d: %s\n%s",
                    frame.feed,
                    frame.channel,
                    frame.seq,
                    exc,
                    traceback.format_exc(limit=6),
                )
            self._reject(frame, f"poison message: {type(exc).__name__}: {exc}", phase, suspend=True)
        finally:
            if self.cfg.deterministic and phase != RECOVERING:
                self._poll_exchange(frame)  # orders whose bet delay ended reach the book at this frame, not later
            self._done_seq[key] = frame.seq
            if frame.envelope is not None:  # only messages count: where bad frames fall depends on arrival
                self.position += 1
            if phase in (RECOVERING, REPLAYING):
                if self.cfg.deterministic and phase == REPLAYING:
                    self._replay_inputs(self.position)
                self._step = committed_step
            elif phase == SHADOW:
                theirs = getattr(frame.envelope.data, "event_key", None) if frame.envelope is not None else None
                events = self._step.events
                events[shadow_from:] = [e for e in events[shadow_from:] if e.match_id is None or e.match_id != theirs]
            if phase in (LIVE, SHADOW):
                self._step.cursors[self._cursor_key(key)] = (frame.seq, self._epoch(frame.feed))
            if lockstep and self.shared is not None:
                self._publish_positions()  # exact, not only at a tick: the next message's decisions read them
                self.shared.set_position(self.position)

    def _poll_exchange(self, frame: Frame, env: Envelope | None = None) -> None:
        try:
            self._record_updates(self.exchange.poll(), env)
        except Exception as exc:  # noqa: BLE001 - counted as the frame's poison, never a stop
            self.stats.poison += 1
            log.error("exchange poll failed after %s/%s #%d: %s", frame.feed, frame.channel, frame.seq, exc)

    def _poll_idle(self) -> None:
        try:
            self._record_updates(self.exchange.poll())
        except Exception as exc:  # noqa: BLE001 - never a stop
            log.error("exchange poll failed while the feed was quiet: %s", exc)

    def _reject(self, frame: Frame, reason: str, phase: str, suspend: bool) -> None:
        env = frame.envelope
        match_key = getattr(env.data, "event_key", None) if env is not None else None
        if phase == LIVE:
            raw = frame.raw or (env.model_dump_json() if env is not None else "")
            dq = (
                message_quality(env.data, "refused", self._delay(env))
                if env is not None and match_key is not None and env.channel == "match"
                else None
            )
            self.quarantine(raw, reason, frame.seq, frame.feed, frame.channel, match_key if dq else None, dq)
        if suspend and match_key is not None:
            self.core.suspend(match_key, frame.channel, reason, env)

    def _gap_skipped(self, frame: Frame, phase: str) -> None:
        self.stats.gaps_skipped += 1
        self.stats.skipped_messages += frame.seq - (frame.gap_from or frame.seq) + 1
        if phase == LIVE:
            self._log(
                EventKind.GAP_SKIPPED,
                {"channel": frame.channel, "from": frame.gap_from, "to": frame.seq, "reason": frame.reason},
            )

    async def _message(self, frame: Frame, env: Envelope, phase: str, wanted: dict) -> None:
        key = (frame.feed, frame.channel)
        self._feed_time[key] = max(self._feed_time.get(key, env.event_time), env.event_time)
        self._now_for(env)
        if phase != RECOVERING:
            # the orders whose bet delay ended by now reach the book before anything else happens at this time (and
            # before a decision reads the exposure they leave): in every market, whichever match the message is of
            self._poll_exchange(frame, env)
        if env.channel == "market":
            if not isinstance(env.data, MarketUpdate):
                raise BadMessage(f"a {env.data.kind} message on the market channel")
            await self._on_market(frame, env, env.data, phase)
            return
        if not isinstance(env.data, MatchEvent):
            raise BadMessage("a market message on the match channel")
        silent = phase in (RECOVERING, SHADOW)
        triggers = self.core.on_match(env.data, env.feed, env.channel, env, recovering=silent)
        if not triggers or silent:
            return
        if self.cfg.deterministic:
            m = self.matches[env.data.event_key]
            answer = await self._predict_one(m, phase)
            if answer is not None:
                self.core.predicted(m, check_prediction(answer), triggers, answer, env)
                self.core.trade(m, env)
            if phase == LIVE:
                self.stats.decision_ms.append((time.perf_counter() - frame.received) * 1000)
        else:
            wanted[env.data.event_key] = (frame.received, env, triggers)

    # --- message handling -----------------------------------------------------------------------
    async def _on_market(self, frame: Frame, env: Envelope, update: MarketUpdate, phase: str) -> None:
        book = feed_book(update, self.clock.now())
        if phase == RECOVERING:
            self.core.on_book(update.event_key, book, env.channel, env, recovering=True)
            return
        self.core.on_book(update.event_key, book, env.channel, env)
        if phase == SHADOW:  # another worker's match: the exchange follows its book, for a take-over
            return
        kind = EventKind.MARKET_SUSPENDED if update.status == "SUSPENDED" else EventKind.MARKET_UPDATE
        self._log(kind, update_payload(update), update.event_key, env)
        if self.core.after_book(update.event_key, book, env.channel, env):
            self._decisions.append(frame.received)

    # --- predictions and decisions ----------------------------------------------------------------
    async def _predict_batch(self, wanted: dict[str, tuple[float, Envelope, list[Trigger]]]) -> None:
        """Live mode: one prediction call for every match that asked in the batch, then their decisions."""
        items = [(self.matches[k], r, e, t) for k, (r, e, t) in wanted.items() if k in self.matches]
        try:
            answers = await self.predict([self.core.state(m) for m, *_ in items])
            if len(answers) != len(items):
                raise PredictionUnavailable(f"{len(answers)} answers for {len(items)} states")
            for answer in answers:
                check_prediction(answer)
        except PredictionUnavailable as exc:
            self.stats.prediction_failures += 1
            self._log(
                EventKind.PREDICTION_FAILED,
                {
                    "error": str(exc)[:1000],
                    "refused": isinstance(exc, PredictionRefused),
                    "matches": [m.event_key for m, *_ in items],
                },
            )
            answers = []
        for (m, received, env, triggers), answer in zip(items, answers, strict=False):
            frame = Frame(env.feed, env.channel, env.seq, "", env, None, None, received)
            try:
                self.core.predicted(m, check_prediction(answer), triggers, answer, env)
                self.core.trade(m, env)
            except Exception as exc:  # noqa: BLE001 - one match's failure is that match's poison message
                self.stats.poison += 1
                log.error("poison message %s/%s #%d (deciding): %s", env.feed, env.channel, env.seq, exc)
                self._reject(frame, f"poison message: {type(exc).__name__}: {exc}", LIVE, suspend=True)
            self.stats.decision_ms.append((time.perf_counter() - received) * 1000)

    async def _predict_one(self, m: LiveMatch, phase: str) -> dict | None:
        """Deterministic mode: the prediction for the match's current state — from the log when re-executing
        (what was answered then), else from the service, waiting as long as it takes."""
        if phase == REPLAYING:
            logged = self._logged_predictions.get((m.event_key, m.points_played))
            if logged is not None:
                return {
                    "probability": logged["probability"],
                    "prematch_probability": logged.get("prematch"),
                    "model_name": logged.get("model"),
                    "model_version": logged.get("version"),
                    "data_version": logged.get("data_version"),
                }
        attempts = 0
        while True:
            try:
                answers = await self.predict([self.core.state(m)])
                if len(answers) != 1:
                    raise PredictionUnavailable(f"{len(answers)} answers for 1 state")
                check_prediction(answers[0])
                return answers[0]
            except PredictionRefused as exc:  # the same state is refused every time: no prediction, no bet
                self.stats.prediction_failures += 1
                if phase == LIVE:
                    self._log(
                        EventKind.PREDICTION_FAILED,
                        {"error": str(exc)[:1000], "refused": True, "matches": [m.event_key]},
                        m.event_key,
                    )
                return None
            except PredictionUnavailable as exc:
                attempts += 1
                self.stats.prediction_failures += 1
                if attempts == 1 or attempts % 20 == 0:
                    log.warning("prediction for %s unavailable (attempt %d), waiting: %s", m.event_key, attempts, exc)
                await asyncio.sleep(self.cfg.prediction_retry_s)

    def _submit(self, request: OrderRequest, match_id: str, source: str) -> tuple[bool, str]:
        return self.core.submit(request, match_id, source)

    async def commit(self, wait: bool = False) -> None:
        """Hand the batch's effects to the writer (one transaction each, in order); ``wait`` for it."""
        step, self._step = self._step, store.Step()
        if step.events or step.orders or step.cursors or step.requests_done or step.quarantined:
            if self._writer is None or self._writer.done():
                self._writer = asyncio.create_task(self._write_loop())
            await self._pending.put(step)
        if wait:
            await self._pending.join()

    async def _write_loop(self) -> None:
        # Commits run in a thread so the event loop keeps receiving and deciding meanwhile; one
        # writer keeps them in order. A crash loses at most the batches not yet written, and the
        # cursors (written with them) make the engine replay exactly those. A database that is down
        # is waited for (the step is retried until it is written): nothing is dropped.
        while True:
            step = await self._pending.get()
            try:
                delay = 0.05
                while True:
                    try:
                        foreign = await asyncio.to_thread(store.commit_step, self.db, step, self.cfg.worker)
                        if foreign:
                            log.warning(
                                "worker %s: %d orders are another worker's now (it took their match over while this "
                                "one was late): not written (%s)",
                                self.cfg.worker,
                                len(foreign),
                                sorted(foreign)[:3],
                            )
                        break
                    except (OperationalError, InterfaceError) as exc:  # the database is away: wait for it
                        self.stats.commit_retries += 1
                        log.error("commit failed (%s); retrying in %.1f s", str(exc).splitlines()[0][:200], delay)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 5.0)
                for (feed, channel), value in step.cursors.items():
                    self.cursors[(feed, channel.split("@")[0])] = value
            finally:
                self._pending.task_done()

    # --- deterministic replay of a session ----------------------------------------------------------
    def _load_replay_inputs(self) -> None:
        """What the re-execution needs from the log: the predictions answered and the external inputs."""
        for _, _, _, _, match_id, payload in store.events_after(
            self.db, 0, kinds=[str(EventKind.PREDICTION)], limit=10_000_000
        ):
            if match_id is not None and "points_played" in payload:
                self._logged_predictions[(match_id, int(payload["points_played"]))] = payload
        for _, _, _, _, _, payload in store.events_after(
            self.db, 0, kinds=[str(EventKind.ENGINE_INPUT)], limit=10_000_000
        ):
            self._journal.setdefault(int(payload.get("position", 0)), []).append(payload)
        committed_step, self._step = self._step, store.Step()
        self._replay_inputs(0)
        self._step = committed_step

    def _replay_inputs(self, position: int) -> None:
        """Re-apply the external inputs that took effect after ``position`` frames."""
        for entry in self._journal.pop(position, []):
            what = entry.get("input")
            if what == "controls":
                self._put_controls(entry["controls"], journal=False)
            elif what == "order_requests":
                for _ref, match_id, payload in entry["requests"]:
                    self._submit(OrderRequest.from_dict(payload), match_id, "prematch")
            elif what == "kill_switch_cancel":
                self._cancel_live_orders(journal=False)

    def _journal_input(self, payload: dict) -> None:
        """Deterministic mode: record an external input with the position it takes effect at."""
        if self.cfg.deterministic:
            self._log(EventKind.ENGINE_INPUT, {**payload, "position": self.position})

    def _check_replay(self) -> list[str]:
        """References of committed orders the re-execution did not arrive at exactly (should be none)."""
        mine = {o.customer_order_ref: o.to_dict() for o in self.exchange.orders()}
        out = []
        for ref, order in self._committed_orders.items():
            expected = {**order.to_dict(), "settled": False}
            got = mine.get(ref)
            if got is None or {**got, "settled": False} != expected:
                out.append(ref)
        out += [ref for ref in mine if ref not in self._committed_orders]
        return out

    # --- control-plane hand-offs ------------------------------------------------------------------
    def _apply_settlements(self) -> None:
        """Live mode: settlements the control plane persisted for markets this engine did not settle itself
        (an operator's decision on a market the rules could not settle)."""
        for s in store.settlements(self.db, after=sorted(self.core.settled)):
            settlement = Settlement.from_dict(s)
            self.core.risk.record_settlement(settlement)
            self.core.settled.add(settlement.market_id)

    def submit_requests(self) -> int:
        """Risk-check and place the pre-match orders the control plane queued."""
        requests = store.new_order_requests(self.db)
        if requests:
            self._journal_input({"input": "order_requests", "requests": [list(r) for r in requests]})
        if self.partition is not None:  # several workers: a request is the business of its match's lease holder
            requests = [r for r in requests if self.partition.owns(r[1])]
        for ref, match_id, payload in requests:
            request = OrderRequest.from_dict(payload)
            ok, why = self._submit(request, match_id, "prematch")
            self._step.requests_done[ref] = ("submitted" if ok else "rejected", why or None)
        return len(requests)

    # --- operator controls ----------------------------------------------------------------------
    def apply_controls(self) -> bool:
        """Put the operator's controls in force (newest ``operator_controls`` row); True when they changed."""
        controls = store.current_controls(self.db)
        if controls["version"] == self.controls_version:
            return False
        self._put_controls(controls, journal=True)
        return True

    def _put_controls(self, controls: dict, journal: bool) -> None:
        """Risk-limit overrides the engine cannot apply (a manual edit of the table) pause betting:
        failing safe beats trading on limits nobody asked for."""
        kill = self.base_risk.kill_switch or bool(controls["kill_switch"])
        paused = bool(controls["paused"])
        try:
            limits = dataclasses.replace(self.base_risk, **controls["risk_limits"], kill_switch=kill)
            self.controls_error = None
        except (TypeError, ValueError) as exc:
            limits = dataclasses.replace(self.core.limits, kill_switch=kill)
            paused = True
            self.controls_error = f"risk limits of controls v{controls['version']} not applied ({exc}): paused"
            log.error(self.controls_error)
        self.core.limits = limits
        self.core.paused = paused
        self.controls_version = controls["version"]
        if journal:
            self._journal_input(
                {
                    "input": "controls",
                    "controls": {k: controls[k] for k in ("version", "paused", "kill_switch", "risk_limits")},
                }
            )
            log.warning(
                "operator controls v%d in force: paused=%s kill_switch=%s risk overrides=%s",
                self.controls_version,
                paused,
                kill,
                controls["risk_limits"],
            )

    def _cancel_live_orders(self, journal: bool = True) -> int:
        """Kill switch: cancel the unmatched remainder of every order on the book."""
        resting = self.core.resting_orders()
        if resting and journal:
            self._journal_input({"input": "kill_switch_cancel", "orders": resting})
        self.core.cancel(resting)
        return len(resting)

    def status(self) -> dict:
        """The heartbeat's payload: controls in force, counters, decision latency."""
        s = self.stats
        return {
            "pid": os.getpid(),
            "started_at": self.started_at.isoformat(),
            "paused": self.paused,
            "kill_switch": self.limits.kill_switch,
            "controls_error": self.controls_error,
            "risk_limits": dataclasses.asdict(self.limits),
            "bankroll": self.risk.bankroll,
            "live_orders": self.risk.live_order_count(),
            "messages": s.messages,
            "recovered": s.recovered,
            "replayed": s.replayed,
            "quarantined": s.quarantined,
            "poison": s.poison,
            "suspended": {k: reason for k, (_, reason) in sorted(self.suspended.items())},
            "gaps_skipped": s.gaps_skipped,
            "replay_mismatches": s.replay_mismatches,
            "deterministic": self.cfg.deterministic,
            "mode": self.cfg.mode,
            "venue": self.cfg.venue,
            "predictions": s.predictions,
            "prediction_failures": s.prediction_failures,
            "opportunities": s.opportunities,
            "orders": s.orders,
            "rejected": s.rejected,
            "commit_retries": s.commit_retries,
            "decision_latency": s.decision_summary(),
            "feed_time": self.clock.now().isoformat(),
            "worker": self.cfg.worker,
            "leases": None if self.partition is None else len(self.partition.leases),
            "workers_alive": None if self.partition is None else self.partition.alive,
            "takeovers": s.takeovers,
            "released": s.released,
            "shadowed": s.shadowed,
        }

    def report_status(self) -> None:
        """Write the heartbeat (``engine_status``)."""
        name = self.cfg.session if self.cfg.worker is None else f"{self.cfg.session}@{self.cfg.worker}"
        store.record_engine_status(self.db, name, self.controls_version, self.status())

    async def housekeeping(self) -> None:
        """Pick up settlements, operator controls and order requests from the control plane; heartbeat.
        Order requests (and the kill switch's cancellations) wait until recovery is complete; in
        deterministic mode nothing from outside is taken while the engine re-executes its past."""
        if not self._recovery_done and self.cfg.deterministic:
            return
        if not self.cfg.deterministic:
            self._apply_settlements()
        self.worker_tick()
        self.apply_controls()
        cancelled = submitted = 0
        if self._recovery_done:  # no order reaches an exchange that has not seen the markets yet
            cancelled = self._cancel_live_orders() if self.limits.kill_switch else 0
            submitted = self.submit_requests()
        if submitted or cancelled or self._step.events:
            await self.commit()
        if time.monotonic() >= self._next_status:
            await asyncio.to_thread(self.report_status)
            self._next_status = time.monotonic() + self.cfg.status_s

    # --- following the feed -----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Follow every configured feed until ``stop`` is set."""
        queue: asyncio.Queue[Frame] = asyncio.Queue()
        channels = [(feed, channel) for feed in self.cfg.feeds for channel in ("match", "market")]
        merger = FeedMerger(channels) if self.cfg.deterministic else None

        async def on_frame(frame: Frame) -> None:
            for ready in merger.push(frame) if merger is not None else [frame]:
                queue.put_nowait(ready)

        async def on_heartbeat(hb: Heartbeat) -> None:
            key = (hb.feed, hb.channel)
            if hb.last_seq < self.recover_upto.get(key, 0) and key not in self._unreachable:
                self._unreachable.add(key)
                # what comes later on that channel is new: handled live, never silently
                self.recover_upto[key] = min(self.recover_upto[key], max(hb.last_seq, self._done_seq.get(key, 0)))
                log.error(
                    "%s/%s: the feed has %d messages, fewer than the cursor %d: a different feed; "
                    "recovery cannot reach the cursor",
                    hb.feed,
                    hb.channel,
                    hb.last_seq,
                    self.recover_upto[key],
                )
                if not self._recovery_done and self._recovery_complete():
                    queue.put_nowait(Frame(hb.feed, hb.channel, 0, "", None, RECOVERY_CHECK, None))
            if merger is not None:
                for ready in merger.heartbeat(hb):
                    queue.put_nowait(ready)
            verdict = self.leap_verdict(key, hb) if merger is None or not merger.pending() else None
            if verdict is not None:
                queue.put_nowait(Frame(hb.feed, hb.channel, 0, "", None, verdict, None))

        clients = [
            FeedClient(
                self.cfg.feed_url,
                feed,
                channel,
                on_frame,
                on_heartbeat,
                last_seq=0,
                max_gap_retries=self.cfg.max_gap_retries,
            )
            for feed, channel in channels
        ]
        self.clients = clients
        if self.partition is not None:  # known to the other workers, and they to it, before the first frame
            self.worker_tick()
            while len(self.partition.alive) < self.cfg.workers and not stop.is_set():
                log.info(
                    "worker %s: %d of %d workers up; waiting",
                    self.cfg.worker,
                    len(self.partition.alive),
                    self.cfg.workers,
                )
                await asyncio.sleep(0.5)
                self.worker_tick()
        tasks = {asyncio.create_task(c.run(stop)): c for c in clients}
        next_housekeeping = 0.0
        try:
            while not stop.is_set():
                for task in [t for t in tasks if t.done()]:
                    client = tasks.pop(task)
                    exc = task.exception() if not task.cancelled() else None
                    if stop.is_set():
                        break
                    log.error(
                        "feed client %s/%s stopped (%s); restarting it in 1 s from %d",
                        client.feed,
                        client.channel,
                        exc,
                        client.last_seq,
                    )
                    await asyncio.sleep(1.0)
                    tasks[asyncio.create_task(client.run(stop))] = client
                try:
                    first = await asyncio.wait_for(queue.get(), timeout=self.cfg.housekeeping_s)
                    batch = [first]
                    while len(batch) < self.cfg.max_batch and not queue.empty():
                        batch.append(queue.get_nowait())
                    await self.process(batch)
                except TimeoutError:
                    if not self._recovery_done and self._recovery_complete():
                        await self.process([])
                    elif self._recovery_done and not self.cfg.deterministic:
                        self._poll_idle()  # a venue's order changes come without feed messages
                    await self.commit()  # anything logged without a batch
                if time.monotonic() >= next_housekeeping:
                    try:
                        await self.housekeeping()
                    except Exception as exc:  # noqa: BLE001 - the database may be away for a while
                        self.stats.housekeeping_errors += 1
                        log.error("housekeeping failed (%s: %s); trading goes on", type(exc).__name__, exc)
                    next_housekeeping = time.monotonic() + self.cfg.housekeeping_s
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.commit(wait=True)
            if self.partition is not None:
                try:  # the others take this worker's matches over at their next tick, not after the lease
                    self.partition.stop()
                except Exception as exc:  # noqa: BLE001 - the leases then simply expire
                    log.warning("could not give the leases up (%s); they expire in %.0f s", exc, self.cfg.lease_s)
            self.exchange.close()
            if self._writer is not None:
                self._writer.cancel()
