"""Whether a server can reach its metadata store, for degraded mode (issue 20).

A replica needs the store for little once it runs: token checks (cached), the alias watcher
and audit entries of admin changes. Predictions need none of it: the models are in memory and
the prediction log and meters are local (Parquet files, Prometheus counters). So when the store
is unreachable the server keeps answering with the models it holds, readiness stays true, and
this object records the outage, which ``/metrics`` shows (``shipyard_store_degraded``). Who
talks to the store reports here: a failure turns degraded mode on, the next success off.
"""

from __future__ import annotations

import logging
import threading

from shipyard.core.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("shipyard.serve")


class StoreHealth:
    """Degraded or not, since when, and how many store calls failed."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.failures = 0
        self.stale_identities = 0  # requests let in on a token checked before the outage
        self.degraded_since_ms: int | None = None
        self._lock = threading.Lock()

    @property
    def degraded(self) -> bool:
        """Whether the last store call failed."""
        return self.degraded_since_ms is not None

    def failed(self, error: BaseException) -> None:
        """Record a failed store call; the first one of an outage is logged."""
        with self._lock:
            self.failures += 1
            if self.degraded_since_ms is None:
                self.degraded_since_ms = self.clock.now_ms()
                log.warning("metadata store unreachable (%s): serving in degraded mode", error)

    def ok(self) -> None:
        """Record a store call that worked: degraded mode ends."""
        if self.degraded_since_ms is None:
            return
        with self._lock:
            if self.degraded_since_ms is not None:
                outage_s = (self.clock.now_ms() - self.degraded_since_ms) / 1000
                self.degraded_since_ms = None
                log.warning("metadata store reachable again after %.1f s", outage_s)
