"""SQLAlchemy 2 declarative models of the application database.

Every table hangs off :class:`Base`, whose ``MetaData`` carries a naming convention so that
every index and constraint gets a deterministic name. Deterministic names are what let Alembic
autogenerate migrations that drop or alter constraints on both SQLite (batch mode recreates the
table and must find constraints by name) and Postgres (``ALTER TABLE ... DROP CONSTRAINT name``).

Timestamps use :class:`UtcDateTime`: always timezone-aware UTC in Python, ``TIMESTAMP WITH TIME
ZONE`` on Postgres and a UTC text timestamp on SQLite (which has no time zone support).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint and index names. Names longer than the dialect's limit (63 on Postgres) are
truncated by SQLAlchemy with a stable hash suffix. CHECK constraints need an explicit short
``name=`` (the convention prefixes it), and stay named so SQLite batch mode keeps them."""

Stage = Literal["ingest", "live"]
"""Where a record was rejected: by a historical ingest run or by the live feed consumer."""
STAGES: tuple[str, ...] = get_args(Stage)

# BIGINT ids on Postgres; on SQLite only ``INTEGER PRIMARY KEY`` is the auto-incrementing rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC ``datetime`` on every backend.

    Binding a naive datetime is an error (it would be silently misread). Values read back are
    always aware and in UTC, including SQLite's naive ``CURRENT_TIMESTAMP`` (which is UTC).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of all Courtside tables (one ``MetaData`` for Alembic)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime()}


class Quarantine(Base):
    """A record that ingest or the live feed rejected, kept verbatim with the reason."""

    __tablename__ = "quarantine"
    __table_args__ = (
        CheckConstraint("stage IN ('ingest', 'live')", name="stage"),
        Index(None, "source", "batch_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(100))
    """Dataset or feed name, e.g. ``atp_matches``."""
    location: Mapped[str] = mapped_column(Text)
    """File path or URL (ingest) or feed name / endpoint (live)."""
    line: Mapped[int | None] = mapped_column(Integer)
    """1-based line number in the file when known."""
    record: Mapped[str] = mapped_column(Text)
    """The raw row or message as received."""
    reason: Mapped[str] = mapped_column(Text)
    """Human-readable reason, e.g. ``winner_id: 'abc' is not an integer``."""
    stage: Mapped[str] = mapped_column(String(16))
    """``ingest`` or ``live`` (see :data:`Stage`)."""
    batch_id: Mapped[str] = mapped_column(String(64))
    """Groups the rows of one ingest run (or one live session)."""
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    """When the row was stored (UTC, set by the database)."""

    def __repr__(self) -> str:
        return f"Quarantine(id={self.id!r}, source={self.source!r}, line={self.line!r})"


class LiveEvent(Base):
    """One step of the live message flow (the durable event log the sensor and the API read).

    Appended by the engine in the same transaction as the feed cursor, so after a crash the log and
    the cursor agree. ``kind`` is a ``betting.records.EventKind`` value.
    """

    __tablename__ = "live_events"
    __table_args__ = (Index(None, "kind", "id"), Index(None, "match_id", "id"), Index(None, "ref"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    event_time: Mapped[datetime] = mapped_column()
    """Event time (the feed's clock), not when the row was written."""
    feed: Mapped[str | None] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    """Sequence number of the feed message that caused this entry."""
    match_id: Mapped[str | None] = mapped_column(String(128))
    ref: Mapped[str | None] = mapped_column(String(32))
    """The order reference (``customer_order_ref``) an opportunity, rejection or order state is about: the
    lineage of a bet (``GET /bets/{ref}``) is read by it."""
    payload: Mapped[str] = mapped_column(Text)
    """JSON of the record (prediction, opportunity, order, ...)."""
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now())


class FeedCursor(Base):
    """The last sequence number of a feed channel whose effects are committed (resume point)."""

    __tablename__ = "feed_cursors"

    feed: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    epoch: Mapped[datetime] = mapped_column()
    """Wall-clock moment the feed's clock started (event time = epoch + feed seconds)."""
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class OrderRow(Base):
    """The latest known state of an order (``betting.records.Order`` as JSON, plus query columns)."""

    __tablename__ = "orders"
    __table_args__ = (Index(None, "market_id"), Index(None, "match_id"), Index(None, "status"))

    customer_order_ref: Mapped[str] = mapped_column(String(32), primary_key=True)
    market_id: Mapped[str] = mapped_column(String(128))
    match_id: Mapped[str] = mapped_column(String(128))
    selection: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    price: Mapped[float] = mapped_column()
    size: Mapped[float] = mapped_column()
    size_matched: Mapped[float] = mapped_column()
    status: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))
    """``inplay`` (the engine's own decisions) or ``prematch`` (requests from the control plane)."""
    settled: Mapped[bool] = mapped_column()
    placed_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    payload: Mapped[str] = mapped_column(Text)


class OrderRequestRow(Base):
    """An order the control plane wants placed (pre-match value bets); the engine, which owns the
    exchange connection, applies the risk checks and submits it. ``status``: new, submitted, rejected."""

    __tablename__ = "order_requests"
    __table_args__ = (Index(None, "status"),)

    customer_order_ref: Mapped[str] = mapped_column(String(32), primary_key=True)
    match_id: Mapped[str] = mapped_column(String(128))
    market_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    """``betting.records.OrderRequest`` as JSON."""
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SettlementRow(Base):
    """A settled market (``betting.records.Settlement`` as JSON, plus query columns)."""

    __tablename__ = "settlements"
    __table_args__ = (Index(None, "match_id"),)

    market_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    match_id: Mapped[str] = mapped_column(String(128))
    winner: Mapped[str | None] = mapped_column(String(64))
    void: Mapped[bool] = mapped_column()
    profit: Mapped[float] = mapped_column()
    """Net profit after commission."""
    commission: Mapped[float] = mapped_column()
    settled_at: Mapped[datetime] = mapped_column()
    payload: Mapped[str] = mapped_column(Text)


class OperatorControl(Base):
    """One change of the operator's controls of the live engine (append-only: the newest row is in
    force; the rows before it are the audit trail). Written by the live API, polled by the engine,
    so a pause or a kill switch survives a restart of either process."""

    __tablename__ = "operator_controls"

    version: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    paused: Mapped[bool] = mapped_column()
    """No new orders (decisions and value bets are still computed and logged)."""
    kill_switch: Mapped[bool] = mapped_column()
    """Nothing accepted, hedges included; live orders are cancelled."""
    risk_limits: Mapped[str] = mapped_column(Text)
    """JSON object: ``betting.risk.RiskLimits`` fields overriding the engine's configured limits."""
    reason: Mapped[str | None] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(128))
    """Who asked (the client's address); never a credential."""
    changed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class EngineStatusRow(Base):
    """What a live engine last reported: the controls version it applies and its figures (heartbeat)."""

    __tablename__ = "engine_status"

    engine: Mapped[str] = mapped_column(String(64), primary_key=True)
    controls_version: Mapped[int] = mapped_column(BigInteger)
    """``OperatorControl.version`` in force in the engine (0: none ever set)."""
    payload: Mapped[str] = mapped_column(Text)
    """JSON: paused, kill switch, limits in force, message counts, decision latency figures."""
    updated_at: Mapped[datetime] = mapped_column()


