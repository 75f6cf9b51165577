"""Workspaces with something in every table a backup must carry, and helpers to compare stores.

``populate`` logs a run (params, tags, metrics, a note, an artifact) and, with ``model=True``,
registers a small trained model and promotes it to ``production`` through the workspace's
registry, so there are versions, aliases, a dataset and audit entries to back up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.store.backup.tables import tables

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.track.workspace import Workspace


def populate(ws: Workspace, directory: Path, *, model: bool = True, tag: str = "a") -> None:
    """Write a run with every kind of record, and (``model``) a production model."""
    with ws.start_run(name=f"run-{tag}", experiment="exp", params={"lr": 0.1}) as run:
        run.set_tag("team", tag)
        run.log_metrics({"loss": 0.5, "acc": 0.9}, step=1)
        run.log_metric("loss", 0.25, step=2)
        run.add_note(f"note {tag}")
        run.log_artifact(f"artifact {tag}".encode(), name=f"notes-{tag}.txt")
    ws.flush()
    if model:
        from shipyard.registry.registry import ModelRegistry
        from tests.identities import person
        from tests.unit.registry.trained import cached_bundle_file

        registry = ModelRegistry.for_workspace(ws)
        path = cached_bundle_file(ws, directory, name="churn")
        version = registry.register("churn", path, actor=person("ana"))
        registry.promote("churn", version.version, actor=person("ana"), reason="first")


def table_rows(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every metadata table's rows as plain tuples, sorted in Python (collations differ)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as c:
        present = set(sa.inspect(c).get_table_names())
        for table in tables():
            if table.name in present:
                rows = [tuple(row) for row in c.execute(sa.select(table))]
                out[table.name] = sorted(rows, key=repr)
    return out
