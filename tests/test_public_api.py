"""The public API is exactly what ``shipyard.__all__`` lists, and every name resolves."""

from __future__ import annotations

import subprocess
import sys

import pytest

import shipyard

PUBLIC = {
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


def test_importing_the_package_does_not_load_the_database_layer() -> None:
    probe = "import sys, shipyard; print('sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
