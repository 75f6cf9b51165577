"""Datasets: versions, schema, profile, quarantine, lineage graph.

A version's page shows its schema, profile, quarantine counts by failed check with masked
sample rows, and the lineage graph (sources → versions → the run that made each → model
versions).

What a reader sees follows the CLI: metadata (list, schema, lineage) needs ``data.metadata``;
the profile and rows need ``data.read`` (``shipyard data profile|quarantine``). Rows pass
``privacy.exposure`` with raw personal data always masked here, whatever the role: the UI
never reveals raw PII (an admin reads it with ``shipyard data show --raw-pii``, audited).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from shipyard.core.errors import NotFound, ShipyardError
from shipyard.security.permissions import Action, check
from shipyard.ui.pages.comments import comment_section
from shipyard.ui.render import render

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from shipyard.security.identities import Identity
    from shipyard.store.dataset_entities import DatasetVersion
    from shipyard.track.workspace import Workspace

SAMPLE_ROWS = 20
FAILED = "_failed_checks"  # data.validate.FAILED: the checks a quarantined row failed


async def datasets_page(request: Request) -> Response:
    """Every dataset version, newest first (``?kind=quarantine`` for quarantine only)."""
    from shipyard.data.datasets import list_datasets

    workspace = request.app.state.ui.workspace
    kind = request.query_params.get("kind") or None
    versions = await run_in_threadpool(list_datasets, workspace, None, kind=kind)
    return render(request, "datasets.html", versions=versions, kind=kind)


def _rows(
    workspace: Workspace, identity: Identity, version: DatasetVersion
) -> tuple[list[str], list[tuple[Any, ...]], list[str], list[tuple[str, int]]]:
    """(columns, sample rows masked, masked columns, failed-check counts of a quarantine)."""
    import polars as pl

    from shipyard.data.datasets import pii_tags, read_dataset
    from shipyard.privacy.exposure import decide

    lazy = read_dataset(workspace, version)
    frame = lazy.head(SAMPLE_ROWS).collect()
    exposure = dataclasses.replace(decide(identity, pii_tags(version), frame.columns), reveal=False)
    shown = exposure.apply(frame)
    reasons: list[tuple[str, int]] = []
    if FAILED in lazy.collect_schema().names():
        counts = (
            lazy.select(pl.col(FAILED).alias("check"))
            .explode("check")
            .drop_nulls()
            .group_by("check")
            .len()
            .sort("len", descending=True)
            .collect()
        )
        reasons = [(str(c), int(n)) for c, n in counts.iter_rows()]
    rows = [tuple(_cell(v) for v in row) for row in shown.iter_rows()]
    return shown.columns, rows, list(exposure.masked), reasons


def _cell(value: Any) -> Any:
    """A list cell (the checks a row failed) as ``a, b``, as ``shipyard data quarantine``."""
    return ", ".join(str(v) for v in value) if isinstance(value, list) else value


def _downstream(
    workspace: Workspace, datasets: set[str], runs: set[str]
) -> list[tuple[str, int, str]]:
    """Model versions trained on ``datasets`` or by ``runs``: (model, version, how)."""
    from shipyard.store.registry import RegistryStore

    registry = RegistryStore(workspace.store)
    found = []
    for model in registry.list_models():
        for version in registry.list_versions(model["name"]):
            used = version.lineage.get("dataset_ids") or {}
            roles = sorted(str(r) for r, d in used.items() if d in datasets)
            if roles:
                found.append((version.name, version.version, ", ".join(roles) + " data"))
            elif version.run_id in runs:
                found.append((version.name, version.version, f"run {version.run_id[:8]}"))
    return found


def _details(workspace: Workspace, identity: Identity, name: str) -> dict[str, Any]:
    from shipyard.data.datasets import get_dataset, pii_tags
    from shipyard.data.lineage import lineage_graph

    version = get_dataset(workspace, name)
    graph = lineage_graph(workspace.store, version.dataset_id)
    may_read = check(identity, Action.DATA_READ).allowed
    columns: list[str] = []
    rows: list[tuple[Any, ...]] = []
    masked: list[str] = []
    reasons: list[tuple[str, int]] = []
    if may_read:
        columns, rows, masked, reasons = _rows(workspace, identity, version)
    # Runs of this version's own subtree and the versions it feeds into: its run, and the
    # runs that produced its descendants, trained the models downstream.
    runs = {r for r in [version.run_id] if r}
    children = _children(workspace, version.dataset_id)
    runs.update(c.run_id for c in children if c.run_id)
    return {
        "version": version,
        "pii": pii_tags(version),
        "may_read": may_read,
        "profile": version.profile.get("columns") if may_read else None,
        "columns": columns,
        "rows": rows,
        "masked": masked,
        "reasons": reasons,
        "graph": graph,
        "order": graph.upstream_first(),
        "children": children,
        "models": _downstream(
            workspace, {version.dataset_id, *(c.dataset_id for c in children)}, runs
        ),
    }


def _children(workspace: Workspace, dataset_id: str) -> list[DatasetVersion]:
    from shipyard.store.datasets import DatasetStore

    return DatasetStore(workspace.store).children(dataset_id)


async def dataset_page(request: Request) -> Response:
    """One dataset version's page."""
    workspace = request.app.state.ui.workspace
    try:
        details = await run_in_threadpool(
            _details, workspace, request.state.identity, request.path_params["name"]
        )
    except NotFound as e:
        return render(request, "error.html", status_code=404, message=str(e))
    except ShipyardError as e:
        return render(request, "error.html", status_code=400, message=str(e))
    section = await run_in_threadpool(
        comment_section,
        request.app.state.ui,
        request.state.identity,
        "dataset",
        details["version"].dataset_id,
    )
    return render(request, "dataset.html", **details, **section)


ROUTES = [
    Route("/datasets", datasets_page, methods=["GET"]),
    Route("/datasets/{name}", dataset_page, methods=["GET"]),
]
