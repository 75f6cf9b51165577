"""Names and text limits of the registry: model and alias names, references, column widths.

Apart from ``registry.registry`` so that the registry's services (promotion, reviews) share one
set of rules without importing each other.
"""

from __future__ import annotations

import re
from typing import Any

from shipyard.core.errors import InvalidArgument

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# Column widths of the registry tables (store/registry_models.py): refused here, with a message.
LIMITS = {"description": 2000, "reason": 2000, "idempotency key": 200, "run": 32}
REF = re.compile(r"^(?P<name>[^@:]+)(?:@(?P<alias>[^@:]+)|:(?P<version>\d+))?$")


def check_name(name: str, what: str = "model name") -> str:
    """Return ``name`` if it is a valid model or alias name.

    Raises:
        InvalidArgument: Anything but 1-100 letters, digits and ``_.-`` starting alphanumeric.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(
            f"{what} {name!r} must be 1-100 letters, digits or _.- and start with a letter or digit"
        )
    return name


def check_lengths(**texts: str | None) -> None:
    """Raise ``InvalidArgument`` for a text longer than its column (``LIMITS``)."""
    for what, text in texts.items():
        if text is not None and len(text) > LIMITS[what]:
            raise InvalidArgument(f"the {what} is {len(text)} characters; at most {LIMITS[what]}")


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics worth a column in listings (the bundle keeps everything)."""
    scores = metrics.get("scores") or {}
    return {
        "test": scores.get("test"),
        "cv_mean": scores.get("cv_mean"),
        "validation": scores.get("validation"),
        "estimator": metrics.get("estimator"),
        "generalization": (metrics.get("generalization") or {}).get("verdict"),
    }
