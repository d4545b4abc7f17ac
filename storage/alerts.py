"""Value-alert subscriptions and their delivery log (``alert_subscriptions``, ``alert_deliveries``).

Plain functions over an Engine, dicts in and out, one transaction per call (the style of
``storage.live``). The live API keeps the subscriptions in memory for its hot path and writes here:
a subscription, how far in the event log it has been considered (``last_event_id``, advanced in
batches), and one delivery per (subscription, OPPORTUNITY entry) for its webhook. A delivery is
queued once: the unique index on (alert_id, event_id) makes a second ``enqueue`` of the same pair a
no-op (``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL), so re-reading the log after
a restart never sends an alert twice.

Delivery states: ``pending`` (to send, or to retry at ``next_attempt_at``), ``delivered``, ``failed``
(attempts exhausted); ``socket_only`` is reserved for alerts with no webhook.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from storage.models import AlertDelivery, AlertSubscription

PENDING, DELIVERED, FAILED, SOCKET_ONLY = "pending", "delivered", "failed", "socket_only"
DELIVERY_STATES = (PENDING, DELIVERED, FAILED, SOCKET_ONLY)


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _json(payload: Any) -> str:
    return json.dumps(payload, default=str, separators=(",", ":"))


def _subscription(row: Any, with_secret: bool = False) -> dict[str, Any]:
    out = {
        "alert_id": row.alert_id,
        "criteria": json.loads(row.criteria),
        "webhook_url": row.webhook_url,
        "last_event_id": int(row.last_event_id),
        "created_by": row.created_by,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
    }
    if with_secret:
        out["secret"] = row.secret
    return out


# --- subscriptions -----------------------------------------------------------------------------------
def add_subscription(
    engine: Engine,
    *,
    alert_id: str,
    criteria: Mapping[str, Any],
    webhook_url: str | None,
    secret: str | None,
    last_event_id: int,
    created_by: str,
    created_at: datetime,
    expires_at: datetime,
) -> dict[str, Any]:
    """Store a subscription; the stored dict (without the secret)."""
    row = {
        "alert_id": alert_id,
        "criteria": _json(dict(criteria)),
        "webhook_url": webhook_url,
        "secret": secret,
        "last_event_id": int(last_event_id),
        "created_by": created_by[:128],
        "created_at": created_at,
        "expires_at": expires_at,
    }
    with engine.begin() as conn:
        conn.execute(insert(AlertSubscription).values(**row))
    return {**{k: v for k, v in row.items() if k != "secret"}, "criteria": dict(criteria)}


def subscription(engine: Engine, alert_id: str, now: datetime | None = None) -> dict[str, Any] | None:
    """One subscription that has not expired (without its secret), or None."""
    q = select(AlertSubscription).where(
        AlertSubscription.alert_id == alert_id, AlertSubscription.expires_at > _now(now)
    )
    with engine.connect() as conn:
        row = conn.execute(q).first()
    return _subscription(row) if row is not None else None


def live_subscriptions(engine: Engine, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every subscription that has not expired (without secrets), oldest first."""
    q = (
        select(AlertSubscription)
        .where(AlertSubscription.expires_at > _now(now))
        .order_by(AlertSubscription.created_at, AlertSubscription.alert_id)
    )
    with engine.connect() as conn:
        return [_subscription(r) for r in conn.execute(q)]


def delete_subscription(engine: Engine, alert_id: str) -> bool:
    """Delete a subscription and its delivery log; False when there was none."""
    with engine.begin() as conn:
        gone = conn.execute(delete(AlertSubscription).where(AlertSubscription.alert_id == alert_id)).rowcount
        conn.execute(delete(AlertDelivery).where(AlertDelivery.alert_id == alert_id))
    return bool(gone)


