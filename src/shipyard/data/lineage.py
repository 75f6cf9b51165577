"""The lineage of a dataset version: what it was derived from, by which runs, from which reads.

``lineage_graph`` loads every version upstream of one (one recursive query), the runs that
produced them and the source snapshots their reads recorded. ``render_tree`` draws it as plain
text for the CLI; ``openlineage_events`` exports it as OpenLineage RunEvents (spec 2-0-2,
https://openlineage.io/spec/2-0-2/OpenLineage.json) for Marquez, DataHub and friends.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any

from shipyard.store.datasets import DatasetStore

if TYPE_CHECKING:
    from shipyard.store.dataset_entities import DatasetVersion, SourceSnapshot
    from shipyard.store.entities import Run
    from shipyard.store.sql import SqlStore

RUN_EVENT_SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_FACETS = "https://openlineage.io/spec/facets"
SCHEMA_FACET_URL = f"{_FACETS}/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
VERSION_FACET_URL = (
    f"{_FACETS}/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
)
OUTPUT_STATISTICS_FACET_URL = (
    f"{_FACETS}/1-0-2/OutputStatisticsOutputDatasetFacet.json"
    "#/$defs/OutputStatisticsOutputDatasetFacet"
)
PARENT_RUN_FACET_URL = f"{_FACETS}/1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet"
SOURCE_NAMESPACE_SUFFIX = ".sources"
#: Namespace of the UUIDs derived for versions written outside a run (stable across exports).
_RUN_UUID_NAMESPACE = uuid.UUID("6f1c1f38-2b51-4c77-9a43-55e0e5d1a7c2")


def _producer() -> str:
    try:
        version = metadata.version("shipyard")
    except metadata.PackageNotFoundError:  # running from a source tree
        version = "0"
    return f"https://github.com/shipyard/shipyard/tree/v{version}"


PRODUCER = _producer()


@dataclass(frozen=True, slots=True)
class LineageGraph:
    """A version and everything upstream of it.

    Attributes:
        root: The id of the version whose lineage this is.
        datasets: Every version in the graph by id, the root included.
        runs: The runs that produced them, by run id.
        snapshots: Source snapshots by the id of the version their read produced.
    """

    root: str
    datasets: dict[str, DatasetVersion]
    runs: dict[str, Run]
    snapshots: dict[str, tuple[SourceSnapshot, ...]]

    def parents(self, dataset_id: str) -> tuple[str, ...]:
        """Return the ids of the versions ``dataset_id`` was derived from."""
        return tuple(p for p in self.datasets[dataset_id].parent_ids if p in self.datasets)

    @property
    def edges(self) -> list[tuple[str, str]]:
        """Every (child id, parent id) pair, sorted."""
        return sorted((d, p) for d in self.datasets for p in self.parents(d))

    def upstream_first(self) -> list[str]:
        """Return every id, each after all of its parents (then by time and id)."""
        height: dict[str, int] = {}

        def _height(node: str) -> int:
            if node not in height:
                height[node] = 1 + max((_height(p) for p in self.parents(node)), default=-1)
            return height[node]

        return sorted(
            self.datasets,
            key=lambda d: (_height(d), self.datasets[d].created_ms, d),
        )


def lineage_graph(store: SqlStore, dataset_id: str) -> LineageGraph:
    """Load the lineage of a version (an id or a unique prefix of 6+ hex characters).

    Raises:
        NotFound: No version matches ``dataset_id``.
    """
    versions = DatasetStore(store)
    datasets = versions.ancestry(dataset_id)
    run_ids = sorted({v.run_id for v in datasets.values() if v.run_id is not None})
    runs = {r.run_id: r for r in store.get_runs(run_ids)}
    snapshots: dict[str, list[SourceSnapshot]] = {}
    for snap in versions.snapshots_for(datasets):
        if snap.dataset_id is not None:
            snapshots.setdefault(snap.dataset_id, []).append(snap)
    root = next(iter(datasets))
    return LineageGraph(
        root=root,
        datasets=datasets,
        runs=runs,
        snapshots={k: tuple(v) for k, v in snapshots.items()},
    )


# -- text tree -------------------------------------------------------------------------------


def render_tree(graph: LineageGraph) -> str:
    """Draw the graph as a plain-text tree, the root first and its inputs below it (by name).

    A version reached a second time (a diamond in the graph) is drawn once more with
    ``(see above)`` instead of its inputs again.
    """
    lines = [_dataset_label(graph, graph.root)]
    seen = {graph.root}

    def _walk(node: str, indent: str) -> None:
        parents = sorted(graph.parents(node), key=lambda p: (graph.datasets[p].name, p))
        items: list[tuple[str, Any]] = [("dataset", p) for p in parents]
        items += [("source", s) for s in graph.snapshots.get(node, ())]
        for n, (what, item) in enumerate(items):
            last = n == len(items) - 1
            branch = "└── " if last else "├── "
            if what == "source":
                lines.append(indent + branch + _source_label(item))
                continue
            label = _dataset_label(graph, item)
            if item in seen:
                lines.append(indent + branch + label + " (see above)")
                continue
            seen.add(item)
            lines.append(indent + branch + label)
            _walk(item, indent + ("    " if last else "│   "))

    _walk(graph.root, "")
    return "\n".join(lines)


def _dataset_label(graph: LineageGraph, dataset_id: str) -> str:
    version = graph.datasets[dataset_id]
    parts = [f"{version.name} {version.short_id}"]
    if version.kind != "data":
        parts.append(version.kind)
    parts.append(_rows(version.row_count))
    if version.run_id is not None:
        run = graph.runs.get(version.run_id)
        parts.append(f"run {version.run_id[:8]}" + (f" ({run.name})" if run else ""))
    parts.append(_time(version.created_ms))
    return " · ".join(parts)


def _source_label(snapshot: SourceSnapshot) -> str:
    parts = [f"source {snapshot.source}"]
    if snapshot.watermark is not None:
        parts.append(f"watermark {json.dumps(snapshot.watermark)}")
    if snapshot.row_count is not None:
        parts.append(_rows(snapshot.row_count))
    parts.append(_time(snapshot.created_ms))
    return " · ".join(parts)


def _rows(count: int) -> str:
    return f"{count:,} row" + ("" if count == 1 else "s")


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


# -- OpenLineage -----------------------------------------------------------------------------


def openlineage_events(
    graph: LineageGraph, *, namespace: str = "shipyard", producer: str = PRODUCER
) -> list[dict[str, Any]]:
    """Return one COMPLETE RunEvent per job run in the graph, upstream runs first.

    A job is the producing step (``lineage["step"]`` of a version) or else the dataset name;
    versions written by the same run and step share one event, with every one as an output.
    ``run.runId`` is the Shipyard run id as a UUID; when one Shipyard run produced several
    steps, each step gets its own UUID (derived from run id and step) and a ``parent`` facet
    pointing at the Shipyard run. Versions written outside any run get a UUID derived from
    their ids, the same on every export. Inputs are the parent versions and the sources whose
    reads produced the outputs (namespace ``<namespace>.sources``).
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for dataset_id in graph.upstream_first():
        version = graph.datasets[dataset_id]
        owner = version.run_id or f"dataset:{dataset_id}"
        groups.setdefault((owner, _job_name(version)), []).append(dataset_id)
    jobs_per_run: dict[str, int] = {}
    for owner, _ in groups:
        jobs_per_run[owner] = jobs_per_run.get(owner, 0) + 1

    events = []
    for (owner, job), outputs in groups.items():
        run: dict[str, Any] = {"runId": _run_uuid(graph, owner, job, jobs_per_run[owner] > 1)}
        if owner in graph.runs and jobs_per_run[owner] > 1:
            run["facets"] = {
                "parent": _facet(
                    producer,
                    PARENT_RUN_FACET_URL,
                    run={"runId": str(uuid.UUID(hex=owner))},
                    job={"namespace": namespace, "name": graph.runs[owner].name},
                )
            }
        inputs = sorted(
            {p for d in outputs for p in graph.parents(d) if p not in outputs},
            key=lambda p: (graph.datasets[p].name, p),
        )
        snapshots = [s for d in outputs for s in graph.snapshots.get(d, ())]
        events.append(
            {
                "eventType": "COMPLETE",
                "eventTime": _iso(max(graph.datasets[d].created_ms for d in outputs)),
                "run": run,
                "job": {"namespace": namespace, "name": job},
                "inputs": [_ol_dataset(graph.datasets[p], namespace, producer) for p in inputs]
                + [_ol_source(s, namespace, producer) for s in snapshots],
                "outputs": [
                    _ol_dataset(graph.datasets[d], namespace, producer, output=True)
                    for d in outputs
                ],
                "producer": producer,
                "schemaURL": RUN_EVENT_SCHEMA_URL,
            }
        )
    return events


