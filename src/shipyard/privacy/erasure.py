"""Erasure of one data subject: every dataset version rewritten without their rows.

``erase_subject(workspace, column="email", value="ann@example.com")`` finds every stored
version (data and quarantine) that has the column and a row whose value in it, as text, equals
``value`` exactly, or equals the value's pseudonym when a key is given (so versions that went
through the privacy step are found too). For each such version, oldest first:

1. a new version of the same name and kind is written without those rows; its parent is the
   old version and its lineage JSON records ``step: erasure``, the old id, the column, the
   row count removed and the subject's digest (never the value);
2. in one transaction, the cache keys that led to the old version are moved to the new one
   (so a pipeline run with unchanged inputs reuses the erased version instead of finding a
   missing blob), and the old version's stored profile, whose top values and min/max can hold
   the subject's values, is replaced by the new version's;
3. when every version is rewritten, the old Parquet blobs are deleted from the blob store.

The old version rows stay in the metadata store, as lineage history, with no blob behind them:
reading one raises ``ArtifactNotFound``; ``erasure_successor`` finds what replaced it.
Re-running an erasure is safe: versions already erased are skipped (their blob is gone), and
an erasure interrupted before deleting is completed, reusing the new versions it wrote.

**The digest.** ``hmac-sha256:<hex>`` under the pseudonymization key when one is given, else
``sha256:<hex>``, which anyone can test against a guessed email; pass the key (the CLI reads
``$SHIPYARD_PSEUDONYM_KEY`` when it is set) wherever erasures are audited.

**What deletion means.** The blob file is unlinked (local store) or removed (object store).
On SSDs, copy-on-write file systems and versioned buckets, the bytes may survive until the
storage reclaims them; bucket versioning and backups must be handled by their own retention.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl
import sqlalchemy as sa

from shipyard.core import faults
from shipyard.core.errors import IntegrityFailure, InvalidArgument
from shipyard.data.datasets import dataset_store, read_dataset, write_dataset
from shipyard.privacy.pseudonym import pseudonym, subject_digest
from shipyard.privacy.references import (
    artifacts_sharing,
    descendants,
    model_versions_of,
    runs_referencing,
    upstream_sources,
)
from shipyard.store.dataset_models import DatasetCacheKeyRow, DatasetRow
from shipyard.store.engine import run_write, upsert_insert
from shipyard.track.environment import user_name

if TYPE_CHECKING:
    from shipyard.store.dataset_entities import DatasetVersion
    from shipyard.track.workspace import Workspace

ERASURE_STEP = "erasure"


@dataclass(frozen=True, slots=True)
class ErasedVersion:
    """One version rewritten without the subject's rows.

    Attributes:
        old_id: The version that held the subject (its blob is destroyed).
        new_id: Its replacement; None in a dry run.
        name: The dataset name.
        kind: ``data`` or ``quarantine``.
        rows_before: Rows of the old version.
        rows_erased: Rows removed (``rows_before == rows_after + rows_erased``).
    """

    old_id: str
    new_id: str | None
    name: str
    kind: str
    rows_before: int
    rows_erased: int

    @property
    def rows_after(self) -> int:
        """Rows of the new version."""
        return self.rows_before - self.rows_erased


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """The audit record of an erasure (the audit log itself is not built yet).

    Attributes:
        actor: Who asked for it.
        action: ``erase``.
        object: What was erased: ``subject:<column>``.
        digest: The subject's digest (see the module docstring), never the value.
        at_ms: When.
        details: Versions rewritten (old → new), rows erased, the erasure run.
    """

    actor: str
    action: str
    object: str
    digest: str
    at_ms: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """What an erasure did, and what is left for people to do.

    Attributes:
        column: The subject column.
        subject_digest: The subject's digest.
        dry_run: True when nothing was changed.
        run_id: The run that wrote the new versions (None when nothing was erased).
        versions: The versions rewritten, oldest first.
        destroyed_blobs: Digests of the deleted Parquet blobs.
        already_erased: Versions with the column whose blob was already gone (skipped).
        runs_to_retrain: Runs that trained a model on an erased version: retrain them.
        model_versions: Registered model versions (``name:version``) those runs produced:
            retrain and replace them (their bundles may hold the subject's data).
        other_runs: Other runs naming an erased version (pipeline runs, ...).
        derived_versions: Versions derived from an erased one that were not rewritten (they
            lack the column): they may still hold the subject's data in another form.
        sources: Sources read to produce the erased versions: erase the subject there too.
        artifacts: ``(run_id, name)`` of run artifacts that shared a destroyed blob.
        audit: The audit entry to write.
    """

    column: str
    subject_digest: str
    dry_run: bool
    run_id: str | None
    versions: tuple[ErasedVersion, ...]
    destroyed_blobs: tuple[str, ...]
    already_erased: tuple[str, ...]
    runs_to_retrain: tuple[str, ...]
    model_versions: tuple[str, ...]
    other_runs: tuple[str, ...]
    derived_versions: tuple[str, ...]
    sources: tuple[str, ...]
    artifacts: tuple[tuple[str, str], ...]
    audit: AuditEntry

    @property
    def rows_erased(self) -> int:
        """Rows removed over every version."""
        return sum(v.rows_erased for v in self.versions)


def erase_subject(
    workspace: Workspace,
    *,
    column: str,
    value: str,
    actor: str | None = None,
    key: bytes | None = None,
    dry_run: bool = False,
) -> ErasureReport:
    """Rewrite every dataset version holding the subject without their rows.

    Args:
        workspace: Where the versions are.
        column: The column identifying the subject (``email``, ``customer_id``).
        value: The subject's value in it, compared as text, exactly.
        actor: Who asks (default: the operating-system user).
        key: The pseudonymization key: also matches the value's pseudonym, and makes the
            recorded digest an HMAC.
        dry_run: Only find and count; change nothing.

    Raises:
        InvalidArgument: Empty column or value, or a version whose column cannot be compared
            as text (a list or struct column).
        IntegrityFailure: A rewritten version does not have the expected row count.
    """
    if not column or not isinstance(value, str) or not value:
        raise InvalidArgument("erasure needs a subject column and a non-empty value")
    digest = subject_digest(value, key)
    candidates = [value] if key is None else [value, pseudonym(value, key)]
    match = pl.col(column).cast(pl.String).is_in(candidates).fill_null(False)
    store = dataset_store(workspace)
    versions = sorted(
        (v for v in store.list_versions() if any(c["name"] == column for c in v.schema)),
        key=lambda v: (v.created_ms, v.dataset_id),
    )
    plan: list[tuple[DatasetVersion, int]] = []
    already: list[str] = []
    for version in versions:
        if not workspace.blobs.exists(version.digest):
            already.append(version.dataset_id)
            continue
        found = _count(workspace, version, match, column)
        if found:
            plan.append((version, found))

    run_id: str | None = None
    done: list[ErasedVersion] = []
    destroyed: list[str] = []
    artifacts: list[tuple[str, str]] = []
    if plan and not dry_run:
        with workspace.start_run(
            name="erase",
            experiment="privacy",
            tags={"kind": "erasure", "subject_column": column, "subject_digest": digest},
        ) as run:
            run_id = run.run_id
            done = [_rewrite(workspace, v, n, match, column, digest, run_id) for v, n in plan]
            destroyed = sorted({v.digest for v, _ in plan})
            artifacts = artifacts_sharing(workspace, destroyed)
            faults.hit("privacy.erasure.before_delete")
            for blob in destroyed:
                workspace.blobs.delete(blob)
            run.set_tags({"rows_erased": sum(d.rows_erased for d in done), "versions": len(done)})
    else:
        done = [ErasedVersion(v.dataset_id, None, v.name, v.kind, v.row_count, n) for v, n in plan]

    erased_ids = [v.dataset_id for v, _ in plan]
    rewritten = set(erased_ids) | {d.new_id for d in done if d.new_id}
    derived = sorted(set(descendants(store, erased_ids)) - rewritten - set(already))
    trained, other = runs_referencing(workspace, erased_ids, exclude=[run_id] if run_id else [])
    audit = AuditEntry(
        actor=actor or user_name(),
        action="erase",
        object=f"subject:{column}",
        digest=digest,
        at_ms=workspace.clock.now_ms(),
        details={
            "dry_run": dry_run,
            "run_id": run_id,
            "versions": {d.old_id: d.new_id for d in done},
            "rows_erased": sum(d.rows_erased for d in done),
        },
    )
    return ErasureReport(
        column=column,
        subject_digest=digest,
        dry_run=dry_run,
        run_id=run_id,
        versions=tuple(done),
        destroyed_blobs=tuple(destroyed),
        already_erased=tuple(already),
        runs_to_retrain=tuple(trained),
        model_versions=tuple(model_versions_of(workspace, trained)),
        other_runs=tuple(other),
        derived_versions=tuple(derived),
        sources=tuple(upstream_sources(store, erased_ids)),
        artifacts=tuple(artifacts),
        audit=audit,
    )


def erasure_successor(workspace: Workspace, dataset_id: str) -> DatasetVersion | None:
    """Return the version an erasure wrote in place of ``dataset_id``, if any.

    Raises:
        NotFound: ``dataset_id`` is not a stored version.
    """
    store = dataset_store(workspace)
    old = store.get(dataset_id)
    for child in store.children(old.dataset_id):
        lineage = child.lineage or {}
        if lineage.get("step") == ERASURE_STEP and lineage.get("erased_version") == old.dataset_id:
            return child
    return None


def _count(workspace: Workspace, version: DatasetVersion, match: pl.Expr, column: str) -> int:
    try:
        return int(read_dataset(workspace, version).select(match.sum()).collect().item())
    except pl.exceptions.InvalidOperationError as e:
        raise InvalidArgument(
            f"column {column!r} of dataset version {version.short_id} ({version.name}) cannot "
            "be compared as text; erasure matches scalar columns only"
        ) from e


def _rewrite(
    workspace: Workspace,
    old: DatasetVersion,
    found: int,
    match: pl.Expr,
    column: str,
    digest: str,
    run_id: str,
) -> ErasedVersion:
    new = _finished_earlier(workspace, old, found, digest)
    new = new or write_dataset(
        workspace,
        read_dataset(workspace, old).filter(~match),
        name=old.name,
        kind=old.kind,
        parents=[old],
        run_id=run_id,
        lineage={
            "step": ERASURE_STEP,
            "erased_version": old.dataset_id,
            "subject_column": column,
            "subject_digest": digest,
            "rows_erased": found,
        },
    )
    if new.row_count != old.row_count - found:
        raise IntegrityFailure(
            f"erasing from {old.short_id} ({old.name}) left {new.row_count} rows, expected "
            f"{old.row_count - found}; the old version is untouched, run the erasure again"
        )
    _retire(workspace, old.dataset_id, new)
    return ErasedVersion(old.dataset_id, new.dataset_id, old.name, old.kind, old.row_count, found)


def _finished_earlier(
    workspace: Workspace, old: DatasetVersion, found: int, digest: str
) -> DatasetVersion | None:
    """Return the version an interrupted erasure of this subject already wrote, if intact."""
    earlier = erasure_successor(workspace, old.dataset_id)
    if (
        earlier is None
        or (earlier.lineage or {}).get("subject_digest") != digest
        or earlier.row_count != old.row_count - found
        or not workspace.blobs.exists(earlier.digest)
    ):
        return None
    return earlier


def _retire(workspace: Workspace, old_id: str, new: DatasetVersion) -> None:
    """Move the old version's cache keys to the new one and scrub its stored profile.

    One transaction: a pipeline looking up a cache key finds either the old version (before)
    or the new one (after), never neither. The old profile goes because a column's top values
    and min/max can hold the subject's values; the new version's profile takes its place.
    """
    engine = workspace.store.engine
    now = workspace.clock.now_ms()

    def _update(connection: sa.Connection) -> None:
        keys = DatasetCacheKeyRow
        moved = list(
            connection.execute(sa.select(keys.cache_key).where(keys.dataset_id == old_id)).scalars()
        )
        insert = upsert_insert(engine, keys).on_conflict_do_nothing(
            index_elements=["cache_key", "dataset_id"]
        )
        for cache_key in moved:
            connection.execute(
                insert, {"cache_key": cache_key, "dataset_id": new.dataset_id, "created_ms": now}
            )
        connection.execute(sa.delete(keys).where(keys.dataset_id == old_id))
        connection.execute(
            sa.update(DatasetRow).where(DatasetRow.dataset_id == old_id).values(profile=new.profile)
        )

    run_write(engine, _update)