def purge_expired(engine: Engine, now: datetime | None = None) -> int:
    """Delete the subscriptions that expired, with their delivery logs; how many."""
    with engine.begin() as conn:
        expired = [
            a
            for (a,) in conn.execute(
                select(AlertSubscription.alert_id).where(AlertSubscription.expires_at <= _now(now))
            )
        ]
        if expired:
            conn.execute(delete(AlertDelivery).where(AlertDelivery.alert_id.in_(expired)))
            conn.execute(delete(AlertSubscription).where(AlertSubscription.alert_id.in_(expired)))
        # deliveries queued by a process that had not noticed the expiry yet: nothing would ever send them
        conn.execute(delete(AlertDelivery).where(AlertDelivery.alert_id.not_in(select(AlertSubscription.alert_id))))
    return len(expired)


_SET_CURSOR = (
    update(AlertSubscription)
    .where(AlertSubscription.alert_id == bindparam("b_alert_id"))
    .values(last_event_id=bindparam("b_last_event_id"))
)


def _advance(conn: Connection, cursors: Mapping[str, int]) -> None:
    if cursors:
        conn.execute(_SET_CURSOR, [{"b_alert_id": a, "b_last_event_id": int(i)} for a, i in cursors.items()])


def advance_cursors(engine: Engine, cursors: Mapping[str, int]) -> None:
    """Set the ``last_event_id`` of several subscriptions (alert id -> entry id) in one transaction."""
    with engine.begin() as conn:
        _advance(conn, cursors)