def _job_name(version: DatasetVersion) -> str:
    step = (version.lineage or {}).get("step")
    return step if isinstance(step, str) and step else version.name


def _run_uuid(graph: LineageGraph, owner: str, job: str, shared: bool) -> str:
    if owner.startswith("dataset:"):
        return str(uuid.uuid5(_RUN_UUID_NAMESPACE, owner))
    run_uuid = uuid.UUID(hex=owner)  # Shipyard run ids are UUID4 hex without dashes
    return str(uuid.uuid5(run_uuid, job) if shared else run_uuid)


def _ol_dataset(
    version: DatasetVersion, namespace: str, producer: str, *, output: bool = False
) -> dict[str, Any]:
    dataset: dict[str, Any] = {
        "namespace": namespace,
        "name": version.name,
        "facets": {
            "schema": _schema_facet(version.schema, producer),
            "version": _facet(producer, VERSION_FACET_URL, datasetVersion=version.dataset_id),
        },
    }
    if output:
        dataset["outputFacets"] = {
            "outputStatistics": _facet(
                producer,
                OUTPUT_STATISTICS_FACET_URL,
                rowCount=version.row_count,
                size=version.size_bytes,
            )
        }
    return dataset


def _ol_source(snapshot: SourceSnapshot, namespace: str, producer: str) -> dict[str, Any]:
    return {
        "namespace": namespace + SOURCE_NAMESPACE_SUFFIX,
        "name": snapshot.source,
        "facets": {"schema": _schema_facet(snapshot.schema, producer)},
    }


def _schema_facet(schema: list[dict[str, str]], producer: str) -> dict[str, Any]:
    fields = [{"name": f["name"], "type": f["type"]} for f in schema]
    return _facet(producer, SCHEMA_FACET_URL, fields=fields)


def _facet(producer: str, schema_url: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": producer, "_schemaURL": schema_url, **fields}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
