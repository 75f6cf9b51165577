"""Notifiers: tell people (or systems) about an alert, by log, webhook, Slack or mail.

Each notifier has one method, ``send(message)``, that either delivers or raises
``DeliveryError`` saying whether trying again could help. :func:`dispatch` owns the policy
around it: every notifier runs in its own thread (a slow or dead one holds up no other), failed
attempts are retried with doubling backoff up to the notifier's ``retries``, and every outcome is
returned as a ``Delivery`` to be stored on the alert. ``dispatch`` never raises.

Secrets stay secret: webhook URLs (their path is the token), header values and SMTP passwords
are removed from every error text this module produces, and the ``httpx``/``httpcore`` loggers
get a filter that redacts them, since httpx logs each request's URL at INFO level.
Webhooks go through the outbound-URL policy of ``shipyard.data.network`` (no link-local
metadata addresses, private ones only with ``allow_private_network``) and do not follow
redirects.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import ShipyardError
from shipyard.data import network
from shipyard.monitor.config import (
    EmailNotifierConfig,
    LogNotifierConfig,
    SlackNotifierConfig,
    WebhookNotifierConfig,
    resolve_secret,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from shipyard.monitor.config import NotifierConfig

__all__ = [
    "Delivery",
    "DeliveryError",
    "EmailNotifier",
    "LogNotifier",
    "Message",
    "Notifier",
    "SlackNotifier",
    "WebhookNotifier",
    "build_notifiers",
    "dispatch",
]

logger = logging.getLogger("shipyard.alerts")
_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}
_MAX_ERROR_CHARS = 500
_SLACK_HEADER_CHARS = 150


@dataclass(frozen=True)
class Message:
    """What a notifier says: a one-line title, a short text, and the numbers behind it."""

    event: str  # "alert" or "outcome"
    title: str
    text: str
    severity: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """How one notifier fared with one message."""

    notifier: str
    ok: bool
    attempts: int
    error: str | None
    at_ms: int

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as stored on the alert."""
        return {
            "status": "sent" if self.ok else "failed",
            "attempts": self.attempts,
            "error": self.error,
            "at_ms": self.at_ms,
        }


class DeliveryError(Exception):
    """A send failed; ``permanent`` when repeating it cannot help (4xx, refused login)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Notifier(Protocol):
    """Something that can deliver a message, with its retry policy."""

    name: str
    retries: int
    backoff_s: float

    def send(self, message: Message) -> None:
        """Deliver ``message`` once.

        Raises:
            DeliveryError: It was not delivered.
        """
        ...

    def secrets(self) -> list[str]:
        """Texts that must never appear in an error or log line."""
        ...


def dispatch(
    notifiers: Sequence[Notifier],
    message: Message,
    *,
    clock: Clock = SYSTEM_CLOCK,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Delivery]:
    """Send ``message`` through every notifier concurrently, each with its retries.

    Returns:
        One ``Delivery`` per notifier name; a failure of one does not affect the others.
    """
    if not notifiers:
        return {}
    with ThreadPoolExecutor(max_workers=len(notifiers), thread_name_prefix="notify") as pool:
        futures = [pool.submit(_deliver, n, message, clock, sleep) for n in notifiers]
        results = [f.result() for f in futures]
    return {d.notifier: d for d in results}


def _deliver(
    notifier: Notifier, message: Message, clock: Clock, sleep: Callable[[float], None]
) -> Delivery:
    attempts = 0
    error = "not attempted"
    while attempts <= notifier.retries:
        if attempts:
            sleep(notifier.backoff_s * 2 ** (attempts - 1))
        attempts += 1
        try:
            notifier.send(message)
        except DeliveryError as e:
            error = redact(str(e), notifier.secrets())
            if e.permanent:
                break
        except Exception as e:  # a notifier bug must not stop the others
            error = redact(f"{type(e).__name__}: {e}", notifier.secrets())
        else:
            return Delivery(notifier.name, True, attempts, None, clock.now_ms())
    logger.warning("notifier %s failed after %d attempt(s): %s", notifier.name, attempts, error)
    return Delivery(notifier.name, False, attempts, error[:_MAX_ERROR_CHARS], clock.now_ms())


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (longest first) replaced by ``***``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class _SecretFilter(logging.Filter):
    """Redacts registered secrets from records of third-party loggers (httpx logs URLs)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        text = record.getMessage()
        cleaned = redact(text, list(self._secrets))
        if cleaned != text:
            record.msg, record.args = cleaned, ()
        return True


