"""Retention: which stored things keep their blobs, which give them up, which go to a cold tier.

A policy is applied in two steps so that a dry run shows exactly what a real run would do:
``plan_retention`` reads the metadata store and returns a ``RetentionPlan``; ``apply_retention``
writes it in one transaction. Nothing here deletes a file: a release only tells the blob
collector (``shipyard.cost.blob_gc``) that one reference no longer holds its blob; the blob goes
when no reference at all is left.

What is always kept:

* the newest ``keep_versions`` versions of every registered model, and every version an alias
  points at (``production``, ``challenger``, ...);
* the lineage of each kept version: its training run, the dataset versions it was trained and
  tested on (``lineage.dataset_ids``), every ancestor of those datasets, and the runs that
  wrote them;
* the newest ``keep_dataset_versions`` versions of every dataset name and kind;
* runs still running, and runs that ended less than ``release_runs_after_days`` ago (run
  artifacts are never released when that is unset).

Released rows stay in the metadata store as history (as after an erasure): reading a released
model version or dataset raises ``ArtifactNotFound`` once the collector has run. A released
dataset also loses its pipeline cache keys in the same transaction, so a pipeline run recomputes
it instead of finding a missing blob.

**Tiers.** With local files a tier is metadata only (``blob_tiers``): blobs are not moved, since
every reader finds a blob by digest under ``blobs/sha256/``, and a second location would make
each read a search and each move a window in which a blob is in neither place. The tier prices
the blob in ``shipyard gc --dry-run`` and cost reports; on an object store, point a lifecycle
rule (S3 Intelligent-Tiering, say) at the same age and let the storage move the bytes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from shipyard.cost.attribution import storage_monthly_cost
from shipyard.security import audit
from shipyard.security.guard import guard
from shipyard.security.permissions import Action
from shipyard.store.blob_refs import DATASET, MODEL_VERSION, RUN, model_version_ref
from shipyard.store.retention import ReleaseRow, RetentionStore

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from shipyard.core.clock import Clock
    from shipyard.cost.catalog import PriceCatalog
    from shipyard.security.identities import Identity
    from shipyard.store.retention import RetentionReader, VersionLineage
    from shipyard.store.security import SecurityStore
    from shipyard.store.sql import SqlStore

HOT = "hot"
DAY_MS = 86_400_000


class RetentionPolicy(BaseModel):
    """The ``retention:`` section of ``shipyard.yaml`` (every field optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    keep_versions: int = Field(5, ge=1, le=100_000)
    keep_dataset_versions: int = Field(3, ge=1, le=100_000)
    release_runs_after_days: float | None = Field(None, gt=0)
    cold_after_days: float | None = Field(None, gt=0)
    cold_tier: str = Field("infrequent", min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$")


@dataclass(frozen=True, slots=True)
class Release:
    """One reference the plan gives up, and why."""

    kind: str
    ref: str
    reason: str


@dataclass(frozen=True)
class RetentionPlan:
    """What applying a policy would change.

    Attributes:
        releases: References that give up their blob.
        kept_versions: ``name:version`` of every model version kept.
        protected_runs: Runs kept because a kept model's lineage needs them.
        protected_datasets: Dataset versions kept for the same reason.
        cold: Digest -> size of blobs that move to ``cold_tier``.
        cold_tier: The tier name those blobs move to.
        planned_ms: When the plan was made.
    """

    releases: list[Release]
    kept_versions: list[str]
    protected_runs: frozenset[str]
    protected_datasets: frozenset[str]
    cold: dict[str, int] = field(default_factory=dict)
    cold_tier: str = "infrequent"
    planned_ms: int = 0

    @property
    def released_keys(self) -> set[tuple[str, str]]:
        """The ``(kind, ref)`` pairs released, as ``BlobRefs.live`` takes them."""
        return {(r.kind, r.ref) for r in self.releases}


def plan_retention(store: SqlStore, policy: RetentionPolicy, clock: Clock) -> RetentionPlan:
    """Decide what ``policy`` keeps, releases and moves to the cold tier; writes nothing.

    Every fact is read in one connection to the metadata store (``Workspace.store``).
    """
    now = clock.now_ms()
    with RetentionStore(store).reading() as r:
        already = r.released()
        versions = r.model_versions()
        aliased = r.aliased()
        kept, releases = _model_versions(versions, aliased, policy.keep_versions, already)
        runs, datasets = _lineage(r, [v for v in versions if (v.name, v.version) in kept])
        releases += _datasets(r, policy.keep_dataset_versions, datasets, already)
        if policy.release_runs_after_days is not None:
            cutoff = now - round(policy.release_runs_after_days * DAY_MS)
            releases += _runs(r, cutoff, policy.release_runs_after_days, runs, already)
        plan = RetentionPlan(
            releases=releases,
            kept_versions=sorted(model_version_ref(n, v) for n, v in kept),
            protected_runs=frozenset(runs),
            protected_datasets=frozenset(datasets),
            cold_tier=policy.cold_tier,
            planned_ms=now,
        )
        if policy.cold_after_days is not None:
            cutoff = now - round(policy.cold_after_days * DAY_MS)
            plan.cold.update(_cold(r, plan, aliased, cutoff))
    return plan


def _model_versions(
    versions: Iterable[VersionLineage],
    aliased: set[tuple[str, int]],
    keep: int,
    already: set[tuple[str, str]],
) -> tuple[set[tuple[str, int]], list[Release]]:
    by_model: dict[str, list[int]] = defaultdict(list)
    for v in versions:
        by_model[v.name].append(v.version)
    kept: set[tuple[str, int]] = set(aliased)
    releases: list[Release] = []
    for name, numbers in sorted(by_model.items()):
        newest = sorted(numbers, reverse=True)
        kept.update((name, n) for n in newest[:keep])
        for n in sorted(newest[keep:]):
            ref = model_version_ref(name, n)
            if (name, n) not in kept and (MODEL_VERSION, ref) not in already:
                reason = f"older than the newest {keep} versions of {name}; no alias points at it"
                releases.append(Release(MODEL_VERSION, ref, reason))
    return kept, releases


def _lineage(r: RetentionReader, kept: Iterable[VersionLineage]) -> tuple[set[str], set[str]]:
    """Return the runs and dataset versions the kept model versions came from."""
    runs: set[str] = set()
    frontier: set[str] = set()
    for v in kept:
        lineage = v.lineage if isinstance(v.lineage, dict) else {}
        for run_id in (v.run_id, lineage.get("run_id")):
            if isinstance(run_id, str):
                runs.add(run_id)
        ids = lineage.get("dataset_ids")
        if isinstance(ids, dict):
            frontier.update(i for i in ids.values() if isinstance(i, str))
    datasets: set[str] = set()
    frontier &= r.existing_datasets()
    while frontier:  # ancestors, breadth first; lineage edges never form a cycle
        datasets |= frontier
        frontier = r.parents_of(sorted(frontier)) - datasets
    runs.update(r.writers_of(sorted(datasets)))
    return runs, datasets


def _datasets(
    r: RetentionReader, keep: int, protected: set[str], already: set[tuple[str, str]]
) -> list[Release]:
    seen: dict[tuple[str, str], int] = defaultdict(int)
    releases = []
    for d in r.datasets_newest_first():
        seen[(d.name, d.kind)] += 1
        if seen[(d.name, d.kind)] <= keep or d.dataset_id in protected:
            continue
        if (DATASET, d.dataset_id) in already:
            continue
        reason = (
            f"older than the newest {keep} versions of {d.name} ({d.kind}); "
            "no kept model's lineage needs it"
        )
        releases.append(Release(DATASET, d.dataset_id, reason))
    return releases


def _runs(
    r: RetentionReader,
    cutoff_ms: int,
    days: float,
    protected: set[str],
    already: set[tuple[str, str]],
) -> list[Release]:
    reason = f"ended more than {days:g} days ago; no kept model's lineage needs it"
    return [
        Release(RUN, run_id, reason)
        for run_id in r.ended_runs_with_artifacts(cutoff_ms)
        if run_id not in protected and (RUN, run_id) not in already
    ]


def _cold(
    r: RetentionReader, plan: RetentionPlan, aliased: set[tuple[str, int]], cutoff_ms: int
) -> dict[str, int]:
    """Blobs whose every live reference is older than the cutoff and none is aliased."""
    newest: dict[str, int] = {}
    size: dict[str, int] = {}
    serving = {model_version_ref(n, v) for n, v in aliased}
    hot_pinned: set[str] = set()
    for ref in r.live_references(plan.released_keys):
        newest[ref.digest] = max(newest.get(ref.digest, 0), ref.created_ms)
        size[ref.digest] = ref.size_bytes
        if ref.kind == MODEL_VERSION and ref.ref in serving:
            hot_pinned.add(ref.digest)
    tiers = r.tiers()
    return {
        d: size[d]
        for d in sorted(newest)
        if newest[d] <= cutoff_ms and d not in hot_pinned and tiers.get(d) != plan.cold_tier
    }


def apply_retention(
    store: SqlStore, plan: RetentionPlan, *, actor: Identity, audit_log: SecurityStore
) -> None:
    """Record the plan's releases and tier moves, and its audit entry, in one transaction.

    Idempotent. ``actor`` needs ``runs.delete``: released runs, datasets and versions lose
    their blobs at the next sweep.

    Raises:
        PermissionDenied: ``actor`` may not delete (audited).
    """
    guard(audit_log, actor, Action.RUNS_DELETE, "retention")
    entry = audit.draft(
        actor,
        Action.RUNS_DELETE,
        "retention",
        detail={"op": "retention", "releases": len(plan.releases), "cold": len(plan.cold)},
    )
    RetentionStore(store).apply(
        [ReleaseRow(r.kind, r.ref, r.reason) for r in plan.releases],
        list(plan.cold),
        cold_tier=plan.cold_tier,
        at_ms=plan.planned_ms,
        audit=entry,
        audit_log=audit_log,
    )


def blob_tiers(store: SqlStore) -> dict[str, str]:
    """Return the tier of every blob that is not ``hot``."""
    return RetentionStore(store).tiers()


def monthly_cost(
    sizes: Mapping[str, int], tiers: Mapping[str, str], catalog: PriceCatalog
) -> Decimal:
    """Return what storing ``sizes`` (digest -> bytes) costs per month at each blob's tier.

    Raises:
        NotFound: A tier (``hot`` for blobs without one) is missing from the catalog.
    """
    total = Decimal(0)
    for digest, size in sizes.items():
        total += storage_monthly_cost(size, tiers.get(digest, HOT), catalog)
    return total
