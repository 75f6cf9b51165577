"""Dataset versions: content-hashed Parquet in the blob store, with schema, profile and lineage.

``write_dataset`` streams a frame into a temporary Parquet file (zstd, statistics, fixed row
groups; ``sink_parquet`` for LazyFrames, so data larger than memory never loads whole),
profiles a sample of that file (``profile.sampled_profile``: at most 100,000 rows, and the
profile says so), stores it with ``BlobStore.put_file`` and records a version row.
``store_dataset_file`` does the same for a file its caller already wrote with
``WRITE_OPTIONS`` (the validate stage writes both of its outputs in one query).

**What the dataset id hashes.** The Parquet bytes are hashed by the blob store (the version's
``digest``); the id is the SHA-256 of ``shipyard-dataset/1``, kind, name and digest joined
by newlines. Polars writes the same bytes for the same rows, columns, dtypes and order whatever
the chunking, the thread count and whether the frame was lazy (``WRITE_OPTIONS`` pins every
setting that matters), so same data + same name + same kind = same id and one blob. The name
and kind are part of the id so that identical content written as two datasets (or an empty
quarantine of two steps) stays two versions sharing one blob. Row order is part of the content.
A Polars upgrade that changes its Parquet encoder can give the same data a new id: a new
version and a cache miss, never a wrong match.

**Personal-data tags.** ``pii`` maps columns to what they hold (``email``, ``phone``, ...,
``pseudonymized``); the tags live in the version's profile, whose tagged columns keep counts
only (see ``shipyard.data.profile``). Without ``pii`` a version inherits its parents' tags for
the columns it still has, so a step, or an erasure, that forgets them does not put the values
of a personal-data column back into the metadata store.

"Same inputs + same step code = same version" is the job of cache keys: the caller (the
pipeline) hashes its inputs, step code and params into ``cache_key``; ``find_cached`` returns
the version last produced under that key.

Every function takes ``stores`` (``shipyard.store.stores.Stores``): the metadata store, the
blob store and the clock, which a ``Workspace`` has and a bare ``StoreSet`` has too (issue 15).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from shipyard.core.errors import InvalidArgument
from shipyard.data.dtypes import type_name
from shipyard.data.profile import ColumnProfile, Profile, sampled_profile
from shipyard.store.artifacts.local import LocalBlobStore
from shipyard.store.dataset_entities import KINDS, DatasetVersion
from shipyard.store.datasets import DatasetStore

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from shipyard.store.stores import Stores

#: Parquet settings; every one is pinned because the bytes are the dataset's identity.
WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "statistics": True,
    "row_group_size": 262_144,
    "data_page_size": 1 << 20,
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,249}$")
_ID_DOMAIN = "shipyard-dataset/1"


def dataset_id_for(name: str, kind: str, digest: str) -> str:
    """Return the id of the version of ``name``/``kind`` whose Parquet blob has ``digest``."""
    text = f"{_ID_DOMAIN}\n{kind}\n{name}\n{digest}"
    return hashlib.sha256(text.encode()).hexdigest()


def write_dataset(
    stores: Stores,
    frame: pl.LazyFrame | pl.DataFrame,
    *,
    name: str,
    kind: str = "data",
    parents: Iterable[str | DatasetVersion] = (),
    cache_key: str | None = None,
    run_id: str | None = None,
    lineage: Mapping[str, Any] | None = None,
    pii: Mapping[str, str] | None = None,
) -> DatasetVersion:
    """Write ``frame`` as a version of dataset ``name`` and return the stored version.

    Writing the same data under the same name and kind again returns the existing version
    (its first run, parents and time); ``cache_key`` is recorded either way.

    Args:
        stores: Where to store the blob and the metadata (a ``Workspace``, or a ``StoreSet``).
        frame: The rows; bookkeeping columns (``_source``, ``_row``, ...) are dropped for kind
            ``data`` and kept for ``quarantine``.
        name: Logical dataset name, e.g. ``orders.clean`` (letters, digits, ``_.-/``).
        kind: ``data`` or ``quarantine``.
        parents: Versions (or their ids) this one was derived from.
        cache_key: Hash of the producing step's inputs, code and params, for ``find_cached``.
        run_id: The run producing it.
        lineage: JSON details for lineage (``{"step": "clean", ...}``); ``step`` names the
            OpenLineage job.
        pii: Personal-data tags by column (see the module docstring); None inherits the
            parents' tags.

    Raises:
        InvalidArgument: Bad name, kind, frame type, or lineage that is not JSON.
        NotFound: A parent version does not exist.
        RunNotFound: ``run_id`` names no run.
    """
    _check_name(name, kind)
    if not isinstance(frame, pl.LazyFrame | pl.DataFrame):
        raise InvalidArgument(f"write_dataset takes a Polars frame, not {type(frame).__name__}")
    lf = frame.lazy()
    if kind == "data":
        lf = lf.select(public_columns(lf))
    with tempfile.TemporaryDirectory(prefix="shipyard-dataset-") as tmp:
        path = Path(tmp) / "data.parquet"
        lf.sink_parquet(path, **WRITE_OPTIONS)
        return store_dataset_file(
            stores,
            path,
            name=name,
            kind=kind,
            parents=parents,
            cache_key=cache_key,
            run_id=run_id,
            lineage=lineage,
            pii=pii,
        )


def public_columns(frame: pl.LazyFrame) -> list[str]:
    """The columns a ``data`` version keeps: all but the bookkeeping ones (``_source``, ...)."""
    return [c for c in frame.collect_schema().names() if not c.startswith("_")]


def store_dataset_file(
    stores: Stores,
    path: Path,
    *,
    name: str,
    kind: str = "data",
    parents: Iterable[str | DatasetVersion] = (),
    cache_key: str | None = None,
    run_id: str | None = None,
    lineage: Mapping[str, Any] | None = None,
    pii: Mapping[str, str] | None = None,
    scratch: bool = False,
) -> DatasetVersion:
    """Store a Parquet file already written with ``WRITE_OPTIONS`` as a version of ``name``.

    For a writer that produced the file itself, in the same query as other outputs (the
    pipeline's validate stage writes accepted and quarantined rows in one pass), so the rows
    are not read again to be written. The file must hold what ``write_dataset`` would have
    written (for ``data``: no ``_`` columns; see ``public_columns``): its bytes are the
    version's identity. Arguments and errors as ``write_dataset``; the file is copied, or with
    ``scratch`` (the caller's temporary file) moved into a local blob store on its filesystem
    (``put_file``), after which it is gone.
    """
    _check_name(name, kind)
    lineage_json = _json_object(lineage)
    parent_ids = tuple(sorted({p if isinstance(p, str) else p.dataset_id for p in parents}))
    tags = dict(pii) if pii is not None else _inherited_pii(stores, parent_ids)
    scan = pl.scan_parquet(path)
    rows = scan.select(pl.len()).collect().item()  # from the footer, no data read
    prof = sampled_profile(scan, rows).with_pii(tags)
    schema = [{"name": n, "type": type_name(t)} for n, t in scan.collect_schema().items()]
    blob = stores.blobs.put_file(path, scratch=scratch)
    version = DatasetVersion(
        dataset_id=dataset_id_for(name, kind, blob.digest),
        name=name,
        kind=kind,
        digest=blob.digest,
        size_bytes=blob.size_bytes,
        row_count=prof.row_count,
        schema=schema,
        profile=prof.to_dict(),
        lineage=lineage_json,
        run_id=run_id,
        created_ms=stores.clock.now_ms(),
        parent_ids=parent_ids,
    )
    return DatasetStore(stores.store).insert_version(version, cache_key=cache_key)


def _check_name(name: str, kind: str) -> None:
    if not _NAME.match(name):
        raise InvalidArgument(
            f"dataset name {name!r} must be 1-250 letters, digits or _.-/ and start with a "
            "letter or digit, e.g. 'orders.clean'"
        )
    if kind not in KINDS:
        raise InvalidArgument(f"dataset kind {kind!r} must be one of {', '.join(KINDS)}")


def pii_tags(version: DatasetVersion) -> dict[str, str]:
    """Return a version's personal-data tags by column (empty when none was tagged)."""
    return {
        c["name"]: c["pii"]
        for c in (version.profile or {}).get("columns", [])
        if isinstance(c.get("pii"), str)
    }


def _inherited_pii(stores: Stores, parent_ids: Iterable[str]) -> dict[str, str]:
    """Return the union of the parents' tags (a missing parent is reported by the insert)."""
    tags: dict[str, str] = {}
    for version in DatasetStore(stores.store).get_many(parent_ids).values():
        tags.update(pii_tags(version))
    return tags


def _json_object(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        return dict(json.loads(json.dumps(dict(value), allow_nan=False)))
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"lineage must be a JSON object of plain values: {e}") from e


def read_dataset(stores: Stores, dataset: str | DatasetVersion) -> pl.LazyFrame:
    """Return a version's rows as a LazyFrame.

    A local blob store is scanned in place (nothing is loaded until collected; the digest is
    not re-checked: ``stores.blobs.verify`` does that). Other stores are read whole into
    memory, checked against the digest.

    Raises:
        NotFound: No version matches ``dataset`` (an id or a unique prefix of 6+).
        ArtifactNotFound: The version's blob is missing.
        IntegrityFailure: The blob is corrupt (non-local stores) or reached through a symlink.
    """
    version = get_dataset(stores, dataset)
    blobs = stores.blobs
    if isinstance(blobs, LocalBlobStore):
        return pl.scan_parquet(blobs.local_path(version.digest))
    return pl.read_parquet(io.BytesIO(blobs.get_bytes(version.digest))).lazy()


def get_dataset(stores: Stores, dataset: str | DatasetVersion) -> DatasetVersion:
    """Return a version by id or unique id prefix (a version passes through unchanged).

    Raises:
        NotFound: No version, or more than one, matches.
    """
    if isinstance(dataset, DatasetVersion):
        return dataset
    return DatasetStore(stores.store).get(dataset)


def list_datasets(
    stores: Stores, name: str | None = None, *, kind: str | None = None
) -> list[DatasetVersion]:
    """Return versions, newest first, optionally of one name and kind."""
    return DatasetStore(stores.store).list_versions(name, kind=kind)


def find_cached(
    stores: Stores, cache_key: str, *, kind: str = "data", name: str | None = None
) -> DatasetVersion | None:
    """Return the newest version written under ``cache_key`` (of this kind and name), if any."""
    return DatasetStore(stores.store).find_by_cache_key(cache_key, kind=kind, name=name)


def dataset_profile(version: DatasetVersion) -> Profile:
    """Return the stored profile of a version."""
    return Profile.from_dict(version.profile)


# -- diff ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ColumnDiff:
    """How one column present in both versions changed (``a`` → ``b``)."""

    name: str
    type_a: str
    type_b: str
    null_rate_a: float | None
    null_rate_b: float | None
    mean_a: float | None
    mean_b: float | None
    distinct_a: int | None
    distinct_b: int | None

    @property
    def null_rate_delta(self) -> float | None:
        """``b`` minus ``a``; None when either is unknown."""
        return _delta(self.null_rate_a, self.null_rate_b)

    @property
    def mean_delta(self) -> float | None:
        """``b`` minus ``a``; None when either is unknown (not numeric, or empty)."""
        return _delta(self.mean_a, self.mean_b)

    @property
    def distinct_delta(self) -> int | None:
        """``b`` minus ``a``; None when either is unknown."""
        if self.distinct_a is None or self.distinct_b is None:
            return None
        return self.distinct_b - self.distinct_a


@dataclass(frozen=True, slots=True)
class DatasetDiff:
    """What changed from version ``a`` to version ``b``, from their schemas and profiles."""

    a: DatasetVersion
    b: DatasetVersion
    added: tuple[str, ...]
    removed: tuple[str, ...]
    type_changes: dict[str, tuple[str, str]]
    columns: tuple[ColumnDiff, ...]

    @property
    def row_delta(self) -> int:
        """Rows in ``b`` minus rows in ``a``."""
        return self.b.row_count - self.a.row_count

    @property
    def same_content(self) -> bool:
        """Whether both versions hold byte-identical Parquet."""
        return self.a.digest == self.b.digest

    @property
    def schema_changed(self) -> bool:
        """Whether columns were added, removed or changed type."""
        return bool(self.added or self.removed or self.type_changes)

    def column(self, name: str) -> ColumnDiff:
        """Return the diff of a column present in both versions.

        Raises:
            KeyError: The column is not in both versions.
        """
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


def diff(stores: Stores, a: str | DatasetVersion, b: str | DatasetVersion) -> DatasetDiff:
    """Compare two versions by schema, row count and per-column profile (no data is read).

    Raises:
        NotFound: Either version does not exist.
    """
    va, vb = get_dataset(stores, a), get_dataset(stores, b)
    pa, pb = dataset_profile(va), dataset_profile(vb)
    cols_a = {c.name: c for c in pa.columns}
    cols_b = {c.name: c for c in pb.columns}
    common = [n for n in cols_a if n in cols_b]
    return DatasetDiff(
        a=va,
        b=vb,
        added=tuple(n for n in cols_b if n not in cols_a),
        removed=tuple(n for n in cols_a if n not in cols_b),
        type_changes={
            n: (cols_a[n].dtype, cols_b[n].dtype)
            for n in common
            if cols_a[n].dtype != cols_b[n].dtype
        },
        columns=tuple(_column_diff(cols_a[n], cols_b[n]) for n in common),
    )


def _column_diff(a: ColumnProfile, b: ColumnProfile) -> ColumnDiff:
    return ColumnDiff(
        name=a.name,
        type_a=a.dtype,
        type_b=b.dtype,
        null_rate_a=a.null_rate,
        null_rate_b=b.null_rate,
        mean_a=a.mean,
        mean_b=b.mean,
        distinct_a=a.distinct,
        distinct_b=b.distinct,
    )


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a
