"""``shipyard monitor alerts`` and ``history`` on the embedded workspace of tmp_path."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from shipyard.core.clock import ManualClock
from shipyard.monitor.alerts import AlertEngine
from shipyard.monitor.config import AlertRule
from shipyard.monitor.notify import LogNotifier
from shipyard.monitor.signals import Observation
from shipyard.store.monitoring import MonitoringStore
from shipyard.track.workspace import Workspace
from tests.unit.cli.running import cli

HOUR = 3_600_000


def observe(
    clock: ManualClock, model: str, statistic: str, value: float, **kw: object
) -> Observation:
    end = clock.now_ms()
    return Observation(
        model=model,
        version=2,
        kind=kw.pop("kind", "drift"),  # type: ignore[arg-type]
        statistic=statistic,
        subject=str(kw.pop("subject", "tenure")),
        value=value,
        window_start_ms=end - HOUR,
        window_end_ms=end,
    )


@pytest.fixture
def populated(tmp_path: Path) -> str:
    clock = ManualClock(time.time_ns() // 1_000_000 - 48 * HOUR)
    rules = [
        AlertRule(name="psi-high", statistic="psi", above=0.2, severity="info"),
        AlertRule(
            name="auc-low", statistic="roc_auc", below=0.7, severity="critical", action="retrain"
        ),
    ]
    with Workspace.open(tmp_path) as workspace:
        engine = AlertEngine(
            MonitoringStore(workspace.store), rules, {"log": LogNotifier("log")}, clock
        )
        engine.process([observe(clock, "fraud", "psi", 0.5)])  # two days ago
        clock.advance(seconds=47 * 3600)
        engine.process(
            [
                observe(clock, "churn", "psi", 0.3),
                observe(clock, "churn", "psi", 0.1, subject="age"),
            ]
        )
        (retrain,) = engine.process(
            [observe(clock, "churn", "roc_auc", 0.61, kind="performance", subject="*")]
        )
        engine.record_outcome(retrain.alert_id, "promoted", {"roc_auc": 0.8})
        clock.advance(seconds=60)
        engine.process([observe(clock, "churn", "psi", 0.4)])  # a repeat
    return retrain.alert_id


def test_alerts_table_filters_and_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, populated: str
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = cli(capsys, "monitor", "alerts")
    assert code == 0, out
    assert "auc-low" in out
    assert "psi-high" in out
    assert "promoted" in out  # the retrain outcome
    assert populated[:12] in out

    code, out, _ = cli(capsys, "monitor", "alerts", "--json")
    every = json.loads(out)
    assert [(a["model"], a["rule"]) for a in every] == [
        ("churn", "psi-high"),
        ("churn", "auc-low"),
        ("fraud", "psi-high"),
    ]
    psi = every[0]
    assert (psi["repeat_count"], psi["value"], psi["notify_state"]) == (1, 0.4, "sent")
    assert psi["notifications"]["log"]["status"] == "sent"
    assert every[1]["outcome"]["numbers"] == {"roc_auc": 0.8}

    def rules(*args: str) -> list[str]:
        code, out, err = cli(capsys, "monitor", "alerts", "--json", *args)
        assert code == 0, err
        return [f"{a['model']}/{a['rule']}" for a in json.loads(out)]

    assert rules("--model", "fraud") == ["fraud/psi-high"]
    assert rules("--severity", "critical") == ["churn/auc-low"]
    assert rules("--severity", "info") == ["churn/psi-high", "churn/auc-low", "fraud/psi-high"]
    assert rules("--since", "24h") == ["churn/psi-high", "churn/auc-low"]
    assert rules("--rule", "auc-low", "--status", "firing") == ["churn/auc-low"]
    assert rules("--status", "resolved") == []
    assert rules("--limit", "1") == ["churn/psi-high"]
    assert rules("--since", "2000-01-01") == rules()


def test_alerts_bad_options_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in [
        (["--severity", "urgent"], "--severity must be one of info, warning, critical"),
        (["--since", "yesterday"], "--since 'yesterday': give a span back from now"),
        (["--status", "open"], "--status must be firing or resolved"),
    ]:
        code, _, err = cli(capsys, "monitor", "alerts", *args)
        assert code == 2, args
        assert message in err


def test_history_series(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, populated: str
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = cli(
        capsys, "monitor", "history", "--model", "churn", "--statistic", "psi", "--json"
    )
    assert code == 0
    series = json.loads(out)
    assert [(o["subject"], o["value"]) for o in series] == [
        ("tenure", 0.3),
        ("age", 0.1),
        ("tenure", 0.4),
    ]
    code, out, _ = cli(
        capsys, "monitor", "history", "--model", "churn", "--feature", "age", "--json"
    )
    assert [o["value"] for o in json.loads(out)] == [0.1]
    code, out, _ = cli(capsys, "monitor", "history", "--model", "churn", "--kind", "performance")
    assert code == 0
    assert "roc_auc" in out
    assert "0.61" in out
    code, out, _ = cli(capsys, "monitor", "history", "--model", "nobody")
    assert "no observations of nobody" in out
    code, _, err = cli(capsys, "monitor", "history", "--model", "churn", "--until", "soon")
    assert code == 2
    assert "--until 'soon'" in err
