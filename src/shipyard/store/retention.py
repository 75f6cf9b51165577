"""Retention's tables: which references were released, which blobs sit in a cold tier.

Owns ``retention_releases`` and ``blob_tiers``. The policy (what to keep, what to release) is
``shipyard.cost.retention``'s business: this module reads the facts a plan is made from, in one
connection (``RetentionStore.reading``), and writes a plan's releases, tier moves and audit
entry in one transaction (``RetentionStore.apply``). A released dataset loses its pipeline
cache keys in that same transaction, so a pipeline run recomputes it instead of finding a
missing blob.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.store import blob_refs
from shipyard.store.cost_models import BlobTierRow, RetentionReleaseRow
from shipyard.store.dataset_models import DatasetCacheKeyRow, DatasetParentRow, DatasetRow
from shipyard.store.engine import run_write, upsert_insert
from shipyard.store.models import ArtifactRow, RunRow
from shipyard.store.registry_models import ModelAliasRow, ModelVersionRow

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator, Sequence

    from shipyard.store.blob_refs import Reference
    from shipyard.store.security import AuditRecord, AuditWrite, SecurityStore
    from shipyard.store.sql import SqlStore

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class VersionLineage:
    """A registered model version and the lineage it records (its run, its datasets)."""

    name: str
    version: int
    run_id: str | None
    lineage: Any


@dataclass(frozen=True, slots=True)
class DatasetEntry:
    """A dataset version's id, name and kind (retention keeps the newest per name and kind)."""

    dataset_id: str
    name: str
    kind: str


@dataclass(frozen=True, slots=True)
class ReleaseRow:
    """One reference a plan releases: ``blob_refs`` kind and ref, and why."""

    kind: str
    ref: str
    reason: str


class RetentionReader:
    """The reads a retention plan is made from, all in one connection (``reading``)."""

    def __init__(self, connection: sa.Connection) -> None:
        self._c = connection

    def released(self) -> set[tuple[str, str]]:
        """Return the ``(kind, ref)`` of every reference already released."""
        return blob_refs.released(self._c)

    def model_versions(self) -> list[VersionLineage]:
        """Return every registered model version with its run and lineage."""
        rows = self._c.execute(
            sa.select(
                ModelVersionRow.name,
                ModelVersionRow.version,
                ModelVersionRow.run_id,
                ModelVersionRow.lineage,
            )
        ).all()
        return [VersionLineage(r.name, r.version, r.run_id, r.lineage) for r in rows]

    def aliased(self) -> set[tuple[str, int]]:
        """Return ``(name, version)`` of every version an alias points at."""
        query = sa.select(ModelAliasRow.name, ModelAliasRow.version)
        return {(n, v) for n, v in self._c.execute(query)}

    def existing_datasets(self) -> set[str]:
        """Return the id of every stored dataset version."""
        return set(self._c.execute(sa.select(DatasetRow.dataset_id)).scalars())

    def parents_of(self, dataset_ids: Sequence[str]) -> set[str]:
        """Return the parents of these dataset versions."""
        parents: set[str] = set()
        for chunk in _chunks(sorted(dataset_ids)):
            parents.update(
                self._c.execute(
                    sa.select(DatasetParentRow.parent_id).where(
                        DatasetParentRow.dataset_id.in_(chunk)
                    )
                ).scalars()
            )
        return parents

    def writers_of(self, dataset_ids: Sequence[str]) -> set[str]:
        """Return the runs that wrote these dataset versions."""
        runs: set[str] = set()
        for chunk in _chunks(sorted(dataset_ids)):
            writers = self._c.execute(
                sa.select(DatasetRow.run_id).where(
                    DatasetRow.dataset_id.in_(chunk), DatasetRow.run_id.is_not(None)
                )
            ).scalars()
            runs.update(r for r in writers if r is not None)
        return runs

    def datasets_newest_first(self) -> list[DatasetEntry]:
        """Return every dataset version, newest first (ties by id)."""
        rows = self._c.execute(
            sa.select(DatasetRow.dataset_id, DatasetRow.name, DatasetRow.kind).order_by(
                DatasetRow.created_ms.desc(), DatasetRow.dataset_id
            )
        ).all()
        return [DatasetEntry(d, n, k) for d, n, k in rows]

    def ended_runs_with_artifacts(self, cutoff_ms: int) -> list[str]:
        """Return runs with artifacts, not running, ended (or started) by ``cutoff_ms``."""
        with_artifacts = sa.select(ArtifactRow.run_id).distinct().scalar_subquery()
        return list(
            self._c.execute(
                sa.select(RunRow.run_id)
                .where(
                    RunRow.status != "running",
                    sa.func.coalesce(RunRow.end_ms, RunRow.start_ms) <= cutoff_ms,
                    RunRow.run_id.in_(with_artifacts),
                )
                .order_by(RunRow.run_id)
            ).scalars()
        )

    def live_references(self, also_released: Iterable[tuple[str, str]] = ()) -> list[Reference]:
        """Return the references that still hold their blob (``blob_refs.live_references``)."""
        return blob_refs.live_references(self._c, also_released)

    def tiers(self) -> dict[str, str]:
        """Return the tier of every blob that is not ``hot``."""
        return _tiers(self._c)


