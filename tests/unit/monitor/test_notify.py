"""Notifiers against real receivers on 127.0.0.1: retries, permanent errors, isolation, secrets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from shipyard.core.clock import ManualClock
from shipyard.core.errors import InvalidArgument
from shipyard.monitor.config import MonitorConfig
from shipyard.monitor.notify import (
    EmailNotifier,
    LogNotifier,
    Message,
    SlackNotifier,
    WebhookNotifier,
    build_notifiers,
    dispatch,
)
from tests.unit.monitor.receivers import HttpReceiver, refusing_port, smtp_server

TOKEN = "T0K3N-s3cr3t-path"
PASSWORD = "pa55-w0rd-secret"
MESSAGE = Message(
    event="alert",
    title="churn: psi of tenure above 0.2",
    text="psi = 0.31 for tenure <script> & co",
    severity="critical",
    data={"model": "churn", "value": 0.31, "version": None},
)


def notifiers(**configs: dict[str, Any]) -> dict[str, Any]:
    return build_notifiers(MonitorConfig.model_validate({"notifiers": configs}).notifiers)


def hook(url: str, kind: str = "webhook", **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "url": url,
        "allow_private_network": True,
        "backoff": "1ms",
        "timeout": "2s",
        **extra,
    }


def test_webhook_retries_after_a_500_and_never_logs_the_token(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HOOK_TOKEN_HEADER", "Bearer header-secret")
    slept: list[float] = []
    with HttpReceiver(statuses=[500, 503]).running() as receiver:
        built = notifiers(
            ops=hook(
                f"{receiver.url}/hooks/{TOKEN}",
                retries=3,
                backoff="10ms",
                headers={"Authorization": "${HOOK_TOKEN_HEADER}"},
            )
        )
        result = dispatch(list(built.values()), MESSAGE, clock=ManualClock(5), sleep=slept.append)
    delivery = result["ops"]
    assert (delivery.ok, delivery.attempts, delivery.error, delivery.at_ms) == (True, 3, None, 5)
    assert slept == [0.01, 0.02]  # doubling backoff
    assert len(receiver.requests) == 3
    body = receiver.requests[-1].body
    assert body == {
        "event": "alert",
        "title": MESSAGE.title,
        "text": MESSAGE.text,
        "severity": "critical",
        "data": {"model": "churn", "value": 0.31, "version": None},
    }
    assert receiver.requests[-1].path == f"/hooks/{TOKEN}"
    assert receiver.requests[-1].headers["Authorization"] == "Bearer header-secret"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "HTTP Request: POST" in logged  # httpx did log the requests...
    assert TOKEN not in logged  # ...without the token
    assert "header-secret" not in logged


def test_webhook_permanent_and_exhausted_failures(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with HttpReceiver(statuses=[404]).running() as receiver:
        gone = notifiers(ops=hook(f"{receiver.url}/{TOKEN}", retries=3))["ops"]
        result = dispatch([gone], MESSAGE, sleep=lambda _: None)["ops"]
    assert (result.ok, result.attempts, result.error) == (False, 1, "HTTP 404")
    assert len(receiver.requests) == 1
    with HttpReceiver(statuses=[500] * 5).running() as receiver:
        down = notifiers(ops=hook(f"{receiver.url}/{TOKEN}", retries=2))["ops"]
        result = dispatch([down], MESSAGE, sleep=lambda _: None)["ops"]
    assert (result.ok, result.attempts, result.error) == (False, 3, "HTTP 500")
    with HttpReceiver(statuses=[302]).running() as receiver:
        moved = notifiers(ops=hook(f"{receiver.url}/{TOKEN}", retries=2))["ops"]
        result = dispatch([moved], MESSAGE, sleep=lambda _: None)["ops"]
    assert result.attempts == 1
    assert "redirects are not followed" in (result.error or "")
    assert "failed after 1 attempt(s): HTTP 302" in caplog.text
    assert TOKEN not in caplog.text


def test_a_dead_or_slow_notifier_does_not_stop_the_others() -> None:
    with (
        refusing_port() as dead_port,
        HttpReceiver().running() as good,
        HttpReceiver(delay_s=1.0).running() as slow,
    ):
        built = notifiers(
            dead=hook(f"http://127.0.0.1:{dead_port}/{TOKEN}", retries=1),
            slow=hook(f"{slow.url}/{TOKEN}", retries=0, timeout="200ms"),
            good=hook(f"{good.url}/x", kind="slack"),
            log={"type": "log"},
        )
        result = dispatch(list(built.values()), MESSAGE, sleep=lambda _: None)
    assert result["good"].ok
    assert result["log"].ok
    assert len(good.requests) == 1
    dead, slow_result = result["dead"], result["slow"]
    assert (dead.ok, dead.attempts) == (False, 2)
    assert "ConnectError" in (dead.error or "")
    assert TOKEN not in (dead.error or "")
    assert (slow_result.ok, slow_result.error) == (False, "no answer within 0.2s")


def test_slack_body_has_text_and_blocks_escaped() -> None:
    with HttpReceiver().running() as receiver:
        slack = notifiers(team=hook(f"{receiver.url}/services/{TOKEN}", kind="slack"))["team"]
        assert isinstance(slack, SlackNotifier)
        assert dispatch([slack], MESSAGE)["team"].ok
    body = receiver.requests[0].body
    assert set(body) == {"text", "blocks"}
    assert body["text"] == f"{MESSAGE.title}: psi = 0.31 for tenure &lt;script&gt; &amp; co"
    header, section, context = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": MESSAGE.title}}
    assert section["text"] == {
        "type": "mrkdwn",
        "text": "psi = 0.31 for tenure &lt;script&gt; &amp; co",
    }
    assert context["elements"][0]["text"] == "model: churn · value: 0.31"


def test_the_url_policy_applies_to_webhooks() -> None:
    with HttpReceiver().running() as receiver:
        private = WebhookNotifier(
            "ops",
            MonitorConfig.model_validate(
                {"notifiers": {"ops": {"type": "webhook", "url": f"{receiver.url}/{TOKEN}"}}}
            ).notifiers["ops"],  # type: ignore[arg-type]
        )
        refused = dispatch([private], MESSAGE, sleep=lambda _: None)["ops"]
        assert receiver.requests == []  # never sent
    assert (refused.ok, refused.attempts) == (False, 1)
    assert "loopback: refused" in (refused.error or "")
    metadata = notifiers(ops=hook(f"http://169.254.169.254/{TOKEN}"))["ops"]
    refused = dispatch([metadata], MESSAGE, sleep=lambda _: None)["ops"]
    assert "link-local" in (refused.error or "")
    assert TOKEN not in (refused.error or "")


def test_email_is_delivered_over_smtp() -> None:
    with smtp_server() as server:
        mail = notifiers(
            mail={
                "type": "email",
                "host": "127.0.0.1",
                "port": server.port,
                "from": "ml@example.com",
                "to": ["oncall@example.com", "team@example.com"],
                "timeout": "5s",
            }
        )["mail"]
        title = Message(**{**MESSAGE.__dict__, "title": "two\r\nBcc: evil@example.com"})
        result = dispatch([mail], title)["mail"]
    assert (result.ok, result.attempts) == (True, 1)
    (received,) = server.inbox.messages
    assert received["Subject"] == "[shipyard] critical: two Bcc: evil@example.com"
    assert received["Bcc"] is None  # no header injection
    assert received["From"] == "ml@example.com"
    assert server.inbox.envelopes == [
        ("ml@example.com", ["oncall@example.com", "team@example.com"])
    ]
    body = received.get_payload(decode=True).decode()
    assert "psi = 0.31 for tenure" in body
    assert "model: churn" in body
    assert "version" not in body  # None values are left out


def test_email_with_starttls_and_login(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    with smtp_server(tls_folder=tmp_path, login=("ml", PASSWORD)) as server:
        config = {
            "type": "email",
            "host": "127.0.0.1",
            "port": server.port,
            "from": "ml@example.com",
            "to": ["oncall@example.com"],
            "starttls": True,
            "ca_file": str(server.cert_file),
            "username": "ml",
            "password": "${SMTP_PASSWORD}",
            "retries": 2,
            "backoff": "1ms",
        }
        good = notifiers(mail=config)["mail"]
        assert isinstance(good, EmailNotifier)
        assert dispatch([good], MESSAGE)["mail"].ok
        monkeypatch.setenv("SMTP_PASSWORD", "wrong-" + PASSWORD)
        bad = notifiers(mail=config)["mail"]
        refused = dispatch([bad], MESSAGE, sleep=lambda _: None)["mail"]
        plain = notifiers(mail={**config, "starttls": False})["mail"]
        no_tls = dispatch([plain], MESSAGE, sleep=lambda _: None)["mail"]
    assert len(server.inbox.messages) == 1
    assert (refused.ok, refused.attempts) == (False, 1)  # a refused login is not retried
    assert refused.error == "SMTP login refused (535)"
    assert not no_tls.ok  # the server insists on STARTTLS
    assert PASSWORD not in caplog.text
    assert PASSWORD not in f"{refused.error} {no_tls.error}"


def test_unreachable_smtp_is_retried_then_recorded() -> None:
    with refusing_port() as port:
        mail = notifiers(
            mail={
                "type": "email",
                "host": "127.0.0.1",
                "port": port,
                "from": "ml@example.com",
                "to": ["oncall@example.com"],
                "retries": 2,
                "backoff": "1ms",
                "timeout": "1s",
            }
        )["mail"]
        result = dispatch([mail], MESSAGE, sleep=lambda _: None)["mail"]
    assert (result.ok, result.attempts) == (False, 3)
    assert "ConnectionRefusedError" in (result.error or "")


def test_log_notifier_and_defaults(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shipyard.alerts")
    default = build_notifiers({})
    assert list(default) == ["log"]
    assert isinstance(default["log"], LogNotifier)
    assert dispatch(list(default.values()), MESSAGE)["log"].ok
    (record,) = [r for r in caplog.records if r.name == "shipyard.alerts"]
    assert record.levelno == logging.CRITICAL
    assert record.getMessage() == f"{MESSAGE.title}: {MESSAGE.text}"
    assert dispatch([], MESSAGE) == {}
    with pytest.raises(InvalidArgument, match=r"\$\{NOT_SET_URL\}, which is not set"):
        notifiers(ops={"type": "webhook", "url": "${NOT_SET_URL}"})
