"""The public API is exactly what ``shipyard.__all__`` lists, and every name resolves."""

from __future__ import annotations

import subprocess
import sys

import pytest

import shipyard

PUBLIC = {
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
}


def test_all_is_pinned() -> None:
    assert set(shipyard.__all__) == PUBLIC


def test_every_public_name_resolves() -> None:
    for name in shipyard.__all__:
        assert getattr(shipyard, name) is not None


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="not_a_thing"):
        _ = shipyard.not_a_thing  # type: ignore[attr-defined]


def test_all_matches_the_lazy_export_table() -> None:
    assert set(shipyard.__all__) == {*shipyard._MODULE_OF, "__version__"}


def test_errors_subclass_the_builtins_callers_expect() -> None:
    assert issubclass(shipyard.InvalidArgument, ValueError)
    assert issubclass(shipyard.NotFound, LookupError)
    assert issubclass(shipyard.RunNotFound, shipyard.ShipyardError)


HEAVY = ("sqlalchemy", "polars", "numpy", "pyarrow", "sklearn", "lightgbm", "optuna", "fastapi")


def test_importing_the_package_loads_nothing_heavy() -> None:
    probe = f"import sys, shipyard; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_public_name_loads_only_its_own_corner() -> None:
    # Tracking needs the store, not the ML stack: start_run must not pull in training.
    probe = "import sys, shipyard; shipyard.start_run; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "name",
    ["ModelRegistry", "load_project", "run_pipeline", "train_model", "TrainSpec", "DriftReference",
     "compute_drift", "score_file", "write_dataset", "AlertEngine", "local_identity"],
)  # fmt: skip
def test_the_lifecycle_entry_points_are_public(name: str) -> None:
    # The docs teach these (docs/*.md, README.md); they must not need a deep import.
    assert name in shipyard.__all__
    assert getattr(shipyard, name).__module__.startswith("shipyard.")


def test_dir_lists_the_public_api() -> None:
    assert set(dir(shipyard)) == set(shipyard.__all__)


def test_train_model_is_the_function_whatever_was_imported_before() -> None:
    # ``shipyard.train`` is a subpackage; the function is exported under another name so that
    # importing the subpackage first cannot shadow it.
    probe = (
        "import shipyard.train.trainer, shipyard; "
        "print(callable(shipyard.train_model), shipyard.train_model.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "train"]
