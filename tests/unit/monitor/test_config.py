"""The monitor: section: durations, windows, rules, notifiers; every mistake names its field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shipyard.core.errors import InvalidArgument, InvalidProjectFile
from shipyard.monitor.config import (
    AlertRule,
    EmailNotifierConfig,
    MonitorConfig,
    SlackNotifierConfig,
    WebhookNotifierConfig,
    parse_duration_ms,
    resolve_secret,
)
from shipyard.monitor.signals import Observation
from shipyard.pipeline.project import load_project

FULL = """\
monitor:
  schedule: {interval: 5m, lookback: 2h}
  thresholds:
    psi: {"*": 0.2, tenure: 0.1}
  notifiers:
    ops: {type: webhook, url: "${ALERT_URL}", retries: 2, timeout: 3s, backoff: 100ms}
    team: {type: slack, url: "https://hooks.example.com/services/T0/B0/xyz"}
    mail:
      type: email
      host: smtp.example.com
      port: 587
      from: ml@example.com
      to: [oncall@example.com]
      starttls: true
      username: ml
      password: "${SMTP_PASSWORD}"
    audit: {type: log}
  rules:
    - {name: psi-high, statistic: psi, feature: "*", above: 0.2, window: 1h, cooldown: 6h}
    - name: auc-low
      metric: roc_auc
      below: 0.7
      window: 5000 rows
      severity: critical
      action: retrain
      notify: [ops, mail]
      rate_limit: {max: 2, per: 1d}