class ServiceStatusRow(Base):
    """What the supervisor of ``make up`` last knew of one long-running service (``courtside.supervisor``)."""

    __tablename__ = "service_status"

    service: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    """``running``, ``backoff`` (crashed, restart scheduled) or ``stopped``."""
    pid: Mapped[int | None] = mapped_column(Integer)
    restarts: Mapped[int] = mapped_column(Integer)
    """Restarts after a crash since ``make up`` started."""
    crashes: Mapped[int] = mapped_column(Integer)
    last_exit_code: Mapped[int | None] = mapped_column(Integer)
    """The last crash's exit status: the code, or minus the signal number (``Popen.returncode``)."""
    last_exit: Mapped[str | None] = mapped_column(Text)
    """The last crash in words (``exit code 1``, ``killed by SIGKILL``)."""
    last_crash_at: Mapped[datetime | None] = mapped_column()
    next_restart_at: Mapped[datetime | None] = mapped_column()
    crash_loop: Mapped[bool] = mapped_column()
    crash_loop_reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    """The supervisor's last report (it reports every few seconds while it runs)."""


class VenuePlayer(Base):
    """A player as an outside venue names them (API-Tennis: "N. Djokovic", its player key), and who that is in our
    data: resolved by the identity rules (``features.identity``), by an operator, or not at all (the review list).
    A name that is not resolved is never guessed: its matches are followed without trading."""

    __tablename__ = "venue_players"

    venue: Mapped[str] = mapped_column(String(32), primary_key=True)
    venue_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The venue's own player key (or the name, when the venue gives none)."""
    name: Mapped[str] = mapped_column(String(200))
    player_id: Mapped[int | None] = mapped_column(BigInteger)
    """Sackmann player id; None while unresolved."""
    status: Mapped[str] = mapped_column(String(16))
    """``resolved`` (by the rules), ``operator`` (set by hand: never overwritten) or ``unresolved``."""
    method: Mapped[str] = mapped_column(Text)
    """How it was resolved (``names``, ``pair``), or why not (``unmatched: 2 players of that name...``)."""
    first_seen: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class AlertSubscription(Base):
    """A value-alert subscription (``POST /live/alerts/subscribe``): kept until it expires or is deleted, so it
    survives restarts of the API. Delivered over the WebSocket room ``alert:<id>`` and, when ``webhook_url`` is
    set, by a signed POST to it (``alert_deliveries`` is the delivery log)."""

    __tablename__ = "alert_subscriptions"

    alert_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    criteria: Mapped[str] = mapped_column(Text)
    """JSON: ``match_ids``, ``players`` (resolved names), ``min_edge``."""
    webhook_url: Mapped[str | None] = mapped_column(Text)
    secret: Mapped[str | None] = mapped_column(String(128))
    """HMAC-SHA256 key of the webhook's ``X-Courtside-Signature`` (shown once, when subscribing)."""
    last_event_id: Mapped[int] = mapped_column(BigInteger)
    """The newest event-log entry considered for this subscription (a restart resumes after it)."""
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()


