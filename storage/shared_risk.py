"""The tables several engine workers share on one Postgres database: heartbeats, match leases, and the risk
limits that span matches (``betting.shared_limits`` holds the rule; this module only reads and writes).

- ``engine_workers``: each worker's heartbeat, on the database's clock. Live = beaten within ``heartbeat_ttl_s``.
- ``match_leases``: the worker that trades a match, until ``expires_at``. Taken under a row lock only when the
  lease is free, expired or already the taker's; ``epoch`` counts hand-overs. A worker that stops renewing
  (killed, stalled, cut off) loses its matches after ``lease_s``.
- ``reserve``: ONE transaction under a transaction-level advisory lock that every worker takes for every
  order (``RISK_LOCK``): check the lease is the caller's and valid now, read what the other workers hold,
  call the caller's ``decide`` with it, and, when approved, record the reservation and the caller's new
  market position before the lock is released. Two workers never decide at once, and a worker whose lease
  ran out places nothing (its orders are fenced by the database's clock, not its own).
- ``risk_positions`` / ``risk_realised``: each worker's open markets' published worst case and live orders (one
  row per market and worker: a worker that has not yet seen it lost a match only adds to the total, never takes
  the new holder's row away), and each settled market's net P&L in settlement order.

Every call is retried (``RETRIES`` times, backing off) when the database drops the connection or aborts the
transaction (a deadlock, a serialisation failure): each is one transaction, safe to run again.

Postgres only (``require_postgres``): SQLite has one writer and no advisory locks; one engine is its case.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from storage.models import (
    EngineWorker,
    MatchLease,
    OperatorControl,
    RiskPosition,
    RiskRealised,
    RiskReservation,
)

CLOSED = "~closed"
"""The holder of a finished match's lease, for ever: nobody takes it over again."""
RISK_LOCK = 0x436F_7572_7453_6964  # "CourtSid": the advisory lock key every worker takes to decide an order
ORDER_WINDOW = timedelta(hours=1)
RETRIES = 3
"""Attempts of one call when the database drops the connection or aborts the transaction."""
SHARED_TABLES = (EngineWorker, MatchLease, RiskReservation, RiskPosition, RiskRealised)
"""Everything the workers share: a fresh session (``storage.live.reset_live``) empties them."""

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


def _transient(exc: Exception) -> bool:
    """The database dropped the connection, or aborted the transaction for a reason that passes (a deadlock, a
    serialisation failure): the same transaction may simply run again."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def retried(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` (one transaction) again on a transient database error, up to ``RETRIES`` attempts."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, RETRIES + 1):
            try:
                return fn(*args, **kwargs)
            except DBAPIError as exc:
                if attempt == RETRIES or not _transient(exc):
                    raise
                log.warning("%s: %s (attempt %d of %d)", fn.__name__, str(exc).splitlines()[0], attempt, RETRIES)
                time.sleep(0.05 * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    return wrapper


def week_start(moment: datetime) -> datetime:
    """Monday 00:00 UTC of the trading week of ``moment`` (``betting.risk.trading_week``)."""
    day = moment.astimezone(UTC).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=day.weekday())


def lock_risk(conn: Connection) -> None:
    """Take the lock every order decision of every worker is made under, until the transaction ends (Postgres;
    nothing on SQLite, where one engine is the only decider). Also taken by what changes a decision's inputs
    from outside - a realised loss, the operator's controls - so each lands between two decisions."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RISK_LOCK})


def require_postgres(engine: Engine) -> None:
    """Several engine workers need Postgres (advisory locks, row locks, one clock); say so clearly."""
    if engine.dialect.name != "postgresql":
        raise ValueError(
            f"engine workers need a Postgres database (COURTSIDE_DATABASE_URL=postgresql+psycopg://...); "
            f"this one is {engine.dialect.name}: run one engine without --worker"
        )


