"""Persistence of dataset versions, their lineage, cache keys and source snapshots.

The store knows nothing of Parquet or Polars: ``shipyard.data.datasets`` writes the blob,
computes the id, schema and profile, and hands this module plain values. Every write goes
through ``run_write`` and is safe to repeat: versions are inserted with ``ON CONFLICT DO
NOTHING`` on their content-hash id, so writing the same version twice (or two processes writing
it at once) leaves one row, and the first write's run, parents and time win.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.core.errors import InvalidArgument, NotFound, RunNotFound
from shipyard.store.dataset_entities import KINDS, DatasetVersion, SourceSnapshot
from shipyard.store.dataset_models import (
    DatasetCacheKeyRow,
    DatasetParentRow,
    DatasetRow,
    SourceSnapshotRow,
)
from shipyard.store.engine import run_write, upsert_insert
from shipyard.store.models import RunRow

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from shipyard.store.sql import SqlStore

__all__ = ["KINDS", "DatasetStore", "DatasetVersion", "SourceSnapshot"]

_HEX = re.compile(r"^[0-9a-f]+$")
_MIN_PREFIX = 6


class DatasetStore:
    """Dataset versions and source snapshots in the metadata store of a ``SqlStore``."""

    def __init__(self, store: SqlStore) -> None:
        self.engine = store.engine

    # -- versions ---------------------------------------------------------------------------

    def insert_version(
        self, version: DatasetVersion, *, cache_key: str | None = None
    ) -> DatasetVersion:
        """Record a version; return the stored one (the existing one if the id is known).

        The cache key is recorded even when the version already existed, so a step whose code
        changed without changing its output finds its result under the new key too.

        Raises:
            InvalidArgument: Unknown kind, or a malformed cache key.
            NotFound: A parent version does not exist.
            RunNotFound: ``run_id`` names no run.
        """
        if version.kind not in KINDS:
            raise InvalidArgument(f"dataset kind {version.kind!r} is not one of {KINDS}")
        if cache_key is not None and not 0 < len(cache_key) <= 128:
            raise InvalidArgument("a cache key must be 1 to 128 characters (a hex digest)")
        parents = sorted(set(version.parent_ids))
        row = {
            "dataset_id": version.dataset_id,
            "name": version.name,
            "kind": version.kind,
            "digest": version.digest,
            "size_bytes": version.size_bytes,
            "row_count": version.row_count,
            "schema": version.schema,
            "profile": version.profile,
            "lineage": version.lineage,
            "run_id": version.run_id,
            "created_ms": version.created_ms,
        }

        def _insert(connection: sa.Connection) -> None:
            self._require_parents(connection, parents)
            if version.run_id is not None:
                found = connection.execute(
                    sa.select(RunRow.run_id).where(RunRow.run_id == version.run_id)
                ).first()
                if found is None:
                    raise RunNotFound(f"no run {version.run_id!r} to attach the dataset to")
            # RETURNING, not rowcount: psycopg reports -1 rows for ON CONFLICT DO NOTHING.
            inserted = connection.execute(
                upsert_insert(self.engine, DatasetRow)
                .on_conflict_do_nothing(index_elements=["dataset_id"])
                .returning(DatasetRow.dataset_id),
                row,
            ).first()
            if inserted is not None and parents:
                connection.execute(
                    sa.insert(DatasetParentRow),
                    [{"dataset_id": version.dataset_id, "parent_id": p} for p in parents],
                )
            if cache_key is not None:
                connection.execute(
                    upsert_insert(self.engine, DatasetCacheKeyRow).on_conflict_do_nothing(
                        index_elements=["cache_key", "dataset_id"]
                    ),
                    {
                        "cache_key": cache_key,
                        "dataset_id": version.dataset_id,
                        "created_ms": version.created_ms,
                    },
                )

        run_write(self.engine, _insert)
        return self.get(version.dataset_id)

    @staticmethod
    def _require_parents(connection: sa.Connection, parents: Sequence[str]) -> None:
        if not parents:
            return
        known = set(
            connection.execute(
                sa.select(DatasetRow.dataset_id).where(DatasetRow.dataset_id.in_(parents))
            ).scalars()
        )
        missing = [p for p in parents if p not in known]
        if missing:
            raise NotFound(
                f"parent dataset version(s) {', '.join(m[:12] for m in missing)} do not exist; "
                "write the parents first (`shipyard data list` shows versions)"
            )

    def get(self, id_or_prefix: str) -> DatasetVersion:
        """Return a version by id or by a unique id prefix of at least 6 hex characters.

        Raises:
            NotFound: No version, or more than one, matches.
        """
        text = id_or_prefix.lower()
        if len(text) < _MIN_PREFIX or len(text) > 64 or not _HEX.match(text):
            raise NotFound(
                f"{id_or_prefix!r} is not a dataset id (64 hex characters, or a prefix of 6+)"
            )
        if len(text) == 64:
            where = DatasetRow.dataset_id == text
        else:  # only hex characters, so no LIKE wildcard can slip in
            where = DatasetRow.dataset_id.startswith(text)
        with self.engine.connect() as connection:
            matches = connection.execute(
                sa.select(DatasetRow.dataset_id).where(where).limit(2)
            ).scalars()
            found = list(matches)
            if len(found) != 1:
                what = "no dataset version" if not found else "more than one dataset version"
                raise NotFound(
                    f"{what} matches {id_or_prefix!r}; `shipyard data list` shows versions"
                )
            return self._load(connection, found)[0]

    def get_many(self, dataset_ids: Iterable[str]) -> dict[str, DatasetVersion]:
        """Return the versions with these exact ids (unknown ids are left out)."""
        ids = sorted(set(dataset_ids))
        if not ids:
            return {}
        with self.engine.connect() as connection:
            return {v.dataset_id: v for v in self._load(connection, ids)}

    def list_versions(
        self, name: str | None = None, *, kind: str | None = None, limit: int | None = None
    ) -> list[DatasetVersion]:
        """Return versions, newest first, optionally of one name and kind."""
        query = sa.select(DatasetRow.dataset_id)
        if name is not None:
            query = query.where(DatasetRow.name == name)
        if kind is not None:
            query = query.where(DatasetRow.kind == kind)
        query = query.order_by(DatasetRow.created_ms.desc(), DatasetRow.dataset_id).limit(limit)
        with self.engine.connect() as connection:
            ids = list(connection.execute(query).scalars())
            return self._load(connection, ids)

    def find_by_cache_key(
        self, cache_key: str, *, kind: str | None = "data", name: str | None = None
    ) -> DatasetVersion | None:
        """Return the newest version produced under ``cache_key`` (of this kind/name), if any."""
        query = (
            sa.select(DatasetRow.dataset_id)
            .join(DatasetCacheKeyRow, DatasetCacheKeyRow.dataset_id == DatasetRow.dataset_id)
            .where(DatasetCacheKeyRow.cache_key == cache_key)
        )
        if kind is not None:
            query = query.where(DatasetRow.kind == kind)
        if name is not None:
            query = query.where(DatasetRow.name == name)
        query = query.order_by(DatasetCacheKeyRow.created_ms.desc(), DatasetRow.dataset_id).limit(1)
        with self.engine.connect() as connection:
            found = connection.execute(query).scalar_one_or_none()
            return None if found is None else self._load(connection, [found])[0]

    def parents(self, dataset_id: str) -> list[DatasetVersion]:
        """Return the versions ``dataset_id`` was derived from."""
        return list(self.get_many(self.get(dataset_id).parent_ids).values())

    def children(self, dataset_id: str) -> list[DatasetVersion]:
        """Return the versions derived from ``dataset_id``, oldest first."""
        query = sa.select(DatasetParentRow.dataset_id).where(
            DatasetParentRow.parent_id == dataset_id
        )
        with self.engine.connect() as connection:
            ids = list(connection.execute(query).scalars())
            versions = self._load(connection, ids)
        return sorted(versions, key=lambda v: (v.created_ms, v.dataset_id))

    def ancestry(self, dataset_id: str) -> dict[str, DatasetVersion]:
        """Return ``dataset_id`` (first) and every version upstream of it, in one recursive query.

        Raises:
            NotFound: ``dataset_id`` is not a stored version.
        """
        root = self.get(dataset_id)
        edges = DatasetParentRow.__table__
        up = (
            sa.select(edges.c.parent_id.label("dataset_id"))
            .where(edges.c.dataset_id == root.dataset_id)
            .cte("upstream", recursive=True)
        )
        # UNION (not UNION ALL) deduplicates, so even a cyclic graph would terminate.
        up = up.union(sa.select(edges.c.parent_id).where(edges.c.dataset_id == up.c.dataset_id))
        with self.engine.connect() as connection:
            ids = list(connection.execute(sa.select(up.c.dataset_id)).scalars())
            found = {v.dataset_id: v for v in self._load(connection, ids)}
        return {root.dataset_id: root, **found}

    def _load(self, connection: sa.Connection, ids: Sequence[str]) -> list[DatasetVersion]:
        """Load versions with their parents, in the order of ``ids``."""
        if not ids:
            return []
        rows = {
            r.dataset_id: r
            for r in connection.execute(sa.select(DatasetRow).where(DatasetRow.dataset_id.in_(ids)))
        }
        parents: dict[str, list[str]] = {}
        for child, parent in connection.execute(
            sa.select(DatasetParentRow.dataset_id, DatasetParentRow.parent_id).where(
                DatasetParentRow.dataset_id.in_(ids)
            )
        ):
            parents.setdefault(child, []).append(parent)
        return [_to_version(rows[i], tuple(sorted(parents.get(i, ())))) for i in ids if i in rows]

    # -- source snapshots -------------------------------------------------------------------

    def record_snapshot(
        self,
        source: str,
        *,
        watermark: Any,
        schema: list[dict[str, str]],
        created_ms: int,
        row_count: int | None = None,
        dataset_id: str | None = None,
        run_id: str | None = None,
    ) -> SourceSnapshot:
        """Record what a read of ``source`` saw; ``watermark`` must be JSON (ISO for dates).

        A commit whose acknowledgement was lost and is retried leaves a second, identical row;
        "latest" is unaffected.
        """
        values = {
            "source": source,
            "watermark": watermark,
            "schema": schema,
            "row_count": row_count,
            "dataset_id": dataset_id,
            "run_id": run_id,
            "created_ms": created_ms,
        }

        def _record(connection: sa.Connection) -> int:
            result = connection.execute(sa.insert(SourceSnapshotRow), values)
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

        return SourceSnapshot(
            snapshot_id=run_write(self.engine, _record),
            source=source,
            watermark=watermark,
            schema=schema,
            row_count=row_count,
            dataset_id=dataset_id,
            run_id=run_id,
            created_ms=created_ms,
        )

    def latest_snapshot(self, source: str) -> SourceSnapshot | None:
        """Return the most recent snapshot of ``source``, or None before its first read."""
        query = (
            sa.select(SourceSnapshotRow)
            .where(SourceSnapshotRow.source == source)
            .order_by(SourceSnapshotRow.created_ms.desc(), SourceSnapshotRow.snapshot_id.desc())
            .limit(1)
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _to_snapshot(row)

    def latest_snapshots(self) -> dict[str, SourceSnapshot]:
        """Return the most recent snapshot of every source, by source name."""
        table = SourceSnapshotRow.__table__
        rank = (
            sa.func.row_number()
            .over(
                partition_by=table.c.source,
                order_by=(table.c.created_ms.desc(), table.c.snapshot_id.desc()),
            )
            .label("rank")
        )
        ranked = sa.select(table, rank).subquery()
        query = sa.select(ranked).where(ranked.c.rank == 1).order_by(ranked.c.source)
        with self.engine.connect() as connection:
            return {r.source: _to_snapshot(r) for r in connection.execute(query)}

    def snapshots_for(self, dataset_ids: Iterable[str]) -> list[SourceSnapshot]:
        """Return the snapshots whose reads produced these versions, oldest first."""
        ids = sorted(set(dataset_ids))
        if not ids:
            return []
        query = (
            sa.select(SourceSnapshotRow)
            .where(SourceSnapshotRow.dataset_id.in_(ids))
            .order_by(SourceSnapshotRow.created_ms, SourceSnapshotRow.snapshot_id)
        )
        with self.engine.connect() as connection:
            return [_to_snapshot(r) for r in connection.execute(query)]


def _to_version(row: Any, parent_ids: tuple[str, ...]) -> DatasetVersion:
    return DatasetVersion(
        dataset_id=row.dataset_id,
        name=row.name,
        kind=row.kind,
        digest=row.digest,
        size_bytes=row.size_bytes,
        row_count=row.row_count,
        schema=row.schema,
        profile=row.profile,
        lineage=row.lineage,
        run_id=row.run_id,
        created_ms=row.created_ms,
        parent_ids=parent_ids,
    )


def _to_snapshot(row: Any) -> SourceSnapshot:
    return SourceSnapshot(
        snapshot_id=row.snapshot_id,
        source=row.source,
        watermark=row.watermark,
        schema=row.schema,
        row_count=row.row_count,
        dataset_id=row.dataset_id,
        run_id=row.run_id,
        created_ms=row.created_ms,
    )
