"""Small builders of store rows shared by several test modules."""

from __future__ import annotations

from typing import Any

from shipyard.core.ids import new_id
from shipyard.store.sql import SqlStore

T0 = 1_700_000_000_000


def make_run(store: SqlStore, experiment: str = "exp", name: str = "r", **extra: Any) -> str:
    """Insert a running run directly through the store and return its id."""
    exp = store.get_or_create_experiment(experiment, T0)
    run_id = new_id()
    values = {
        "run_id": run_id,
        "experiment_id": exp.experiment_id,
        "parent_run_id": None,
        "name": name,
        "status": "running",
        "start_ms": T0,
        "heartbeat_ms": T0,
        "host": "h",
        "pid": 1,
        "pid_started_ms": T0,
        "user": "u",
        "environment": {},
    }
    values.update(extra)
    store.create_run(values)
    return run_id
