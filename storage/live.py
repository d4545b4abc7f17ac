"""Reading and writing the live tables: the event log, feed cursors, orders, order requests and
settlements. Records arrive as plain dicts / JSON (``storage`` knows nothing of the trading core).

``commit_step`` writes everything one batch of feed messages caused — log entries, order states,
the new cursors — in ONE transaction: after a crash either all of it is there or none of it is,
and the engine resumes from the cursor and replays the same messages to the same decisions.

Log entry ids are in commit order, on Postgres too with several writer processes (``LOG_WRITE_LOCK_KEY``): a
reader that tails the log by id (``next_event_rows``, ``events_after``, or ``last_event_id`` then ``event_rows``
up to it) never skips an entry that commits late, and a gap in the ids below the newest entry is permanent.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from storage.models import (
    AlertDelivery,
    AlertSubscription,
    EngineStatusRow,
    FeedCursor,
    LiveEvent,
    OperatorControl,
    OrderRequestRow,
    OrderRow,
    Quarantine,
    RiskReservation,
    SettlementRow,
)
from storage.shared_risk import SHARED_TABLES, lock_risk


@dataclass(frozen=True)
class EventEntry:
    """One log entry to append."""

    kind: str
    event_time: datetime
    payload: dict[str, Any]
    feed: str | None = None
    seq: int | None = None
    match_id: str | None = None
    ref: str | None = None
    """The order reference the entry is about (opportunity, rejection, order state), for a bet's lineage."""


@dataclass(frozen=True)
class OrderState:
    """The latest state of one order (``payload`` is ``Order.to_dict()``)."""

    customer_order_ref: str
    match_id: str
    source: str
    payload: dict[str, Any]


@dataclass
class Step:
    """Everything one batch of messages changed."""

    events: list[EventEntry] = field(default_factory=list)
    orders: dict[str, OrderState] = field(default_factory=dict)
    cursors: dict[tuple[str, str], tuple[int, datetime]] = field(default_factory=dict)
    requests_done: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    """Order-request ref -> (new status, reason)."""
    quarantined: list[dict[str, Any]] = field(default_factory=list)


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, default=str, separators=(",", ":"))


_ORDER_COLUMNS = (
    "market_id",
    "match_id",
    "selection",
    "side",
    "price",
    "size",
    "size_matched",
    "status",
    "source",
    "settled",
    "placed_at",
    "updated_at",
    "payload",
)
# The statements of commit_step, built once with bound parameters: the engine commits a step per batch
# of feed messages (at 200 messages/s nearly one per message), and building an UPDATE ... WHERE with
# SQLAlchemy's operators on every call cost more than executing it (~0.4 ms of ~0.8 ms a commit).
_INSERT_EVENTS = insert(LiveEvent)
_UPDATE_ORDER = (
    update(OrderRow)
    .where(OrderRow.customer_order_ref == bindparam("b_ref"))
    .values({c: bindparam(f"b_{c}") for c in _ORDER_COLUMNS})
)
_INSERT_ORDER = insert(OrderRow)
_UPDATE_CURSOR = (
    update(FeedCursor)
    .where(FeedCursor.feed == bindparam("b_feed"), FeedCursor.channel == bindparam("b_channel"))
    .values(last_seq=bindparam("b_last_seq"), updated_at=bindparam("b_updated_at"))
)
_INSERT_CURSOR = insert(FeedCursor)
_UPDATE_REQUEST = (
    update(OrderRequestRow)
    .where(OrderRequestRow.customer_order_ref == bindparam("b_ref"))
    .values(status=bindparam("b_status"), reason=bindparam("b_reason"))
)
_INSERT_QUARANTINE = insert(Quarantine)


