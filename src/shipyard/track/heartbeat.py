"""A background heartbeat for the runs this process owns.

Every ``interval_s`` it stamps ``heartbeat_ms`` on each active run and samples memory for their
resource meters. ``shipyard runs gc`` uses the stamp (and, on the same host, whether the pid
still lives) to mark runs of dead processes as killed.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard.core.clock import Clock
    from shipyard.store.sql import SqlStore
    from shipyard.track.resources import ResourceMeter

log = logging.getLogger(__name__)
_SAMPLE_INTERVAL_S = 1.0


class Heartbeat:
    """Keeps this process's running runs marked alive."""

    def __init__(self, store: SqlStore, clock: Clock, interval_s: float) -> None:
        self._store = store
        self._clock = clock
        self._interval_s = interval_s
        self._meters: dict[str, ResourceMeter] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self, run_id: str, meter: ResourceMeter) -> None:
        """Start beating for ``run_id``."""
        with self._lock:
            self._meters[run_id] = meter
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="shipyard-heartbeat", daemon=True
                )
                self._thread.start()

    def unregister(self, run_id: str) -> None:
        """Stop beating for ``run_id``."""
        with self._lock:
            self._meters.pop(run_id, None)

    def close(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        since_beat = 0.0
        tick = min(_SAMPLE_INTERVAL_S, self._interval_s)
        while not self._stop.wait(tick):
            with self._lock:
                meters = dict(self._meters)
            for meter in meters.values():
                meter.sample()
            since_beat += tick
            if since_beat + 1e-9 < self._interval_s or not meters:
                continue
            since_beat = 0.0
            try:
                self._store.heartbeat(list(meters), self._clock.now_ms())
            except Exception as e:  # a missed beat is not fatal; the next one may succeed
                log.warning("heartbeat failed: %s", e)
