"""Value alerts of the live API: what a subscription may name (matches and players the live view knows), and
the webhook deliverer.

A subscription's ``match_ids`` must be matches of the live view and each of its ``players`` must name a
player of one of them: a full name or whole words of one ("Djokovic", "juan carlos"), compared without case
or accents (``features.names.normalize_name``); it is resolved to the full names it designates, and an
unknown one is refused with the closest names.

The deliverer (``WebhookDeliverer``, started and stopped with the ``LiveService``) sends the deliveries the
service queued (``storage.alerts``): a POST of ``{"alert_id", "event_id", "value_bet", "sent_at"}`` with

- ``X-Courtside-Signature: sha256=<hex HMAC-SHA256 of the exact body with the subscription's secret>``,
- ``X-Courtside-Delivery: <delivery id>`` (the same on every retry of one delivery: a receiver that saw it
  already can drop it) and ``X-Courtside-Alert: <alert id>``.

A 2xx answer is a delivery; anything else (another status, a refused connection, no answer within
``timeout_s``) is retried after 1 s, 2 s, 4 s, ... (at most ``cap_s``) until ``max_attempts`` were made,
then the delivery is ``failed``. Redirects are not followed. Every attempt is in the delivery log.

One deliverer per database: with several API processes (``python -m serving.api --replicas N``) every one
queues deliveries (idempotent) but only the holder of the ``DeliveryLease`` sends them -- a PostgreSQL
session advisory lock, or an exclusive ``flock`` on a file beside a SQLite database. The lock goes with its
holder (a process that dies, or whose database session ends, releases it) and another replica takes it
within ``lease_retry_s``. Delivery stays at least once, as with one process: a holder that dies between a
POST and recording it leaves the delivery pending, and the next holder sends it again (same
``X-Courtside-Delivery``).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic_core import to_jsonable_python
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as DbEngine

from features.names import normalize_name
from serving.errors import MAX_DETAILS, error_response, excerpt
from storage import alerts as store

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Courtside-Signature"
DELIVERY_HEADER = "X-Courtside-Delivery"
ALERT_HEADER = "X-Courtside-Alert"


# --- what may be subscribed to ----------------------------------------------------------------------------
def webhook_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook (only absolute http(s) URLs with a host), or None."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "webhook_url must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        return f"webhook_url is not a URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return "webhook_url must be an http:// or https:// URL"
    if not parts.hostname:
        return "webhook_url has no host"
    return None


def player_index(players: Iterable[str]) -> dict[str, str]:
    """Normalised name -> the name as the feed spells it, of the given players (empty names left out)."""
    out: dict[str, str] = {}
    for name in players:
        key = normalize_name(name)
        if key:
            out.setdefault(key, name)
    return out


def _close(key: str, pool: dict[str, list[str]], n: int = 3) -> list[str]:
    """The names of the ``n`` closest pool entries (pool: text compared -> names it stands for)."""
    found = difflib.get_close_matches(key, list(pool), n=n * 2, cutoff=0.6)
    return list(dict.fromkeys(name for k in found for name in pool[k]))[:n]


def resolve_players(requested: list[str], index: dict[str, str]) -> tuple[list[str], list[dict[str, Any]]]:
    """(the full names the entries designate, problems of the entries that designate nobody)."""
    resolved: list[str] = []
    problems: list[dict[str, Any]] = []
    words: dict[str, list[str]] = {}
    for key, name in index.items():
        words.setdefault(key, []).append(name)
        for word in key.split():
            words.setdefault(word, []).append(name)
    for i, entry in enumerate(requested):
        key = normalize_name(entry)
        hits = [index[key]] if key in index else [n for k, n in index.items() if key and f" {key} " in f" {k} "]
        if hits:
            resolved.extend(sorted(hits))
            continue
        close = _close(key, words) if key else []
        hint = f"; did you mean {' or '.join(close)}?" if close else "; no player of the matches followed is close"
        problems.append(
            {
                "loc": ["body", "players", i],
                "msg": f"unknown player {excerpt(entry)!r}{hint}",
                "type": "unknown_player",
                "input": excerpt(entry),
                "suggestions": close,
            }
        )
    return list(dict.fromkeys(resolved)), problems


def unknown_matches(requested: list[str], known: Collection[str]) -> list[dict[str, Any]]:
    """Problems of the match ids that are not in ``known``, each with the closest known ids."""
    problems = []
    for i, match_id in enumerate(requested):
        if match_id in known:
            continue
        close = difflib.get_close_matches(match_id, list(known), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        problems.append(
            {
                "loc": ["body", "match_ids", i],
                "msg": f"unknown match {excerpt(match_id)!r}{hint}",
                "type": "unknown_match",
                "input": excerpt(match_id),
                "suggestions": close,
            }
        )
    return problems


def criteria_response(problems: list[dict[str, Any]]):
    """The 422 of a subscription naming unknown matches or players (the error shape of ``serving.errors``)."""
    shown = problems[:MAX_DETAILS]
    message = "; ".join(p["msg"] for p in shown[:3])
    if len(problems) > 3:
        message += f" ({len(problems)} unknown entries; the first {len(shown)} are in detail)"
    return error_response(422, message, shown)


# --- delivering to webhooks --------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebhookConfig:
    """How webhooks are called and retried."""

    timeout_s: float = 5.0
    """Longest wait for a webhook's answer (connecting included)."""
    base_s: float = 1.0
    """Wait before the first retry; it doubles with each failed attempt ..."""
    cap_s: float = 60.0
    """... up to this."""
    max_attempts: int = 8
    """Attempts before a delivery is ``failed``."""
    poll_s: float = 0.5
    """Seconds between looks for due deliveries (the service wakes the deliverer when it queues new ones)."""
    batch: int = 100
    concurrency: int = 16
    """Webhooks called at once (one subscription's deliveries go one after the other, in log order)."""
    purge_every_s: float = 60.0
    """Seconds between deletions of expired subscriptions."""
    grace_s: float = 5.0
    """At stop, how long the deliveries under way may finish (so they are recorded, not sent again)."""
    lease_retry_s: float = 2.0
    """Seconds between tries to take the delivery lease while another API process (a replica) holds it."""


