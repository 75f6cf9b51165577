"""Lineage graphs of dataset versions: loading, the text tree, OpenLineage run events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from shipyard.core.clock import ManualClock
from shipyard.core.settings import load_settings
from shipyard.data.datasets import write_dataset
from shipyard.data.lineage import (
    RUN_EVENT_SCHEMA_URL,
    LineageGraph,
    lineage_graph,
    openlineage_events,
    render_tree,
)
from shipyard.store.datasets import DatasetStore, DatasetVersion
from shipyard.track.workspace import Workspace

T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    settings = load_settings(
        project_dir=tmp_path,
        store_url=f"sqlite:///{tmp_path / 'store.db'}",
        artifact_root=str(tmp_path / "artifacts"),
    )
    workspace = Workspace(settings, clock=ManualClock(T0))
    yield workspace
    workspace.close()


@dataclass
class Pipeline:
    raw: DatasetVersion
    customers: DatasetVersion
    clean: DatasetVersion
    quarantine: DatasetVersion
    features: DatasetVersion
    ingest_run: str
    clean_run: str


def tick(ws: Workspace) -> None:
    ws.clock.advance(seconds=60)  # type: ignore[attr-defined]


@pytest.fixture
def pipeline(ws: Workspace) -> Pipeline:
    """orders + customers (sources) → raw versions → clean (+ quarantine) → features."""
    orders = pl.DataFrame({"order_id": [1, 2, 3, 4], "amount": [10.0, -1.0, 30.0, 40.0]})
    customers = pl.DataFrame({"customer_id": [7, 8], "email": ["a@x", "b@x"]})
    store = DatasetStore(ws.store)
    with ws.start_run("ingest") as ingest:
        raw = write_dataset(
            ws, orders, name="orders.raw", run_id=ingest.run_id, lineage={"step": "ingest"}
        )
        store.record_snapshot(
            "orders",
            watermark="2024-01-31T00:00:00",
            schema=[{"name": "order_id", "type": "int64"}, {"name": "amount", "type": "float64"}],
            row_count=4,
            dataset_id=raw.dataset_id,
            run_id=ingest.run_id,
            created_ms=ws.clock.now_ms(),
        )
        tick(ws)
        cust = write_dataset(ws, customers, name="customers.raw")
    tick(ws)
    with ws.start_run("clean") as clean_run:
        accepted = orders.filter(pl.col("amount") >= 0)
        clean = write_dataset(
            ws,
            accepted,
            name="orders.clean",
            parents=[raw],
            run_id=clean_run.run_id,
            lineage={"step": "validate"},
        )
        rejected = orders.filter(pl.col("amount") < 0).with_columns(
            _failed_checks=pl.lit(["amount_min"], dtype=pl.List(pl.String))
        )
        quarantine = write_dataset(
            ws,
            rejected,
            name="orders.quarantine",
            kind="quarantine",
            parents=[raw],
            run_id=clean_run.run_id,
            lineage={"step": "validate"},
        )
    tick(ws)
    features = write_dataset(
        ws,
        accepted.with_columns(amount_log=pl.col("amount").log1p()),
        name="orders.features",
        parents=[clean, cust, raw],
    )
    return Pipeline(raw, cust, clean, quarantine, features, ingest.run_id, clean_run.run_id)


def test_graph_holds_everything_upstream(ws: Workspace, pipeline: Pipeline) -> None:
    graph = lineage_graph(ws.store, pipeline.features.dataset_id[:10])
    p = pipeline
    assert graph.root == p.features.dataset_id
    assert set(graph.datasets) == {
        p.features.dataset_id,
        p.clean.dataset_id,
        p.customers.dataset_id,
        p.raw.dataset_id,
    }
    assert set(graph.runs) == {p.ingest_run, p.clean_run}
    assert [s.source for s in graph.snapshots[p.raw.dataset_id]] == ["orders"]
    assert (p.clean.dataset_id, p.raw.dataset_id) in graph.edges
    order = graph.upstream_first()
    assert order.index(p.raw.dataset_id) < order.index(p.clean.dataset_id)
    assert order[-1] == p.features.dataset_id


def test_render_tree(ws: Workspace, pipeline: Pipeline) -> None:
    p = pipeline
    raw = (
        f"orders.raw {p.raw.short_id} · 4 rows · run {p.ingest_run[:8]} (ingest) · "
        "2023-11-14 22:13 UTC"
    )
    expected = [
        f"orders.features {p.features.short_id} · 3 rows · 2023-11-14 22:16 UTC",
        f"├── customers.raw {p.customers.short_id} · 2 rows · 2023-11-14 22:14 UTC",
        f"├── orders.clean {p.clean.short_id} · 3 rows · run {p.clean_run[:8]} (clean) · "
        "2023-11-14 22:15 UTC",
        f"│   └── {raw}",
        '│       └── source orders · watermark "2024-01-31T00:00:00" · 4 rows · '
        "2023-11-14 22:13 UTC",
        f"└── {raw} (see above)",  # a diamond: raw's inputs are drawn once
    ]
    assert render_tree(lineage_graph(ws.store, p.features.dataset_id)).splitlines() == expected


def test_render_tree_marks_quarantine(ws: Workspace, pipeline: Pipeline) -> None:
    text = render_tree(lineage_graph(ws.store, pipeline.quarantine.dataset_id))
    assert text.splitlines()[0].startswith(
        f"orders.quarantine {pipeline.quarantine.short_id} · quarantine · 1 row · "
    )


def test_tree_of_a_version_without_inputs(ws: Workspace, pipeline: Pipeline) -> None:
    text = render_tree(lineage_graph(ws.store, pipeline.customers.dataset_id))
    assert text == f"customers.raw {pipeline.customers.short_id} · 2 rows · 2023-11-14 22:14 UTC"


def _check_event_shape(event: dict) -> None:
    """The key fields of OpenLineage 2-0-2's RunEvent, Run, Job, InputDataset, OutputDataset."""
    assert set(event) >= {"eventType", "eventTime", "run", "job", "producer", "schemaURL"}
    assert event["eventType"] == "COMPLETE"
    assert event["schemaURL"] == RUN_EVENT_SCHEMA_URL
    assert event["schemaURL"].startswith("https://openlineage.io/spec/2-0-2/OpenLineage.json#/")
    assert event["producer"].startswith("https://")
    assert str(uuid.UUID(event["run"]["runId"])) == event["run"]["runId"]
    assert event["eventTime"].endswith("+00:00")
    assert set(event["job"]) >= {"namespace", "name"}
    for dataset in event["inputs"] + event["outputs"]:
        assert isinstance(dataset["namespace"], str)
        assert isinstance(dataset["name"], str)
        for facet in list(dataset.get("facets", {}).values()) + list(
            dataset.get("outputFacets", {}).values()
        ):
            assert facet["_producer"] == event["producer"]
            assert facet["_schemaURL"].startswith("https://openlineage.io/spec/facets/")
        schema = dataset["facets"]["schema"]
        assert all(set(f) == {"name", "type"} for f in schema["fields"])
    for facet in event["run"].get("facets", {}).values():
        assert set(facet) >= {"_producer", "_schemaURL"}
    json.dumps(event, allow_nan=False)


