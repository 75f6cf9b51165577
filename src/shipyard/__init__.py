"""Shipyard: one package that carries a model through its whole life.

The public API is what ``__all__`` lists; everything else is internal and may change.

Example:
    >>> import shipyard as sy
    >>> with sy.start_run(name="baseline", experiment="churn") as run:
    ...     run.log_param("model", "lgbm")
    ...     run.log_metric("auc", 0.91)
"""

from __future__ import annotations

from importlib import metadata

from shipyard.core.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    InvalidFilter,
    InvalidMetricValue,
    InvalidName,
    NotFound,
    ParamConflict,
    PermissionDenied,
    RunNotActive,
    RunNotFound,
    ShipyardError,
    Unavailable,
)
from shipyard.core.settings import Settings, load_settings
from shipyard.store.entities import Artifact, Experiment, MetricPoint, Note, Run, RunStatus
from shipyard.track.api import (
    default_workspace,
    get_run,
    list_experiments,
    search_runs,
    start_run,
)
from shipyard.track.run import ActiveRun
from shipyard.track.workspace import Workspace

try:
    __version__ = metadata.version("shipyard")
except metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "ActiveRun",
    "AlreadyExists",
    "Artifact",
    "Conflict",
    "Experiment",
    "InvalidArgument",
    "InvalidFilter",
    "InvalidMetricValue",
    "InvalidName",
    "MetricPoint",
    "NotFound",
    "Note",
    "ParamConflict",
    "PermissionDenied",
    "Run",
    "RunNotActive",
    "RunNotFound",
    "RunStatus",
    "Settings",
    "ShipyardError",
    "Unavailable",
    "Workspace",
    "__version__",
    "default_workspace",
    "get_run",
    "list_experiments",
    "load_settings",
    "search_runs",
    "start_run",
]
