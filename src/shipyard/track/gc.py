"""Find runs whose process died without ending them, and mark them killed.

On the host that started a run, the run's pid and that process's start time identify it: if no
such process lives, the run is dead at once (no waiting). On any other host, a run is dead
when its heartbeat is older than ``heartbeat_timeout_s``. The run's end time is its last
heartbeat, the last moment it was known alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil

from shipyard.store.entities import Resources, Run, RunStatus
from shipyard.track import environment

if TYPE_CHECKING:
    from shipyard.track.workspace import Workspace

_START_TIME_TOLERANCE_MS = 1_000


@dataclass(frozen=True, slots=True)
class DeadRun:
    """A run found dead, and why."""

    run: Run
    reason: str


def find_dead_runs(workspace: Workspace) -> list[DeadRun]:
    """Return the running runs whose owning process is gone."""
    now = workspace.clock.now_ms()
    timeout_ms = round(workspace.settings.tracking.heartbeat_timeout_s * 1000)
    here = environment.host_name()
    mine = {r.run_id for r in workspace.active_runs()}
    dead = []
    for run in workspace.store.running_runs():
        if run.run_id in mine:
            continue
        if run.host == here:
            if not _process_alive(run.pid, run.pid_started_ms):
                dead.append(DeadRun(run, f"process {run.pid} on {run.host} is gone"))
        elif now - run.heartbeat_ms > timeout_ms:
            silent_s = (now - run.heartbeat_ms) / 1000
            dead.append(DeadRun(run, f"no heartbeat from {run.host} for {silent_s:.0f}s"))
    return dead


def mark_killed(workspace: Workspace, dead: list[DeadRun]) -> int:
    """Mark the given runs killed; return how many changed (others may have ended meanwhile)."""
    changed = 0
    for item in dead:
        if workspace.store.end_run(
            item.run.run_id,
            RunStatus.KILLED,
            item.run.heartbeat_ms,
            f"killed: {item.reason} (found by runs gc)",
            Resources(),
        ):
            changed += 1
    return changed


def _process_alive(pid: int, started_ms: int) -> bool:
    try:
        process = psutil.Process(pid)
        created_ms = round(process.create_time() * 1000)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False
    if process.status() == psutil.STATUS_ZOMBIE:
        return False
    return abs(created_ms - started_ms) <= _START_TIME_TOLERANCE_MS
