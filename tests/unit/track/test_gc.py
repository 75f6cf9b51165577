"""``runs gc``: dead processes on this host at once, silent hosts after the timeout."""

from __future__ import annotations

from pathlib import Path

from shipyard.core.clock import ManualClock
from shipyard.core.settings import load_settings
from shipyard.store.entities import RunStatus
from shipyard.track.gc import find_dead_runs, mark_killed
from shipyard.track.workspace import Workspace


def open_workspace(tmp_path: Path, clock: ManualClock) -> Workspace:
    settings = load_settings(tracking={"heartbeat_timeout_s": 60, "heartbeat_interval_s": 3600})
    return Workspace(settings, clock=clock)


def test_live_runs_of_this_process_are_left_alone(tmp_path: Path) -> None:
    clock = ManualClock()
    with open_workspace(tmp_path, clock) as workspace:
        run = workspace.start_run()
        clock.advance(seconds=3600)
        assert find_dead_runs(workspace) == []
        run.end()


def test_a_run_of_a_vanished_pid_is_dead(tmp_path: Path) -> None:
    clock = ManualClock()
    with open_workspace(tmp_path, clock) as workspace:
        run = workspace.start_run(name="orphan")
        # Make the row look like it belongs to a process that no longer exists.
        with workspace.store.engine.begin() as connection:
            connection.exec_driver_sql(
                "UPDATE runs SET pid = 999999, pid_started_ms = 1 WHERE run_id = ?", (run.run_id,)
            )
        workspace.heartbeat.unregister(run.run_id)
        workspace._active.pop(run.run_id)
        dead = find_dead_runs(workspace)
        assert [d.run.name for d in dead] == ["orphan"]
        assert "process 999999" in dead[0].reason
        assert mark_killed(workspace, dead) == 1
        assert mark_killed(workspace, dead) == 0  # already ended: not counted twice
        stored = workspace.get_run(run.run_id)
        assert stored.status is RunStatus.KILLED
        assert stored.end_ms == stored.heartbeat_ms


def test_a_silent_run_on_another_host_dies_after_the_timeout(tmp_path: Path) -> None:
    clock = ManualClock()
    with open_workspace(tmp_path, clock) as workspace:
        run = workspace.start_run(name="remote")
        with workspace.store.engine.begin() as connection:
            connection.exec_driver_sql(
                "UPDATE runs SET host = 'elsewhere' WHERE run_id = ?", (run.run_id,)
            )
        workspace.heartbeat.unregister(run.run_id)
        workspace._active.pop(run.run_id)
        clock.advance(seconds=59)
        assert find_dead_runs(workspace) == []
        clock.advance(seconds=2)
        dead = find_dead_runs(workspace)
        assert [d.run.name for d in dead] == ["remote"]
        assert "no heartbeat from elsewhere for 61s" in dead[0].reason
