"""Retention policies and the blob collector on both store backends.

Real bundles (small scikit-learn pipelines, tests/unit/registry/bundles.py), real dataset
versions and real run artifacts; the collector deletes real files under the test's artifact
root, and every blob that something still refers to is read back and re-hashed afterwards.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from shipyard.core.clock import ManualClock
from shipyard.core.errors import ArtifactNotFound, InvalidArgument, NotFound
from shipyard.cost.blob_gc import check_references, collect_garbage
from shipyard.cost.catalog import load_catalog
from shipyard.cost.retention import (
    RetentionPolicy,
    apply_retention,
    blob_tiers,
    monthly_cost,
    plan_retention,
)
from shipyard.data.datasets import find_cached, read_dataset, write_dataset
from shipyard.registry.registry import ModelRegistry
from shipyard.security.audit_chain import security_store
from shipyard.store.blob_refs import BlobRefs
from shipyard.store.cost_models import GcCandidateRow, GcSweepRow
from shipyard.store.security import SecurityStore
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.unit.registry.bundles import WEAK, bundle_bytes, held_out

DAY_S = 86_400
#: The SQL-heavy tests run on both backends; the rest only on SQLite (a PostgreSQL database per
#: test costs seconds, and they exercise no SQL the others do not).
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def live_blobs_readable(workspace: Workspace) -> set[str]:
    """Every blob a live reference names, read back and checked against its digest."""
    digests = {r.digest for r in BlobRefs(workspace.store).live()}
    for digest in digests:
        assert workspace.blobs.verify(digest), digest
    return digests


def _log(workspace: Workspace) -> SecurityStore:
    """The audit log retention and gc write to (the CLI builds it the same way)."""
    return security_store(workspace.settings, workspace.store)


@pytest.fixture
def registry(workspace: Workspace) -> ModelRegistry:
    return ModelRegistry.for_workspace(workspace)


@pytest.fixture
def four_versions(workspace: Workspace, registry: ModelRegistry, tmp_path: Path) -> dict[int, str]:
    """Four versions of ``cancer`` with distinct bundles, all tested on one dataset version."""
    test = write_dataset(workspace, held_out("binary"), name="cancer.test").dataset_id
    features = [None, WEAK["binary"], ["mean_radius"], ["mean_texture"]]
    digests = {}
    for i, names in enumerate(features, start=1):
        data = bundle_bytes(tmp_path, features=names, test_dataset=test, name=f"b{i}")
        version = registry.register("cancer", data, actor=OPERATOR)
        digests[version.version] = version.bundle_sha256
    return digests


def test_gc_after_promotions_deletes_only_unreferenced_blobs(
    workspace: Workspace, registry: ModelRegistry, four_versions: dict[int, str]
) -> None:
    registry.promote("cancer", 3, force=True, reason="ship v3", actor=OPERATOR)
    # v1's bytes are also a run artifact: releasing v1 must not free them.
    with workspace.start_run(name="keeps-v1-bytes") as run:
        run.log_artifact(workspace.blobs.get_bytes(four_versions[1]), name="copy.shipyard")
    orphan = workspace.blobs.put_bytes(b"written, never referenced").digest

    plan = plan_retention(workspace.store, RetentionPolicy(keep_versions=1), workspace.clock)
    assert plan.kept_versions == ["cancer:3", "cancer:4"]
    released = {(r.kind, r.ref) for r in plan.releases}
    assert released == {("model_version", "cancer:1"), ("model_version", "cancer:2")}

    dry = collect_garbage(
        workspace,
        audit_log=_log(workspace),
        grace_s=0,
        dry_run=True,
        also_released=plan.released_keys,
        actor=OPERATOR,
    )
    expected = {four_versions[2], orphan}
    assert set(dry.candidates) == expected
    assert dry.bytes_freed == sum(workspace.blobs.size(d) for d in expected)
    assert all(workspace.blobs.exists(d) for d in expected)  # a dry run deletes nothing

    apply_retention(
        workspace.store,
        plan,
        actor=OPERATOR,
        audit_log=_log(workspace),
    )
    report = collect_garbage(workspace, audit_log=_log(workspace), grace_s=0, actor=OPERATOR)
    assert set(report.deleted) == expected
    assert report.bytes_freed == dry.bytes_freed
    assert report.missing == []
    assert not any(workspace.blobs.exists(d) for d in expected)
    kept = live_blobs_readable(workspace)
    assert {four_versions[1], four_versions[3], four_versions[4]} <= kept
    assert registry.load("cancer@production").manifest.task == "binary"
    with pytest.raises(ArtifactNotFound):
        registry.load("cancer:2")
    assert registry.check_invariants() == []  # a released version may lack its blob

    with workspace.store.engine.connect() as c:
        sweep = c.execute(sa.select(GcSweepRow)).one()
        marked = c.execute(sa.select(GcCandidateRow.digest, GcCandidateRow.deleted_ms)).all()
    assert (sweep.status, sweep.deleted, sweep.bytes_freed) == ("done", 2, report.bytes_freed)
    assert {d for d, at in marked if at is not None} == expected

    again = collect_garbage(workspace, audit_log=_log(workspace), grace_s=0, actor=OPERATOR)
    assert again.deleted == []
    assert again.candidates == {}


@sqlite_only
def test_grace_period_spares_blobs_written_recently(workspace: Workspace) -> None:
    orphan = workspace.blobs.put_bytes(b"a write whose row is not committed yet").digest
    spared = collect_garbage(workspace, audit_log=_log(workspace), grace_s=3600, actor=OPERATOR)
    assert spared.recent == 1
    assert spared.deleted == []
    assert workspace.blobs.exists(orphan)
    gone = collect_garbage(workspace, audit_log=_log(workspace), grace_s=0, actor=OPERATOR)
    assert gone.deleted == [orphan]


def test_a_reference_committed_after_the_mark_is_seen_by_the_sweep(workspace: Workspace) -> None:
    orphan = workspace.blobs.put_bytes(b"adopted later").digest
    assert BlobRefs(workspace.store).still_referenced([orphan]) == set()
    with workspace.start_run() as run:
        run.log_artifact(b"adopted later", name="late.bin")
    assert BlobRefs(workspace.store).still_referenced([orphan]) == {orphan}
    assert (
        collect_garbage(workspace, audit_log=_log(workspace), grace_s=0, actor=OPERATOR).candidates
        == {}
    )


@sqlite_only
def test_a_sweep_that_failed_after_its_mark_is_abandoned_and_the_rerun_completes(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    orphan = workspace.blobs.put_bytes(b"garbage").digest
    monkeypatch.setenv("SHIPYARD_FAULT", "gc.before_delete:raise:EIO")
    with pytest.raises(OSError, match=r"gc\.before_delete"):
        collect_garbage(workspace, audit_log=_log(workspace), grace_s=0, actor=OPERATOR)
    assert workspace.blobs.exists(orphan)
    monkeypatch.delenv("SHIPYARD_FAULT")
    assert collect_garbage(
        workspace, audit_log=_log(workspace), grace_s=0, actor=OPERATOR
    ).deleted == [orphan]
    with workspace.store.engine.connect() as c:
        statuses = sorted(c.execute(sa.select(GcSweepRow.status)).scalars())
    assert statuses == ["abandoned", "done"]


def test_the_lineage_of_a_kept_model_is_kept(
    workspace: Workspace, registry: ModelRegistry, tmp_path: Path
) -> None:
    frame = pl.DataFrame({"x": [1, 2, 3]})
    raw_old = write_dataset(workspace, frame, name="raw", cache_key="k-raw-old")
    clean = write_dataset(
        workspace, frame.with_columns(y=pl.col("x") * 2), name="clean", parents=[raw_old]
    )
    raw_mid = write_dataset(workspace, frame.head(2), name="raw", cache_key="k-raw-mid")
    write_dataset(workspace, frame.head(1), name="raw")  # the newest raw version
    data = bundle_bytes(tmp_path, test_dataset=clean.dataset_id, name="lineage")
    registry.register("m", data, actor=OPERATOR)

    policy = RetentionPolicy(keep_dataset_versions=1)
    plan = plan_retention(workspace.store, policy, workspace.clock)
    assert {raw_old.dataset_id, clean.dataset_id} <= plan.protected_datasets
    assert {(r.kind, r.ref) for r in plan.releases} == {("dataset", raw_mid.dataset_id)}

    apply_retention(
        workspace.store,
        plan,
        actor=OPERATOR,
        audit_log=_log(workspace),
    )
    assert find_cached(workspace, "k-raw-mid", name="raw") is None  # recomputed, not missed
    assert find_cached(workspace, "k-raw-old", name="raw") is not None
    report = collect_garbage(workspace, audit_log=_log(workspace), grace_s=0, actor=OPERATOR)
    assert report.deleted == [raw_mid.digest]
    assert read_dataset(workspace, raw_old.dataset_id).collect().height == 3
    live_blobs_readable(workspace)


@sqlite_only
def test_run_artifacts_are_released_only_when_old_and_unneeded(
    workspace: Workspace, registry: ModelRegistry, tmp_path: Path
) -> None:
    with workspace.start_run(name="old") as old:
        old.log_artifact(b"old plot", name="plot.png")
    with workspace.start_run(name="trained") as trained:
        trained.log_artifact(b"training log", name="log.txt")
    data = bundle_bytes(tmp_path, name="from-run")
    registry.register("m", data, run_id=trained.run_id, actor=OPERATOR)
    later = ManualClock(workspace.clock.now_ms() + 31 * DAY_S * 1000)
    policy = RetentionPolicy(release_runs_after_days=30)

    soon = plan_retention(workspace.store, policy, workspace.clock)
    assert soon.releases == []
    plan = plan_retention(workspace.store, policy, later)
    assert [(r.kind, r.ref) for r in plan.releases] == [("run", old.run_id)]
    assert trained.run_id in plan.protected_runs
    apply_retention(
        workspace.store,
        plan,
        actor=OPERATOR,
        audit_log=_log(workspace),
    )
    report = collect_garbage(workspace, audit_log=_log(workspace), grace_s=0, actor=OPERATOR)
    assert len(report.deleted) == 1
    assert workspace.read_artifact(trained.run_id, "log.txt") == b"training log"
    with pytest.raises(ArtifactNotFound):
        workspace.read_artifact(old.run_id, "plot.png")


@sqlite_only
def test_old_blobs_move_to_the_cold_tier_except_what_an_alias_serves(
    workspace: Workspace, registry: ModelRegistry, four_versions: dict[int, str]
) -> None:
    registry.promote("cancer", 4, force=True, reason="ship", actor=OPERATOR)
    later = ManualClock(workspace.clock.now_ms() + 40 * DAY_S * 1000)
    policy = RetentionPolicy(cold_after_days=30, cold_tier="archive")
    plan = plan_retention(workspace.store, policy, later)
    assert four_versions[4] not in plan.cold
    assert {four_versions[1], four_versions[2], four_versions[3]} <= set(plan.cold)
    apply_retention(
        workspace.store,
        plan,
        actor=OPERATOR,
        audit_log=_log(workspace),
    )
    tiers = blob_tiers(workspace.store)
    assert tiers[four_versions[1]] == "archive"
    assert four_versions[4] not in tiers
    assert plan_retention(workspace.store, policy, later).cold == {}  # already there

    catalog = load_catalog()
    sizes = dict(plan.cold)
    hot = monthly_cost(sizes, {}, catalog)
    cold = monthly_cost(sizes, tiers, catalog)
    per_gb = catalog.tier("archive").per_gb_month
    assert cold == sum(Decimal(s) / Decimal(2**30) * per_gb for s in sizes.values())
    assert Decimal(0) < cold < hot
    with pytest.raises(NotFound, match="storage tier"):
        monthly_cost(sizes, dict.fromkeys(sizes, "glacier-deep"), catalog)
    live_blobs_readable(workspace)  # a tier is metadata: nothing moved


@sqlite_only
def test_bad_policies_and_arguments_are_refused(workspace: Workspace) -> None:
    with pytest.raises(ValidationError):
        RetentionPolicy(keep_versions=0)
    with pytest.raises(ValidationError):
        RetentionPolicy.model_validate({"keep_version": 3})
    with pytest.raises(ValidationError):
        RetentionPolicy(cold_tier="../cold")
    with pytest.raises(InvalidArgument, match="grace"):
        collect_garbage(workspace, audit_log=_log(workspace), grace_s=-1, actor=OPERATOR)
    with pytest.raises(InvalidArgument, match="apply the retention plan"):
        collect_garbage(
            workspace, audit_log=_log(workspace), also_released=[("run", "x")], actor=OPERATOR
        )


@sqlite_only
def test_every_blob_writer_is_a_reference(
    workspace: Workspace, registry: ModelRegistry, tmp_path: Path
) -> None:
    """The three writers' blobs are all found, so the collector never takes one of them."""
    with workspace.start_run() as run:
        run.log_artifact(b"artifact", name="a.bin")
    dataset = write_dataset(workspace, pl.DataFrame({"x": [1]}), name="d")
    version = registry.register("m", bundle_bytes(tmp_path, name="ref"), actor=OPERATOR)
    stored = set(workspace.blobs.iter_digests())
    live = {r.digest for r in BlobRefs(workspace.store).live()}
    assert stored == live
    assert {dataset.digest, version.bundle_sha256} <= live
    assert (
        collect_garbage(workspace, audit_log=_log(workspace), grace_s=0, actor=OPERATOR).deleted
        == []
    )
    assert check_references(workspace) == []
