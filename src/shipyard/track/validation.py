"""Checks on what users log, done once in the tracking service before anything is buffered.

Keys are checked once per distinct key and remembered, so the per-call cost of ``log_metric``
stays a set lookup.
"""

from __future__ import annotations

import decimal
import math
import numbers
import re
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import InvalidArgument, InvalidMetricValue, InvalidName

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

MAX_KEY_LENGTH = 250
MAX_PARAM_LENGTH = 8_000
MAX_TAG_LENGTH = 8_000
MAX_NOTE_LENGTH = 100_000
_KEY = re.compile(r"[A-Za-z0-9_\-. /:]+")
#: Keys already found valid (bounded); ``log_metric`` tests membership before checking.
KNOWN_KEYS: set[str] = set()
_FIRST, _SECOND, _THIRD, _FOURTH = (itemgetter(i) for i in range(4))


def check_key(key: object, what: str = "key") -> str:
    """Return ``key`` if it is a valid metric, param or tag name.

    Raises:
        InvalidName: The key is empty, too long, or has characters outside
            letters, digits and ``_ - . / : space``, or has a path-like ``..``/leading ``/``.
    """
    if not isinstance(key, str):
        raise InvalidName(f"{what} must be a string, got {type(key).__name__}")
    if key in KNOWN_KEYS:
        return key
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidName(f"{what} {key[:40]!r} must be 1 to {MAX_KEY_LENGTH} characters")
    if not _KEY.fullmatch(key):
        raise InvalidName(f"{what} {key!r} may only use letters, digits and _ - . / : and spaces")
    if key.startswith("/") or ".." in key.split("/") or key != key.strip():
        raise InvalidName(
            f"{what} {key!r} must not start with '/', hold '..' segments or edge spaces"
        )
    if len(KNOWN_KEYS) < 100_000:
        KNOWN_KEYS.add(key)
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
    if type(timestamp_ms) is int and timestamp_ms >= 0:
        return timestamp_ms
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


@dataclass(frozen=True, slots=True)
class CheckedMetrics:
    """A batch of one run's metric values, checked, as the store takes it.

    ``values`` holds ``(key, value, step, timestamp_ms)`` tuples with a ``str`` key, a
    ``float`` value and ``int`` step and timestamp (the caller's own tuples when they already
    were); ``latest`` holds, per key, the value with the highest (step, timestamp), the later
    one on a tie.
    """

    values: Sequence[tuple[Any, ...]]
    latest: list[tuple[str, float, int, int]]


def check_metric_values(metrics: Iterable[Sequence[object]]) -> CheckedMetrics:
    """Check many ``(key, value, step, timestamp_ms)`` values at once.

    The common batch (plain ``float`` values, ``int`` steps and timestamps, a few distinct keys)
    is checked column by column at C speed: the set of types in each column, the smallest
    timestamp, each distinct key once; a list of tuples is not even copied. Anything else goes
    through the per-value checks, which convert what they accept (NumPy scalars, ``Decimal``)
    and raise the precise error.

    Raises:
        InvalidArgument: A value is not a 4-tuple, or a bad step or timestamp.
        InvalidMetricValue: A value is not a real number.
        InvalidName: A key is not a valid name.
    """
    batch = metrics if isinstance(metrics, list | tuple) else list(metrics)
    if not batch:
        return CheckedMetrics((), [])
    try:
        # The driver binds tuples only; lists and named tuples are copied at C speed.
        rows: Sequence[tuple[Any, ...]] = (
            batch  # type: ignore[assignment]  # checked just here: every item is a tuple
            if set(map(type, batch)) == {tuple}
            else list(map(tuple, batch))  # a TypeError goes to the checks below
        )
        if set(map(len, rows)) == {4}:
            keys = list(map(_FIRST, rows))
            steps = list(map(_THIRD, rows))
            stamps = list(map(_FOURTH, rows))
            if (
                set(map(type, map(_SECOND, rows))) == {float}
                and set(map(type, steps)) == {int}
                and set(map(type, stamps)) == {int}
                and min(stamps) >= 0
            ):
                for key in set(keys):
                    check_key(key, "metric name")
                return CheckedMetrics(rows, _latest(rows, keys, steps, stamps))
    except TypeError:  # unhashable keys, items without len(): the per-value checks say which
        pass
    checked = [_checked_value(item) for item in batch]
    return CheckedMetrics(
        checked,
        _latest(
            checked,
            list(map(_FIRST, checked)),
            list(map(_THIRD, checked)),
            list(map(_FOURTH, checked)),
        ),
    )


def _latest(
    batch: Sequence[Sequence[Any]], keys: list[str], steps: list[int], stamps: list[int]
) -> list[tuple[str, float, int, int]]:
    if steps == sorted(steps) and stamps == sorted(stamps):
        # Logged in order (the usual case): each key's last value is its latest.
        last = dict(zip(keys, range(len(keys)), strict=True))
        return [tuple(batch[i]) for i in last.values()]
    best: dict[str, int] = {}
    for i, key in enumerate(keys):
        j = best.get(key)
        if j is None or (steps[i], stamps[i]) >= (steps[j], stamps[j]):
            best[key] = i
    return [tuple(batch[i]) for i in best.values()]


def _checked_value(item: object) -> tuple[str, float, int, int]:
    if not isinstance(item, tuple | list) or len(item) != 4:
        raise InvalidArgument(
            f"each metric must be (key, value, step, timestamp_ms), got {_preview(item)}"
        )
    key = check_key(item[0], "metric name")
    return (key, check_metric_value(key, item[1]), check_step(item[2]), check_timestamp_ms(item[3]))