# --- deliveries ----------------------------------------------------------------------------------------
def _insert_new(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert deliveries, skipping those whose (alert_id, event_id) is queued already."""
    unique = ["alert_id", "event_id"]
    if conn.dialect.name == "sqlite":
        conn.execute(sqlite.insert(AlertDelivery).on_conflict_do_nothing(index_elements=unique), rows)
        return
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(AlertDelivery).on_conflict_do_nothing(index_elements=unique), rows)
        return
    for row in rows:  # another database: look first (one writer, the live API)
        queued = conn.execute(
            select(AlertDelivery.id).where(
                AlertDelivery.alert_id == row["alert_id"], AlertDelivery.event_id == row["event_id"]
            )
        ).first()
        if queued is None:
            conn.execute(insert(AlertDelivery).values(**row))


def enqueue(
    engine: Engine,
    deliveries: Sequence[Mapping[str, Any]],
    cursors: Mapping[str, int] | None = None,
    now: datetime | None = None,
) -> None:
    """Queue deliveries (each ``{"alert_id", "event_id", "payload"}``, status ``pending`` unless given) and
    advance ``cursors`` (alert id -> entry id) in ONE transaction, so a subscription's ``last_event_id`` never
    passes an alert that was not queued. A (alert_id, event_id) queued before is left as it is."""
    at = _now(now)
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for d in deliveries:
        key = (str(d["alert_id"]), int(d["event_id"]))
        rows.setdefault(
            key,
            {
                "alert_id": key[0],
                "event_id": key[1],
                "payload": d["payload"] if isinstance(d["payload"], str) else _json(d["payload"]),
                "status": d.get("status", PENDING),
                "attempts": 0,
                "last_error": None,
                "last_status_code": None,
                "next_attempt_at": at,
                "delivered_at": None,
                "created_at": at,
            },
        )
    with engine.begin() as conn:
        if rows:
            _insert_new(conn, list(rows.values()))
        _advance(conn, cursors or {})


def due_deliveries(
    engine: Engine, now: datetime | None = None, limit: int = 50, per_alert: int = 20
) -> list[dict[str, Any]]:
    """Pending deliveries to send now, of subscriptions that have not expired and have a webhook, oldest first:
    the delivery with ``webhook_url`` and ``secret`` of its subscription.

    Per subscription, in log order, only while its oldest pending delivery is due (a webhook waiting for a retry
    holds its own later deliveries back, so they arrive in order, and never holds back another subscription's),
    at most ``per_alert`` of them."""
    at = _now(now)
    ranked = (
        select(
            AlertDelivery.id.label("id"),
            AlertDelivery.alert_id.label("alert_id"),
            func.row_number().over(partition_by=AlertDelivery.alert_id, order_by=AlertDelivery.id).label("rank"),
        )
        .where(AlertDelivery.status == PENDING)
        .subquery()
    )
    heads = (
        select(AlertDelivery.alert_id)
        .join(ranked, ranked.c.id == AlertDelivery.id)
        .where(ranked.c.rank == 1, AlertDelivery.next_attempt_at <= at)
    )
    q = (
        select(
            AlertDelivery.id,
            AlertDelivery.alert_id,
            AlertDelivery.event_id,
            AlertDelivery.payload,
            AlertDelivery.attempts,
            AlertSubscription.webhook_url,
            AlertSubscription.secret,
        )
        .join(ranked, ranked.c.id == AlertDelivery.id)
        .join(AlertSubscription, AlertSubscription.alert_id == AlertDelivery.alert_id)
        .where(
            ranked.c.rank <= per_alert,
            AlertDelivery.alert_id.in_(heads),
            AlertSubscription.expires_at > at,
            AlertSubscription.webhook_url.is_not(None),
        )
        .order_by(AlertDelivery.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [{**r._mapping, "payload": json.loads(r.payload), "attempts": int(r.attempts)} for r in conn.execute(q)]


def mark_delivered(engine: Engine, delivery_id: int, status_code: int, now: datetime | None = None) -> None:
    """The webhook accepted the delivery (a 2xx answer)."""
    at = _now(now)
    with engine.begin() as conn:
        conn.execute(
            update(AlertDelivery)
            .where(AlertDelivery.id == delivery_id)
            .values(
                status=DELIVERED,
                attempts=AlertDelivery.attempts + 1,
                last_status_code=status_code,
                last_error=None,
                next_attempt_at=None,
                delivered_at=at,
            )
        )


def backoff_s(attempts: int, base_s: float = 1.0, cap_s: float = 60.0) -> float:
    """Seconds before the next try after ``attempts`` failed ones: base, 2 base, 4 base, ... at most ``cap_s``."""
    return float(min(cap_s, base_s * 2 ** max(0, min(attempts - 1, 30))))


def mark_failed_attempt(
    engine: Engine,
    delivery_id: int,
    *,
    error: str,
    status_code: int | None = None,
    max_attempts: int = 8,
    base_s: float = 1.0,
    cap_s: float = 60.0,
    now: datetime | None = None,
) -> dict[str, Any]:
    """An attempt failed: count it, keep the error, and retry after ``backoff_s`` -- or give up (``failed``)
    once ``max_attempts`` were made. The delivery's new ``status``, ``attempts``, ``next_attempt_at``."""
    at = _now(now)
    with engine.begin() as conn:
        attempts = conn.execute(select(AlertDelivery.attempts).where(AlertDelivery.id == delivery_id)).scalar()
        if attempts is None:
            return {"status": None, "attempts": 0, "next_attempt_at": None}
        attempts = int(attempts) + 1
        if attempts >= max_attempts:
            status, next_at = FAILED, None
        else:
            status, next_at = PENDING, at + timedelta(seconds=backoff_s(attempts, base_s, cap_s))
        conn.execute(
            update(AlertDelivery)
            .where(AlertDelivery.id == delivery_id)
            .values(
                status=status,
                attempts=attempts,
                last_error=error[:1000],
                last_status_code=status_code,
                next_attempt_at=next_at,
            )
        )
    return {"status": status, "attempts": attempts, "next_attempt_at": next_at}


def delivery_log(engine: Engine, alert_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The deliveries of one subscription, newest first."""
    q = (
        select(AlertDelivery)
        .where(AlertDelivery.alert_id == alert_id)
        .order_by(AlertDelivery.event_id.desc(), AlertDelivery.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [
            {
                "id": int(r.id),
                "event_id": int(r.event_id),
                "status": r.status,
                "attempts": int(r.attempts),
                "last_status_code": r.last_status_code,
                "last_error": r.last_error,
                "next_attempt_at": r.next_attempt_at,
                "delivered_at": r.delivered_at,
                "created_at": r.created_at,
                "value_bet": json.loads(r.payload),
            }
            for r in conn.execute(q)
        ]


def delivery_counts(engine: Engine) -> dict[str, int]:
    """Deliveries by status (for health figures)."""
    q = select(AlertDelivery.status, func.count()).group_by(AlertDelivery.status)
    with engine.connect() as conn:
        return {s: int(n) for s, n in conn.execute(q)}
