"""Checks on what users log, done once in the tracking service before anything is buffered.

Keys are checked once per distinct key and remembered, so the per-call cost of ``log_metric``
stays a set lookup.
"""

from __future__ import annotations

import decimal
import math
import numbers
import re
from typing import Any

from shipyard.core.errors import InvalidArgument, InvalidMetricValue, InvalidName

MAX_KEY_LENGTH = 250
MAX_PARAM_LENGTH = 8_000
MAX_TAG_LENGTH = 8_000
MAX_NOTE_LENGTH = 100_000
_KEY = re.compile(r"[A-Za-z0-9_\-. /:]+")
_known_keys: set[str] = set()


def check_key(key: object, what: str = "key") -> str:
    """Return ``key`` if it is a valid metric, param or tag name.

    Raises:
        InvalidName: The key is empty, too long, or has characters outside
            letters, digits and ``_ - . / : space``, or has a path-like ``..``/leading ``/``.
    """
    if key in _known_keys:
        return key
    if not isinstance(key, str):
        raise InvalidName(f"{what} must be a string, got {type(key).__name__}")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidName(f"{what} {key[:40]!r} must be 1 to {MAX_KEY_LENGTH} characters")
    if not _KEY.fullmatch(key):
        raise InvalidName(f"{what} {key!r} may only use letters, digits and _ - . / : and spaces")
    if key.startswith("/") or ".." in key.split("/") or key != key.strip():
        raise InvalidName(
            f"{what} {key!r} must not start with '/', hold '..' segments or edge spaces"
        )
    if len(_known_keys) < 100_000:
        _known_keys.add(key)
    return key


def check_metric_value(key: str, value: object) -> float:
    """Return ``value`` as a float; NaN and infinities are allowed and kept.

    Raises:
        InvalidMetricValue: The value is not a real number (strings and booleans included).
    """
    if type(value) is float:
        return value
    if isinstance(value, numbers.Real | decimal.Decimal) and not isinstance(value, bool):
        return float(value)
    raise InvalidMetricValue(
        f"metric {key!r} must be a real number, got {type(value).__name__} {_preview(value)}; "
        "log text as a tag or param instead"
    )


def check_step(step: object) -> int:
    """Return ``step`` as an int.

    Raises:
        InvalidArgument: The step is not a whole number.
    """
    if type(step) is int:
        return step
    if isinstance(step, numbers.Integral) and not isinstance(step, bool):
        return int(step)
    raise InvalidArgument(f"step must be an integer, got {type(step).__name__} {_preview(step)}")


def check_timestamp_ms(timestamp_ms: object) -> int:
    """Return an epoch-milliseconds timestamp as an int.

    Raises:
        InvalidArgument: Not a whole, non-negative number of milliseconds.
    """
    if isinstance(timestamp_ms, numbers.Real) and not isinstance(timestamp_ms, bool):
        as_float = float(timestamp_ms)
        if math.isfinite(as_float) and as_float >= 0:
            return int(as_float)
    raise InvalidArgument(
        f"timestamp must be non-negative epoch milliseconds, got {_preview(timestamp_ms)}"
    )


def param_text(key: str, value: object) -> str:
    """Return the text a param is stored as.

    Raises:
        InvalidArgument: The rendered value is longer than MAX_PARAM_LENGTH.
    """
    text = value if isinstance(value, str) else _render(value)
    if len(text) > MAX_PARAM_LENGTH:
        raise InvalidArgument(
            f"param {key!r} is {len(text)} characters; the limit is {MAX_PARAM_LENGTH}: "
            "log large values as an artifact"
        )
    return text


def tag_text(key: str, value: object) -> str:
    """Return the text a tag is stored as.

    Raises:
        InvalidArgument: The value is longer than MAX_TAG_LENGTH.
    """
    text = value if isinstance(value, str) else _render(value)
    if len(text) > MAX_TAG_LENGTH:
        raise InvalidArgument(f"tag {key!r} is longer than {MAX_TAG_LENGTH} characters")
    return text


def _render(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "null"
    return str(value)


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