LOG_WRITE_LOCK_KEY = 0x4C697665  # "Live"; storage.db's migration lock is 0x436F7572 ("Cour")
"""The Postgres advisory lock key every transaction that writes ``live_events`` takes first
(``pg_advisory_xact_lock``, held until it commits or rolls back).

Why: Postgres hands out ``live_events.id`` from a sequence when a row is inserted, not when it commits, so with
several writers an entry with a smaller id could become visible after a larger one, and a reader tailing by id
(``id > cursor``) would pass over it for ever. Under this lock only one transaction at a time holds ids it has not
committed: when id k+1 is visible to a statement, the transaction that took id k had already ended (committed:
visible to that statement too; rolled back: a permanent gap). Postgres makes a commit visible before it releases
the transaction's locks, and the id sequence is ``CACHE 1`` (the default of the ``BIGSERIAL`` column): a cache
would hand each session its own block of ids and break this. So ids are in commit order and a reader reading
``id > cursor ORDER BY id`` never skips an entry; a gap below the newest visible id is permanent.

SQLite needs no lock: a write transaction holds the database's write lock from its first insert to its commit,
so there too only one transaction at a time holds uncommitted ids.

Cost: one more statement per transaction that writes the log (about 0.1 ms a commit measured on a local server,
for a ``commit_step`` of ~0.55 ms), and such transactions run one at a time, their commit included: all writers
together commit at most about 1 / (commit latency) log-writing transactions a second. Taken as the FIRST
statement, before any row lock, so log writers cannot deadlock on each other."""
_LOG_WRITE_LOCK = f"SELECT pg_advisory_xact_lock({LOG_WRITE_LOCK_KEY})"


def _serialise_log_writers(conn: Connection) -> None:
    """Take the log's write lock (``LOG_WRITE_LOCK_KEY``) in ``conn``'s transaction, before it inserts into (or
    deletes from) ``live_events``. A no-op on SQLite, whose writers are serialised already."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_LOG_WRITE_LOCK)


def commit_step(engine: Engine, step: Step, worker: str | None = None) -> set[str]:
    """Write one step atomically. A step with log entries takes the log's write lock first
    (``LOG_WRITE_LOCK_KEY``): entry ids are in commit order.

    ``worker``: one of several engine workers (``storage.shared_risk``). The orders, and the log entries about
    orders, whose reservation another worker holds now (it took their match over while this one was late) are
    left out; the reservations are locked until the commit, so a take-over waits for it and then reads the ledger
    this step leaves. Returns the references left out."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if step.events:
            _serialise_log_writers(conn)
        foreign = _foreign_refs(conn, step, worker) if worker is not None else set()
        if foreign:
            step = dataclasses.replace(
                step,
                events=[e for e in step.events if e.ref not in foreign],
                orders={r: st for r, st in step.orders.items() if r not in foreign},
            )
        if step.events:
            conn.execute(
                _INSERT_EVENTS,
                [
                    {
                        "kind": e.kind,
                        "event_time": e.event_time,
                        "feed": e.feed,
                        "seq": e.seq,
                        "match_id": e.match_id,
                        "ref": e.ref,
                        "payload": _json(e.payload),
                        "recorded_at": now,
                    }
                    for e in step.events
                ],
            )
        for ref, st in step.orders.items():
            o = st.payload
            values = {
                "market_id": o["market_id"],
                "match_id": st.match_id,
                "selection": o["selection"],
                "side": str(o["side"]),
                "price": float(o["price"]),
                "size": float(o["size"]),
                "size_matched": float(o.get("size_matched") or 0.0),
                "status": str(o["status"]),
                "source": st.source,
                "settled": bool(o.get("settled", False)),
                "placed_at": _dt(o["placed_at"]),
                "updated_at": _dt(o["updated_at"]),
                "payload": _json(o),
            }
            changed = conn.execute(_UPDATE_ORDER, {"b_ref": ref, **{f"b_{k}": v for k, v in values.items()}})
            if changed.rowcount == 0:
                conn.execute(_INSERT_ORDER, {"customer_order_ref": ref, **values})
        for (feed, channel), (seq, epoch) in step.cursors.items():
            changed = conn.execute(
                _UPDATE_CURSOR, {"b_feed": feed, "b_channel": channel, "b_last_seq": seq, "b_updated_at": now}
            )
            if changed.rowcount == 0:
                conn.execute(
                    _INSERT_CURSOR,
                    {"feed": feed, "channel": channel, "last_seq": seq, "epoch": epoch, "updated_at": now},
                )
        for ref, (status, reason) in step.requests_done.items():
            conn.execute(_UPDATE_REQUEST, {"b_ref": ref, "b_status": status, "b_reason": reason})
        if step.quarantined:
            conn.execute(_INSERT_QUARANTINE, [{**q, "stage": "live", "created_at": now} for q in step.quarantined])
    return foreign


