"""The alert engine: judge observations against the rules, keep alerts, notify, ask for retraining.

One call per monitor pass: ``AlertEngine(...).process(observations)``. Each observation is
stored (the time series), every rule that applies to it is judged, and:

* a breach opens an alert *episode* for (rule, model, subject), or, if one was seen within the
  rule's cooldown, counts a repeat on it (no second notification: deduplication);
* a new episode is sent to the rule's notifiers unless the rule already notified ``max`` times
  in its rate-limit period (then it is stored as ``rate_limited``); each notifier's result
  (sent/failed, attempts, error) is stored on the alert;
* an observation inside the threshold resolves the open episode.

``process`` returns the new episodes whose rule asks for ``retrain``; the pipeline retrains and
reports back with :meth:`AlertEngine.record_outcome` ("promoted"/"refused" and the numbers),
which is stored on the alert and sent through the same notifiers. A crash between opening an
episode and dispatching leaves it ``pending`` (visible in ``shipyard monitor alerts``), never
lost and never sent twice.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import InvalidArgument
from shipyard.monitor.config import format_duration
from shipyard.monitor.history import ObservationHistory, check_observation
from shipyard.monitor.notify import Message, build_notifiers, dispatch
from shipyard.store.monitoring import AlertRecord, MonitoringStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from shipyard.monitor.config import AlertRule, MonitorConfig
    from shipyard.monitor.notify import Delivery, Notifier
    from shipyard.monitor.signals import Observation
    from shipyard.track.workspace import Workspace

__all__ = ["Alert", "AlertEngine", "Evaluation", "alert_message"]

Alert = AlertRecord
"""An alert episode as stored (see ``shipyard.store.monitoring.AlertRecord``)."""

MAX_OUTCOME_TEXT = 2000


@dataclass(frozen=True)
class Evaluation:
    """What one pass did: episodes opened (after notification), repeats counted, resolutions."""

    opened: list[Alert] = field(default_factory=list)
    repeated: list[Alert] = field(default_factory=list)
    resolved: int = 0

    @property
    def retrain_requests(self) -> list[Alert]:
        """The opened episodes whose rule's action is ``retrain``."""
        return [a for a in self.opened if a.action == "retrain"]


