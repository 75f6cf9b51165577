"""Shipyard: one package that carries a model through its whole life.

The public API is what ``__all__`` lists; everything else (every ``shipyard.<package>.<module>``
path) is internal and may change without notice. The names cover the life of a model:

- tracking: ``start_run``, ``search_runs``, ``get_run``, ``Workspace``, ``ActiveRun``, entities;
- data: ``write_dataset``, ``read_dataset``, ``get_dataset``, ``list_datasets``;
- the project file and its pipeline: ``load_project``, ``run_pipeline``;
- training: ``train_model``, ``TrainSpec``, ``EstimatorSpec``, ``TrainResult``;
- bundles and the registry: ``write_training_bundle``, ``read_bundle``, ``Bundle``,
  ``ModelRegistry`` (which acts as an ``Identity``: ``local_identity`` on a laptop);
- batch scoring: ``score_file``;
- monitoring: ``DriftReference``, ``DriftConfig``, ``compute_drift``, ``drift_for_window``,
  ``read_windows``, ``read_prediction_log``, ``input_anomalies``, ``AlertEngine``,
  ``MonitorConfig``, ``Observation``;
- settings and the error tree.

Names are imported on first use (PEP 562), so ``import shipyard`` stays cheap for the CLI,
subprocess workers and tools that only need one corner of the package: it loads none of the
database, dataframe, ML or HTTP libraries (tests/test_public_api.py checks it).

Example:
    >>> import shipyard as sy
    >>> with sy.start_run(name="baseline", experiment="churn") as run:
    ...     run.log_param("model", "lgbm")
    ...     run.log_metric("auc", 0.91)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    __version__: str

    from shipyard.core.errors import (
        AlreadyExists,
        Conflict,
        InvalidArgument,
        InvalidData,
        InvalidFilter,
        InvalidMetricValue,
        InvalidName,
        InvalidProjectFile,
        InvalidSettings,
        NotFound,
        ParamConflict,
        PermissionDenied,
        RunNotActive,
        RunNotFound,
        ShipyardError,
        Unavailable,
    )
    from shipyard.core.settings import Settings, load_settings
    from shipyard.data.datasets import get_dataset, list_datasets, read_dataset, write_dataset
    from shipyard.monitor.alerts import AlertEngine
    from shipyard.monitor.anomaly import input_anomalies
    from shipyard.monitor.config import MonitorConfig
    from shipyard.monitor.drift import DriftReference, compute_drift, drift_for_window
    from shipyard.monitor.drift_config import DriftConfig
    from shipyard.monitor.drift_report import DriftReport
    from shipyard.monitor.logfiles import read_prediction_log
    from shipyard.monitor.signals import Observation
    from shipyard.monitor.windows import read_windows
    from shipyard.pipeline.project import Project, load_project
    from shipyard.pipeline.runner import PipelineReport, run_pipeline
    from shipyard.registry.bundle import Bundle, read_bundle
    from shipyard.registry.packaging import write_training_bundle
    from shipyard.registry.registry import ModelRegistry
    from shipyard.security.identities import Identity, local_identity
    from shipyard.serve.batch import BatchReport, score_file
    from shipyard.store.dataset_entities import DatasetVersion
    from shipyard.store.entities import Artifact, Experiment, MetricPoint, Note, Run, RunStatus
    from shipyard.store.registry import ModelVersion
    from shipyard.track.api import (
        default_workspace,
        get_run,
        list_experiments,
        search_runs,
        start_run,
    )
    from shipyard.track.run import ActiveRun
    from shipyard.track.workspace import Workspace
    from shipyard.train.spec import EstimatorSpec, TrainSpec
    from shipyard.train.trainer import TrainResult
    from shipyard.train.trainer import train as train_model

_EXPORTS = {
    "shipyard.core.errors": (
        "AlreadyExists",
        "Conflict",
        "InvalidArgument",
        "InvalidData",
        "InvalidFilter",
        "InvalidMetricValue",
        "InvalidName",
        "InvalidProjectFile",
        "InvalidSettings",
        "NotFound",
        "ParamConflict",
        "PermissionDenied",
        "RunNotActive",
        "RunNotFound",
        "ShipyardError",
        "Unavailable",
    ),
    "shipyard.core.settings": ("Settings", "load_settings"),
    "shipyard.data.datasets": ("get_dataset", "list_datasets", "read_dataset", "write_dataset"),
    "shipyard.monitor.alerts": ("AlertEngine",),
    "shipyard.monitor.anomaly": ("input_anomalies",),
    "shipyard.monitor.config": ("MonitorConfig",),
    "shipyard.monitor.drift": ("DriftReference", "compute_drift", "drift_for_window"),
    "shipyard.monitor.drift_config": ("DriftConfig",),
    "shipyard.monitor.drift_report": ("DriftReport",),
    "shipyard.monitor.logfiles": ("read_prediction_log",),
    "shipyard.monitor.signals": ("Observation",),
    "shipyard.monitor.windows": ("read_windows",),
    "shipyard.pipeline.project": ("Project", "load_project"),
    "shipyard.pipeline.runner": ("PipelineReport", "run_pipeline"),
    "shipyard.registry.bundle": ("Bundle", "read_bundle"),
    "shipyard.registry.packaging": ("write_training_bundle",),
    "shipyard.registry.registry": ("ModelRegistry",),
    "shipyard.security.identities": ("Identity", "local_identity"),
    "shipyard.serve.batch": ("BatchReport", "score_file"),
    "shipyard.store.dataset_entities": ("DatasetVersion",),
    "shipyard.store.entities": (
        "Artifact",
        "Experiment",
        "MetricPoint",
        "Note",
        "Run",
        "RunStatus",
    ),
    "shipyard.store.registry": ("ModelVersion",),
    "shipyard.track.api": (
        "default_workspace",
        "get_run",
        "list_experiments",
        "search_runs",
        "start_run",
    ),
    "shipyard.track.run": ("ActiveRun",),
    "shipyard.track.workspace": ("Workspace",),
    "shipyard.train.spec": ("EstimatorSpec", "TrainSpec"),
    "shipyard.train.trainer": ("TrainResult", "train_model"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
# Public names that differ from the defining module's: ``shipyard.train`` is a subpackage, and
# importing any of its modules sets that attribute on this package, so the function cannot be
# exported as ``train`` (it would be the package or the function depending on import order).
_RENAMED = {"train_model": "train"}

__all__ = [
    "ActiveRun",
    "AlertEngine",
    "AlreadyExists",
    "Artifact",
    "BatchReport",
    "Bundle",
    "Conflict",
    "DatasetVersion",
    "DriftConfig",
    "DriftReference",
    "DriftReport",
    "EstimatorSpec",
    "Experiment",
    "Identity",
    "InvalidArgument",
    "InvalidData",
    "InvalidFilter",
    "InvalidMetricValue",
    "InvalidName",
    "InvalidProjectFile",
    "InvalidSettings",
    "MetricPoint",
    "ModelRegistry",
    "ModelVersion",
    "MonitorConfig",
    "NotFound",
    "Note",
    "Observation",
    "ParamConflict",
    "PermissionDenied",
    "PipelineReport",
    "Project",
    "Run",
    "RunNotActive",
    "RunNotFound",
    "RunStatus",
    "Settings",
    "ShipyardError",
    "TrainResult",
    "TrainSpec",
    "Unavailable",
    "Workspace",
    "__version__",
    "compute_drift",
    "default_workspace",
    "drift_for_window",
    "get_dataset",
    "get_run",
    "input_anomalies",
    "list_datasets",
    "list_experiments",
    "load_project",
    "load_settings",
    "local_identity",
    "read_bundle",
    "read_dataset",
    "read_prediction_log",
    "read_windows",
    "run_pipeline",
    "score_file",
    "search_runs",
    "start_run",
    "train_model",
    "write_dataset",
    "write_training_bundle",
]


def _version() -> str:
    """The installed distribution's version: read on first use, the lookup scans every dist."""
    from importlib import metadata

    try:
        return metadata.version("shipyard")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "0.0.0"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
        globals()[name] = value
        return value
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
