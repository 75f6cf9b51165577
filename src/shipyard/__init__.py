"""Shipyard: one package that carries a model through its whole life.

The public API is what ``__all__`` lists; everything else is internal and may change. Names are
imported on first use (PEP 562), so ``import shipyard`` stays cheap for the CLI, subprocess
workers and tools that only need one corner of the package.

Example:
    >>> import shipyard as sy
    >>> with sy.start_run(name="baseline", experiment="churn") as run:
    ...     run.log_param("model", "lgbm")
    ...     run.log_metric("auc", 0.91)
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_EXPORTS = {
    "shipyard.core.errors": (
        "AlreadyExists",
        "Conflict",
        "InvalidArgument",
        "InvalidFilter",
        "InvalidMetricValue",
        "InvalidName",
        "NotFound",
        "ParamConflict",
        "PermissionDenied",
        "RunNotActive",
        "RunNotFound",
        "ShipyardError",
        "Unavailable",
    ),
    "shipyard.core.settings": ("Settings", "load_settings"),
    "shipyard.store.entities": (
        "Artifact",
        "Experiment",
        "MetricPoint",
        "Note",
        "Run",
        "RunStatus",
    ),
    "shipyard.track.api": (
        "default_workspace",
        "get_run",
        "list_experiments",
        "search_runs",
        "start_run",
    ),
    "shipyard.track.run": ("ActiveRun",),
    "shipyard.track.workspace": ("Workspace",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

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


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
