"""The ``monitor:`` section of ``shipyard.yaml``: schedule, thresholds, alert rules, notifiers.

One pydantic model, strict (``extra="forbid"``), so a typo fails at load time with the field's
path and line instead of silently never alerting. Durations are written the way people say
them (``90s``, ``15m``, ``6h``, ``1d``) and held as milliseconds; a rule's window is either a
time span (``1h``) or a row count (``5000 rows``).

Secrets (webhook URLs carry tokens, SMTP passwords) are ``SecretStr`` and may be written as
``${ENV_NAME}``, read from the environment only when a notifier is built; neither the value nor
the variable's content ever appears in an error message or a log line. Checks that would echo a
secret run in model validators, whose error input is the whole mapping (not printed).

Example::

    monitor:
      schedule: {interval: 15m}
      thresholds: {psi: {"*": 0.2, tenure: 0.1}}
      notifiers:
        ops: {type: webhook, url: "${ALERT_WEBHOOK_URL}", retries: 3}
        team: {type: slack, url: "${SLACK_WEBHOOK_URL}"}
        mail: {type: email, host: smtp.example.com, from: ml@example.com, to: [oncall@example.com]}
      rules:
        - {name: psi-high, statistic: psi, feature: "*", above: 0.2, window: 1h, cooldown: 6h}
        - {name: auc-low, metric: roc_auc, below: 0.7, severity: critical, action: retrain}
"""

from __future__ import annotations

import math
import os
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from shipyard.monitor.signals import Observation

__all__ = [
    "AlertRule",
    "EmailNotifierConfig",
    "LogNotifierConfig",
    "MonitorConfig",
    "NotifierConfig",
    "RateLimit",
    "Schedule",
    "SlackNotifierConfig",
    "WebhookNotifierConfig",
    "Window",
    "parse_duration_ms",
    "resolve_secret",
]

_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_ROWS = re.compile(r"^\s*(\d+)\s*rows?\s*$")
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_NAME = r"^[A-Za-z0-9_.:-]+$"
Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}


def parse_duration_ms(text: str | int | float) -> int:
    """Turn ``90s``, ``15m``, ``6h``, ``1d``, ``2w`` or ``250ms`` into milliseconds.

    A bare number is seconds.

    Raises:
        InvalidArgument: Not a positive duration in one of those units.
    """
    if isinstance(text, bool):
        raise InvalidArgument(f"{text!r} is not a duration; write e.g. 30s, 15m, 6h or 1d")
    if isinstance(text, int | float):
        if not math.isfinite(text) or text <= 0:
            raise InvalidArgument(f"duration must be a positive number of seconds, got {text!r}")
        return round(text * 1000)
    match = _DURATION.match(text)
    if match is None:
        raise InvalidArgument(f"{text!r} is not a duration; write e.g. 30s, 15m, 6h or 1d")
    ms = round(float(match.group(1)) * _UNITS_MS[match.group(2)])
    if ms <= 0:
        raise InvalidArgument(f"duration {text!r} must be longer than zero")
    return ms


def format_duration(ms: int) -> str:
    """Render milliseconds in the largest unit that divides them (``3600000`` -> ``1h``)."""
    for unit in ("w", "d", "h", "m", "s"):
        if ms % _UNITS_MS[unit] == 0:
            return f"{ms // _UNITS_MS[unit]}{unit}"
    return f"{ms}ms"


def _duration(value: Any) -> Any:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            return parse_duration_ms(value)
        except InvalidArgument as e:
            raise ValueError(str(e)) from None
    return value


DurationMs = Annotated[int, BeforeValidator(_duration), Field(gt=0)]
"""A duration in milliseconds, written in YAML as ``15m``, ``6h``, ``1d`` or seconds."""


def resolve_secret(value: SecretStr | None, what: str) -> str | None:
    """The secret's text, with a whole-value ``${ENV_NAME}`` read from the environment.

    Raises:
        InvalidArgument: The variable is not set (the message names the variable, not a value).
    """
    if value is None:
        return None
    text = value.get_secret_value()
    match = _ENV_REF.match(text)
    if match is None:
        return text
    name = match.group(1)
    if name not in os.environ:
        raise InvalidArgument(f"{what} uses ${{{name}}}, which is not set in the environment")
    return os.environ[name]


