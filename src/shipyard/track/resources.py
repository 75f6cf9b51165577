"""Resource use of a run: wall time, CPU (process and children) and peak memory.

CPU is the difference of the process's counters between run start and end, so a parent run's
figures include any child runs that ran inside it in the same process. Peak RSS is the highest
resident set size sampled during the run (at start, end, and on each heartbeat tick), since
the kernel's own high-water mark covers the whole process, not one run.
"""

from __future__ import annotations

import threading
import time

import psutil

from shipyard.store.entities import Resources


class ResourceMeter:
    """Measures one run's resources from its start."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._start_wall = time.perf_counter()
        self._start_cpu = self._process.cpu_times()
        self._peak_rss = 0
        self._lock = threading.Lock()
        self.sample()

    def sample(self) -> None:
        """Read the current RSS and keep it if it is the highest so far."""
        try:
            rss = self._process.memory_info().rss
        except psutil.Error:
            return
        with self._lock:
            self._peak_rss = max(self._peak_rss, rss)

    def finish(self) -> Resources:
        """Return what the run used from start until now."""
        self.sample()
        end = self._process.cpu_times()
        start = self._start_cpu
        return Resources(
            wall_seconds=time.perf_counter() - self._start_wall,
            cpu_user_seconds=end.user - start.user,
            cpu_system_seconds=end.system - start.system,
            children_cpu_user_seconds=end.children_user - start.children_user,
            children_cpu_system_seconds=end.children_system - start.children_system,
            peak_rss_bytes=self._peak_rss,
        )
