"""Module-level convenience: ``sy.start_run(...)`` on the workspace the settings point at.

The default workspace is opened on first use from ``SHIPYARD_*`` variables and the project file
in the current directory, and reopened if those settings change (tests, notebooks switching
projects). Code that manages several workspaces uses ``Workspace`` directly.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from shipyard.core.settings import load_settings
from shipyard.track.workspace import Workspace

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from shipyard.store.entities import Experiment, Run
    from shipyard.track.run import ActiveRun

_lock = threading.Lock()
_current: dict[tuple[str, str], Workspace] = {}


def default_workspace() -> Workspace:
    """Return the workspace the current settings name, opening it on first use."""
    settings = load_settings()
    key = (settings.resolved_store_url, settings.resolved_artifact_root)
    with _lock:
        workspace = _current.get(key)
        if workspace is None:
            workspace = Workspace(settings)
            _current[key] = workspace
        return workspace


def start_run(
    name: str | None = None,
    experiment: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    parent: ActiveRun | str | None = None,
) -> ActiveRun:
    """Start a run in the default workspace.

    Example:
        >>> import shipyard as sy
        >>> with sy.start_run(name="baseline", experiment="churn", params={"lr": 0.1}) as run:
        ...     run.log_metric("auc", 0.91)
    """
    return default_workspace().start_run(
        name=name, experiment=experiment, params=params, tags=tags, parent=parent
    )


def get_run(run_id: str) -> Run:
    """Return a run of the default workspace by id or unique prefix."""
    return default_workspace().get_run(run_id)


def search_runs(
    filter: str | None = None,
    *,
    experiments: Sequence[str] | None = None,
    order_by: Sequence[str] = (),
    limit: int | None = 100,
) -> list[Run]:
    """Search the default workspace's runs; see ``Workspace.search_runs``."""
    return default_workspace().search_runs(
        filter, experiments=experiments, order_by=order_by, limit=limit
    )


def list_experiments() -> list[Experiment]:
    """Return the default workspace's experiments."""
    return default_workspace().list_experiments()
