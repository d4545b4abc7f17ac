"""risk_positions: one row per market and worker (a worker that lost a match adds its stale row, never replaces
the new holder's)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 15:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

When = sa.DateTime(timezone=True)


def _positions(primary_key: list[str]) -> None:
    # the table holds only what the workers publish again at their next tick: recreated, not altered (SQLite too)
    op.drop_index(op.f("ix_risk_positions_match_id"), table_name="risk_positions")
    op.drop_index(op.f("ix_risk_positions_worker"), table_name="risk_positions")
    op.drop_table("risk_positions")
    op.create_table(
        "risk_positions",
        sa.Column("market_id", sa.String(length=128), nullable=False),
        sa.Column("match_id", sa.String(length=128), nullable=False),
        sa.Column("worker", sa.String(length=16), nullable=False),
        sa.Column("exposure", sa.Double(), nullable=False),
        sa.Column("live_orders", sa.Integer(), nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.PrimaryKeyConstraint(*primary_key, name=op.f("pk_risk_positions")),
    )
    op.create_index(op.f("ix_risk_positions_worker"), "risk_positions", ["worker"])
    op.create_index(op.f("ix_risk_positions_match_id"), "risk_positions", ["match_id"])


def upgrade() -> None:
    _positions(["market_id", "worker"])


def downgrade() -> None:
    _positions(["market_id"])