class AlertEngine:
    """Rules + notifiers over the monitoring store; see the module docstring for the policy."""

    def __init__(
        self,
        store: MonitoringStore,
        rules: Sequence[AlertRule],
        notifiers: Mapping[str, Notifier],
        clock: Clock = SYSTEM_CLOCK,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Check that every rule's ``notify`` names a notifier given here.

        Raises:
            InvalidArgument: Two rules share a name, or a rule names an unknown notifier.
        """
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise InvalidArgument(f"rule names must be unique, got {sorted(names)}")
        for rule in rules:
            missing = sorted(set(rule.notify or ()) - set(notifiers))
            if missing:
                raise InvalidArgument(f"rule {rule.name!r} names unknown notifiers {missing}")
        self.store = store
        self.rules = list(rules)
        self.notifiers = dict(notifiers)
        self.clock = clock
        self.history = ObservationHistory(store, clock)
        self._sleep = sleep

    @classmethod
    def from_config(
        cls, store: MonitoringStore, config: MonitorConfig, clock: Clock = SYSTEM_CLOCK
    ) -> AlertEngine:
        """The engine for a project's ``monitor:`` section (notifiers built now).

        Raises:
            InvalidArgument: A notifier's ``${ENV}`` secret is not set.
        """
        return cls(store, config.rules, build_notifiers(config.notifiers), clock)

    @classmethod
    def for_workspace(cls, workspace: Workspace, config: MonitorConfig) -> AlertEngine:
        """The engine for ``config`` over a workspace's monitoring tables and clock.

        The public entry point (``shipyard.AlertEngine.for_workspace``): callers need not
        reach into the store layer for a ``MonitoringStore``.

        Raises:
            InvalidArgument: A notifier's ``${ENV}`` secret is not set.
        """
        return cls.from_config(MonitoringStore(workspace.store), config, workspace.clock)

    def process(self, observations: Iterable[Observation]) -> list[Alert]:
        """Store and judge ``observations``; return the new alerts that ask for retraining.

        Raises:
            InvalidArgument: An observation is malformed (nothing is stored then).
        """
        return self.evaluate(observations).retrain_requests

    def evaluate(self, observations: Iterable[Observation], *, record: bool = True) -> Evaluation:
        """Like :meth:`process`, returning everything the pass did.

        With ``record=False`` the observations are judged but not stored (already stored).

        Raises:
            InvalidArgument: An observation is malformed (nothing is stored then).
        """
        items = list(observations)
        for i, obs in enumerate(items):
            check_observation(obs, where=f"observation {i}")
        if record:
            self.history.record(items)
        result = Evaluation()
        resolved = 0
        for obs in items:
            for rule in self.rules:
                if not rule.applies_to(obs):
                    continue
                now = self.clock.now_ms()
                if not rule.breached(obs):
                    resolved += self.store.resolve(rule.name, obs.model, obs.subject, now_ms=now)
                    continue
                alert, is_new = self._raise(rule, obs, now)
                if not is_new:
                    result.repeated.append(alert)
                    continue
                if alert.notify_state == "pending":
                    alert = self._notify(rule, alert)
                result.opened.append(alert)
        return Evaluation(result.opened, result.repeated, resolved)

    def record_outcome(
        self, alert_id: str, text: str, numbers: Mapping[str, float] | None = None
    ) -> Alert:
        """Store what was done about an alert (e.g. ``promoted``) and tell its notifiers.

        Recorded once: the same call again changes and sends nothing.

        Raises:
            InvalidArgument: ``text`` is empty or too long, or a number is not a number.
            NotFound: No such alert.
            Conflict: A different outcome was already recorded.
        """
        if not text.strip() or len(text) > MAX_OUTCOME_TEXT:
            raise InvalidArgument(f"outcome text must be 1 to {MAX_OUTCOME_TEXT} characters")
        values: dict[str, float] = {}
        for key, value in (numbers or {}).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidArgument(f"outcome number {key!r} is not a number: {value!r}")
            values[str(key)] = float(value)
        alert, written = self.store.set_outcome(
            alert_id, {"text": text, "numbers": values, "at_ms": self.clock.now_ms()}
        )
        if not written:
            return alert
        rule = next((r for r in self.rules if r.name == alert.rule), None)
        targets = self._targets(rule)
        if not targets:
            return alert
        shown = ", ".join(f"{k}={_num(v)}" for k, v in values.items())
        message = Message(
            event="outcome",
            title=f"{alert.model}: {alert.action} after {alert.rule} — {text}",
            text=f"alert {alert.alert_id} ({alert.statistic} of {alert.subject}): {text}"
            + (f" ({shown})" if shown else ""),
            severity=alert.severity,
            data={"alert_id": alert.alert_id, "rule": alert.rule, "model": alert.model}
            | {"outcome": text}
            | values,
        )
        deliveries = dispatch(targets, message, clock=self.clock, sleep=self._sleep)
        return self.store.set_outcome_notifications(
            alert_id, {name: d.to_dict() for name, d in deliveries.items()}
        )

    # -- internals --------------------------------------------------------------------------

    def _raise(self, rule: AlertRule, obs: Observation, now: int) -> tuple[Alert, bool]:
        window = rule.window.label if rule.window is not None else _span(obs)
        return self.store.raise_alert(
            {
                "rule": rule.name,
                "model": obs.model,
                "version": obs.version,
                "variant": obs.variant,
                "kind": obs.kind,
                "statistic": obs.statistic,
                "subject": obs.subject,
                "value": obs.value,
                "threshold": rule.threshold_for(obs),
                "comparison": rule.comparison if rule.threshold is not None else "breached",
                "severity": rule.severity,
                "window": window,
                "window_start_ms": obs.window_start_ms,
                "window_end_ms": obs.window_end_ms,
                "action": rule.action,
            },
            now_ms=now,
            cooldown_ms=rule.cooldown,
            rate_max=rule.rate_limit.max,
            rate_per_ms=rule.rate_limit.per,
            notify=bool(self._targets(rule)),
        )

    def _targets(self, rule: AlertRule | None) -> list[Notifier]:
        if rule is None or rule.notify is None:
            return list(self.notifiers.values())
        return [self.notifiers[name] for name in rule.notify]

    def _notify(self, rule: AlertRule, alert: Alert) -> Alert:
        deliveries = dispatch(
            self._targets(rule), alert_message(alert), clock=self.clock, sleep=self._sleep
        )
        return self.store.set_notifications(
            alert.alert_id,
            _state(deliveries),
            {name: d.to_dict() for name, d in deliveries.items()},
        )


def alert_message(alert: Alert) -> Message:
    """The notification for a newly opened alert."""
    bound = (
        f"{alert.comparison} {_num(alert.threshold)}"
        if alert.comparison in ("above", "below")
        else "past the monitor's threshold"
    )
    version = f" v{alert.version}" if alert.version is not None else ""
    window = f"{_utc(alert.window_start_ms)} to {_utc(alert.window_end_ms)}"
    return Message(
        event="alert",
        title=f"{alert.model}: {alert.statistic} of {alert.subject} {bound}",
        text=(
            f"{alert.statistic} = {_num(alert.value)} for {alert.subject} of {alert.model}"
            f"{version} over {alert.window} ({window}); rule {alert.rule}, "
            f"{alert.severity}; action: {alert.action}"
        ),
        severity=alert.severity,
        data={
            "alert_id": alert.alert_id,
            "rule": alert.rule,
            "model": alert.model,
            "version": alert.version,
            "variant": alert.variant,
            "kind": alert.kind,
            "statistic": alert.statistic,
            "subject": alert.subject,
            "value": None if math.isnan(alert.value) else alert.value,
            "threshold": alert.threshold,
            "comparison": alert.comparison,
            "window": alert.window,
            "window_start_ms": alert.window_start_ms,
            "window_end_ms": alert.window_end_ms,
            "action": alert.action,
        },
    )


def _state(deliveries: Mapping[str, Delivery]) -> str:
    ok = [d.ok for d in deliveries.values()]
    if all(ok):
        return "sent"
    return "partial" if any(ok) else "failed"


def _span(obs: Observation) -> str:
    rows = obs.detail.get("window_rows")
    if isinstance(rows, int) and not isinstance(rows, bool):
        return f"{rows} rows"
    span = obs.window_end_ms - obs.window_start_ms
    return format_duration(span) if span > 0 else "instant"


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return "NaN" if isinstance(value, float) and math.isnan(value) else f"{value:.4g}"


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")
