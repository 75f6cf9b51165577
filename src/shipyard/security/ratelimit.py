"""Failed-authentication limits per client address, so tokens cannot be guessed at speed.

A sliding window: after ``max_failures`` failures from one address within ``window_s``, that
address's further failures are answered 429 until its oldest counted failure leaves the window.
Only failures are throttled: a valid token from the same address is still let in (issue 14;
a lock-out would let one bad client behind a shared NAT shut out every good one), and tokens
carry 256 random bits, so the limit is about noise and load, not about guessing odds. Successes do
not reset the count (an attacker holding one valid token must not buy more guesses). The table
of addresses is bounded: past ``max_clients`` the address idle longest is forgotten first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import InvalidArgument


class FailureLimiter:
    """Counts failures per key (a client address) in a sliding window."""

    def __init__(
        self,
        *,
        max_failures: int = 10,
        window_s: float = 60.0,
        max_clients: int = 10_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if max_failures < 1 or window_s <= 0 or max_clients < 1:
            raise InvalidArgument("max_failures, window_s and max_clients must be positive")
        self.max_failures = max_failures
        self.window_ms = round(window_s * 1000)
        self.max_clients = max_clients
        self.clock = clock
        self._failures: OrderedDict[str, deque[int]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after_s(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, or None when it may try now."""
        with self._lock:
            now = self.clock.now_ms()
            times = self._trimmed(key, now)
            if times is None or len(times) < self.max_failures:
                return None
            return max(0.001, (times[0] + self.window_ms - now) / 1000)

    def failed(self, key: str) -> None:
        """Count one failure of ``key``."""
        with self._lock:
            now = self.clock.now_ms()
            times = self._trimmed(key, now)
            if times is None:
                times = deque(maxlen=self.max_failures)
                self._failures[key] = times
                while len(self._failures) > self.max_clients:
                    self._failures.popitem(last=False)
            times.append(now)
            self._failures.move_to_end(key)

    def _trimmed(self, key: str, now: int) -> deque[int] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_ms:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times