"""


def obs(**overrides: object) -> Observation:
    values: dict[str, object] = {
        "model": "churn",
        "version": 1,
        "kind": "drift",
        "statistic": "psi",
        "subject": "tenure",
        "value": 0.3,
        "window_start_ms": 0,
        "window_end_ms": 3_600_000,
    }
    values.update(overrides)
    return Observation(**values)  # type: ignore[arg-type]


def test_a_full_section_parses_from_shipyard_yaml(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text(FULL)
    config = load_project(tmp_path).spec.monitor
    assert config is not None
    assert config.schedule.interval == 300_000
    assert config.schedule.lookback == 7_200_000
    assert config.threshold("psi", "tenure", 0.25) == 0.1
    assert config.threshold("psi", "age", 0.25) == 0.2
    assert config.threshold("ks", "age", 0.05) == 0.05
    psi, auc = config.rules
    assert (psi.statistic, psi.subject, psi.threshold, psi.comparison) == ("psi", "*", 0.2, "above")
    assert psi.window is not None
    assert psi.window.label == "1h"
    assert psi.cooldown == 21_600_000
    assert psi.action == "notify"
    assert psi.severity == "warning"
    assert (auc.statistic, auc.comparison, auc.threshold, auc.action) == (
        "roc_auc",
        "below",
        0.7,
        "retrain",
    )
    assert auc.window is not None
    assert (auc.window.rows, auc.window.label) == (5000, "5000 rows")
    assert (auc.rate_limit.max, auc.rate_limit.per) == (2, 86_400_000)
    assert isinstance(config.notifiers["ops"], WebhookNotifierConfig)
    assert isinstance(config.notifiers["team"], SlackNotifierConfig)
    mail = config.notifiers["mail"]
    assert isinstance(mail, EmailNotifierConfig)
    assert (mail.sender, mail.to, mail.starttls, mail.port) == (
        "ml@example.com",
        ["oncall@example.com"],
        True,
        587,
    )
    # secrets stay hidden in reprs
    assert "xyz" not in repr(config.notifiers["team"])


@pytest.mark.parametrize(
    ("rules_yaml", "expected"),
    [
        (
            "- {statistic: psi, above: 0.2, comparsion: above}",
            r":3: monitor.rules.0.comparsion: unknown",
        ),
        ("- {above: 0.2}", r":3: monitor.rules.0.statistic: required field"),
        (
            "- {statistic: psi, above: 0.2, window: 1 fortnight}",
            r"monitor.rules.0.window.*not a window",
        ),
        (
            "- {statistic: psi, above: 0.2, cooldown: soon}",
            r"monitor.rules.0.cooldown.*not a duration",
        ),
        ("- {statistic: psi, above: 0.2, severity: urgent}", r"monitor.rules.0.severity"),
        ("- {statistic: psi, above: 0.2, action: page}", r"monitor.rules.0.action"),
        ("- {statistic: psi, above: 0.2, below: 0.1}", r"monitor.rules.0.*one of above, below"),
        ("- {statistic: psi, threshold: .nan}", r"monitor.rules.0.threshold: .*finite"),
        (
            "- {statistic: psi, notify: [pager]}",
            r"monitor: .*rules\[0\].*'pager', which is not in notifiers",
        ),
        (
            "- {name: a, statistic: psi}\n    - {name: a, statistic: ks}",
            r"rules\[1\]: a rule named 'a' already exists",
        ),
        ("- {statistic: psi, rate_limit: {max: 0}}", r"monitor.rules.0.rate_limit.max"),
    ],
)
def test_rule_mistakes_name_the_field(tmp_path: Path, rules_yaml: str, expected: str) -> None:
    (tmp_path / "shipyard.yaml").write_text(f"monitor:\n  rules:\n    {rules_yaml}\n")
    with pytest.raises(InvalidProjectFile, match=expected):
        load_project(tmp_path)


@pytest.mark.parametrize(
    ("notifier", "expected"),
    [
        ("{type: pager}", r"monitor.notifiers.x: .*tag 'pager'"),
        ("{type: webhook}", r"monitor.notifiers.x.webhook.url: required"),
        ("{type: webhook, url: 'ftp://h/secret-token'}", r"url: must start with https://"),
        (
            "{type: email, host: h, from: nobody, to: [a@b.c]}",
            r"notifiers.x.email.from.*mail address",
        ),
        ("{type: email, host: h, from: a@b.c, to: []}", r"notifiers.x.email.to"),
        (
            "{type: email, host: h, from: a@b.c, to: ['x@y.z\\nBcc: e@f.g']}",
            r"email.to: .*one mail address",
        ),
        ("{type: email, host: h, from: a@b.c, to: [a@b.c], username: u}", r"username and password"),
        ("{type: webhook, url: 'https://h/x', retries: 99}", r"notifiers.x.webhook.retries"),
    ],
)
def test_notifier_mistakes_name_the_field(tmp_path: Path, notifier: str, expected: str) -> None:
    (tmp_path / "shipyard.yaml").write_text(f"monitor:\n  notifiers:\n    x: {notifier}\n")
    with pytest.raises(InvalidProjectFile, match=expected) as caught:
        load_project(tmp_path)
    assert "secret-token" not in str(caught.value)


def test_durations() -> None:
    assert parse_duration_ms("250ms") == 250
    assert parse_duration_ms("90s") == 90_000
    assert parse_duration_ms("1.5h") == 5_400_000
    assert parse_duration_ms("2w") == 1_209_600_000
    assert parse_duration_ms(30) == 30_000
    for bad in ("", "0s", "-1h", "1y", "h", True, float("nan"), 0):
        with pytest.raises(InvalidArgument):
            parse_duration_ms(bad)  # type: ignore[arg-type]


def test_rules_match_and_judge_observations() -> None:
    rule = AlertRule.model_validate(
        {"statistic": "psi", "feature": "*", "above": 0.2, "window": "1h"}
    )
    assert rule.name == "psi-above-0.2"
    assert rule.applies_to(obs())
    assert not rule.applies_to(obs(statistic="ks"))
    assert not rule.applies_to(obs(window_end_ms=1_800_000))  # a 30 min window
    assert rule.breached(obs(value=0.3))
    assert not rule.breached(obs(value=0.2))  # strictly above
    assert not rule.breached(obs(value=float("nan")))
    below = AlertRule.model_validate({"metric": "accuracy", "below": 0.8, "model": "churn"})
    assert below.breached(obs(statistic="accuracy", value=0.7))
    assert not below.applies_to(obs(statistic="accuracy", model="other"))
    rows = AlertRule.model_validate({"statistic": "psi", "above": 0.1, "window": "500 rows"})
    assert rows.applies_to(obs(detail={"window_rows": 500}))
    assert not rows.applies_to(obs(detail={"window_rows": 400}))
    assert not rows.applies_to(obs())
    # no threshold: the monitor's own verdict decides, and its threshold is reported
    own = AlertRule.model_validate({"statistic": "psi", "subject": "tenure", "kind": "drift"})
    assert own.breached(obs(breached=True))
    assert not own.breached(obs(breached=False))
    assert own.threshold_for(obs(threshold=0.25)) == 0.25
    assert not own.applies_to(obs(subject="age"))
    assert not own.applies_to(obs(kind="performance"))


def test_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = MonitorConfig.model_validate(
        {"notifiers": {"ops": {"type": "webhook", "url": "${HOOK_URL}"}}}
    )
    hook = config.notifiers["ops"]
    assert isinstance(hook, WebhookNotifierConfig)
    with pytest.raises(InvalidArgument, match=r"\$\{HOOK_URL\}, which is not set") as caught:
        resolve_secret(hook.url, "ops url")
    monkeypatch.setenv("HOOK_URL", "https://h.example.com/T/tok")
    assert resolve_secret(hook.url, "ops url") == "https://h.example.com/T/tok"
    assert "tok" not in str(caught.value)


def test_defaults_and_model_errors() -> None:
    config = MonitorConfig()
    assert (config.rules, config.notifiers) == ([], {})
    assert config.schedule.interval == 900_000
    with pytest.raises(ValidationError, match="threshold must be finite"):
        MonitorConfig.model_validate({"thresholds": {"psi": {"*": float("inf")}}})
    with pytest.raises(ValidationError, match="notifier name"):
        MonitorConfig.model_validate({"notifiers": {"a b": {"type": "log"}}})
