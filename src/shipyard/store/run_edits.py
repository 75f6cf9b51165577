"""Small reads and edits of runs and experiments that the MLflow-compatible API needs.

Shipyard's own API never renames an experiment or a run, nor removes a tag, and reads
experiments by name; MLflow's client does all of these by id (issue 22). They live apart from
``sql`` so that module keeps to its one job, and each is one short transaction.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shipyard.core.errors import AlreadyExists, ExperimentNotFound, RunNotFound
from shipyard.store.engine import run_write
from shipyard.store.entities import Experiment
from shipyard.store.models import ExperimentRow, LatestMetricRow, RunRow, TagRow

if TYPE_CHECKING:
    from collections.abc import Sequence

#: A metric's latest (value, step, timestamp_ms), per key, per run.
LatestPoints = dict[str, dict[str, tuple[float, int, int]]]


def experiment_by_id(engine: sa.Engine, experiment_id: str) -> Experiment:
    """Return the experiment with ``experiment_id``.

    Raises:
        ExperimentNotFound: No experiment has that id.
    """
    with engine.connect() as c:
        row = c.execute(
            sa.select(ExperimentRow).where(ExperimentRow.experiment_id == experiment_id)
        ).first()
    if row is None:
        raise ExperimentNotFound(
            f"no experiment with id {experiment_id!r}; `shipyard experiments list` shows them"
        )
    return Experiment(row.experiment_id, row.name, row.created_ms, row.description)


def rename_experiment(engine: sa.Engine, experiment_id: str, name: str) -> None:
    """Give an experiment a new, unused name.

    Raises:
        ExperimentNotFound: No such experiment. AlreadyExists: the name is taken.
    """
    statement = (
        sa.update(ExperimentRow)
        .where(ExperimentRow.experiment_id == experiment_id)
        .values(name=name)
    )
    try:
        result = run_write(engine, lambda c: c.execute(statement))
    except IntegrityError as e:
        raise AlreadyExists(f"an experiment named {name!r} already exists") from e
    if not result.rowcount:
        raise ExperimentNotFound(f"no experiment with id {experiment_id!r}")


def rename_run(engine: sa.Engine, run_id: str, name: str) -> None:
    """Give a run a new display name (its id never changes).

    Raises:
        RunNotFound: No such run.
    """
    statement = sa.update(RunRow).where(RunRow.run_id == run_id).values(name=name)
    if not run_write(engine, lambda c: c.execute(statement)).rowcount:
        raise RunNotFound(f"no run {run_id!r}")


def delete_tag(engine: sa.Engine, run_id: str, key: str) -> bool:
    """Remove one tag of a run; return whether it was there."""
    statement = sa.delete(TagRow).where(TagRow.run_id == run_id, TagRow.key == key)
    return bool(run_write(engine, lambda c: c.execute(statement)).rowcount)


def run_state(engine: sa.Engine, run_id: str) -> str | None:
    """The status of run ``run_id`` (exact id), or None when there is no such run."""
    with engine.connect() as c:
        return c.execute(sa.select(RunRow.status).where(RunRow.run_id == run_id)).scalar()


def latest_points(engine: sa.Engine, run_ids: Sequence[str]) -> LatestPoints:
    """Each run's metrics at their latest step: value, step and time (for MLflow's run data)."""
    found: LatestPoints = {r: {} for r in run_ids}
    if not run_ids:
        return found
    query = sa.select(
        LatestMetricRow.run_id,
        LatestMetricRow.key,
        LatestMetricRow.value,
        LatestMetricRow.step,
        LatestMetricRow.timestamp_ms,
    ).where(LatestMetricRow.run_id.in_(list(run_ids)))
    with engine.connect() as c:
        for run_id, key, value, step, at in c.execute(query):
            found[run_id][key] = (math.nan if value is None else value, int(step), int(at))
    return found
