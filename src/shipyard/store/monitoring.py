"""Monitoring rows: the observation time series and alert episodes, on SQLite and PostgreSQL.

Knows nothing of statistics or rules: callers hand it plain values. Two things must hold when
several monitor processes write at once, and both are decided inside one write transaction:
a rule, model and subject has at most one episode open within its cooldown (so a repeat is
counted, not re-raised), and a rule never gets more notifications in a period than its rate
limit allows. SQLite serializes writers (``BEGIN IMMEDIATE``); on PostgreSQL the transaction
first takes an advisory lock named after the rule.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.core.errors import Conflict, NotFound
from shipyard.core.ids import new_id
from shipyard.store.engine import run_write
from shipyard.store.monitor_models import MonitorAlertRow, MonitorObservationRow

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from shipyard.store.sql import SqlStore

__all__ = ["NOTIFYING_STATES", "AlertRecord", "MonitoringStore", "StoredObservation"]

NOTIFYING_STATES = ("pending", "sent", "partial", "failed")
"""``notify_state`` values that count against a rule's rate limit (a dispatch was attempted)."""


@dataclass(frozen=True, slots=True)
class StoredObservation:
    """One stored observation (``value`` is NaN where NULL was stored)."""

    observation_id: int
    model: str
    version: int | None
    variant: str | None
    kind: str
    statistic: str
    subject: str
    value: float
    window_start_ms: int
    window_end_ms: int
    threshold: float | None
    breached: bool
    detail: dict[str, Any]
    recorded_ms: int


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert episode as stored.

    ``notify_state`` is ``pending`` (dispatch not finished), ``sent``, ``partial`` (some
    notifiers failed), ``failed``, ``rate_limited`` (over the rule's limit: stored, not sent)
    or ``none`` (no notifier configured). ``notifications`` maps each notifier to its result.
    """

    alert_id: str
    rule: str
    model: str
    version: int | None
    variant: str | None
    kind: str
    statistic: str
    subject: str
    value: float
    threshold: float | None
    comparison: str
    severity: str
    window: str
    window_start_ms: int
    window_end_ms: int
    first_seen_ms: int
    last_seen_ms: int
    repeat_count: int
    status: str
    resolved_ms: int | None
    action: str
    notify_state: str
    notifications: dict[str, Any]
    outcome: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (NaN as None)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["value"] = None if math.isnan(self.value) else self.value
        return data


class MonitoringStore:
    """Observation and alert rows of one metadata store."""

    def __init__(self, store: SqlStore) -> None:
        self.engine = store.engine

    # -- observations -----------------------------------------------------------------------

    def add_observations(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert observation rows (all or none); return how many were written."""
        if not rows:
            return 0
        prepared = [
            {**row, "value": _nullable(row["value"]), "detail": json_safe(row.get("detail") or {})}
            for row in rows
        ]
        run_write(self.engine, lambda c: c.execute(sa.insert(MonitorObservationRow), prepared))
        return len(prepared)

    def observations(
        self,
        *,
        model: str | None = None,
        kind: str | None = None,
        statistic: str | None = None,
        subject: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int | None = None,
    ) -> list[StoredObservation]:
        """Observations matching every given filter, oldest window first.

        ``since_ms``/``until_ms`` bound ``window_end_ms`` (``since <= end < until``); with
        ``limit`` the newest ``limit`` rows are returned (still oldest first).
        """
        row = MonitorObservationRow
        query = sa.select(row)
        for column, wanted in (
            (row.model, model),
            (row.kind, kind),
            (row.statistic, statistic),
            (row.subject, subject),
        ):
            if wanted is not None:
                query = query.where(column == wanted)
        if since_ms is not None:
            query = query.where(row.window_end_ms >= since_ms)
        if until_ms is not None:
            query = query.where(row.window_end_ms < until_ms)
        query = query.order_by(row.window_end_ms.desc(), row.observation_id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as c:
            found = c.execute(query).all()
        return [_observation(r) for r in reversed(found)]

    # -- alerts -----------------------------------------------------------------------------

    def raise_alert(
        self,
        values: Mapping[str, Any],
        *,
        now_ms: int,
        cooldown_ms: int,
        rate_max: int,
        rate_per_ms: int,
        notify: bool,
    ) -> tuple[AlertRecord, bool]:
        """Open an episode for ``values`` or count a repeat of the open one; return it and is-new.

        ``values`` holds rule, model, subject and the measured columns (version, variant, kind,
        statistic, value, threshold, comparison, severity, window, window_start_ms,
        window_end_ms, action). An episode of the same rule, model and subject last seen less
        than ``cooldown_ms`` ago is repeated (even if it had resolved meanwhile: a flapping
        signal stays one alert). A new episode gets ``notify_state`` ``pending`` when ``notify``
        and the rule has had fewer than ``rate_max`` notifying episodes in ``rate_per_ms``,
        ``rate_limited`` when it has, ``none`` when not ``notify``.
        """
        rule, model, subject = values["rule"], values["model"], values["subject"]
        measured = {
            "version": values.get("version"),
            "variant": values.get("variant"),
            "value": _nullable(values["value"]),
            "threshold": values.get("threshold"),
            "window": values["window"],
            "window_start_ms": values["window_start_ms"],
            "window_end_ms": values["window_end_ms"],
        }

        def _raise(c: sa.Connection) -> tuple[AlertRecord, bool]:
            _lock_rule(c, rule)
            row = MonitorAlertRow
            latest = c.execute(
                sa.select(row)
                .where(row.rule == rule, row.model == model, row.subject == subject)
                .order_by(row.last_seen_ms.desc())
                .limit(1)
            ).first()
            if latest is not None and now_ms - latest.last_seen_ms < cooldown_ms:
                c.execute(
                    sa.update(row)
                    .where(row.alert_id == latest.alert_id)
                    .values(
                        **measured,
                        last_seen_ms=now_ms,
                        repeat_count=row.repeat_count + 1,
                        status="firing",
                        resolved_ms=None,
                    )
                )
                return self._alert(c, latest.alert_id), False
            state = "none"
            if notify:
                sent = c.execute(
                    sa.select(sa.func.count()).where(
                        row.rule == rule,
                        row.notify_state.in_(NOTIFYING_STATES),
                        row.first_seen_ms > now_ms - rate_per_ms,
                    )
                ).scalar_one()
                state = "pending" if sent < rate_max else "rate_limited"
            alert_id = new_id()
            c.execute(
                sa.insert(row),
                {
                    **{k: values[k] for k in ("kind", "statistic", "comparison", "severity")},
                    **measured,
                    "alert_id": alert_id,
                    "rule": rule,
                    "model": model,
                    "subject": subject,
                    "action": values["action"],
                    "first_seen_ms": now_ms,
                    "last_seen_ms": now_ms,
                    "repeat_count": 0,
                    "status": "firing",
                    "resolved_ms": None,
                    "notify_state": state,
                    "notifications": {},
                    "outcome": None,
                },
            )
            return self._alert(c, alert_id), True

        return run_write(self.engine, _raise)

    def resolve(self, rule: str, model: str, subject: str, *, now_ms: int) -> int:
        """Mark the firing episodes of ``rule``/``model``/``subject`` resolved; return how many."""
        row = MonitorAlertRow

        def _resolve(c: sa.Connection) -> int:
            found = c.execute(
                sa.update(row)
                .where(
                    row.rule == rule,
                    row.model == model,
                    row.subject == subject,
                    row.status == "firing",
                )
                .values(status="resolved", resolved_ms=now_ms)
                .returning(row.alert_id)
            ).all()
            return len(found)

        return run_write(self.engine, _resolve)

    def set_notifications(
        self, alert_id: str, state: str, notifications: Mapping[str, Any]
    ) -> AlertRecord:
        """Record the dispatch results of an alert.

        Raises:
            NotFound: No such alert.
        """

        def _set(c: sa.Connection) -> AlertRecord:
            self._alert(c, alert_id)
            c.execute(
                sa.update(MonitorAlertRow)
                .where(MonitorAlertRow.alert_id == alert_id)
                .values(notify_state=state, notifications=json_safe(dict(notifications)))
            )
            return self._alert(c, alert_id)

        return run_write(self.engine, _set)

    def set_outcome(self, alert_id: str, outcome: Mapping[str, Any]) -> tuple[AlertRecord, bool]:
        """Record what was done about an alert, once; return it and whether this call wrote it.

        A repeat with the same ``text`` and ``numbers`` returns the stored outcome (so a
        retried call notifies nobody twice).

        Raises:
            NotFound: No such alert.
            Conflict: A different outcome is already recorded.
        """
        wanted = json_safe(dict(outcome))

        def _set(c: sa.Connection) -> tuple[AlertRecord, bool]:
            current = self._alert(c, alert_id, for_update=True)
            if current.outcome is not None:
                same = all(current.outcome.get(k) == wanted.get(k) for k in ("text", "numbers"))
                if same:
                    return current, False
                raise Conflict(
                    f"alert {alert_id} already has an outcome ({current.outcome.get('text')!r}); "
                    "an outcome is recorded once"
                )
            c.execute(
                sa.update(MonitorAlertRow)
                .where(MonitorAlertRow.alert_id == alert_id)
                .values(outcome=wanted)
            )
            return self._alert(c, alert_id), True

        return run_write(self.engine, _set)

    def set_outcome_notifications(
        self, alert_id: str, notifications: Mapping[str, Any]
    ) -> AlertRecord:
        """Record how the notifiers fared with an alert's outcome (under ``outcome``).

        Raises:
            NotFound: No such alert.
            Conflict: The alert has no outcome yet.
        """

        def _set(c: sa.Connection) -> AlertRecord:
            current = self._alert(c, alert_id, for_update=True)
            if current.outcome is None:
                raise Conflict(f"alert {alert_id} has no outcome to notify about")
            outcome = {**current.outcome, "notifications": json_safe(dict(notifications))}
            c.execute(
                sa.update(MonitorAlertRow)
                .where(MonitorAlertRow.alert_id == alert_id)
                .values(outcome=outcome)
            )
            return self._alert(c, alert_id)

        return run_write(self.engine, _set)

    def get_alert(self, alert_id: str) -> AlertRecord:
        """Return one alert.

        Raises:
            NotFound: No such alert.
        """
        with self.engine.connect() as c:
            return self._alert(c, alert_id)

    def alerts(
        self,
        *,
        model: str | None = None,
        rule: str | None = None,
        severities: Sequence[str] | None = None,
        status: str | None = None,
        since_ms: int | None = None,
        limit: int | None = 100,
    ) -> list[AlertRecord]:
        """Alerts matching every given filter, most recently seen first.

        ``since_ms`` keeps episodes last seen at or after it.
        """
        row = MonitorAlertRow
        query = sa.select(row)
        if model is not None:
            query = query.where(row.model == model)
        if rule is not None:
            query = query.where(row.rule == rule)
        if severities is not None:
            query = query.where(row.severity.in_(list(severities)))
        if status is not None:
            query = query.where(row.status == status)
        if since_ms is not None:
            query = query.where(row.last_seen_ms >= since_ms)
        query = query.order_by(row.last_seen_ms.desc(), row.alert_id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as c:
            return [_alert(r) for r in c.execute(query).all()]

    def _alert(self, c: sa.Connection, alert_id: str, *, for_update: bool = False) -> AlertRecord:
        query = sa.select(MonitorAlertRow).where(MonitorAlertRow.alert_id == alert_id)
        if for_update and c.dialect.name == "postgresql":
            query = query.with_for_update()
        found = c.execute(query).first()
        if found is None:
            raise NotFound(f"no alert {alert_id!r}; `shipyard monitor alerts` lists them")
        return _alert(found)


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as the strings ``NaN``/``Infinity``/``-Infinity``.

    PostgreSQL's JSON refuses those tokens and SQLite's JSON functions choke on them, so a
    detail like ``{"p_value": nan}`` is stored as text rather than failing the write.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _nullable(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _lock_rule(c: sa.Connection, rule: str) -> None:
    if c.dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE already holds the database's write lock
    digest = hashlib.sha256(f"shipyard.monitor_alerts:{rule}".encode()).digest()
    c.execute(
        sa.text("SELECT pg_advisory_xact_lock(:key)"),
        {"key": int.from_bytes(digest[:8], "big", signed=True)},
    )


def _observation(r: Any) -> StoredObservation:
    return StoredObservation(
        observation_id=r.observation_id,
        model=r.model,
        version=r.version,
        variant=r.variant,
        kind=r.kind,
        statistic=r.statistic,
        subject=r.subject,
        value=math.nan if r.value is None else r.value,
        window_start_ms=r.window_start_ms,
        window_end_ms=r.window_end_ms,
        threshold=r.threshold,
        breached=r.breached,
        detail=dict(r.detail or {}),
        recorded_ms=r.recorded_ms,
    )


def _alert(r: Any) -> AlertRecord:
    return AlertRecord(
        alert_id=r.alert_id,
        rule=r.rule,
        model=r.model,
        version=r.version,
        variant=r.variant,
        kind=r.kind,
        statistic=r.statistic,
        subject=r.subject,
        value=math.nan if r.value is None else r.value,
        threshold=r.threshold,
        comparison=r.comparison,
        severity=r.severity,
        window=r.window,
        window_start_ms=r.window_start_ms,
        window_end_ms=r.window_end_ms,
        first_seen_ms=r.first_seen_ms,
        last_seen_ms=r.last_seen_ms,
        repeat_count=r.repeat_count,
        status=r.status,
        resolved_ms=r.resolved_ms,
        action=r.action,
        notify_state=r.notify_state,
        notifications=dict(r.notifications or {}),
        outcome=dict(r.outcome) if r.outcome is not None else None,
    )
