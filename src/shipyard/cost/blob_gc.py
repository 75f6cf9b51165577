"""The blob garbage collector: delete blobs no run, dataset or model version refers to.

(Not to be confused with ``shipyard.track.gc``, which ends runs whose process died.)

Every blob writer stores the blob first and commits the row that refers to it second, so at
any moment the store may hold a blob whose row is not committed yet. The collector therefore
never trusts a single look. It works mark-then-sweep:

1. **Mark.** List the store's blobs, read every live reference (``store.blob_refs``), and take as
   candidates the unreferenced blobs older than the grace period: a blob whose file was
   modified after ``now - grace`` may belong to a write in progress and is left alone. Where
   the store cannot tell a blob's age (some object stores), the blob must already have been a
   candidate of a sweep that started at least ``grace`` ago. The sweep and its candidates are
   committed to the metadata store before anything is deleted.
2. **Sweep.** For each chunk of candidates, ask the metadata store again which are referenced
   *now* (a row committed after the mark wins), delete the others' files, then record them as
   deleted.

So a blob file is deleted only after the metadata has said, twice, that nothing refers to it.
A crash at any point leaves every referenced blob in place: the worst it leaves is a sweep
marked but not finished, which the next run records as ``abandoned`` before it marks afresh.

The one window this cannot close without a lock shared with every writer: a writer that finds
an *old, unreferenced* blob already stored (content addressing makes its write a no-op) and
commits its row in the instant between the sweep's re-check and the delete. That needs the very
same bytes to be re-written at that instant; ``check_references`` (run at the end of every
sweep, and by ``shipyard gc``) reports any reference left without its blob.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shipyard.core import faults
from shipyard.core.errors import ArtifactNotFound, IntegrityFailure, InvalidArgument
from shipyard.core.ids import new_id
from shipyard.security import audit
from shipyard.security.guard import guard
from shipyard.security.permissions import Action
from shipyard.store.artifacts.local import LocalBlobStore
from shipyard.store.blob_gc import GcStore
from shipyard.store.blob_refs import BlobRefs

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from shipyard.security.identities import Identity
    from shipyard.store.artifacts.base import BlobStore
    from shipyard.store.security import SecurityStore
    from shipyard.store.stores import Stores

DEFAULT_GRACE_S = 3600.0
_CHUNK = 200


#: The lease a collector holds (``store.leases``): one ``shipyard gc`` per workspace at a time.
GC_LEASE = "gc"


@dataclass(frozen=True)
class GcReport:
    """What a sweep found, and what it deleted (or would delete, on a dry run).

    Attributes:
        sweep_id: Id of the recorded sweep; None on a dry run.
        dry_run: Whether nothing was changed.
        blobs_seen: Blobs in the store when the mark listed it.
        referenced: Distinct digests with a live reference.
        candidates: Digest -> size of unreferenced blobs past the grace period.
        recent: Unreferenced blobs left alone because they are inside the grace period (or
            their age could not be read).
        deleted: Digests whose files this sweep deleted (empty on a dry run).
        kept_referenced: Candidates that gained a reference between the mark and the sweep.
        missing: Referenced digests with no blob in the store (see ``check_references``).
        temp_removed: Temp files of crashed writers removed.
    """

    sweep_id: str | None
    dry_run: bool
    blobs_seen: int
    referenced: int
    candidates: dict[str, int]
    recent: int
    deleted: list[str] = field(default_factory=list)
    kept_referenced: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    temp_removed: int = 0

    @property
    def bytes_freed(self) -> int:
        """Bytes the deleted blobs took, or the candidates would free on a dry run."""
        if self.dry_run:
            return sum(self.candidates.values())
        return sum(self.candidates[d] for d in self.deleted)

    @property
    def freed(self) -> dict[str, int]:
        """Digest -> size of what went (or would go, on a dry run)."""
        if self.dry_run:
            return dict(self.candidates)
        return {d: self.candidates[d] for d in self.deleted}


def collect_garbage(
    stores: Stores,
    *,
    audit_log: SecurityStore,
    actor: Identity,
    grace_s: float = DEFAULT_GRACE_S,
    dry_run: bool = False,
    also_released: Iterable[tuple[str, str]] = (),
) -> GcReport:
    """Mark unreferenced blobs, then (unless ``dry_run``) delete them; see the module docstring.

    Args:
        stores: The blob store collected, the metadata store naming what is live, the clock.
        audit_log: Where the denial or the sweep's entry is written (and who may act).
        actor: Who collects: needs ``runs.delete`` (a dry run too: it lists what exists); a
            real sweep's audit entry is written with the sweep's final record.
        grace_s: Blobs modified less than this many seconds ago are never deleted.
        dry_run: Only report what would be deleted; write nothing.
        also_released: ``(kind, ref)`` pairs to count as released (a retention plan that a dry
            run has not applied). Refused on a real run: apply the plan first.

    Raises:
        PermissionDenied: ``actor`` may not delete (audited).
        InvalidArgument: A negative grace period, or ``also_released`` on a real run.
    """
    guard(
        audit_log,
        actor,
        Action.RUNS_DELETE,
        "blobs",
        clock=stores.clock,
    )
    if grace_s < 0:
        raise InvalidArgument(f"the grace period must be >= 0 seconds, got {grace_s}")
    hypothetical = set(also_released)
    if hypothetical and not dry_run:
        raise InvalidArgument("apply the retention plan before a real sweep; pass it to dry runs")
    blobs, sweeps = stores.blobs, GcStore(stores.store)
    started_ms = stores.clock.now_ms()
    cutoff_ms = started_ms - round(grace_s * 1000)

    listed = list(blobs.iter_digests())
    live = BlobRefs(stores.store).live(hypothetical)
    referenced = {r.digest for r in live}
    unreferenced = [d for d in listed if d not in referenced]
    ages = {d: _modified_ms(blobs, d) for d in unreferenced}
    marked_before = sweeps.marked_before([d for d, age in ages.items() if age is None], cutoff_ms)
    candidates: dict[str, int] = {}
    for digest, age in ages.items():
        old_enough = age is not None and age <= cutoff_ms
        if old_enough or (age is None and digest in marked_before):
            size = _size(blobs, digest)
            if size is not None:
                candidates[digest] = size
    missing = sorted(referenced - set(listed))
    recent = len(unreferenced) - len(candidates)
    if dry_run:
        return GcReport(
            None, True, len(listed), len(referenced), candidates, recent, [], [], missing
        )

    sweep_id = new_id()
    sweeps.mark(
        sweep_id,
        started_ms=started_ms,
        grace_s=grace_s,
        blobs_seen=len(listed),
        candidates=candidates,
    )
    faults.hit("gc.after_mark")
    deleted, kept = _sweep(stores, sweep_id, sorted(candidates), cutoff_ms)
    sweep_temp = getattr(blobs, "sweep_temp", None)
    temp_removed = int(sweep_temp(grace_s)) if callable(sweep_temp) else 0
    freed = sum(candidates[d] for d in deleted)
    entry = audit.draft(
        actor,
        Action.RUNS_DELETE,
        "blobs",
        detail={"op": "gc", "sweep": sweep_id, "deleted": len(deleted), "bytes": freed},
        clock=stores.clock,
    )

    sweeps.finish(
        sweep_id,
        finished_ms=stores.clock.now_ms(),
        deleted=len(deleted),
        bytes_freed=freed,
        audit=entry,
        audit_log=audit_log,
    )
    missing = check_references(stores)
    return GcReport(
        sweep_id,
        False,
        len(listed),
        len(referenced),
        candidates,
        recent,
        deleted,
        kept,
        missing,
        temp_removed,
    )


def _sweep(
    stores: Stores, sweep_id: str, candidates: Sequence[str], cutoff_ms: int
) -> tuple[list[str], list[str]]:
    blobs, sweeps, refs = stores.blobs, GcStore(stores.store), BlobRefs(stores.store)
    deleted: list[str] = []
    kept: list[str] = []
    for start in range(0, len(candidates), _CHUNK):
        chunk = candidates[start : start + _CHUNK]
        now_referenced = refs.still_referenced(chunk)
        gone: list[str] = []
        for digest in chunk:
            age = _modified_ms(blobs, digest)
            if digest in now_referenced or (age is not None and age > cutoff_ms):
                kept.append(digest)  # referenced since the mark, or written again
                continue
            faults.hit("gc.before_delete")
            blobs.delete(digest)
            faults.hit("gc.after_delete")
            gone.append(digest)
        if gone:
            sweeps.record_deleted(sweep_id, gone, stores.clock.now_ms())
            deleted.extend(gone)
        faults.hit("gc.after_chunk")
    return deleted, kept


def check_references(stores: Stores) -> list[str]:
    """Return the digests that a live reference names but the blob store lacks (sorted)."""
    referenced = {r.digest for r in BlobRefs(stores.store).live()}
    return sorted(d for d in referenced if not stores.blobs.exists(d))


def _modified_ms(blobs: BlobStore, digest: str) -> int | None:
    """When the blob's file last changed, where the store can tell (local files)."""
    if not isinstance(blobs, LocalBlobStore):
        return None
    try:
        return os.stat(blobs.local_path(digest)).st_mtime_ns // 1_000_000
    except (ArtifactNotFound, IntegrityFailure, FileNotFoundError):
        return None  # gone since the listing, or planted: never a candidate on its age


def _size(blobs: BlobStore, digest: str) -> int | None:
    try:
        return blobs.size(digest)
    except (ArtifactNotFound, IntegrityFailure, FileNotFoundError):
        return None
