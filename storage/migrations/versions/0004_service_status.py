"""service status (the supervisor of make up)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 03:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service_status",
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("crashes", sa.Integer(), nullable=False),
        sa.Column("last_exit_code", sa.Integer(), nullable=True),
        sa.Column("last_exit", sa.Text(), nullable=True),
        sa.Column("last_crash_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_restart_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("crash_loop", sa.Boolean(), nullable=False),
        sa.Column("crash_loop_reason", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("service", name=op.f("pk_service_status")),
    )


def downgrade() -> None:
    op.drop_table("service_status")