class Window(BaseModel):
    """The window a rule judges: the last ``ms`` milliseconds, or the last ``rows`` rows.

    Written as ``1h`` / ``15m`` (time) or ``5000 rows`` (rows). An observation matches a time
    window when ``window_end_ms - window_start_ms`` equals it, and a row window when its
    ``detail["window_rows"]`` equals it (monitors that count rows set that key).
    """

    model_config = _STRICT
    ms: int | None = Field(None, gt=0)
    rows: int | None = Field(None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, str):
            rows = _ROWS.match(data)
            if rows is not None:
                return {"rows": int(rows.group(1))}
            try:
                return {"ms": parse_duration_ms(data)}
            except InvalidArgument:
                raise ValueError(
                    f"{data!r} is not a window; write a time span (1h, 30m) or rows (5000 rows)"
                ) from None
        return data

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.ms is None) == (self.rows is None):
            raise ValueError("a window is either a time span (1h) or a row count (5000 rows)")
        return self

    @property
    def label(self) -> str:
        """How the window is written: ``1h`` or ``5000 rows``."""
        return f"{self.rows} rows" if self.rows is not None else format_duration(self.ms or 0)

    def matches(self, observation: Observation) -> bool:
        """Whether ``observation`` was computed over this window."""
        if self.rows is not None:
            return observation.detail.get("window_rows") == self.rows
        return observation.window_end_ms - observation.window_start_ms == self.ms


class RateLimit(BaseModel):
    """At most ``max`` notifications per rule in any ``per`` span; alerts past it are stored."""

    model_config = _STRICT
    max: int = Field(10, ge=1, le=10_000)
    per: DurationMs = 3_600_000


class AlertRule(BaseModel):
    """One rule: when ``statistic`` of ``subject`` crosses ``threshold``, raise an alert.

    ``above: x`` / ``below: x`` are short for ``threshold: x`` with that comparison. Without a
    threshold the rule fires when the monitor itself marked the observation ``breached`` (its
    default or the ``thresholds:`` override). ``subject: "*"`` matches every feature/metric.
    """

    model_config = _STRICT
    name: str = Field("", max_length=100, pattern=r"^$|" + _NAME)
    statistic: str = Field(
        min_length=1, max_length=64, validation_alias=AliasChoices("statistic", "metric")
    )
    subject: str = Field(
        "*", min_length=1, max_length=200, validation_alias=AliasChoices("subject", "feature")
    )
    kind: str | None = Field(None, max_length=16)
    model: str | None = Field(None, min_length=1, max_length=100)
    threshold: float | None = None
    comparison: Literal["above", "below"] = "above"
    window: Window | None = None
    severity: Severity = "warning"
    cooldown: DurationMs = 3_600_000
    action: Literal["notify", "retrain"] = "notify"
    notify: list[str] | None = None  # notifier names; None = every configured notifier
    rate_limit: RateLimit = RateLimit()

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = [k for k in ("above", "below") if k in data]
        if not given:
            return data
        if len(given) > 1 or "threshold" in data or "comparison" in data:
            raise ValueError("give one of above, below, or threshold with comparison")
        data = dict(data)
        key = given[0]
        data["threshold"] = data.pop(key)
        data["comparison"] = key
        return data

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("threshold must be a finite number")
        return value

    @model_validator(mode="after")
    def _named(self) -> Self:
        if not self.name:
            bound = (
                "breached" if self.threshold is None else f"{self.comparison}-{self.threshold:g}"
            )
            object.__setattr__(self, "name", f"{self.statistic}-{bound}")
        return self

    def applies_to(self, observation: Observation) -> bool:
        """Whether this rule judges ``observation`` (statistic, subject, kind, model, window)."""
        return (
            observation.statistic == self.statistic
            and self.subject in ("*", observation.subject)
            and self.kind in (None, observation.kind)
            and self.model in (None, observation.model)
            and (self.window is None or self.window.matches(observation))
        )

    def breached(self, observation: Observation) -> bool:
        """Whether ``observation``'s value crosses this rule's threshold (NaN never does)."""
        if self.threshold is None:
            return observation.breached
        if not math.isfinite(observation.value):
            return False
        if self.comparison == "above":
            return observation.value > self.threshold
        return observation.value < self.threshold

    def threshold_for(self, observation: Observation) -> float | None:
        """The threshold the alert reports: the rule's, else the monitor's."""
        return self.threshold if self.threshold is not None else observation.threshold


