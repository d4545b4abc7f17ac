"""engine workers partitioned by match: worker heartbeats, match leases and the shared risk tables

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "engine_workers",
        sa.Column("worker", sa.String(length=16), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_at", When, nullable=False),
        sa.Column("started_at", When, nullable=False),
        sa.PrimaryKeyConstraint("worker", name=op.f("pk_engine_workers")),
    )
    op.create_table(
        "match_leases",
        sa.Column("match_id", sa.String(length=128), nullable=False),
        sa.Column("worker", sa.String(length=16), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("acquired_at", When, nullable=False),
        sa.Column("expires_at", When, nullable=False),
        sa.PrimaryKeyConstraint("match_id", name=op.f("pk_match_leases")),
    )
    op.create_table(
        "risk_reservations",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("ref", sa.String(length=32), nullable=False),
        sa.Column("worker", sa.String(length=16), nullable=False),
        sa.Column("placed_by", sa.String(length=16), nullable=False),
        sa.Column("lease_epoch", sa.Integer(), nullable=False),
        sa.Column("match_id", sa.String(length=128), nullable=False),
        sa.Column("market_id", sa.String(length=128), nullable=False),
        sa.Column("placed_at", When, nullable=False),
        sa.Column("total_exposure", sa.Double(), nullable=False),
        sa.Column("others_exposure", sa.Double(), nullable=False),
        sa.Column("live_orders", sa.Integer(), nullable=False),
        sa.Column("orders_in_hour", sa.Integer(), nullable=False),
        sa.Column("reserved_at", When, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_reservations")),
        sa.UniqueConstraint("ref", name=op.f("uq_risk_reservations_ref")),
    )
    op.create_index(op.f("ix_risk_reservations_worker"), "risk_reservations", ["worker"])
    op.create_index(op.f("ix_risk_reservations_placed_at"), "risk_reservations", ["placed_at"])
    op.create_index(op.f("ix_risk_reservations_match_id"), "risk_reservations", ["match_id"])
    op.create_table(
        "risk_positions",
        sa.Column("market_id", sa.String(length=128), nullable=False),
        sa.Column("match_id", sa.String(length=128), nullable=False),
        sa.Column("worker", sa.String(length=16), nullable=False),
        sa.Column("exposure", sa.Double(), nullable=False),
        sa.Column("live_orders", sa.Integer(), nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.PrimaryKeyConstraint("market_id", name=op.f("pk_risk_positions")),
    )
    op.create_index(op.f("ix_risk_positions_worker"), "risk_positions", ["worker"])
    op.create_index(op.f("ix_risk_positions_match_id"), "risk_positions", ["match_id"])
    op.create_table(
        "risk_realised",
        sa.Column("seq", BigId, autoincrement=True, nullable=False),
        sa.Column("market_id", sa.String(length=128), nullable=False),
        sa.Column("worker", sa.String(length=16), nullable=False),
        sa.Column("settled_at", When, nullable=False),
        sa.Column("net_profit", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_risk_realised")),
        sa.UniqueConstraint("market_id", name=op.f("uq_risk_realised_market_id")),
    )


def downgrade() -> None:
    for table in ("risk_realised", "risk_positions", "risk_reservations", "match_leases", "engine_workers"):
        op.drop_table(table)
