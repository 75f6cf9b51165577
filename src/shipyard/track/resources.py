"""Resource use of a run: wall time, CPU (process and children) and peak memory.

CPU is the difference of the process's counters between run start and end, so a parent run's
figures include any child runs that ran inside it in the same process. Peak RSS is the highest
resident set size sampled during the run (at start, end, and on each heartbeat tick), since
the kernel's own high-water mark covers the whole process, not one run.

A command-line process is one job: ``claim_process_start`` (called by ``shipyard run``) makes the
next meter count from the process's start instead of its own, so the run records what the
command used, imports and setup included (issue 16: 9.7 CPU-s recorded for a command that used
20).
"""

from __future__ import annotations

import threading
import time

import psutil

from shipyard.store.entities import Resources

_claim = threading.Event()


def claim_process_start() -> None:
    """Make the next ``ResourceMeter`` count from the process's start (one claim, one meter).

    For entry points whose whole process is one run: without it, the CPU of imports, settings
    and workspace setup before the run starts would be recorded nowhere.
    """
    _claim.set()


def process_cpu_seconds() -> float:
    """CPU seconds this process has used so far: user + system, threads and waited children."""
    t = psutil.Process().cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


class ResourceMeter:
    """Measures one run's resources from its start (or its process's, after a claim)."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._start_wall = time.perf_counter()
        self._start_cpu = self._process.cpu_times()
        if _claim.is_set():
            _claim.clear()
            self._start_cpu = self._start_cpu._replace(
                user=0.0, system=0.0, children_user=0.0, children_system=0.0
            )
            self._start_wall -= max(time.time() - self._process.create_time(), 0.0)
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
