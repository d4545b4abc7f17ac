"""live_events: on Postgres, every statement that inserts log entries notifies ``courtside_live`` (the wake-up of the
API replicas that follow the log; SQLite has no NOTIFY: nothing changes there)

A statement trigger (``AFTER INSERT ... FOR EACH STATEMENT``, with the inserted rows as a transition table) calls
``pg_notify('courtside_live', <the largest id it inserted>)`` in the inserting transaction: Postgres delivers it at
commit (after the rows are visible, in commit order), never on rollback. Every log writer is covered without code
changes (``storage.live.commit_step``, ``record_settlement``, ...). The log stays the truth: a listener
(``serving.api.live.LiveService``) only takes a notification as "read by id now".

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "courtside_live"
"""The channel the trigger notifies (``serving.api.live.LOG_CHANNEL`` listens on it)."""

_CREATE = (
    f"""CREATE OR REPLACE FUNCTION courtside_log_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', (SELECT max(id) FROM new_rows)::text);
    RETURN NULL;
END $$""",
    "DROP TRIGGER IF EXISTS courtside_log_notify ON live_events",
    """CREATE TRIGGER courtside_log_notify AFTER INSERT ON live_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION courtside_log_notify()""",
)
_DROP = (
    "DROP TRIGGER IF EXISTS courtside_log_notify ON live_events",
    "DROP FUNCTION IF EXISTS courtside_log_notify()",
)
NOTIFY_TRIGGER = "".join(f"{s};\n" for s in _CREATE)
"""The upgrade as one script: creates (or re-creates) the trigger and its function (benchmarks/log_delivery_bench.py
runs it)."""
DROP_NOTIFY_TRIGGER = "".join(f"{s};\n" for s in _DROP)
"""The downgrade as one script."""


def _run(statements: Sequence[str]) -> None:
    if op.get_context().dialect.name == "postgresql":  # SQLite has no NOTIFY: the API replicas poll it
        for statement in statements:
            op.execute(statement)


def upgrade() -> None:
    _run(_CREATE)


def downgrade() -> None:
    _run(_DROP)
