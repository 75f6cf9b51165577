"""The blob collector's tables: its sweeps (``gc_sweeps``) and their candidates (``gc_candidates``).

The collector (``shipyard.cost.blob_gc``) decides what to delete; this module records what it
decided, so a crash leaves a trace and a later sweep can tell how long a blob has been
unreferenced where the blob store cannot say. The final record of a sweep and its audit entry
are written in one transaction (``GcStore.finish``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from shipyard.store.cost_models import GcCandidateRow, GcSweepRow
from shipyard.store.engine import run_write

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from shipyard.store.security import AuditRecord, AuditWrite, SecurityStore
    from shipyard.store.sql import SqlStore

_CHUNK = 200


class GcStore:
    """Sweeps and candidates of the blob collector, in the metadata store of a ``SqlStore``."""

    def __init__(self, store: SqlStore) -> None:
        self.engine = store.engine

    def mark(
        self,
        sweep_id: str,
        *,
        started_ms: int,
        grace_s: float,
        blobs_seen: int,
        candidates: Mapping[str, int],
    ) -> None:
        """Record a sweep as ``marked`` with its candidates (digest -> size), in one transaction.

        A sweep still ``marked`` from an earlier run (it crashed) is recorded as ``abandoned``.
        """

        def _write(c: sa.Connection) -> None:
            c.execute(
                sa.update(GcSweepRow)
                .where(GcSweepRow.status == "marked")
                .values(status="abandoned")
            )
            c.execute(
                sa.insert(GcSweepRow).values(
                    sweep_id=sweep_id,
                    status="marked",
                    started_ms=started_ms,
                    finished_ms=None,
                    grace_seconds=grace_s,
                    blobs_seen=blobs_seen,
                    candidates=len(candidates),
                    deleted=0,
                    bytes_freed=0,
                )
            )
            if candidates:
                c.execute(
                    sa.insert(GcCandidateRow),
                    [
                        {"sweep_id": sweep_id, "digest": d, "size_bytes": s, "deleted_ms": None}
                        for d, s in sorted(candidates.items())
                    ],
                )

        run_write(self.engine, _write)

    def record_deleted(self, sweep_id: str, digests: Sequence[str], at_ms: int) -> None:
        """Record that the sweep deleted these candidates' blobs."""

        def _write(c: sa.Connection) -> None:
            c.execute(
                sa.update(GcCandidateRow)
                .where(GcCandidateRow.sweep_id == sweep_id, GcCandidateRow.digest.in_(digests))
                .values(deleted_ms=at_ms)
            )

        run_write(self.engine, _write)

    def finish(
        self,
        sweep_id: str,
        *,
        finished_ms: int,
        deleted: int,
        bytes_freed: int,
        audit: AuditWrite,
        audit_log: SecurityStore,
    ) -> AuditRecord:
        """Record the sweep as ``done`` and append ``audit``, in one transaction; then anchor."""
        written: list[AuditRecord] = []

        def _done(c: sa.Connection) -> None:
            c.execute(
                sa.update(GcSweepRow)
                .where(GcSweepRow.sweep_id == sweep_id)
                .values(
                    status="done",
                    finished_ms=finished_ms,
                    deleted=deleted,
                    bytes_freed=bytes_freed,
                )
            )
            written.append(audit_log.append_within(c, audit))

        run_write(self.engine, _done)
        audit_log.anchor(written[-1])
        return written[-1]

    def marked_before(self, digests: Sequence[str], cutoff_ms: int) -> set[str]:
        """Digests that a sweep started at or before ``cutoff_ms`` already found unreferenced."""
        found: set[str] = set()
        with self.engine.connect() as c:
            for start in range(0, len(digests), _CHUNK):
                chunk = list(digests[start : start + _CHUNK])
                found.update(
                    c.execute(
                        sa.select(GcCandidateRow.digest)
                        .join(GcSweepRow, GcSweepRow.sweep_id == GcCandidateRow.sweep_id)
                        .where(GcCandidateRow.digest.in_(chunk), GcSweepRow.started_ms <= cutoff_ms)
                    ).scalars()
                )
        return found
