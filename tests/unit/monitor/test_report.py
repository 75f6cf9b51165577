"""The monitoring report: one self-contained HTML page from stored observations and alerts."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from shipyard.core.clock import ManualClock
from shipyard.monitor.alerts import AlertEngine
from shipyard.monitor.config import AlertRule
from shipyard.monitor.history import ObservationHistory
from shipyard.monitor.report import build_report
from shipyard.monitor.signals import Observation
from shipyard.store.monitoring import MonitoringStore
from shipyard.store.sql import SqlStore

HOUR = 3_600_000
T0 = 1_780_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MonitoringStore]:
    sql = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    yield MonitoringStore(sql)
    sql.close()


def _drift(hour: int, subject: str, value: float, *, breached: bool) -> Observation:
    return Observation(
        model="churn",
        version=2,
        kind="drift",
        statistic="psi",
        subject=subject,
        value=value,
        window_start_ms=T0 + hour * HOUR,
        window_end_ms=T0 + (hour + 1) * HOUR,
        threshold=0.2,
        breached=breached,
    )


def _accuracy(hour: int, value: float) -> Observation:
    return Observation(
        model="churn",
        version=2,
        kind="performance",
        statistic="accuracy",
        subject="*",
        value=value,
        window_start_ms=T0 + hour * HOUR,
        window_end_ms=T0 + (hour + 1) * HOUR,
        threshold=0.9,
        breached=value < 0.85,
        detail={"n": 200, "low": value - 0.04, "high": value + 0.04},
    )


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.sources.append(values.get("src") or "")
        if tag in ("link", "script") and (values.get("href") or values.get("src")):
            self.links.append(values.get("href") or values.get("src") or "")


def test_the_report_plots_drift_performance_and_lists_alerts(store: MonitoringStore) -> None:
    clock = ManualClock(T0 + 6 * HOUR)
    observations = [
        _drift(h, "tenure", 0.05 if h < 3 else 0.45, breached=h >= 3) for h in range(6)
    ] + [_drift(h, "plan", 0.03, breached=False) for h in range(6)]
    observations += [_accuracy(h, 0.93 if h < 3 else 0.8) for h in range(6)]
    rule = AlertRule.model_validate({"statistic": "psi", "above": 0.2, "severity": "critical"})
    AlertEngine(store, [rule], {}, clock).evaluate(observations)

    report = build_report(store, "churn", probabilities=[0.1, 0.7, 0.9], now_ms=clock.now_ms())

    assert report.observations == len(observations)
    assert report.drifted_features == ("tenure",)
    assert report.alerts == 1
    page = report.html
    assert "Drift flagged on: <code>tenure</code>" in page
    assert "Multiple testing" in page
    assert "psi of tenure" in page
    assert "critical" in page
    parser = _Images()
    parser.feed(page)
    # drift over time, the prediction histogram and accuracy with its band: all inline PNGs
    assert len(parser.sources) >= 3
    for source in parser.sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert parser.links == [], "the page must not load anything from elsewhere"
    latest = re.search(r"<h3>Latest window.*?</table>", page, re.S)
    assert latest is not None
    assert "0.45" in latest.group(0)


def test_an_empty_history_still_renders_and_says_what_is_missing(store: MonitoringStore) -> None:
    report = build_report(store, "nobody", now_ms=T0)
    assert report.observations == 0
    assert report.alerts == 0
    assert "No drift observations" in report.html
    assert "shipyard monitor feedback" in report.html
    assert "No alerts" in report.html


def test_names_are_escaped(store: MonitoringStore) -> None:
    hostile = "<script>alert(1)</script>"
    ObservationHistory(store).record([_drift(0, hostile, 0.5, breached=True)])
    page = build_report(store, "churn", now_ms=T0 + HOUR).html
    assert hostile not in page
    assert "&lt;script&gt;" in page
