"""The alert engine on a real store (SQLite) with real receivers: dedup, rate limits, outcomes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from shipyard.core.clock import ManualClock
from shipyard.core.errors import Conflict, InvalidArgument, NotFound
from shipyard.monitor.alerts import AlertEngine, alert_message
from shipyard.monitor.config import AlertRule, MonitorConfig
from shipyard.monitor.history import SERIES_SCHEMA, ObservationHistory
from shipyard.monitor.notify import build_notifiers
from shipyard.monitor.signals import Observation
from shipyard.store.monitoring import MonitoringStore
from shipyard.store.sql import SqlStore
from tests.unit.monitor.receivers import HttpReceiver

HOUR = 3_600_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MonitoringStore]:
    sql = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    yield MonitoringStore(sql)
    sql.close()


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver().running() as r:
        yield r


def obs(clock: ManualClock, **extra: Any) -> Observation:
    end = clock.now_ms()
    values: dict[str, Any] = {
        "model": "churn",
        "version": 3,
        "kind": "drift",
        "statistic": "psi",
        "subject": "tenure",
        "value": 0.3,
        "window_start_ms": end - HOUR,
        "window_end_ms": end,
        "threshold": 0.2,
        "breached": True,
    }
    values.update(extra)
    return Observation(**values)


def engine(
    store: MonitoringStore, clock: ManualClock, rules: list[dict[str, Any]], **hooks: str
) -> AlertEngine:
    config = MonitorConfig.model_validate(
        {
            "rules": rules,
            "notifiers": {
                name: {"type": "webhook", "url": url, "allow_private_network": True, "retries": 0}
                for name, url in hooks.items()
            },
        }
    )
    return AlertEngine(
        store, config.rules, build_notifiers(config.notifiers), clock, sleep=lambda _: None
    )


def test_repeats_are_counted_not_re_sent(store: MonitoringStore, receiver: HttpReceiver) -> None:
    clock = ManualClock()
    rule = {"name": "psi-high", "statistic": "psi", "feature": "*", "above": 0.2, "cooldown": "1h"}
    alerts = engine(store, clock, [rule], ops=f"{receiver.url}/hook")
    first = alerts.evaluate([obs(clock), obs(clock, subject="age", value=0.1)])
    (opened,) = first.opened
    assert (opened.rule, opened.subject, opened.value, opened.threshold) == (
        "psi-high",
        "tenure",
        0.3,
        0.2,
    )
    assert (opened.version, opened.window, opened.severity, opened.action) == (
        3,
        "1h",
        "warning",
        "notify",
    )
    assert opened.notify_state == "sent"
    assert opened.notifications["ops"]["status"] == "sent"
    assert len(receiver.requests) == 1
    assert receiver.requests[0].body["data"]["alert_id"] == opened.alert_id
    for _ in range(3):
        clock.advance(seconds=20 * 60)
        again = alerts.evaluate([obs(clock, value=0.4)])
        assert again.opened == []
        assert [a.alert_id for a in again.repeated] == [opened.alert_id]
    assert len(receiver.requests) == 1  # deduplicated
    stored = alerts.store.get_alert(opened.alert_id)
    assert (stored.repeat_count, stored.value, stored.last_seen_ms) == (3, 0.4, clock.now_ms())
    clock.advance(seconds=2 * 3600)  # quiet past the cooldown
    (later,) = alerts.evaluate([obs(clock)]).opened
    assert later.alert_id != opened.alert_id
    assert len(receiver.requests) == 2
    # every observation was stored as the time series
    history = ObservationHistory(store)
    assert len(history.query(model="churn", statistic="psi", subject="tenure")) == 5
    assert [o.value for o in history.query(subject="age")] == [0.1]


def test_rate_limit_stores_alerts_without_sending(
    store: MonitoringStore, receiver: HttpReceiver
) -> None:
    clock = ManualClock()
    rule = {"statistic": "psi", "above": 0.2, "rate_limit": {"max": 2, "per": "1h"}}
    alerts = engine(store, clock, [rule], ops=f"{receiver.url}/hook")
    result = alerts.evaluate([obs(clock, subject=f"f{i}") for i in range(4)])
    assert [a.notify_state for a in result.opened] == [
        "sent",
        "sent",
        "rate_limited",
        "rate_limited",
    ]
    assert len(receiver.requests) == 2
    assert len(store.alerts()) == 4
    clock.advance(seconds=3601)
    (fresh,) = alerts.evaluate([obs(clock, subject="g")]).opened
    assert fresh.notify_state == "sent"


def test_a_failing_notifier_is_recorded_and_does_not_block_others(
    store: MonitoringStore, receiver: HttpReceiver
) -> None:
    clock = ManualClock()
    with HttpReceiver(statuses=[500]).running() as broken:
        alerts = engine(
            store,
            clock,
            [{"statistic": "psi", "above": 0.2}],
            good=f"{receiver.url}/ok",
            bad=f"{broken.url}/secret-token",
        )
        (opened,) = alerts.evaluate([obs(clock)]).opened
    assert opened.notify_state == "partial"
    assert opened.notifications["good"]["status"] == "sent"
    bad = opened.notifications["bad"]
    assert (bad["status"], bad["attempts"], bad["error"]) == ("failed", 1, "HTTP 500")
    assert len(receiver.requests) == 1
    assert store.get_alert(opened.alert_id).notifications == opened.notifications


def test_clear_observations_resolve(store: MonitoringStore) -> None:
    clock = ManualClock()
    alerts = AlertEngine(store, [AlertRule(statistic="accuracy", below=0.8)], {}, clock)
    (opened,) = alerts.evaluate(
        [obs(clock, kind="performance", statistic="accuracy", value=0.7)]
    ).opened
    assert opened.notify_state == "none"  # no notifier given to the engine
    assert opened.comparison == "below"
    clock.advance(seconds=60)
    result = alerts.evaluate([obs(clock, kind="performance", statistic="accuracy", value=0.9)])
    assert (result.opened, result.repeated, result.resolved) == ([], [], 1)
    assert store.get_alert(opened.alert_id).status == "resolved"
    # NaN is not a breach either
    nan = alerts.evaluate([obs(clock, kind="performance", statistic="accuracy", value=math.nan)])
    assert nan.opened == []


def test_process_returns_new_retrain_requests_and_outcomes_are_sent_once(
    store: MonitoringStore, receiver: HttpReceiver
) -> None:
    clock = ManualClock()
    rules = [
        {"name": "auc-low", "metric": "roc_auc", "below": 0.7, "action": "retrain"},
        {"name": "psi-high", "statistic": "psi", "above": 0.2},
    ]
    alerts = engine(store, clock, rules, ops=f"{receiver.url}/hook")
    auc = obs(clock, kind="performance", statistic="roc_auc", subject="*", value=0.6)
    (request,) = alerts.process([auc, obs(clock)])
    assert (request.rule, request.action, request.model) == ("auc-low", "retrain", "churn")
    clock.advance(seconds=60)
    assert alerts.process([auc]) == []  # a repeat asks for nothing new
    assert len(receiver.requests) == 2
    clock.advance(seconds=60)
    done = alerts.record_outcome(request.alert_id, "promoted", {"roc_auc": 0.81, "version": 4})
    assert done.outcome is not None
    assert done.outcome["text"] == "promoted"
    assert done.outcome["numbers"] == {"roc_auc": 0.81, "version": 4.0}
    assert done.outcome["at_ms"] == clock.now_ms()
    assert done.outcome["notifications"]["ops"]["status"] == "sent"
    sent = receiver.requests[-1].body
    assert sent["event"] == "outcome"
    assert "promoted" in sent["title"]
    assert sent["data"]["roc_auc"] == 0.81
    assert len(receiver.requests) == 3
    again = alerts.record_outcome(request.alert_id, "promoted", {"roc_auc": 0.81, "version": 4})
    assert again.outcome == done.outcome
    assert len(receiver.requests) == 3  # recorded once, sent once
    with pytest.raises(Conflict, match="already has an outcome"):
        alerts.record_outcome(request.alert_id, "refused", {"roc_auc": 0.6})
    with pytest.raises(NotFound):
        alerts.record_outcome("missing", "promoted")
    with pytest.raises(InvalidArgument, match="1 to 2000 characters"):
        alerts.record_outcome(request.alert_id, " ")
    with pytest.raises(InvalidArgument, match="'why' is not a number"):
        alerts.record_outcome(request.alert_id, "refused", {"why": "x"})  # type: ignore[dict-item]


def test_malformed_observations_store_nothing(store: MonitoringStore) -> None:
    clock = ManualClock()
    alerts = AlertEngine(store, [AlertRule(statistic="psi", above=0.2)], {}, clock)
    bad = [
        obs(clock),
        obs(clock, subject="x" * 201),
    ]
    with pytest.raises(InvalidArgument, match="observation 1: subject must be 1 to 200"):
        alerts.process(bad)
    assert store.observations() == []
    assert store.alerts() == []
    for extra, message in [
        ({"kind": "weird"}, "kind 'weird' is not one of"),
        ({"window_start_ms": clock.now_ms() + 1}, "window ends"),
        ({"value": "high"}, "value must be a number"),
        ({"model": ""}, "model must be 1 to 100"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            alerts.process([obs(clock, **extra)])


def test_engine_refuses_inconsistent_rules(store: MonitoringStore) -> None:
    rule = AlertRule(statistic="psi", above=0.2)
    with pytest.raises(InvalidArgument, match="unique"):
        AlertEngine(store, [rule, rule], {})
    with pytest.raises(InvalidArgument, match=r"unknown notifiers \['pager'\]"):
        AlertEngine(store, [AlertRule(statistic="psi", notify=["pager"])], {})


def test_from_config_defaults_to_the_log_notifier(
    store: MonitoringStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="shipyard.alerts")
    clock = ManualClock()
    config = MonitorConfig.model_validate(
        {"rules": [{"statistic": "psi", "severity": "critical", "window": "1h"}]}
    )
    alerts = AlertEngine.from_config(store, config, clock)
    (opened,) = alerts.evaluate([obs(clock)]).opened  # no threshold: the monitor's verdict
    assert (opened.threshold, opened.comparison, opened.notify_state) == (0.2, "breached", "sent")
    assert alerts.evaluate([obs(clock, window_start_ms=0)]).opened == []  # another window
    assert "churn: psi of tenure past the monitor's threshold" in caplog.text
    message = alert_message(opened)
    assert "psi = 0.3 for tenure of churn v3 over 1h" in message.text


def test_history_frame_for_plots(store: MonitoringStore) -> None:
    clock = ManualClock()
    history = ObservationHistory(store, clock)
    assert history.frame().schema == pl.Schema(SERIES_SCHEMA)
    rows = []
    for i in range(3):
        clock.advance(seconds=3600)
        rows.append(obs(clock, value=0.1 * i, detail={"n": i, "p": math.nan}))
    assert history.record(rows) == 3
    frame = history.frame(model="churn", statistic="psi", since_ms=rows[1].window_end_ms)
    assert frame["value"].to_list() == [0.1, 0.2]
    assert frame["window_end_ms"].to_list() == [rows[1].window_end_ms, rows[2].window_end_ms]
    (last,) = history.query(limit=1)
    assert last.detail == {"n": 2, "p": "NaN"}