_SECRET_FILTER = _SecretFilter()
_filter_installed = threading.Lock()


def _protect(secrets: Iterable[str]) -> None:
    _SECRET_FILTER.add(secrets)
    with _filter_installed:
        for name in ("httpx", "httpcore"):
            target = logging.getLogger(name)
            if _SECRET_FILTER not in target.filters:
                target.addFilter(_SECRET_FILTER)


# -- notifiers --------------------------------------------------------------------------------


class LogNotifier:
    """Writes alerts to the ``shipyard.alerts`` logger at their severity's level."""

    retries = 0
    backoff_s = 0.0

    def __init__(self, name: str) -> None:
        self.name = name

    def send(self, message: Message) -> None:
        """Log ``message``."""
        level = _LOG_LEVELS.get(message.severity, logging.WARNING)
        logger.log(level, "%s: %s", message.title, message.text)

    def secrets(self) -> list[str]:
        """None: the log notifier holds no secret."""
        return []


class WebhookNotifier:
    """POSTs ``{"event", "title", "text", "severity", "data"}`` as JSON to a URL."""

    def __init__(self, name: str, config: WebhookNotifierConfig) -> None:
        self.name = name
        what = f"notifier {name!r}"
        self._url = resolve_secret(config.url, f"{what} url") or ""
        self._headers = {
            k: resolve_secret(v, f"{what} header {k!r}") or "" for k, v in config.headers.items()
        }
        self._timeout_s = config.timeout / 1000
        self._allow_private = config.allow_private_network
        self.retries = config.retries
        self.backoff_s = config.backoff / 1000
        _protect(self.secrets())

    def secrets(self) -> list[str]:
        """The URL (and its path, where the token usually is) and header values."""
        path = httpx.URL(self._url).raw_path.decode("ascii", "replace") if self._url else ""
        return [self._url, *([path] if len(path) > 1 else []), *self._headers.values()]

    def body(self, message: Message) -> dict[str, Any]:
        """The JSON body for ``message``."""
        return {
            "event": message.event,
            "title": message.title,
            "text": message.text,
            "severity": message.severity,
            "data": message.data,
        }

    def send(self, message: Message) -> None:
        """POST the message once.

        Raises:
            DeliveryError: Refused by the URL policy or a 3xx/4xx (permanent), or a connection
                error, timeout, 429 or 5xx (worth retrying).
        """
        try:
            network.check_url(self._url, allow_private=self._allow_private)
        except ShipyardError as e:
            raise DeliveryError(f"webhook URL refused: {e}", permanent=True) from None
        try:
            response = httpx.post(
                self._url,
                json=self.body(message),
                headers=self._headers,
                timeout=self._timeout_s,
                follow_redirects=False,
            )
        except httpx.TimeoutException:
            raise DeliveryError(f"no answer within {self._timeout_s:g}s") from None
        except httpx.HTTPError as e:
            raise DeliveryError(f"{type(e).__name__}: {e}") from None
        status = response.status_code
        if status < 300:
            return
        permanent = status < 500 and status != 429
        hint = " (redirects are not followed; configure the final URL)" if status < 400 else ""
        raise DeliveryError(f"HTTP {status}{hint}", permanent=permanent)


