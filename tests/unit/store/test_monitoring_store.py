"""Monitoring rows on SQLite and PostgreSQL: the observation series and alert episodes.

The concurrency test uses real threads with their own connections from the engine's pool: many
monitor processes raising the same alert at once must open one episode.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from shipyard.core.errors import Conflict, NotFound
from shipyard.store.monitoring import MonitoringStore
from shipyard.store.sql import SqlStore

T0 = 1_700_000_000_000
HOUR = 3_600_000


@pytest.fixture
def store(store_url: str) -> Iterator[MonitoringStore]:
    sql = SqlStore(store_url)
    yield MonitoringStore(sql)
    sql.close()


def observation(**extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "model": "churn",
        "version": 1,
        "variant": "primary",
        "kind": "drift",
        "statistic": "psi",
        "subject": "tenure",
        "value": 0.1,
        "window_start_ms": T0,
        "window_end_ms": T0 + HOUR,
        "threshold": 0.2,
        "breached": False,
        "detail": {},
        "recorded_ms": T0 + HOUR,
    }
    row.update(extra)
    return row


def alert(**extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "rule": "psi-high",
        "model": "churn",
        "version": 1,
        "variant": None,
        "kind": "drift",
        "statistic": "psi",
        "subject": "tenure",
        "value": 0.3,
        "threshold": 0.2,
        "comparison": "above",
        "severity": "warning",
        "window": "1h",
        "window_start_ms": T0,
        "window_end_ms": T0 + HOUR,
        "action": "notify",
    }
    row.update(extra)
    return row


def raise_(store: MonitoringStore, now: int, **extra: Any) -> tuple[Any, bool]:
    limits = {"cooldown_ms": HOUR, "rate_max": 10, "rate_per_ms": HOUR, "notify": True}
    limits.update({k: extra.pop(k) for k in list(extra) if k in limits})
    return store.raise_alert(alert(**extra), now_ms=now, **limits)


def test_observations_round_trip_and_filter(store: MonitoringStore) -> None:
    rows = [
        observation(value=0.1 * i, window_start_ms=T0 + i * HOUR, window_end_ms=T0 + (i + 1) * HOUR)
        for i in range(4)
    ]
    rows.append(observation(subject="age", value=math.nan, detail={"p": math.inf, "n": [1, 2]}))
    rows.append(observation(kind="performance", statistic="accuracy", subject="*", value=0.9))
    rows.append(observation(model="fraud"))
    assert store.add_observations(rows) == 7
    assert store.add_observations([]) == 0

    series = store.observations(model="churn", statistic="psi", subject="tenure")
    assert [round(o.value, 6) for o in series] == [0.0, 0.1, 0.2, 0.3]
    assert [o.window_end_ms for o in series] == sorted(o.window_end_ms for o in series)
    bounded = store.observations(
        model="churn", subject="tenure", since_ms=T0 + 2 * HOUR, until_ms=T0 + 4 * HOUR
    )
    assert [o.window_end_ms for o in bounded] == [T0 + 2 * HOUR, T0 + 3 * HOUR]
    newest = store.observations(model="churn", subject="tenure", limit=2)
    assert [o.window_end_ms for o in newest] == [T0 + 3 * HOUR, T0 + 4 * HOUR]

    (age,) = store.observations(subject="age")
    assert math.isnan(age.value)
    assert age.detail == {"p": "Infinity", "n": [1, 2]}
    (acc,) = store.observations(kind="performance")
    assert (acc.statistic, acc.subject, acc.value) == ("accuracy", "*", 0.9)
    assert {o.model for o in store.observations()} == {"churn", "fraud"}


def test_episodes_repeat_resolve_and_rate_limit(store: MonitoringStore) -> None:
    first, new = raise_(store, T0)
    assert new
    assert (first.repeat_count, first.status, first.notify_state) == (0, "firing", "pending")
    again, new = raise_(store, T0 + HOUR - 1, value=0.5, version=2)
    assert not new
    assert again.alert_id == first.alert_id
    assert (again.repeat_count, again.value, again.version) == (1, 0.5, 2)
    assert (again.first_seen_ms, again.last_seen_ms) == (T0, T0 + HOUR - 1)
    # the cooldown counts from the last sighting
    third, new = raise_(store, T0 + 2 * HOUR - 2)
    assert not new
    assert third.repeat_count == 2
    # another subject or rule is another episode
    assert raise_(store, T0, subject="age")[1]
    assert raise_(store, T0, rule="psi-critical")[1]
    # quiet for a full cooldown: a new episode
    later, new = raise_(store, T0 + 4 * HOUR)
    assert new
    assert later.alert_id != first.alert_id

    # resolved, then back within the cooldown: the same episode fires again, counted
    flapping, _ = raise_(store, T0, model="fraud")
    assert store.resolve("psi-high", "fraud", "tenure", now_ms=T0 + 10) == 1
    assert store.resolve("psi-high", "fraud", "tenure", now_ms=T0 + 20) == 0
    resolved = store.get_alert(flapping.alert_id)
    assert (resolved.status, resolved.resolved_ms) == ("resolved", T0 + 10)
    back, new = raise_(store, T0 + 30, model="fraud")
    assert not new
    assert (back.alert_id, back.status, back.resolved_ms, back.repeat_count) == (
        flapping.alert_id,
        "firing",
        None,
        1,
    )

    # rate limits count notifying episodes per rule and period
    states = [
        raise_(store, T0 + i, rule="rl", subject=f"f{i}", rate_max=2)[0].notify_state
        for i in range(4)
    ]
    assert states == ["pending", "pending", "rate_limited", "rate_limited"]
    assert raise_(store, T0, rule="rl-other", rate_max=2)[0].notify_state == "pending"
    after = raise_(store, T0 + HOUR + 5, rule="rl", subject="g", rate_max=2)[0]
    assert after.notify_state == "pending"
    quiet = raise_(store, T0, subject="quiet", notify=False, rule="silent")[0]
    assert quiet.notify_state == "none"


def test_notifications_and_outcome(store: MonitoringStore) -> None:
    created, _ = raise_(store, T0, action="retrain")
    sent = store.set_notifications(
        created.alert_id, "partial", {"ops": {"status": "sent"}, "mail": {"status": "failed"}}
    )
    assert sent.notify_state == "partial"
    assert sent.notifications["mail"] == {"status": "failed"}
    outcome = {"text": "promoted", "numbers": {"roc_auc": 0.91}, "at_ms": T0 + 5}
    done, written = store.set_outcome(created.alert_id, outcome)
    assert written
    assert done.outcome == outcome
    same, written = store.set_outcome(created.alert_id, {**outcome, "at_ms": T0 + 99})
    assert not written
    assert same.outcome == outcome
    with pytest.raises(Conflict, match="already has an outcome"):
        store.set_outcome(created.alert_id, {"text": "refused", "numbers": {}})
    told = store.set_outcome_notifications(created.alert_id, {"ops": {"status": "sent"}})
    assert told.outcome is not None
    assert told.outcome["notifications"] == {"ops": {"status": "sent"}}
    assert told.outcome["text"] == "promoted"
    with pytest.raises(NotFound, match="no alert 'nope'"):
        store.get_alert("nope")
    with pytest.raises(NotFound):
        store.set_outcome("nope", outcome)
    other, _ = raise_(store, T0, subject="x")
    with pytest.raises(Conflict, match="no outcome"):
        store.set_outcome_notifications(other.alert_id, {})


def test_alert_listing_filters(store: MonitoringStore) -> None:
    raise_(store, T0, subject="a", severity="info")
    raise_(store, T0 + 1, subject="b", severity="critical")
    raise_(store, T0 + 2, subject="c", model="fraud", value=math.nan)
    store.resolve("psi-high", "churn", "a", now_ms=T0 + 3)
    assert [a.subject for a in store.alerts()] == ["c", "b", "a"]
    assert [a.subject for a in store.alerts(model="churn")] == ["b", "a"]
    assert [a.subject for a in store.alerts(severities=["critical", "info"])] == ["b", "a"]
    assert [a.subject for a in store.alerts(since_ms=T0 + 1)] == ["c", "b"]
    assert [a.subject for a in store.alerts(status="resolved")] == ["a"]
    assert [a.subject for a in store.alerts(limit=1)] == ["c"]
    assert store.alerts(rule="nope") == []
    (nan,) = store.alerts(model="fraud")
    assert math.isnan(nan.value)
    assert nan.to_dict()["value"] is None


def test_concurrent_raises_open_one_episode(store: MonitoringStore) -> None:
    results: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def work() -> None:
        try:
            barrier.wait()
            results.append(raise_(store, T0)[1])
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [False] * 5 + [True]
    (only,) = store.alerts()
    assert only.repeat_count == 5
