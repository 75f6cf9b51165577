"""Runs recorded after the fact, many per transaction: tuning trials, and whatever else is short.

A tuning trial lasts milliseconds; giving it a live run (a row written at its start, its
metrics flushed, its end written) costs several store round trips per trial, more than the
trial's own bookkeeping budget (issue 17: tuning within 1.10x of bare Optuna). A
``FinishedRun`` is built in memory while the trial runs and written with others in one
transaction (``Workspace.record_runs``), already ended. What a reader sees is the same run:
params, tags, metrics with their history and latest values, status, error and resources; it
only appears when its batch is written, never as ``running``.

``RunClock`` measures such a run's resources with two cheap calls (``os.times`` and one RSS
sample) instead of a ``ResourceMeter``'s process handle.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from shipyard.core.ids import new_id
from shipyard.store.entities import Resources, RunStatus

_PROCESS: psutil.Process | None = None


def _rss_bytes() -> int | None:
    global _PROCESS
    try:
        if _PROCESS is None:
            _PROCESS = psutil.Process()
        return int(_PROCESS.memory_info().rss)
    except psutil.Error:
        return None


class RunClock:
    """Wall and CPU time from its creation, and RSS at the end, for a recorded run."""

    __slots__ = ("_started", "_times", "started_ms")

    def __init__(self, now_ms: int) -> None:
        self.started_ms = now_ms
        self._started = time.perf_counter()
        self._times = os.times()

    def resources(self) -> Resources:
        """What the run used from its start until now (CPU of the whole process meanwhile)."""
        end = os.times()
        start = self._times
        return Resources(
            wall_seconds=time.perf_counter() - self._started,
            cpu_user_seconds=end.user - start.user,
            cpu_system_seconds=end.system - start.system,
            children_cpu_user_seconds=end.children_user - start.children_user,
            children_cpu_system_seconds=end.children_system - start.children_system,
            peak_rss_bytes=_rss_bytes(),
        )


@dataclass
class FinishedRun:
    """A run built in memory, to be written ended (see the module docstring).

    ``metrics`` holds ``(key, value, step, timestamp_ms)`` values as ``log_batch`` takes them.
    """

    name: str
    start_ms: int
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)
    status: RunStatus = RunStatus.FINISHED
    error: str | None = None
    end_ms: int | None = None
    resources: Resources = field(default_factory=Resources)
    run_id: str = field(default_factory=new_id)