class SlackNotifier(WebhookNotifier):
    """A Slack-compatible incoming webhook: ``{"text": ..., "blocks": [...]}``."""

    def body(self, message: Message) -> dict[str, Any]:
        """Slack's body: a fallback ``text`` plus header, section and context blocks."""
        title = message.title[:_SLACK_HEADER_CHARS]
        details = " · ".join(
            f"{k}: {_slack_escape(str(v))}" for k, v in message.data.items() if v is not None
        )
        escaped = _slack_escape(message.text)
        return {
            "text": f"{_slack_escape(message.title)}: {escaped}",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": title}},
                {"type": "section", "text": {"type": "mrkdwn", "text": escaped}},
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": details[:3000] or message.severity}],
                },
            ],
        }


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats & < > as control characters (api.slack.com: formatting/escaping).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class EmailNotifier:
    """Sends a plain-text mail through SMTP (optionally upgraded with STARTTLS, then login)."""

    def __init__(self, name: str, config: EmailNotifierConfig) -> None:
        self.name = name
        self._config = config
        self._password = resolve_secret(config.password, f"notifier {name!r} password")
        self.retries = config.retries
        self.backoff_s = config.backoff / 1000

    def secrets(self) -> list[str]:
        """The SMTP password."""
        return [self._password] if self._password else []

    def mail(self, message: Message) -> EmailMessage:
        """The mail for ``message``."""
        mail = EmailMessage()
        subject = f"[shipyard] {message.severity}: {message.title}"
        mail["Subject"] = " ".join(subject.split())[:200]  # no CR/LF: no header injection
        mail["From"] = self._config.sender
        mail["To"] = ", ".join(self._config.to)
        lines = [message.text, ""]
        lines += [f"{k}: {v}" for k, v in message.data.items() if v is not None]
        mail.set_content("\n".join(lines) + "\n")
        return mail

    def send(self, message: Message) -> None:
        """Send the mail once.

        Raises:
            DeliveryError: Permanent for refused login, sender or recipients and 5xx replies;
                worth retrying for connection errors, timeouts and 4xx replies.
        """
        cfg = self._config
        try:
            with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout / 1000) as smtp:
                if cfg.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=cfg.ca_file))
                if cfg.username is not None and self._password is not None:
                    smtp.login(cfg.username, self._password)
                smtp.send_message(self.mail(message))
        except smtplib.SMTPAuthenticationError as e:
            raise DeliveryError(f"SMTP login refused ({e.smtp_code})", permanent=True) from None
        except smtplib.SMTPRecipientsRefused as e:
            refused = ", ".join(sorted(e.recipients))
            raise DeliveryError(f"SMTP refused recipients {refused}", permanent=True) from None
        except smtplib.SMTPNotSupportedError as e:
            raise DeliveryError(f"SMTP server does not support it: {e}", permanent=True) from None
        except smtplib.SMTPResponseException as e:
            text = (
                e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else ""
            )
            raise DeliveryError(
                f"SMTP {e.smtp_code}: {text[:200]}", permanent=e.smtp_code >= 500
            ) from None
        except ssl.SSLError as e:
            raise DeliveryError(f"TLS failed: {e.reason or e}", permanent=True) from None
        except (smtplib.SMTPException, OSError) as e:
            raise DeliveryError(f"SMTP {type(e).__name__}: {e}") from None


def build_notifiers(configs: Mapping[str, NotifierConfig]) -> dict[str, Notifier]:
    """Build the configured notifiers, reading ``${ENV}`` secrets now.

    Without any configured, one ``log`` notifier is used, so an alert is never silent.

    Raises:
        InvalidArgument: A secret names an environment variable that is not set.
    """
    if not configs:
        return {"log": LogNotifier("log")}
    built: dict[str, Notifier] = {}
    for name, config in configs.items():
        if isinstance(config, LogNotifierConfig):
            built[name] = LogNotifier(name)
        elif isinstance(config, SlackNotifierConfig):
            built[name] = SlackNotifier(name, config)
        elif isinstance(config, WebhookNotifierConfig):
            built[name] = WebhookNotifier(name, config)
        elif isinstance(config, EmailNotifierConfig):
            built[name] = EmailNotifier(name, config)
    return built