class _RetryingConfig(BaseModel):
    model_config = _STRICT
    timeout: DurationMs = 10_000
    retries: int = Field(3, ge=0, le=10)
    backoff: DurationMs = 1_000  # first wait; doubled after each failed attempt


class LogNotifierConfig(BaseModel):
    """Write alerts to the ``shipyard.alerts`` logger (always safe; the default notifier)."""

    model_config = _STRICT
    type: Literal["log"] = "log"


class WebhookNotifierConfig(_RetryingConfig):
    """POST the alert as JSON to ``url`` (retried on connection errors, 429 and 5xx)."""

    type: Literal["webhook"] = "webhook"
    url: SecretStr
    headers: dict[str, SecretStr] = Field(default_factory=dict)  # values may say ${ENV_NAME}
    allow_private_network: bool = False

    @model_validator(mode="after")
    def _http_url(self) -> Self:
        text = self.url.get_secret_value()
        if _ENV_REF.match(text):
            return self
        scheme = urlsplit(text).scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError("url: must start with https:// or http:// (or be ${ENV_NAME})")
        return self


class SlackNotifierConfig(WebhookNotifierConfig):
    """A Slack-compatible incoming webhook: the body is ``{"text": ..., "blocks": [...]}``."""

    type: Literal["slack"] = "slack"  # type: ignore[assignment]


class EmailNotifierConfig(_RetryingConfig):
    """Send a plain-text mail through an SMTP server (``starttls`` upgrades the connection)."""

    type: Literal["email"] = "email"
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(25, ge=1, le=65535)
    sender: str = Field(
        min_length=3, max_length=320, validation_alias=AliasChoices("from", "sender")
    )
    to: list[str] = Field(min_length=1, max_length=100)
    starttls: bool = False
    ca_file: str | None = None  # a private CA to trust for STARTTLS (default: the system's)
    username: str | None = None
    password: SecretStr | None = None

    @field_validator("sender")
    @classmethod
    def _address(cls, value: str) -> str:
        return _check_address(value)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        return [_check_address(v) for v in value]

    @model_validator(mode="after")
    def _login(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("give username and password together (or neither)")
        return self


def _check_address(value: str) -> str:
    if "@" not in value or any(c in value for c in "\r\n,;<> "):
        raise ValueError("expected one mail address like name@example.com")
    return value


NotifierConfig = Annotated[
    LogNotifierConfig | WebhookNotifierConfig | SlackNotifierConfig | EmailNotifierConfig,
    Field(discriminator="type"),
]


class Schedule(BaseModel):
    """How often ``shipyard monitor run --loop`` wakes, and how far back each pass looks."""

    model_config = _STRICT
    interval: DurationMs = 900_000
    lookback: DurationMs = 3_600_000


class MonitorConfig(BaseModel):
    """Everything ``monitor:`` in ``shipyard.yaml`` declares."""

    model_config = _STRICT
    schedule: Schedule = Schedule()
    thresholds: dict[str, dict[str, float]] = Field(default_factory=dict)
    notifiers: dict[str, NotifierConfig] = Field(default_factory=dict)
    rules: list[AlertRule] = Field(default_factory=list)

    @field_validator("notifiers")
    @classmethod
    def _notifier_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not re.match(_NAME, name) or len(name) > 100:
                raise ValueError(f"notifier name {name!r}: use letters, digits, _ . : -")
        return value

    @field_validator("thresholds")
    @classmethod
    def _finite_thresholds(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for statistic, per_subject in value.items():
            for subject, threshold in per_subject.items():
                if not math.isfinite(threshold):
                    raise ValueError(f"{statistic}.{subject}: threshold must be finite")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.name in seen:
                raise ValueError(f"rules[{i}]: a rule named {rule.name!r} already exists")
            seen.add(rule.name)
            for target in rule.notify or ():
                if target not in self.notifiers:
                    known = ", ".join(sorted(self.notifiers)) or "none configured"
                    raise ValueError(
                        f"rules[{i}] ({rule.name}): notify names {target!r}, which is not in "
                        f"notifiers ({known})"
                    )
        return self

    def threshold(self, statistic: str, subject: str, default: float | None) -> float | None:
        """The threshold of ``statistic`` on ``subject``: per-subject, then ``*``, else default."""
        per_subject = self.thresholds.get(statistic, {})
        return per_subject.get(subject, per_subject.get("*", default))
