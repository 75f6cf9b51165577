"""Every reference the metadata store holds to a blob, and which of them retention gave up.

A blob is *referenced* while any of these rows names its digest and has not been released by
retention (``retention_releases``):

* ``artifacts.digest``: a run's logged artifact (released per run: kind ``run``, ref run id);
* ``datasets.digest``: a dataset version's Parquet file (kind ``dataset``, ref dataset id);
* ``model_versions.bundle_sha256``: a registered bundle (kind ``model_version``, ref
  ``name:version``).

These three are every place that writes a blob (``Workspace.store_payload``,
``data.datasets.write_dataset``, ``ModelRegistry.register``); a new writer must add its table
here, or the blob collector would treat its blobs as garbage. The reference test in
tests/unit/cost checks that every blob the three writers produce is found.

``BlobRefs`` is what the rest of Shipyard calls (the blob collector, retention, the registry's
invariant check, storage meters); the connection-level functions serve the store's own
transactions (``shipyard.store.retention`` reads references in its plan's connection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from shipyard.store.cost_models import BlobTierRow, RetentionReleaseRow
from shipyard.store.dataset_models import DatasetRow
from shipyard.store.models import ArtifactRow
from shipyard.store.registry_models import ModelVersionRow

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator

    from shipyard.store.sql import SqlStore

#: Release kinds, one per referencing table.
RUN = "run"
DATASET = "dataset"
MODEL_VERSION = "model_version"
KINDS = (RUN, DATASET, MODEL_VERSION)
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Reference:
    """One row that holds a blob: who (kind + ref), which blob, since when."""

    kind: str
    ref: str
    digest: str
    size_bytes: int
    created_ms: int


@dataclass(frozen=True, slots=True)
class StoredBlobRow:
    """A blob a dataset version or an artifact stores, and who holds it (storage meters)."""

    digest: str
    size_bytes: int
    kind: str  # "dataset" or "artifact"
    owner: str  # dataset name@id prefix, or run id


class BlobRefs:
    """The blob references of one metadata store, each call in its own read."""

    def __init__(self, store: SqlStore) -> None:
        self.engine = store.engine

    def released(self) -> set[tuple[str, str]]:
        """Return the ``(kind, ref)`` of every reference retention has given up."""
        with self.engine.connect() as c:
            return released(c)

    def live(self, also_released: Iterable[tuple[str, str]] = ()) -> list[Reference]:
        """Return the references that still hold their blob (see ``live_references``)."""
        with self.engine.connect() as c:
            return live_references(c, also_released)

    def still_referenced(self, digests: Collection[str]) -> set[str]:
        """Return those of ``digests`` that some unreleased row references now."""
        with self.engine.connect() as c:
            return still_referenced(c, digests)

    def stored_blobs(self) -> tuple[list[StoredBlobRow], dict[str, str]]:
        """Return every dataset and artifact blob row (datasets first) and the non-hot tiers.

        Read in one connection, so the tiers match the rows.
        """
        with self.engine.connect() as c:
            tiers = dict(c.execute(sa.select(BlobTierRow.digest, BlobTierRow.tier)).all())
            datasets = c.execute(
                sa.select(
                    DatasetRow.digest, DatasetRow.size_bytes, DatasetRow.name, DatasetRow.dataset_id
                )
            ).all()
            artifacts = c.execute(
                sa.select(ArtifactRow.digest, ArtifactRow.size_bytes, ArtifactRow.run_id)
            ).all()
        rows = [
            StoredBlobRow(digest, int(size), "dataset", f"{name}@{dataset_id[:12]}")
            for digest, size, name, dataset_id in datasets
        ]
        rows += [
            StoredBlobRow(digest, int(size), "artifact", run_id)
            for digest, size, run_id in artifacts
        ]
        return rows, tiers


def model_version_ref(name: str, version: int) -> str:
    """Return the release ref of a model version (``name:version``)."""
    return f"{name}:{version}"


def _sources() -> list[tuple[str, sa.Select[str, str, int, int]]]:
    version_ref = ModelVersionRow.name + ":" + sa.cast(ModelVersionRow.version, sa.String)
    return [
        (
            RUN,
            sa.select(
                ArtifactRow.run_id,
                ArtifactRow.digest,
                ArtifactRow.size_bytes,
                ArtifactRow.created_ms,
            ),
        ),
        (
            DATASET,
            sa.select(
                DatasetRow.dataset_id,
                DatasetRow.digest,
                DatasetRow.size_bytes,
                DatasetRow.created_ms,
            ),
        ),
        (
            MODEL_VERSION,
            sa.select(
                version_ref,
                ModelVersionRow.bundle_sha256,
                ModelVersionRow.size_bytes,
                ModelVersionRow.created_ms,
            ),
        ),
    ]


def iter_references(connection: sa.Connection) -> Iterator[Reference]:
    """Yield every blob reference, released or not."""
    for kind, query in _sources():
        for row in connection.execute(query):
            yield Reference(kind, str(row[0]), row[1], int(row[2]), int(row[3]))


def released(connection: sa.Connection) -> set[tuple[str, str]]:
    """Return the ``(kind, ref)`` of every reference retention has given up."""
    rows = connection.execute(sa.select(RetentionReleaseRow.kind, RetentionReleaseRow.ref))
    return {(kind, ref) for kind, ref in rows}


def live_references(
    connection: sa.Connection, also_released: Iterable[tuple[str, str]] = ()
) -> list[Reference]:
    """Return the references that still hold their blob.

    Args:
        connection: A connection to the metadata store.
        also_released: Further ``(kind, ref)`` pairs to treat as released (a dry run's plan).
    """
    gone = released(connection) | set(also_released)
    return [r for r in iter_references(connection) if (r.kind, r.ref) not in gone]


def still_referenced(connection: sa.Connection, digests: Collection[str]) -> set[str]:
    """Return those of ``digests`` that some unreleased row references now.

    One query per table and chunk, run by the collector right before it deletes, so a
    reference committed after the mark is seen.
    """
    found: set[str] = set()
    ordered = sorted(set(digests))
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        for kind, query in _sources():
            ref_column, digest_column = query.selected_columns[0], query.selected_columns[1]
            is_released = sa.exists().where(
                RetentionReleaseRow.kind == kind, RetentionReleaseRow.ref == ref_column
            )
            hits = connection.execute(
                sa.select(digest_column).where(digest_column.in_(chunk), ~is_released).distinct()
            )
            found.update(hits.scalars())
    return found