class AlertDelivery(Base):
    """One alert for one subscription: queued once (unique per subscription and log entry), then delivered to
    the webhook with retries and backoff. The delivery log people can read."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (Index(None, "alert_id", "event_id", unique=True), Index(None, "status", "next_attempt_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[int] = mapped_column(BigInteger)
    """The OPPORTUNITY entry of the event log that the alert is about."""
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    """``pending`` (to send or retry), ``delivered``, ``failed`` (retries exhausted) or ``socket_only`` (no webhook)."""
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()


# --- several engine workers on one database (Postgres): ``storage.shared_risk`` -----------------------------
class EngineWorker(Base):
    """An engine worker of a partitioned deployment and its heartbeat (the database's clock): a worker whose
    heartbeat is older than the lease time is dead, and the matches it held are taken over."""

    __tablename__ = "engine_workers"

    worker: Mapped[str] = mapped_column(String(16), primary_key=True)
    pid: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(BigInteger)
    """Deterministic mode: the feed messages this worker has handled, effects committed (the others wait for it)."""
    heartbeat_at: Mapped[datetime] = mapped_column()
    started_at: Mapped[datetime] = mapped_column()


class MatchLease(Base):
    """Which worker trades a match, until when (the database's clock). Taken with one atomic upsert that only
    succeeds when the lease is free, expired or already the taker's; ``epoch`` counts the hand-overs."""

    __tablename__ = "match_leases"

    match_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    worker: Mapped[str] = mapped_column(String(16))
    epoch: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()


class RiskReservation(Base):
    """Every order the workers placed, reserved under the shared risk lock before it left: who placed it under
    which lease, at what event time (the orders-per-hour window), and the total exposure of all workers with it
    (the audit that no cross-match limit was ever exceeded)."""

    __tablename__ = "risk_reservations"
    __table_args__ = (Index(None, "worker"), Index(None, "placed_at"), Index(None, "match_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(32), unique=True)
    worker: Mapped[str] = mapped_column(String(16))
    """The worker that holds the order now (the placer, or the one that took its match over)."""
    placed_by: Mapped[str] = mapped_column(String(16))
    lease_epoch: Mapped[int] = mapped_column(Integer)
    match_id: Mapped[str] = mapped_column(String(128))
    market_id: Mapped[str] = mapped_column(String(128))
    placed_at: Mapped[datetime] = mapped_column()
    total_exposure: Mapped[float] = mapped_column()
    others_exposure: Mapped[float] = mapped_column()
    """Of ``total_exposure``: the other workers' published exposure, read under the lock."""
    live_orders: Mapped[int] = mapped_column(Integer)
    orders_in_hour: Mapped[int] = mapped_column(Integer)
    reserved_at: Mapped[datetime] = mapped_column()


class RiskPosition(Base):
    """One open market's worst-case loss and live orders as a worker last published them (at each order under
    the lock, and every housekeeping tick). Only ever published higher than the truth: an order raises it
    inside the lock; fills, cancellations and settlements lower it at the next publication. One row per market
    and worker: a worker that lost a match and has not noticed yet adds its stale row, never replaces the new
    holder's."""

    __tablename__ = "risk_positions"
    __table_args__ = (Index(None, "worker"), Index(None, "match_id"))

    market_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    match_id: Mapped[str] = mapped_column(String(128))
    worker: Mapped[str] = mapped_column(String(16), primary_key=True)
    exposure: Mapped[float] = mapped_column()
    live_orders: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column()


class RiskRealised(Base):
    """A settled market's net P&L, in the order the workers settled them: the shared bankroll and the daily and
    weekly stop-losses (their running lows) are computed from these rows."""

    __tablename__ = "risk_realised"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    market_id: Mapped[str] = mapped_column(String(128), unique=True)
    worker: Mapped[str] = mapped_column(String(16))
    settled_at: Mapped[datetime] = mapped_column()
    """Event time of the settlement (the day and week it is booked on)."""
    net_profit: Mapped[float] = mapped_column()
