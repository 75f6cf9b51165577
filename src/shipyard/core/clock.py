"""An injectable clock, so that time-dependent behaviour (heartbeats, expiry, windows) is testable.

Code that needs "now" takes a ``Clock`` instead of calling ``time.time()``; tests pass a
``ManualClock`` and move it forward explicitly.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """The source of wall-clock time, in milliseconds since the Unix epoch."""

    def now_ms(self) -> int:
        """Return the current time in epoch milliseconds."""
        ...


class SystemClock:
    """The real wall clock."""

    def now_ms(self) -> int:
        """Return the current time in epoch milliseconds."""
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that only moves when told to; for tests."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        """Return the clock's current time in epoch milliseconds."""
        return self._now_ms

    def advance(self, *, seconds: float = 0.0, ms: int = 0) -> None:
        """Move the clock forward."""
        with self._lock:
            self._now_ms += ms + round(seconds * 1000)


SYSTEM_CLOCK = SystemClock()
