"""An engine as one worker of several: which matches it trades, and its orders decided under the shared limits.

Every worker follows the whole feed, so each keeps every match's state (score, books) and can take a match over
at once; it *trades* (predicts, decides, orders, logs) only the matches whose lease it holds. Leases are handed
out by a stable rendezvous hash over the live workers (``betting.shared_limits.owner``) and taken in Postgres
(``storage.shared_risk``): a lease is held until it expires, so a worker that joins does not move a match in
play, and a dead worker's matches go to the others once its leases run out (``lease_s``). Every order of every
worker is decided under one Postgres lock against every worker's figures (``WorkerLimits``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.exc import DBAPIError

from betting.money import round_money
from betting.records import OrderRequest
from betting.risk import RejectReason, RiskBook, RiskCheck, RiskDecision, RiskLimits
from betting.shared_limits import SharedFigures, SharedVerdict, owner, shared_check
from storage.shared_risk import Lease, SharedRisk

log = logging.getLogger(__name__)


class WorkerLimits:
    """``betting.shared_limits.SharedLimits`` on Postgres: ``shared_check`` run inside ``SharedRisk.reserve``."""

    def __init__(self, shared: SharedRisk, starting_bankroll: float, exact: bool = False):
        self.shared = shared
        self.starting_bankroll = starting_bankroll
        self.exact = exact
        """Read the shared bankroll at every decision (deterministic mode); else kept from ``refresh``."""
        self.realised = 0.0
        """Every worker's realised P&L as last read (``refresh``: each tick, and after this worker's settlements)."""

    def refresh(self) -> None:
        self.realised = self.shared.realised_total()

    def bankroll(self, local: RiskBook) -> float:
        if self.exact:
            self.refresh()
        return round_money(self.starting_bankroll + self.realised)

    def reserve(
        self, request: OrderRequest, match_id: str, now: datetime, local: RiskBook, limits: RiskLimits
    ) -> RiskDecision:
        kept: list[SharedVerdict] = []

        def decide(figures: dict) -> dict:
            verdict = shared_check(
                request, local, SharedFigures(starting_bankroll=self.starting_bankroll, **figures), now, limits
            )
            kept.append(verdict)
            return {
                "approved": verdict.decision.approved,
                "market_exposure": verdict.market_exposure,
                "market_live_orders": verdict.market_live_orders,
                "total_exposure": verdict.total_exposure,
                "live_orders": verdict.live_orders,
                "orders_in_hour": verdict.orders_in_hour,
            }

        out = self.shared.reserve(request.customer_order_ref, match_id, request.market_id, now, decide)
        if "refused" in out:
            reason = RejectReason(out["refused"])
            checks = (RiskCheck(str(reason), None, None, False, out["message"]),)
            return RiskDecision(request.customer_order_ref, False, reason, out["message"], checks)
        return kept[-1].decision


class Partition:
    """The matches this worker trades: the leases it holds, renewed every tick, valid until a local deadline
    a little before they expire in the database (a worker that cannot renew stops trading before anyone else
    can take its matches)."""

    def __init__(self, shared: SharedRisk):
        self.shared = shared
        self.worker = shared.worker
        self.alive: list[str] = [self.worker]
        self.leases: dict[str, Lease] = {}
        self.valid_until: dict[str, float] = {}
        """match -> the monotonic time this worker stops trading it unless renewed (80% of the lease)."""
        self._evaluated: set[str] = set()
        """Matches looked at since the last tick (so a frame of another worker's match costs no query)."""
        self._unrenewed: set[str] = set()
        """Held matches whose lease could not be renewed on a frame since the last tick (asked once per tick)."""
        self.closed: set[str] = set()
        """Finished matches whose lease is closed for ever (``SharedRisk.close``): never asked for again."""

    def _take(self, leases: list[Lease], started: float) -> None:
        for lease in leases:
            self.leases[lease.match_id] = lease
            self.valid_until[lease.match_id] = started + self.shared.lease_s * 0.8

    def resume(self) -> None:
        """A (re)start: renew every lease the database still gives this worker (expired or not, nobody took them
        over), before its orders are restored - a restarted worker trades the matches it held before, not only
        the ones its replay reaches before their leases would run out."""
        started = time.monotonic()
        self._take(self.shared.acquire(self.shared.held(), self.closed, take_over=False), started)

    def owns(self, match_id: str) -> bool:
        """True when this worker trades the match now (a new match the hash gives it is leased at once). A lease
        whose local deadline passed (the ticks were late) is renewed here when the database still gives it to
        this worker: a slow tick does not make the holder miss its match's messages (its end, its settlement)."""
        if match_id in self.leases:
            if time.monotonic() < self.valid_until[match_id]:
                return True
            if match_id in self._unrenewed:  # renewing failed since the last tick: the tick decides
                return False
            if self._acquire([match_id]) and time.monotonic() < self.valid_until[match_id]:
                return True
            self._unrenewed.add(match_id)
            return False
        if match_id in self._evaluated:
            return False
        self._evaluated.add(match_id)
        if owner(match_id, self.alive) != self.worker:
            return False
        # a new match only: a match another worker held is taken over at a tick, where its orders are adopted
        return bool(self._acquire([match_id]))

    def _acquire(self, match_ids: list[str]) -> list[Lease]:
        """Take or renew leases without taking any over, on a frame's path: the database away means not now (the
        frame is another worker's business until the next tick decides), never a stop."""
        started = time.monotonic()
        try:
            held = self.shared.acquire(match_ids, self.closed, take_over=False)
        except DBAPIError as exc:
            log.warning("worker %s: leases of %s not renewed: %s", self.worker, match_ids[:3], exc)
            return []
        self._take(held, started)
        return held

    def renew(self) -> None:
        """Renew the held leases now (a long wait between ticks: the deterministic lockstep)."""
        if self.leases:
            self._acquire(sorted(self.leases))

    def tick(self, known: Iterable[str]) -> tuple[list[Lease], set[str]]:
        """Heartbeat, the live workers, and the leases: renew this worker's, take the unleased matches the hash
        gives it (finished ones too: a match that ended while its worker was dead still has orders to settle).
        Returns the leases taken over from another worker (their orders were adopted in the database; the caller
        restores them) and the matches this worker held and lost (another took them over while this one was
        stalled or cut off: the caller forgets their orders, which are the new holder's now)."""
        started = time.monotonic()
        self.shared.heartbeat()
        self.alive = self.shared.alive()
        wanted = [
            m
            for m in set(known) | set(self.leases)  # the held ones too: a restart holds matches the feed has not shown
            if m not in self.closed and (m in self.leases or owner(m, self.alive) == self.worker)
        ]
        held = self.shared.acquire(wanted, self.closed)
        before = set(self.leases)
        lost = before - {h.match_id for h in held}  # closed by the worker that took them over: lost too
        if lost:
            log.warning(
                "worker %s lost the lease of %d matches (now held by: %s)",
                self.worker,
                len(lost),
                self.shared.holders(sorted(lost)[:5]),
            )
        self.leases, self.valid_until = {}, {}
        self._take(held, started)
        self._evaluated.clear()
        self._unrenewed.clear()
        # taken over: from another worker; or a lease this worker did not hold a moment ago whose hand-over count
        # says someone held it before (an ``acquire`` retried after its take-over committed returns it as renewed)
        taken = [
            h
            for h in held
            if (h.previous is not None and h.previous != self.worker) or (h.match_id not in before and h.epoch > 1)
        ]
        return taken, lost

    def finished(self, match_id: str) -> None:
        """A match this worker traded to its end: its lease is closed for ever (nothing left to trade)."""
        if self.leases.pop(match_id, None) is not None:
            self.valid_until.pop(match_id, None)
            self.shared.close(match_id)
            self.closed.add(match_id)

    def stop(self) -> None:
        """A clean stop: every lease given up, so the others take the matches over at their next tick."""
        self.shared.release(list(self.leases))
        self.leases.clear()
        self.valid_until.clear()