class RetentionStore:
    """Retention releases and blob tiers in the metadata store of a ``SqlStore``."""

    def __init__(self, store: SqlStore) -> None:
        self.engine = store.engine

    @contextlib.contextmanager
    def reading(self) -> Iterator[RetentionReader]:
        """Open one connection for every read a plan makes."""
        with self.engine.connect() as c:
            yield RetentionReader(c)

    def tiers(self) -> dict[str, str]:
        """Return the tier of every blob that is not ``hot``."""
        with self.engine.connect() as c:
            return _tiers(c)

    def apply(
        self,
        releases: Sequence[ReleaseRow],
        cold: Collection[str],
        *,
        cold_tier: str,
        at_ms: int,
        audit: AuditWrite,
        audit_log: SecurityStore,
    ) -> AuditRecord:
        """Record releases, tier moves and ``audit`` in one transaction; anchor it after commit.

        Idempotent: a release recorded before keeps its first reason and time. Released
        datasets (kind ``dataset``) lose their pipeline cache keys in the same transaction.
        """
        released_datasets = [r.ref for r in releases if r.kind == blob_refs.DATASET]
        written: list[AuditRecord] = []

        def _apply(c: sa.Connection) -> None:
            written[:] = [audit_log.append_within(c, audit)]
            if releases:
                insert = upsert_insert(self.engine, RetentionReleaseRow)
                c.execute(
                    insert.on_conflict_do_nothing(),
                    [
                        {"kind": r.kind, "ref": r.ref, "reason": r.reason, "released_ms": at_ms}
                        for r in releases
                    ],
                )
            for chunk in _chunks(released_datasets):
                c.execute(
                    sa.delete(DatasetCacheKeyRow).where(DatasetCacheKeyRow.dataset_id.in_(chunk))
                )
            if cold:
                insert = upsert_insert(self.engine, BlobTierRow)
                c.execute(
                    insert.on_conflict_do_update(
                        index_elements=["digest"],
                        set_={
                            "tier": insert.excluded.tier,
                            "changed_ms": insert.excluded.changed_ms,
                        },
                    ),
                    [{"digest": d, "tier": cold_tier, "changed_ms": at_ms} for d in cold],
                )

        run_write(self.engine, _apply)
        audit_log.anchor(written[0])
        return written[0]


def _tiers(c: sa.Connection) -> dict[str, str]:
    return dict(c.execute(sa.select(BlobTierRow.digest, BlobTierRow.tier)).all())


def _chunks(items: list[str], size: int = _CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
