"""The supervisor's view of the long-running services of ``make up`` (``service_status``): what runs,
under which pid, how often it crashed and restarted, and whether it is in a crash loop. The supervisor
(``courtside.supervisor``) writes it; the live API and the dashboard read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from storage.models import ServiceStatusRow

COLUMNS = (
    "state",
    "pid",
    "restarts",
    "crashes",
    "last_exit_code",
    "last_exit",
    "last_crash_at",
    "next_restart_at",
    "crash_loop",
    "crash_loop_reason",
    "started_at",
)
"""What one service's status holds besides its name and ``updated_at``."""


def record_service_statuses(engine: Engine, statuses: Iterable[Mapping[str, Any]], at: datetime | None = None) -> None:
    """Upsert the status of each service (a mapping with ``service`` and the ``COLUMNS``), one transaction."""
    now = at or datetime.now(UTC)
    with engine.begin() as conn:
        for status in statuses:
            values = {k: status.get(k) for k in COLUMNS}
            values["restarts"] = int(values["restarts"] or 0)
            values["crashes"] = int(values["crashes"] or 0)
            values["crash_loop"] = bool(values["crash_loop"])
            values["updated_at"] = now
            name = str(status["service"])[:64]
            changed = conn.execute(update(ServiceStatusRow).where(ServiceStatusRow.service == name).values(**values))
            if changed.rowcount == 0:
                conn.execute(insert(ServiceStatusRow).values(service=name, **values))


def service_statuses(engine: Engine) -> list[dict[str, Any]]:
    """Every supervised service's last reported status, by name."""
    q = select(ServiceStatusRow).order_by(ServiceStatusRow.service)
    with engine.connect() as conn:
        return [
            {"service": r.service, **{k: getattr(r, k) for k in COLUMNS}, "updated_at": r.updated_at}
            for r in conn.execute(q)
        ]


def reset_service_statuses(engine: Engine) -> None:
    """Forget every service (a new ``make up`` supervises a new set)."""
    with engine.begin() as conn:
        conn.execute(delete(ServiceStatusRow))