def _foreign_refs(conn: Connection, step: Step, worker: str) -> set[str]:
    """The step's order references another worker holds the reservation of (locked until the commit)."""
    refs = set(step.orders) | {e.ref for e in step.events if e.ref is not None}
    if not refs:
        return set()
    rows = conn.execute(
        select(RiskReservation.ref, RiskReservation.worker)
        .where(RiskReservation.ref.in_(sorted(refs)))
        .order_by(RiskReservation.ref)
        .with_for_update(read=True)
    )
    return {ref for ref, holder in rows if holder != worker}


def _dt(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def cursors(engine: Engine) -> dict[tuple[str, str], tuple[int, datetime]]:
    """Resume points: (feed, channel) -> (last committed sequence number, feed epoch)."""
    with engine.connect() as conn:
        rows = conn.execute(select(FeedCursor.feed, FeedCursor.channel, FeedCursor.last_seq, FeedCursor.epoch))
        return {(f, c): (int(s), e) for f, c, s, e in rows}


def orders(engine: Engine, unsettled_only: bool = False) -> list[dict[str, Any]]:
    """Every persisted order state (``Order.to_dict()``), oldest first."""
    q = select(OrderRow.payload).order_by(OrderRow.placed_at)
    if unsettled_only:
        q = q.where(OrderRow.settled.is_(False))
    with engine.connect() as conn:
        return [json.loads(p) for (p,) in conn.execute(q)]


def order_rows(engine: Engine, market_ids: Sequence[str] | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """(match_id, source, order dict) of the orders of the given markets (all when None)."""
    q = select(OrderRow.match_id, OrderRow.source, OrderRow.payload)
    if market_ids is not None:
        q = q.where(OrderRow.market_id.in_(list(market_ids)))
    with engine.connect() as conn:
        return [(m, s, json.loads(p)) for m, s, p in conn.execute(q)]


def add_order_requests(engine: Engine, requests: Iterable[tuple[str, str, str, dict[str, Any]]]) -> int:
    """Queue order requests (ref, match_id, market_id, request dict); a ref already queued is skipped."""
    added = 0
    with engine.begin() as conn:
        for ref, match_id, market_id, payload in requests:
            exists = conn.execute(
                select(OrderRequestRow.customer_order_ref).where(OrderRequestRow.customer_order_ref == ref)
            ).first()
            if exists:
                continue
            conn.execute(
                insert(OrderRequestRow).values(
                    customer_order_ref=ref, match_id=match_id, market_id=market_id, status="new", payload=_json(payload)
                )
            )
            added += 1
    return added


def new_order_requests(engine: Engine) -> list[tuple[str, str, dict[str, Any]]]:
    """(ref, match_id, request dict) of requests not yet handled by the engine, oldest first."""
    q = (
        select(OrderRequestRow.customer_order_ref, OrderRequestRow.match_id, OrderRequestRow.payload)
        .where(OrderRequestRow.status == "new")
        .order_by(OrderRequestRow.created_at)
    )
    with engine.connect() as conn:
        return [(r, m, json.loads(p)) for r, m, p in conn.execute(q)]


def record_settlement(
    engine: Engine,
    market_id: str,
    match_id: str,
    settlement: dict[str, Any],
    settled_at: datetime,
    order_refs: Sequence[str],
    log_kind: str = "MARKET_SETTLED",
) -> bool:
    """Store a market's settlement, mark its orders settled and append a ``log_kind`` entry to the
    event log, in one transaction; False when the market was settled before."""
    with engine.begin() as conn:
        _serialise_log_writers(conn)  # first: the entry's id is in commit order (LOG_WRITE_LOCK_KEY)
        if conn.execute(select(SettlementRow.market_id).where(SettlementRow.market_id == market_id)).first():
            return False
        conn.execute(
            insert(LiveEvent).values(
                kind=log_kind,
                event_time=settled_at,
                feed=None,
                seq=None,
                match_id=match_id,
                payload=_json(settlement),
                recorded_at=datetime.now(UTC),
            )
        )
        pnl = settlement.get("pnl", {})
        conn.execute(
            insert(SettlementRow).values(
                market_id=market_id,
                match_id=match_id,
                winner=settlement.get("winner"),
                void=bool(settlement.get("void")),
                profit=float(pnl.get("net_profit", 0.0) or 0.0),
                commission=float(pnl.get("commission", 0.0) or 0.0),
                settled_at=settled_at,
                payload=_json(settlement),
            )
        )
        if order_refs:
            conn.execute(update(OrderRow).where(OrderRow.customer_order_ref.in_(list(order_refs))).values(settled=True))
    return True


def settlements(engine: Engine, after: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Settlement dicts, oldest first (excluding the market ids in ``after``)."""
    q = select(SettlementRow.market_id, SettlementRow.payload).order_by(SettlementRow.settled_at)
    known = set(after)
    with engine.connect() as conn:
        return [json.loads(p) for m, p in conn.execute(q) if m not in known]


def events_after(
    engine: Engine, after_id: int, kinds: Sequence[str] | None = None, limit: int = 10_000
) -> list[tuple[int, str, datetime, str | None, str | None, dict[str, Any]]]:
    """Log entries with id > ``after_id``: (id, kind, event_time, feed, match_id, payload), at most ``limit`` (the
    first ones: a reader that got ``limit`` rows reads on from the last id it got, not from a newer id)."""
    q = (
        select(
            LiveEvent.id, LiveEvent.kind, LiveEvent.event_time, LiveEvent.feed, LiveEvent.match_id, LiveEvent.payload
        )
        .where(LiveEvent.id > after_id)
        .order_by(LiveEvent.id)
        .limit(limit)
    )
    if kinds:
        q = q.where(LiveEvent.kind.in_(list(kinds)))
    with engine.connect() as conn:
        return [(i, k, t, f, m, json.loads(p)) for i, k, t, f, m, p in conn.execute(q)]


def match_events(engine: Engine, match_id: str, kind: str) -> list[dict[str, Any]]:
    """The payloads of one match's log entries of one kind, oldest first."""
    q = select(LiveEvent.payload).where(LiveEvent.match_id == match_id, LiveEvent.kind == kind).order_by(LiveEvent.id)
    with engine.connect() as conn:
        return [json.loads(p) for (p,) in conn.execute(q)]


def last_event_id(engine: Engine) -> int:
    """Id of the newest log entry (0 when empty). Ids are in commit order (``LOG_WRITE_LOCK_KEY``), so every entry
    up to it is already visible (or never will be): a reader may read ``(after, last_event_id()]`` as final."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.max(LiveEvent.id))).scalar() or 0)


def reset_live(engine: Engine) -> None:
    """Delete all live state (a fresh paper-trading session), the engine workers' shared tables included
    (``storage.shared_risk``: leases, reservations, positions, realised P&L). The operator's controls stay: a kill
    switch pulled before is still pulled in the new session."""
    with engine.begin() as conn:
        _serialise_log_writers(conn)  # not in the middle of a writer's transaction
        lock_risk(conn)  # nor of a worker's decision
        for table in (LiveEvent, FeedCursor, OrderRow, OrderRequestRow, SettlementRow, EngineStatusRow, AlertDelivery):
            conn.execute(delete(table))
        for shared in SHARED_TABLES:
            conn.execute(delete(shared))
        conn.execute(update(AlertSubscription).values(last_event_id=0))  # subscriptions stay; the new log's ids restart
        conn.execute(delete(Quarantine).where(Quarantine.stage == "live"))


def latest_payloads(engine: Engine, kind: str) -> dict[str, dict[str, Any]]:
    """The payload of the newest log entry of ``kind`` for each match."""
    newest = (
        select(func.max(LiveEvent.id))
        .where(LiveEvent.kind == kind, LiveEvent.match_id.is_not(None))
        .group_by(LiveEvent.match_id)
    )
    q = select(LiveEvent.match_id, LiveEvent.payload).where(LiveEvent.id.in_(newest))
    with engine.connect() as conn:
        return {m: json.loads(p) for m, p in conn.execute(q)}


def requested_markets(engine: Engine) -> set[str]:
    """Markets the control plane already queued an order request for."""
    with engine.connect() as conn:
        return {m for (m,) in conn.execute(select(OrderRequestRow.market_id).distinct())}


def order_requests(engine: Engine) -> list[dict[str, Any]]:
    """Every order request with its status and reason, oldest first."""
    q = select(
        OrderRequestRow.customer_order_ref,
        OrderRequestRow.match_id,
        OrderRequestRow.market_id,
        OrderRequestRow.status,
        OrderRequestRow.reason,
        OrderRequestRow.created_at,
    ).order_by(OrderRequestRow.created_at)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def append_events(engine: Engine, events: Sequence[EventEntry]) -> None:
    """Append entries to the event log (one transaction)."""
    if events:
        commit_step(engine, Step(events=list(events)))


_ROW_COLUMNS = (
    LiveEvent.id,
    LiveEvent.kind,
    LiveEvent.event_time,
    LiveEvent.feed,
    LiveEvent.seq,
    LiveEvent.match_id,
    LiveEvent.ref,
    LiveEvent.payload,
    LiveEvent.recorded_at,
)
"""Every column of a log entry (``event_rows``, ``next_event_rows``, ``lineage_rows``)."""


def event_rows(engine: Engine, after_id: int, upto_id: int) -> list[dict[str, Any]]:
    """Log entries with after_id < id <= upto_id, every column (payload parsed), oldest first."""
    q = select(*_ROW_COLUMNS).where(LiveEvent.id > after_id, LiveEvent.id <= upto_id).order_by(LiveEvent.id)
    with engine.connect() as conn:
        return [{**r._mapping, "payload": json.loads(r.payload)} for r in conn.execute(q)]


def next_event_rows(engine: Engine, after_id: int, limit: int) -> list[dict[str, Any]]:
    """The next ``limit`` log entries after ``after_id`` (as ``event_rows``): a count, not an id range. On Postgres
    the ids go on from the old sequence after ``reset_live``, so a reader starting again from 0 would find nothing
    in (0, limit] and wait for ever."""
    q = select(*_ROW_COLUMNS).where(LiveEvent.id > after_id).order_by(LiveEvent.id).limit(limit)
    with engine.connect() as conn:
        return [{**r._mapping, "payload": json.loads(r.payload)} for r in conn.execute(q)]


# --- the people-facing API: ledger pages and the operator's controls ---------------------------------
ORDER_STATES = ("open", "settled", "all")
"""``open``: not settled and still live or (partly) matched; ``settled``: matched and its market settled
(an order that never matched is in ``all`` only)."""


def order_page(
    engine: Engine,
    *,
    state: str = "all",
    match_id: str | None = None,
    source: str | None = None,
    side: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[dict[str, Any]]]:
    """(total matching, one page of order dicts with ``match_id`` and ``source``), newest first."""
    if state not in ORDER_STATES:
        raise ValueError(f"state must be one of {ORDER_STATES}, not {state!r}")
    where = []
    if state == "open":
        where += [
            OrderRow.settled.is_(False),
            (OrderRow.size_matched > 0) | OrderRow.status.in_(["PENDING", "EXECUTABLE"]),
        ]
    elif state == "settled":
        where += [OrderRow.settled.is_(True), OrderRow.size_matched > 0]
    for column, value in (
        (OrderRow.match_id, match_id),
        (OrderRow.source, source),
        (OrderRow.side, side),
        (OrderRow.status, status),
    ):
        if value is not None:
            where.append(column == value)
    q = (
        select(OrderRow.match_id, OrderRow.source, OrderRow.settled, OrderRow.payload)
        .where(*where)
        .order_by(OrderRow.placed_at.desc(), OrderRow.customer_order_ref)
        .limit(limit)
        .offset(offset)
    )
    with engine.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(OrderRow).where(*where)).scalar() or 0)
        # the column, not the payload, says whether the order's market is settled (record_settlement)
        rows = [{**json.loads(p), "match_id": m, "source": s, "settled": bool(st)} for m, s, st, p in conn.execute(q)]
    return total, rows


def settlements_of(engine: Engine, market_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """market id -> settlement dict, for the given markets that are settled."""
    if not market_ids:
        return {}
    q = select(SettlementRow.market_id, SettlementRow.payload).where(SettlementRow.market_id.in_(list(market_ids)))
    with engine.connect() as conn:
        return {m: json.loads(p) for m, p in conn.execute(q)}


CONTROL_DEFAULTS: dict[str, Any] = {
    "version": 0,
    "paused": False,
    "kill_switch": False,
    "risk_limits": {},
    "reason": None,
    "changed_by": None,
    "changed_at": None,
}
"""The controls in force when no operator ever changed them."""


def _control_dict(row: Any) -> dict[str, Any]:
    return {
        "version": int(row.version),
        "paused": bool(row.paused),
        "kill_switch": bool(row.kill_switch),
        "risk_limits": json.loads(row.risk_limits),
        "reason": row.reason,
        "changed_by": row.changed_by,
        "changed_at": row.changed_at,
    }


def current_controls(engine: Engine) -> dict[str, Any]:
    """The operator's controls in force (the newest change; ``CONTROL_DEFAULTS`` when none)."""
    q = select(OperatorControl).order_by(OperatorControl.version.desc()).limit(1)
    with engine.connect() as conn:
        row = conn.execute(q).first()
    return _control_dict(row) if row is not None else dict(CONTROL_DEFAULTS)


def control_history(engine: Engine, limit: int = 20) -> list[dict[str, Any]]:
    """The latest changes of the controls, newest first (the audit trail)."""
    q = select(OperatorControl).order_by(OperatorControl.version.desc()).limit(limit)
    with engine.connect() as conn:
        return [_control_dict(r) for r in conn.execute(q)]


def change_controls(
    engine: Engine,
    changed_by: str,
    *,
    paused: bool | None = None,
    kill_switch: bool | None = None,
    risk_limits: dict[str, Any] | None = None,
    reason: str | None = None,
    attempts: int = 5,
) -> dict[str, Any]:
    """Append a change of the controls (fields left None keep their value) and return the new state.

    The version is the previous one plus one and is the primary key, so two writers racing for the
    same version cannot both win: the loser reads the winner's state and applies its change on top.
    """
    for _ in range(attempts):
        now = current_controls(engine)
        row = {
            "version": now["version"] + 1,
            "paused": now["paused"] if paused is None else paused,
            "kill_switch": now["kill_switch"] if kill_switch is None else kill_switch,
            "risk_limits": _json(now["risk_limits"] if risk_limits is None else risk_limits),
            "reason": reason,
            "changed_by": changed_by[:128],
            "changed_at": datetime.now(UTC),
        }
        try:
            with engine.begin() as conn:
                lock_risk(conn)  # several engine workers: a kill switch lands between two order decisions
                conn.execute(insert(OperatorControl).values(**row))
        except IntegrityError:
            continue
        return {**row, "risk_limits": json.loads(row["risk_limits"])}
    raise RuntimeError(f"could not record the control change after {attempts} attempts (concurrent changes)")


def record_engine_status(engine: Engine, name: str, controls_version: int, payload: dict[str, Any]) -> None:
    """The engine's heartbeat: the controls version it applies and its figures (upsert)."""
    values = {"controls_version": controls_version, "payload": _json(payload), "updated_at": datetime.now(UTC)}
    with engine.begin() as conn:
        changed = conn.execute(update(EngineStatusRow).where(EngineStatusRow.engine == name).values(**values))
        if changed.rowcount == 0:
            conn.execute(insert(EngineStatusRow).values(engine=name, **values))


def engine_statuses(engine: Engine) -> list[dict[str, Any]]:
    """Every engine's last heartbeat: name, controls version applied, payload, updated_at."""
    q = select(EngineStatusRow).order_by(EngineStatusRow.engine)
    with engine.connect() as conn:
        return [
            {
                "engine": r.engine,
                "controls_version": int(r.controls_version),
                "payload": json.loads(r.payload),
                "updated_at": r.updated_at,
            }
            for r in conn.execute(q)
        ]


# --- a bet's lineage ------------------------------------------------------------------------------


def _rows(conn: Any, q: Any) -> list[dict[str, Any]]:
    return [{**r._mapping, "payload": json.loads(r.payload)} for r in conn.execute(q)]


def lineage_rows(engine: Engine, ref: str) -> dict[str, Any]:
    """Everything the log and the ledger hold about one order reference: its entries (opportunity, rejection,
    order states, settlement), the feed message that triggered it, the prediction it was decided on, the order
    row and its market's settlement. Empty ``entries`` when the reference is unknown."""
    with engine.connect() as conn:
        entries = _rows(conn, select(*_ROW_COLUMNS).where(LiveEvent.ref == ref).order_by(LiveEvent.id))
        order = conn.execute(
            select(OrderRow.match_id, OrderRow.source, OrderRow.settled, OrderRow.payload).where(
                OrderRow.customer_order_ref == ref
            )
        ).first()
        request = conn.execute(
            select(
                OrderRequestRow.match_id, OrderRequestRow.status, OrderRequestRow.reason, OrderRequestRow.payload
            ).where(OrderRequestRow.customer_order_ref == ref)
        ).first()
        out: dict[str, Any] = {
            "entries": entries,
            "order": None
            if order is None
            else {
                **json.loads(order.payload),
                "match_id": order.match_id,
                "source": order.source,
                "settled": bool(order.settled),
            },
            "request": None
            if request is None
            else {
                "match_id": request.match_id,
                "status": request.status,
                "reason": request.reason,
                "payload": json.loads(request.payload),
            },
            "trigger": None,
            "prediction": None,
            "settlement": None,
        }
        # the decision (the latest one: a reference decided again after a restart has several), else the first entry
        first = next((e for e in reversed(entries) if e["kind"] == "OPPORTUNITY"), entries[0] if entries else None)
        if first is not None and first["feed"] is not None and first["seq"] is not None:
            # the message that caused it was logged in the same step, just before it (sequences are per channel)
            channel = (first["payload"].get("trigger") or {}).get("channel")
            kinds = {"match": ["FEED_MESSAGE"], "market": ["MARKET_UPDATE", "MARKET_SUSPENDED"]}.get(
                channel, ["FEED_MESSAGE", "MARKET_UPDATE", "MARKET_SUSPENDED"]
            )
            trigger = _rows(
                conn,
                select(*_ROW_COLUMNS)
                .where(
                    LiveEvent.id <= first["id"],
                    LiveEvent.id > first["id"] - 10_000,
                    LiveEvent.feed == first["feed"],
                    LiveEvent.seq == first["seq"],
                    LiveEvent.kind.in_(kinds),
                )
                .order_by(LiveEvent.id.desc())
                .limit(1),
            )
            out["trigger"] = trigger[0] if trigger else None
        named = ((first or {}).get("payload") or {}).get("trigger") or {}
        if out["trigger"] is None and named.get("event_id"):  # the control plane names the entry it read
            trigger = _rows(conn, select(*_ROW_COLUMNS).where(LiveEvent.id == int(named["event_id"])))
            out["trigger"] = trigger[0] if trigger else None
        match_id = (first or {}).get("match_id") or (out["order"] or out["request"] or {}).get("match_id")
        if first is not None and match_id:
            prediction = _rows(
                conn,
                select(*_ROW_COLUMNS)
                .where(
                    LiveEvent.match_id == match_id,
                    LiveEvent.id < first["id"],
                    LiveEvent.kind.in_(["PREDICTION", "PREMATCH_PREDICTION"]),
                )
                .order_by(LiveEvent.id.desc())
                .limit(1),
            )
            out["prediction"] = prediction[0] if prediction else None
        market_id = (out["order"] or {}).get("market_id")
        if market_id:
            settled = conn.execute(select(SettlementRow.payload).where(SettlementRow.market_id == market_id)).first()
            out["settlement"] = json.loads(settled.payload) if settled else None
    return out
