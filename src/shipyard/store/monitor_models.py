"""Rows for monitoring: observations (the time series monitors measure) and alerts.

Rows of the same ``Base`` as ``shipyard.store.models`` (``models.full_metadata()``
loads them with the rest); created by migration ``0004_monitoring``. An observation row is
written once. An alert row is one *episode* of a rule firing for one model and subject: repeats
within the rule's cooldown update it (``repeat_count``, ``last_seen_ms``) instead of adding rows,
so the table stays as long as the number of things a person would want to hear about.
As elsewhere, a NaN value is stored as NULL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, String

from shipyard.store.models import ID, Base, mapped_column

if TYPE_CHECKING:
    from sqlalchemy.orm import Mapped

NAME = String(100)


class MonitorObservationRow(Base):
    """One value a monitor measured for one model over one window."""

    __tablename__ = "monitor_observations"
    __table_args__ = (
        Index("ix_monitor_observations_series", "model", "statistic", "subject", "window_end_ms"),
        Index("ix_monitor_observations_kind", "model", "kind", "window_end_ms"),
    )

    observation_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    model: Mapped[str] = mapped_column(NAME)
    version: Mapped[int | None] = mapped_column(Integer)
    variant: Mapped[str | None] = mapped_column(NAME)
    kind: Mapped[str] = mapped_column(String(16))
    statistic: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    value: Mapped[float | None] = mapped_column(Float)
    window_start_ms: Mapped[int] = mapped_column(BigInteger)
    window_end_ms: Mapped[int] = mapped_column(BigInteger)
    threshold: Mapped[float | None] = mapped_column(Float)
    breached: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_ms: Mapped[int] = mapped_column(BigInteger)


class MonitorAlertRow(Base):
    """One episode of a rule firing for a model and subject, and what was done about it."""

    __tablename__ = "monitor_alerts"
    __table_args__ = (
        Index("ix_monitor_alerts_episode", "rule", "model", "subject", "last_seen_ms"),
        Index("ix_monitor_alerts_model", "model", "first_seen_ms"),
        Index("ix_monitor_alerts_rule_notified", "rule", "notify_state", "first_seen_ms"),
    )

    alert_id: Mapped[str] = mapped_column(ID, primary_key=True)
    rule: Mapped[str] = mapped_column(NAME)
    model: Mapped[str] = mapped_column(NAME)
    version: Mapped[int | None] = mapped_column(Integer)
    variant: Mapped[str | None] = mapped_column(NAME)
    kind: Mapped[str] = mapped_column(String(16))
    statistic: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    comparison: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    window: Mapped[str] = mapped_column(String(32))
    window_start_ms: Mapped[int] = mapped_column(BigInteger)
    window_end_ms: Mapped[int] = mapped_column(BigInteger)
    first_seen_ms: Mapped[int] = mapped_column(BigInteger)
    last_seen_ms: Mapped[int] = mapped_column(BigInteger)
    repeat_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    resolved_ms: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(16))
    notify_state: Mapped[str] = mapped_column(String(16))
    notifications: Mapped[dict[str, Any]] = mapped_column(JSON)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)
