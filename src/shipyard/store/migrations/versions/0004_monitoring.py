"""monitoring: observations (monitor time series) and alerts

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 18:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_observations",
        sa.Column(
            "observation_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("variant", sa.String(length=100), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("statistic", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("window_start_ms", sa.BigInteger(), nullable=False),
        sa.Column("window_end_ms", sa.BigInteger(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("breached", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("recorded_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("observation_id"),
    )
    op.create_index(
        "ix_monitor_observations_series",
        "monitor_observations",
        ["model", "statistic", "subject", "window_end_ms"],
    )
    op.create_index(
        "ix_monitor_observations_kind", "monitor_observations", ["model", "kind", "window_end_ms"]
    )
    op.create_table(
        "monitor_alerts",
        sa.Column("alert_id", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("variant", sa.String(length=100), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("statistic", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("comparison", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("window", sa.String(length=32), nullable=False),
        sa.Column("window_start_ms", sa.BigInteger(), nullable=False),
        sa.Column("window_end_ms", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("repeat_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resolved_ms", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("notify_state", sa.String(length=16), nullable=False),
        sa.Column("notifications", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    op.create_index(
        "ix_monitor_alerts_episode",
        "monitor_alerts",
        ["rule", "model", "subject", "last_seen_ms"],
    )
    op.create_index("ix_monitor_alerts_model", "monitor_alerts", ["model", "first_seen_ms"])
    op.create_index(
        "ix_monitor_alerts_rule_notified",
        "monitor_alerts",
        ["rule", "notify_state", "first_seen_ms"],
    )


def downgrade() -> None:
    op.drop_index("ix_monitor_alerts_rule_notified", table_name="monitor_alerts")
    op.drop_index("ix_monitor_alerts_model", table_name="monitor_alerts")
    op.drop_index("ix_monitor_alerts_episode", table_name="monitor_alerts")
    op.drop_table("monitor_alerts")
    op.drop_index("ix_monitor_observations_kind", table_name="monitor_observations")
    op.drop_index("ix_monitor_observations_series", table_name="monitor_observations")
    op.drop_table("monitor_observations")