LEASE_KEY = int.from_bytes(hashlib.sha256(b"courtside.alerts.webhook-deliverer").digest()[:8], "big", signed=True)
"""The PostgreSQL advisory lock of the webhook deliverer (a fixed 64-bit key)."""


class DeliveryLease:
    """Who sends the webhooks of one database, among the API processes using it: the holder of a lock that goes
    with its holder. PostgreSQL: a session advisory lock (``pg_try_advisory_lock(LEASE_KEY)``) on a connection of
    its own, checked before each batch (a lost connection is a lost lease). SQLite: an exclusive ``flock`` on
    ``<database file>.deliverer.lock`` (processes sharing a SQLite file are on one machine). Another database (or
    SQLite in memory): one process, always the holder. The methods block: call them in a thread."""

    def __init__(self, db: DbEngine):
        self.db = db
        self.held = False
        self.kind = db.dialect.name
        self._conn: Connection | None = None
        self._fd: int | None = None
        database = db.url.database or ""
        self.path = (
            f"{database}.deliverer.lock"
            if self.kind == "sqlite" and database and database != ":memory:" and not database.startswith("file:")
            else None
        )

    def acquire(self) -> bool:
        """Take the lease if it is free (or keep it); whether it is held."""
        if self.held:
            return self.check()
        if self.kind == "postgresql":
            conn = self.db.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                got = bool(conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({LEASE_KEY})").scalar())
            except Exception:
                conn.close()
                raise
            if got:
                self._conn = conn
            else:
                conn.close()
            self.held = got
        elif self.path is not None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            self._fd, self.held = fd, True
        else:
            self.held = True
        return self.held

    def check(self) -> bool:
        """Whether the lease is still held (on PostgreSQL: its connection still answers)."""
        if self.held and self._conn is not None:
            try:
                self._conn.exec_driver_sql("SELECT 1").scalar()
            except Exception as exc:  # noqa: BLE001 - a broken connection: the lock went with its session
                log.warning("the webhook delivery lease was lost with its database connection: %s", exc)
                self._drop()
        return self.held

    def release(self) -> None:
        if self._conn is not None and self.held:
            with contextlib.suppress(Exception):
                self._conn.exec_driver_sql(f"SELECT pg_advisory_unlock({LEASE_KEY})")
        self._drop()

    def _drop(self) -> None:
        self.held = False
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()  # the session ends: its lock is released for sure
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the file releases the flock
            self._fd = None


def sign(secret: str, body: bytes) -> str:
    """The ``X-Courtside-Signature`` of ``body``: ``sha256=`` and the hex HMAC-SHA256 with ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(alert_id: str, event_id: int, value_bet: dict[str, Any], sent_at: datetime) -> bytes:
    """The exact bytes POSTed (and signed)."""
    message = {"alert_id": alert_id, "event_id": event_id, "value_bet": value_bet, "sent_at": sent_at}
    return json.dumps(to_jsonable_python(message), separators=(",", ":")).encode()


class WebhookDeliverer:
    """Sends the due deliveries of ``storage.alerts`` to their webhooks, with retries; an asyncio task."""

    def __init__(self, db: DbEngine, config: WebhookConfig | None = None, lease: DeliveryLease | None = None):
        self.db = db
        self.cfg = config or WebhookConfig()
        self.lease = lease or DeliveryLease(db)
        self.wake = asyncio.Event()
        self.delivered = 0
        self.failed_attempts = 0
        self.errors = 0
        self.last_error: str | None = None
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._stopping = False
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s),
            headers={"User-Agent": "Courtside-Alerts/1"},
        )
        self._task = asyncio.get_running_loop().create_task(self._run())

    def notify(self) -> None:
        """New deliveries were queued: look now rather than at the next poll."""
        self.wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self.wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=self.cfg.grace_s)
            if not done:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        await asyncio.to_thread(self.lease.release)

    def figures(self) -> dict[str, Any]:
        return {
            "delivering": self.lease.held,
            "delivered": self.delivered,
            "failed_attempts": self.failed_attempts,
            "errors": self.errors,
            "last_error": self.last_error,
        }

    async def _run(self) -> None:
        next_purge = 0.0
        while not self._stopping:
            self.wake.clear()
            due: list[dict[str, Any]] = []
            try:
                was = self.lease.held
                if not await asyncio.to_thread(self.lease.acquire):
                    if was:
                        log.warning("this process no longer delivers the webhooks (the lease was lost)")
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
                    # arrives as the awaited event is set, and stop() would then wait for ever
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.cfg.lease_retry_s):
                            await self._stopped()
                    continue
                if not was:
                    log.info("this process delivers the webhooks (it holds the delivery lease)")
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + self.cfg.purge_every_s
                    purged = await asyncio.to_thread(store.purge_expired, self.db)
                    if purged:
                        log.info("%d expired alert subscriptions deleted", purged)
                due = await asyncio.to_thread(store.due_deliveries, self.db, None, self.cfg.batch)
                if due:
                    await self._deliver(due)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not end the deliveries
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("alert deliveries: %s; retrying", self.last_error)
            if self._stopping:
                break
            if len(due) < self.cfg.batch:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.cfg.poll_s):
                        await self.wake.wait()

    async def _stopped(self) -> None:
        while not self._stopping:
            await self.wake.wait()
            self.wake.clear()

    async def _deliver(self, due: list[dict[str, Any]]) -> None:
        by_alert: dict[str, list[dict[str, Any]]] = {}
        for d in due:
            by_alert.setdefault(d["alert_id"], []).append(d)
        gate = asyncio.Semaphore(self.cfg.concurrency)

        async def in_order(deliveries: list[dict[str, Any]]) -> None:
            async with gate:
                for d in deliveries:
                    if self._stopping or not await self._send(d):
                        return  # the rest waits: a webhook that just failed is not hammered

        results = await asyncio.gather(*(in_order(ds) for ds in by_alert.values()), return_exceptions=True)
        for r in results:  # a delivery that could not be recorded stays pending: it is tried again later
            if isinstance(r, BaseException):
                if isinstance(r, asyncio.CancelledError):
                    raise r
                self.errors += 1
                self.last_error = f"{type(r).__name__}: {r}"[:500]
                log.warning("alert deliveries: %s", self.last_error)

    async def _send(self, d: dict[str, Any]) -> bool:
        """One attempt, recorded in the delivery log; True when delivered."""
        assert self._session is not None
        body = webhook_body(d["alert_id"], int(d["event_id"]), d["payload"], datetime.now(UTC))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(d["secret"] or "", body),
            DELIVERY_HEADER: str(d["id"]),
            ALERT_HEADER: d["alert_id"],
        }
        status: int | None = None
        try:
            async with self._session.post(d["webhook_url"], data=body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of one webhook is that delivery's error
            error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        if error is None and status is not None:
            await asyncio.to_thread(store.mark_delivered, self.db, d["id"], status)
            self.delivered += 1
            return True
        self.failed_attempts += 1
        outcome = await asyncio.to_thread(
            store.mark_failed_attempt,
            self.db,
            d["id"],
            error=error or "no answer",
            status_code=status,
            max_attempts=self.cfg.max_attempts,
            base_s=self.cfg.base_s,
            cap_s=self.cfg.cap_s,
        )
        log.info(
            "alert %s delivery %s (entry %s) attempt %d failed: %s%s",
            d["alert_id"],
            d["id"],
            d["event_id"],
            outcome["attempts"],
            error,
            "; given up" if outcome["status"] == store.FAILED else f"; retry at {outcome['next_attempt_at']}",
        )
        return False