@dataclass(frozen=True)
class Lease:
    """A lease the caller holds: its hand-over count, who held the match before (None: nobody) and, taken over,
    the references of that worker's orders the caller adopted with it (in the same transaction)."""

    match_id: str
    epoch: int
    previous: str | None
    adopted: frozenset[str] = frozenset()


class SharedRisk:
    """One worker's handle on the shared tables."""

    def __init__(self, engine: Engine, worker: str, lease_s: float = 5.0, heartbeat_ttl_s: float = 3.0):
        require_postgres(engine)
        if not worker or len(worker) > 8 or not worker.replace("-", "").isalnum():
            raise ValueError(f"worker id {worker!r}: 1 to 8 letters, digits or '-'")
        self.db = engine
        self.worker = worker
        self.lease_s = lease_s
        self.heartbeat_ttl_s = heartbeat_ttl_s

    # --- workers ------------------------------------------------------------------------------------
    @retried
    def heartbeat(self) -> None:
        stmt = pg_insert(EngineWorker).values(
            worker=self.worker, pid=os.getpid(), position=0, heartbeat_at=func.now(), started_at=func.now()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[EngineWorker.worker], set_={"heartbeat_at": func.now(), "pid": os.getpid()}
        )
        with self.db.begin() as conn:
            conn.execute(stmt)

    @retried
    def alive(self) -> list[str]:
        """Workers whose heartbeat is younger than ``heartbeat_ttl_s`` (the caller always counts itself)."""
        since = func.now() - timedelta(seconds=self.heartbeat_ttl_s)
        with self.db.connect() as conn:
            found = {w for (w,) in conn.execute(select(EngineWorker.worker).where(EngineWorker.heartbeat_at > since))}
        return sorted(found | {self.worker})

    @retried
    def set_position(self, position: int) -> None:
        """Deterministic mode: this worker handled ``position`` feed messages (their effects are committed)."""
        with self.db.begin() as conn:
            conn.execute(
                update(EngineWorker)
                .where(EngineWorker.worker == self.worker)
                .values(position=position, heartbeat_at=func.now())
            )

    @retried
    def slowest_other(self, workers: Iterable[str]) -> int | None:
        """The smallest position of these other workers (None: none of them)."""
        others = [w for w in workers if w != self.worker]
        if not others:
            return None
        with self.db.connect() as conn:
            q = select(func.min(EngineWorker.position)).where(EngineWorker.worker.in_(others))
            return conn.execute(q).scalar()

    @retried
    def realised_total(self) -> float:
        """Every worker's realised net P&L, summed."""
        with self.db.connect() as conn:
            return float(conn.execute(select(func.coalesce(func.sum(RiskRealised.net_profit), 0.0))).scalar() or 0.0)

    # --- leases -------------------------------------------------------------------------------------
    @retried
    def acquire(self, match_ids: Iterable[str], closed: set[str] | None = None, take_over: bool = True) -> list[Lease]:
        """Take or renew the leases of these matches where they are free, expired (``take_over``) or the caller's;
        the ones held now. Each row is locked while it is looked at, so two workers never both take one. Matches
        found closed (finished, ``close``) are added to ``closed``. A lease taken over has ``previous`` set, and
        that worker's reservations and positions are the caller's in the same transaction (``adopted``: the
        references; the caller restores those orders from the ledger before it trades the match)."""
        match_ids = list(match_ids)
        held: list[Lease] = []
        expires = func.now() + timedelta(seconds=self.lease_s)
        with self.db.begin() as conn:
            for match_id in sorted(match_ids):  # one order of row locks for every worker: no deadlock
                row = conn.execute(
                    select(MatchLease.worker, MatchLease.epoch, MatchLease.expires_at > func.now())
                    .where(MatchLease.match_id == match_id)
                    .with_for_update()
                ).first()
                if row is None:
                    inserted = conn.execute(
                        pg_insert(MatchLease)
                        .values(
                            match_id=match_id, worker=self.worker, epoch=1, acquired_at=func.now(), expires_at=expires
                        )
                        .on_conflict_do_nothing()
                        .returning(MatchLease.match_id)  # not rowcount: -1 here, inserted or not (psycopg 3)
                    ).first()
                    if inserted is not None:  # another worker inserting at the same moment won: not this one's
                        held.append(Lease(match_id, 1, None))
                    continue
                worker, epoch, valid = row
                if worker == CLOSED:
                    if closed is not None:
                        closed.add(match_id)
                elif worker == self.worker:
                    conn.execute(update(MatchLease).where(MatchLease.match_id == match_id).values(expires_at=expires))
                    held.append(Lease(match_id, epoch, None))
                elif not valid and take_over:
                    conn.execute(
                        update(MatchLease)
                        .where(MatchLease.match_id == match_id)
                        .values(worker=self.worker, epoch=epoch + 1, acquired_at=func.now(), expires_at=expires)
                    )
                    held.append(Lease(match_id, epoch + 1, worker, frozenset(self._adopt(conn, match_id))))
        return held

    @retried
    def holders(self, match_ids: Iterable[str]) -> dict[str, tuple[str, int]]:
        """match -> (the worker that holds its lease, or ``CLOSED``; the lease's hand-over count)."""
        ids = sorted(match_ids)
        if not ids:
            return {}
        with self.db.connect() as conn:
            q = select(MatchLease.match_id, MatchLease.worker, MatchLease.epoch).where(MatchLease.match_id.in_(ids))
            return {m: (w, int(e)) for m, w, e in conn.execute(q)}

    @retried
    def held(self) -> list[str]:
        """The matches leased to this worker (expired or not) and not closed: what a restart renews first."""
        with self.db.connect() as conn:
            q = select(MatchLease.match_id).where(MatchLease.worker == self.worker)
            return sorted(m for (m,) in conn.execute(q))

    @retried
    def release(self, match_ids: Iterable[str]) -> None:
        """Give leases up at once (a finished match, a clean stop), so nobody waits for them to expire."""
        ids = list(match_ids)
        if ids:
            with self.db.begin() as conn:
                conn.execute(
                    update(MatchLease)
                    .where(MatchLease.match_id.in_(ids), MatchLease.worker == self.worker)
                    .values(expires_at=func.now() - timedelta(seconds=1))
                )

    @retried
    def close(self, match_id: str) -> None:
        """A finished match the caller traded to its end: its lease goes to ``CLOSED`` for ever."""
        with self.db.begin() as conn:
            conn.execute(
                update(MatchLease)
                .where(MatchLease.match_id == match_id, MatchLease.worker == self.worker)
                .values(worker=CLOSED, expires_at=func.now() + timedelta(days=3650))
            )

    def _adopt(self, conn: Connection, match_id: str) -> set[str]:
        """A match taken over (in ``acquire``'s transaction): its reservations and published positions are the
        caller's now; the references of the orders it adopts."""
        refs = {
            r
            for (r,) in conn.execute(
                update(RiskReservation)
                .where(RiskReservation.match_id == match_id)
                .values(worker=self.worker)
                .returning(RiskReservation.ref)
            )
        }
        # the highest of what anyone published for each market of the match, as the caller's, until it publishes
        rows = conn.execute(
            select(RiskPosition.market_id, func.max(RiskPosition.exposure), func.max(RiskPosition.live_orders))
            .where(RiskPosition.match_id == match_id)
            .group_by(RiskPosition.market_id)
        ).all()
        conn.execute(delete(RiskPosition).where(RiskPosition.match_id == match_id))
        for market_id, exposure, live in rows:
            self._put_position(conn, market_id, match_id, exposure, live)
        return refs

    @retried
    def refs_of(self, match_id: str) -> set[str]:
        """References of this worker's orders on one match (a take-over restores these)."""
        with self.db.connect() as conn:
            q = select(RiskReservation.ref).where(
                RiskReservation.worker == self.worker, RiskReservation.match_id == match_id
            )
            return {r for (r,) in conn.execute(q)}

    @retried
    def my_refs(self) -> set[str]:
        """References of the orders this worker holds (a restart restores only these)."""
        with self.db.connect() as conn:
            q = select(RiskReservation.ref).where(RiskReservation.worker == self.worker)
            return {r for (r,) in conn.execute(q)}

    # --- the shared limits ---------------------------------------------------------------------------
    def _figures(self, conn: Connection, now: datetime) -> dict[str, Any]:
        """What the other workers hold and what every worker realised, as ``SharedFigures`` takes it: the
        realised P&L of the trading week of ``now`` settlement by settlement (its days' and its week's running
        lows), the weeks before as one sum (the bankroll only)."""
        exposure, live = conn.execute(
            select(
                func.coalesce(func.sum(RiskPosition.exposure), 0.0),
                func.coalesce(func.sum(RiskPosition.live_orders), 0),
            ).where(RiskPosition.worker != self.worker)
        ).one()
        placed = [
            t
            for (t,) in conn.execute(
                select(RiskReservation.placed_at)
                .where(
                    RiskReservation.worker != self.worker,
                    RiskReservation.placed_at > now - ORDER_WINDOW,
                    RiskReservation.placed_at <= now,
                )
                .order_by(RiskReservation.placed_at)
            )
        ]
        since = week_start(now)
        realised = [
            tuple(r)
            for r in conn.execute(
                select(RiskRealised.settled_at, RiskRealised.net_profit)
                .where(RiskRealised.settled_at >= since)
                .order_by(RiskRealised.seq)
            )
        ]
        before = conn.execute(
            select(func.coalesce(func.sum(RiskRealised.net_profit), 0.0)).where(RiskRealised.settled_at < since)
        ).scalar()
        kill = conn.execute(
            select(OperatorControl.kill_switch).order_by(OperatorControl.version.desc()).limit(1)
        ).scalar()
        return {
            "others_exposure": float(exposure),
            "others_live_orders": int(live),
            "others_placed": placed,
            "realised": realised,
            "realised_before": float(before or 0.0),
            "kill_switch": bool(kill),
        }

    @retried
    def reserve(
        self,
        ref: str,
        match_id: str,
        market_id: str,
        placed_at: datetime,
        decide: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        """Decide one order under the shared lock (see the module docstring). ``decide`` gets the figures and
        returns ``{"approved": bool, ...}`` with, when approved, ``market_exposure``, ``market_live_orders``,
        ``total_exposure``, ``live_orders``, ``orders_in_hour``. Returns that dict, or ``{"refused": reason,
        "message": ...}`` when the caller may not trade the match or the reference is another worker's."""
        with self.db.begin() as conn:
            lock_risk(conn)
            # the lease as it is now, after the lock wait (clock_timestamp, not the transaction's start), held
            # until the decision is recorded: a take-over cannot slip in between
            lease = conn.execute(
                select(MatchLease.worker, MatchLease.epoch, MatchLease.expires_at > func.clock_timestamp())
                .where(MatchLease.match_id == match_id)
                .with_for_update(read=True)
            ).first()
            if lease is None or lease[0] != self.worker or not lease[2]:
                holder = "nobody" if lease is None else f"worker {lease[0]}" + ("" if lease[2] else " (expired)")
                return {
                    "refused": "MATCH_NOT_OWNED",
                    "message": f"worker {self.worker} does not hold the lease of {match_id} ({holder}): no order",
                }
            taken = conn.execute(select(RiskReservation.worker).where(RiskReservation.ref == ref)).scalar()
            if taken is not None and taken != self.worker:
                return {
                    "refused": "INVALID_ORDER",
                    "message": f"reference {ref} was placed by worker {taken}: an order is never placed twice",
                }
            figures = self._figures(conn, placed_at)
            out = decide(figures)
            if out.get("approved") and taken is None:
                conn.execute(
                    pg_insert(RiskReservation).values(
                        ref=ref,
                        worker=self.worker,
                        placed_by=self.worker,
                        lease_epoch=int(lease[1]),
                        match_id=match_id,
                        market_id=market_id,
                        placed_at=placed_at,
                        total_exposure=float(out["total_exposure"]),
                        others_exposure=figures["others_exposure"],
                        live_orders=int(out["live_orders"]),
                        orders_in_hour=int(out["orders_in_hour"]),
                        reserved_at=func.now(),
                    )
                )
            if out.get("approved") and (taken is None or out.get("market_exposure", 0.0) > 0.0):
                # also a reference of this worker's decided again after a restart lost it from the book: the order
                # is placed again, so its position is published again (never below the truth)
                self._put_position(conn, market_id, match_id, out["market_exposure"], out["market_live_orders"])
            return out

    def _put_position(self, conn: Connection, market_id: str, match_id: str, exposure: float, live: int) -> None:
        stmt = pg_insert(RiskPosition).values(
            market_id=market_id,
            match_id=match_id,
            worker=self.worker,
            exposure=float(exposure),
            live_orders=int(live),
            updated_at=func.now(),
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[RiskPosition.market_id, RiskPosition.worker],
                set_={
                    "match_id": stmt.excluded.match_id,
                    "exposure": stmt.excluded.exposure,
                    "live_orders": stmt.excluded.live_orders,
                    "updated_at": stmt.excluded.updated_at,
                },
            )
        )

    @retried
    def publish(self, positions: dict[str, tuple[str, float, int]]) -> None:
        """This worker's open markets as they are now (market -> (match, exposure, live orders)); markets it no
        longer holds open leave the table."""
        with self.db.begin() as conn:
            gone = delete(RiskPosition).where(RiskPosition.worker == self.worker)
            if positions:
                gone = gone.where(RiskPosition.market_id.not_in(list(positions)))
            conn.execute(gone)
            for market_id, (match_id, exposure, live) in positions.items():
                self._put_position(conn, market_id, match_id, exposure, live)

    @retried
    def realise(self, market_id: str, settled_at: datetime, net_profit: float) -> bool:
        """A settled market's net P&L joins the shared bankroll and stop-losses (once per market). False when
        another worker holds the market's orders now (it took the match over while this one was late: its
        settlement is the one booked)."""
        with self.db.begin() as conn:
            lock_risk(conn)  # a loss is booked between two decisions, never during one
            return self.book_realised(conn, market_id, settled_at, net_profit)

    def book_realised(self, conn: Connection, market_id: str, settled_at: datetime, net_profit: float) -> bool:
        """``realise`` in the caller's transaction (which holds ``lock_risk``)."""
        theirs = conn.execute(
            select(RiskReservation.worker)
            .where(RiskReservation.market_id == market_id, RiskReservation.worker != self.worker)
            .limit(1)
        ).scalar()
        if theirs is not None:
            log.warning(
                "worker %s: market %s is worker %s's now: its settlement is not booked here",
                self.worker,
                market_id,
                theirs,
            )
            return False
        conn.execute(
            pg_insert(RiskRealised)
            .values(market_id=market_id, worker=self.worker, settled_at=settled_at, net_profit=float(net_profit))
            .on_conflict_do_nothing()
        )
        conn.execute(delete(RiskPosition).where(RiskPosition.market_id == market_id))
        return True


def reservations(engine: Engine) -> list[dict[str, Any]]:
    """Every reservation, in the order they were made (audits and tests)."""
    with engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(select(*RiskReservation.__table__.columns).order_by(RiskReservation.id))
        ]


def leases(engine: Engine) -> dict[str, dict[str, Any]]:
    """match id -> its lease row."""
    with engine.connect() as conn:
        return {r.match_id: dict(r._mapping) for r in conn.execute(select(*MatchLease.__table__.columns))}