def test_openlineage_events(ws: Workspace, pipeline: Pipeline) -> None:
    p = pipeline
    graph = lineage_graph(ws.store, p.features.dataset_id)
    events = openlineage_events(graph)
    for event in events:
        _check_event_shape(event)
    jobs = [e["job"]["name"] for e in events]
    assert jobs == ["ingest", "customers.raw", "validate", "orders.features"]
    by_job = {e["job"]["name"]: e for e in events}

    ingest = by_job["ingest"]
    assert ingest["run"]["runId"] == str(uuid.UUID(hex=p.ingest_run))
    assert ingest["eventTime"] == "2023-11-14T22:13:20.000+00:00"
    assert ingest["inputs"] == [
        {
            "namespace": "shipyard.sources",
            "name": "orders",
            "facets": {
                "schema": {
                    "_producer": ingest["producer"],
                    "_schemaURL": "https://openlineage.io/spec/facets/1-1-1/"
                    "SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
                    "fields": [
                        {"name": "order_id", "type": "int64"},
                        {"name": "amount", "type": "float64"},
                    ],
                }
            },
        }
    ]
    (output,) = ingest["outputs"]
    assert output["namespace"] == "shipyard"
    assert output["name"] == "orders.raw"
    assert output["facets"]["version"]["datasetVersion"] == p.raw.dataset_id
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 4
    assert output["outputFacets"]["outputStatistics"]["size"] == p.raw.size_bytes

    validate = by_job["validate"]
    assert validate["run"]["runId"] == str(uuid.UUID(hex=p.clean_run))
    assert [d["name"] for d in validate["inputs"]] == ["orders.raw"]
    # orders.quarantine is not upstream of features, so it is not in this graph.
    assert [d["name"] for d in validate["outputs"]] == ["orders.clean"]

    features = by_job["orders.features"]
    assert sorted(d["name"] for d in features["inputs"]) == [
        "customers.raw",
        "orders.clean",
        "orders.raw",
    ]
    # Written outside a run: a UUID derived from the version, the same on every export.
    assert features["run"]["runId"] == openlineage_events(graph)[-1]["run"]["runId"]
    assert uuid.UUID(features["run"]["runId"]).version == 5


def test_one_run_with_two_steps_gets_a_run_per_step_and_a_parent(
    ws: Workspace, pipeline: Pipeline
) -> None:
    p = pipeline
    with ws.start_run("pipeline") as run:
        a = write_dataset(
            ws, pl.DataFrame({"x": [1]}), name="a", run_id=run.run_id, lineage={"step": "s1"}
        )
        b = write_dataset(
            ws,
            pl.DataFrame({"x": [2]}),
            name="b",
            parents=[a, p.quarantine],
            run_id=run.run_id,
            lineage={"step": "s2"},
        )
    events = openlineage_events(lineage_graph(ws.store, b.dataset_id), namespace="acme")
    for event in events:
        _check_event_shape(event)
    steps = {e["job"]["name"]: e for e in events if e["job"]["name"] in {"s1", "s2"}}
    run_ids = {e["run"]["runId"] for e in steps.values()}
    assert len(run_ids) == 2
    for event in steps.values():
        parent = event["run"]["facets"]["parent"]
        assert parent["run"]["runId"] == str(uuid.UUID(hex=run.run_id))
        assert parent["job"] == {"namespace": "acme", "name": "pipeline"}
        assert event["job"]["namespace"] == "acme"
    assert {d["name"] for d in steps["s2"]["inputs"]} == {"a", "orders.quarantine"}


def test_graph_type_is_frozen(ws: Workspace, pipeline: Pipeline) -> None:
    graph = lineage_graph(ws.store, pipeline.raw.dataset_id)
    assert isinstance(graph, LineageGraph)
    assert graph.parents(pipeline.raw.dataset_id) == ()
    with pytest.raises(AttributeError):
        graph.root = "x"  # type: ignore[misc]
