"""Erasure of one data subject from everything Shipyard keeps: datasets, logs, labels, rows.

``erase_subject(workspace, actor, audit_log=..., column="email", value="ann@example.com",
holders=...)`` follows RELIABILITY.md lesson 10 (subject → rows → dataset versions → runs →
model versions → prediction logs):

1. **Guarded and audited.** ``actor`` must hold ``privacy.erase``; a denied attempt is audited
   and raises ``PermissionDenied`` before anything is read. A completed erasure is audited in
   the same transaction as its last metadata change (step 4), with the subject's digest and
   what was touched, never the value. A dry run changes nothing and is not audited.
2. **Dataset versions.** Every stored version (data and quarantine) whose subject column, as
   text, equals the value (or its pseudonym under ``key``), and every rejected-lines version
   whose raw ``_line`` holds it (``Subject.in_text``), oldest first: a new version of the same
   name and kind is written without those rows (parent: the old version; lineage ``step:
   erasure``, the old id, the column, the rows removed, the subject's digest); in one
   transaction the old version's cache keys move to the new one and its stored profile (top
   values, min/max) is replaced by the new one's; then the old Parquet blobs are deleted.
3. **Files outside the dataset store**, through ``holders`` (``shipyard.privacy.holders``): the
   prediction log and its feedback labels (``shipyard.monitor.erasure.log_holders``).
4. **Metadata rows.** Every text and JSON column of every table is searched
   (``shipyard.store.residue``): monitoring observations and alerts holding the value are
   deleted, with the audit entry, in one transaction; any other row is reported (``residual``)
   for a person to handle. On SQLite the file is then compacted so no free page keeps it.
5. **Models.** Bundles are immutable, signed by their digest: they are not rewritten. The
   report lists the runs and registered model versions trained on an erased version
   (``model_versions``): for tabular models retraining is the honest default (lesson 10).

The old version rows stay in the metadata store, as lineage history, with no blob behind them:
reading one raises ``ArtifactNotFound``; ``erasure_successor`` finds what replaced it.
Re-running an erasure is safe: versions already erased are skipped (their blob is gone), an
erasure interrupted before deleting is completed, reusing the new versions it wrote, and log
files already rewritten no longer match.

**The digest.** ``hmac-sha256:<hex>`` under the pseudonymization key when one is given, else
``sha256:<hex>``, which anyone can test against a guessed email; pass the key (the CLI reads
``$SHIPYARD_PSEUDONYM_KEY`` when it is set) wherever erasures are audited.

**What it takes** (issue 15): the metadata and blob stores, the clock and the one tracking call
it makes, ``start_run`` for the run that writes the new versions (``ErasureSite``: a
``Workspace`` is one), and the audit log; not the workspace's settings.

**What deletion means.** The blob file is unlinked (local store) or removed (object store).
On SSDs, copy-on-write file systems and versioned buckets, the bytes may survive until the
storage reclaims them; bucket versioning and backups must be handled by their own retention.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from shipyard.core import faults
from shipyard.core.errors import IntegrityFailure, InvalidArgument, PermissionDenied
from shipyard.data.datasets import read_dataset, write_dataset
from shipyard.privacy.exposure import RAW_LINE
from shipyard.privacy.references import (
    artifacts_sharing,
    descendants,
    model_versions_of,
    runs_referencing,
    upstream_sources,
)
from shipyard.privacy.subject import Subject
from shipyard.security import audit
from shipyard.security.permissions import Action, check, require
from shipyard.store.datasets import DatasetStore
from shipyard.store.erasure import ErasureStore
from shipyard.store.stores import Stores

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from shipyard.privacy.holders import HolderResult, SubjectHolder
    from shipyard.security.identities import Identity
    from shipyard.store.dataset_entities import DatasetVersion
    from shipyard.store.security import AuditRecord, AuditWrite, SecurityStore
    from shipyard.store.sql import SqlStore
    from shipyard.track.run import ActiveRun

ERASURE_STEP = "erasure"


class ErasureSite(Stores, Protocol):
    """The stores and clock an erasure works on, and the run it writes new versions in."""

    def start_run(
        self,
        *,
        name: str | None = None,
        experiment: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> ActiveRun:
        """Start a tracked run (a ``Workspace``'s ``start_run``)."""
        ...


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
class ErasureReport:
    """What an erasure did (or, in a dry run, would do), and what is left for people to do.

    Attributes:
        column: The subject column.
        subject_digest: The subject's digest.
        dry_run: True when nothing was changed.
        run_id: The run that wrote the new versions (None when no version was rewritten).
        versions: The versions rewritten, oldest first.
        destroyed_blobs: Digests of the deleted Parquet blobs.
        already_erased: Versions with the column whose blob was already gone (skipped).
        files: Per holder and kind (prediction log, feedback): files and rows touched.
        monitoring_rows: Monitoring rows deleted (found, in a dry run), per table.
        residual: Other metadata rows that hold the value, ``"table.column"`` -> rows: a
            person must handle them (a run param, a note); empty after a complete erasure.
        compacted: Whether the SQLite store was rewritten so deleted rows left no bytes
            (None for PostgreSQL, whose dead rows stay until ``VACUUM FULL``).
        runs_to_retrain: Runs that trained a model on an erased version: retrain them.
        model_versions: Registered model versions (``name:version``) those runs produced:
            retrain and replace them (their bundles may hold the subject's data).
        other_runs: Other runs naming an erased version (pipeline runs, ...).
        derived_versions: Versions derived from an erased one that were not rewritten (they
            lack the column): they may still hold the subject's data in another form.
        sources: Sources read to produce the erased versions: erase the subject there too.
        artifacts: ``(run_id, name)`` of run artifacts that shared a destroyed blob.
        audit: The audit entry written (None in a dry run).
    """

    column: str
    subject_digest: str
    dry_run: bool
    run_id: str | None
    versions: tuple[ErasedVersion, ...]
    destroyed_blobs: tuple[str, ...]
    already_erased: tuple[str, ...]
    files: tuple[HolderResult, ...]
    monitoring_rows: dict[str, int]
    residual: dict[str, int]
    compacted: bool | None
    runs_to_retrain: tuple[str, ...]
    model_versions: tuple[str, ...]
    other_runs: tuple[str, ...]
    derived_versions: tuple[str, ...]
    sources: tuple[str, ...]
    artifacts: tuple[tuple[str, str], ...]
    audit: AuditRecord | None = field(default=None)

    @property
    def rows_erased(self) -> int:
        """Rows removed over every version."""
        return sum(v.rows_erased for v in self.versions)

    def summary(self) -> dict[str, object]:
        """What was touched, per kind, as plain values (the audit entry's detail)."""
        return {
            "dry_run": self.dry_run,
            "run_id": self.run_id,
            "versions": {v.old_id: v.new_id for v in self.versions},
            "rows_erased": self.rows_erased,
            "files": [f.to_dict() for f in self.files if f.touched],
            "monitoring_rows": self.monitoring_rows,
            "residual": self.residual,
            "model_versions": list(self.model_versions),
        }


def erase_subject(
    site: ErasureSite,
    actor: Identity,
    *,
    audit_log: SecurityStore,
    column: str,
    value: str,
    key: bytes | None = None,
    dry_run: bool = False,
    holders: Sequence[SubjectHolder] = (),
) -> ErasureReport:
    """Erase a subject from every dataset version, the given holders and the metadata rows.

    Args:
        site: Where the versions are, and where the erasure's run is tracked (a ``Workspace``).
        actor: Who asks; must hold ``privacy.erase`` in the workspace's project.
        audit_log: Where the denial or the erasure is audited.
        column: The column identifying the subject (``email``, ``customer_id``).
        value: The subject's value in it, compared as text, exactly.
        key: The pseudonymization key: also matches the value's pseudonym, and makes the
            recorded digest an HMAC.
        dry_run: Only find and count; change nothing.
        holders: Files kept outside the dataset store (``shipyard.monitor.erasure.log_holders``
            for a project's prediction logs and feedback).

    Raises:
        PermissionDenied: ``actor`` may not erase (the attempt is audited).
        InvalidArgument: Empty column or value, or a version whose column cannot be compared
            as text (a list or struct column).
        IntegrityFailure: A rewritten version does not have the expected row count.
    """
    subject = Subject.of(column, value, key)
    _guard(site, audit_log, actor, subject)
    store = DatasetStore(site.store)
    versions = sorted(
        (v for v in store.list_versions() if _match(subject, v) is not None),
        key=lambda v: (v.created_ms, v.dataset_id),
    )
    plan: list[tuple[DatasetVersion, int]] = []
    already: list[str] = []
    for version in versions:
        if not site.blobs.exists(version.digest):
            already.append(version.dataset_id)
            continue
        found = _count(site, version, subject)
        if found:
            plan.append((version, found))

    run_id: str | None = None
    done: list[ErasedVersion] = []
    destroyed: list[str] = []
    artifacts: list[tuple[str, str]] = []
    if plan and not dry_run:
        with site.start_run(
            name="erase",
            experiment="privacy",
            tags={"kind": "erasure", "subject_column": column, "subject_digest": subject.digest},
        ) as run:
            run_id = run.run_id
            done = [_rewrite(site, v, n, subject, run_id) for v, n in plan]
            destroyed = sorted({v.digest for v, _ in plan})
            artifacts = artifacts_sharing(site.store, destroyed)
            faults.hit("privacy.erasure.before_delete")
            for blob in destroyed:
                site.blobs.delete(blob)
            run.set_tags({"rows_erased": sum(d.rows_erased for d in done), "versions": len(done)})
    else:
        done = [ErasedVersion(v.dataset_id, None, v.name, v.kind, v.row_count, n) for v, n in plan]
    files = tuple(r for holder in holders for r in holder.erase(subject, dry_run=dry_run))

    erased_ids = [v.dataset_id for v, _ in plan]
    rewritten = set(erased_ids) | {d.new_id for d in done if d.new_id}
    derived = sorted(set(descendants(store, erased_ids)) - rewritten - set(already))
    trained, other = runs_referencing(site.store, erased_ids, exclude=[run_id] if run_id else [])
    report = ErasureReport(
        column=column,
        subject_digest=subject.digest,
        dry_run=dry_run,
        run_id=run_id,
        versions=tuple(done),
        destroyed_blobs=tuple(destroyed),
        already_erased=tuple(already),
        files=files,
        monitoring_rows={},
        residual={},
        compacted=None,
        runs_to_retrain=tuple(trained),
        model_versions=tuple(model_versions_of(site.store, trained)),
        other_runs=tuple(other),
        derived_versions=tuple(derived),
        sources=tuple(upstream_sources(store, erased_ids)),
        artifacts=tuple(artifacts),
    )
    return _finish(site, audit_log, actor, subject, report)


def _finish(
    stores: Stores,
    audit_log: SecurityStore,
    actor: Identity,
    subject: Subject,
    report: ErasureReport,
) -> ErasureReport:
    """Delete the monitoring rows and write the audit entry, in one transaction; compact."""
    store = ErasureStore(stores.store)
    if report.dry_run:
        monitoring, left = store.find_rows(subject)
        return _replace(report, monitoring_rows=monitoring, residual=left)

    def _entry(deleted: dict[str, int], left: dict[str, int]) -> AuditWrite:
        done = _replace(report, monitoring_rows=deleted, residual=left)
        return audit.draft(
            actor,
            Action.PRIVACY_ERASE,
            _audit_object(subject),
            detail=done.summary(),
            clock=stores.clock,
        )

    deleted, left, entry = store.delete_rows(subject, _entry, audit_log)
    finished = _replace(report, monitoring_rows=deleted, residual=left, audit=entry)
    return _replace(finished, compacted=store.compact())


def _guard(stores: Stores, audit_log: SecurityStore, actor: Identity, subject: Subject) -> None:
    """Refuse (and audit) an actor without ``privacy.erase``, before anything is read."""
    if not check(actor, Action.PRIVACY_ERASE).allowed:
        audit.record(
            audit_log,
            actor,
            Action.PRIVACY_ERASE,
            _audit_object(subject),
            outcome="denied",
            clock=stores.clock,
        )
    try:
        require(actor, Action.PRIVACY_ERASE)
    except PermissionDenied as e:
        raise PermissionDenied(f"{e}; erasure needs the admin role") from None


def _audit_object(subject: Subject) -> str:
    """``subject:<column>#<digest>``: the keyed digest of the subject, never the value."""
    return f"subject:{subject.column}#{subject.digest}"


def _replace(report: ErasureReport, **changes: object) -> ErasureReport:
    return dataclasses.replace(report, **changes)  # type: ignore[arg-type]


def _match(subject: Subject, version: DatasetVersion) -> pl.Expr | None:
    """The rows of ``version`` holding the subject; None when it has neither column."""
    names = {c["name"] for c in version.schema}
    parts = [subject.row_match()] if subject.column in names else []
    if RAW_LINE in names and subject.column != RAW_LINE:
        parts.append(subject.text_match(RAW_LINE))
    return pl.any_horizontal(parts) if parts else None


def erasure_successor(store: SqlStore, dataset_id: str) -> DatasetVersion | None:
    """Return the version an erasure wrote in place of ``dataset_id``, if any.

    Raises:
        NotFound: ``dataset_id`` is not a stored version.
    """
    versions = DatasetStore(store)
    old = versions.get(dataset_id)
    for child in versions.children(old.dataset_id):
        lineage = child.lineage or {}
        if lineage.get("step") == ERASURE_STEP and lineage.get("erased_version") == old.dataset_id:
            return child
    return None


def _count(stores: Stores, version: DatasetVersion, subject: Subject) -> int:
    match = _match(subject, version)
    assert match is not None  # only versions with a column to search are counted
    try:
        return int(read_dataset(stores, version).select(match.sum()).collect().item())
    except pl.exceptions.InvalidOperationError as e:
        raise InvalidArgument(
            f"column {subject.column!r} of dataset version {version.short_id} ({version.name}) "
            "cannot be compared as text; erasure matches scalar columns only"
        ) from e


def _rewrite(
    stores: Stores,
    old: DatasetVersion,
    found: int,
    subject: Subject,
    run_id: str,
) -> ErasedVersion:
    match = _match(subject, old)
    assert match is not None
    new = _finished_earlier(stores, old, found, subject.digest)
    new = new or write_dataset(
        stores,
        read_dataset(stores, old).filter(~match),
        name=old.name,
        kind=old.kind,
        parents=[old],
        run_id=run_id,
        lineage={
            "step": ERASURE_STEP,
            "erased_version": old.dataset_id,
            "subject_column": subject.column,
            "subject_digest": subject.digest,
            "rows_erased": found,
        },
    )
    if new.row_count != old.row_count - found:
        raise IntegrityFailure(
            f"erasing from {old.short_id} ({old.name}) left {new.row_count} rows, expected "
            f"{old.row_count - found}; the old version is untouched, run the erasure again"
        )
    _retire(stores, old.dataset_id, new)
    return ErasedVersion(old.dataset_id, new.dataset_id, old.name, old.kind, old.row_count, found)


def _finished_earlier(
    stores: Stores, old: DatasetVersion, found: int, digest: str
) -> DatasetVersion | None:
    """Return the version an interrupted erasure of this subject already wrote, if intact."""
    earlier = erasure_successor(stores.store, old.dataset_id)
    if (
        earlier is None
        or (earlier.lineage or {}).get("subject_digest") != digest
        or earlier.row_count != old.row_count - found
        or not stores.blobs.exists(earlier.digest)
    ):
        return None
    return earlier


def _retire(stores: Stores, old_id: str, new: DatasetVersion) -> None:
    """Move the old version's cache keys to the new one and scrub its stored profile.

    One transaction: a pipeline looking up a cache key finds either the old version (before)
    or the new one (after), never neither. The old profile goes because a column's top values
    and min/max can hold the subject's values; the new version's profile takes its place.
    """
    ErasureStore(stores.store).retire_version(
        old_id, new.dataset_id, new.profile, stores.clock.now_ms()
    )
