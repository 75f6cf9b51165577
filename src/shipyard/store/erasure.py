"""The metadata an erasure reads and changes, in the metadata store of a ``SqlStore``.

``shipyard.privacy.erasure`` decides what a subject's erasure touches; this module does it to
the tables: it moves a rewritten dataset version's pipeline cache keys and scrubs its profile
(one transaction), finds and deletes the metadata rows holding the subject with the audit entry
(one transaction, ``shipyard.store.residue``), compacts a SQLite file, and answers the lineage
questions an erasure follows (runs, artifacts and model versions naming erased versions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.store.dataset_models import DatasetCacheKeyRow, DatasetRow
from shipyard.store.engine import run_write, upsert_insert
from shipyard.store.models import ArtifactRow, ParamRow, TagRow
from shipyard.store.registry_models import ModelVersionRow
from shipyard.store.residue import ERASABLE, compact, delete_erasable, residual, rows_holding
from shipyard.store.search import load_runs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from shipyard.store.entities import Run
    from shipyard.store.residue import Subject
    from shipyard.store.security import AuditRecord, AuditWrite, SecurityStore
    from shipyard.store.sql import SqlStore

_CHUNK = 500


class ErasureStore:
    """Erasure's reads and writes of the metadata store."""

    def __init__(self, store: SqlStore) -> None:
        self.engine = store.engine

    def retire_version(
        self, old_id: str, new_id: str, new_profile: Mapping[str, Any] | None, now_ms: int
    ) -> None:
        """Move ``old_id``'s cache keys and profile over to ``new_id``, in one transaction.

        A pipeline looking up a cache key finds either the old version (before) or the new one
        (after), never neither. The old profile goes because a column's top values and min/max
        can hold the subject's values.
        """

        def _update(connection: sa.Connection) -> None:
            keys = DatasetCacheKeyRow
            moved = list(
                connection.execute(
                    sa.select(keys.cache_key).where(keys.dataset_id == old_id)
                ).scalars()
            )
            insert = upsert_insert(self.engine, keys).on_conflict_do_nothing(
                index_elements=["cache_key", "dataset_id"]
            )
            for cache_key in moved:
                connection.execute(
                    insert, {"cache_key": cache_key, "dataset_id": new_id, "created_ms": now_ms}
                )
            connection.execute(sa.delete(keys).where(keys.dataset_id == old_id))
            connection.execute(
                sa.update(DatasetRow)
                .where(DatasetRow.dataset_id == old_id)
                .values(profile=new_profile)
            )

        run_write(self.engine, _update)

    def find_rows(self, subject: Subject) -> tuple[dict[str, int], dict[str, int]]:
        """Return what ``delete_rows`` would do: rows per ``ERASABLE`` table, and the residual."""
        with self.engine.connect() as connection:
            found = rows_holding(connection, subject)
        monitoring = {
            table: len({k for w, ks in found.items() if w.split(".")[0] == table for k in ks})
            for table in ERASABLE
        }
        return {t: n for t, n in monitoring.items() if n}, residual(found)

    def delete_rows(
        self,
        subject: Subject,
        audit: Callable[[dict[str, int], dict[str, int]], AuditWrite],
        audit_log: SecurityStore,
    ) -> tuple[dict[str, int], dict[str, int], AuditRecord]:
        """Delete the ``ERASABLE`` rows holding ``subject`` and append the audit entry, together.

        ``audit`` builds the entry from what was deleted (rows per table) and what is left
        (``"table.column"`` -> rows); the entry is anchored once the transaction has committed.

        Returns:
            The rows deleted per table, the residual, and the audit entry written.
        """

        def _work(
            connection: sa.Connection,
        ) -> tuple[dict[str, int], dict[str, int], AuditRecord]:
            found = rows_holding(connection, subject)
            deleted, left = delete_erasable(connection, found), residual(found)
            return deleted, left, audit_log.append_within(connection, audit(deleted, left))

        deleted, left, entry = run_write(self.engine, _work)
        audit_log.anchor(entry)  # only once the entry has committed
        return deleted, left, entry

    def compact(self) -> bool | None:
        """Rewrite a SQLite store so deleted rows leave no bytes (``residue.compact``)."""
        return compact(self.engine)

    def runs_naming(
        self, values: Iterable[str], tag_prefixes: Iterable[tuple[str, str]]
    ) -> set[str]:
        """Return the runs with a param or tag whose value is one of ``values``.

        Also those with a tag ``key`` whose value starts with ``prefix``, for each
        ``(key, prefix)`` of ``tag_prefixes``. One query per table: callers pass a few hundred
        values at a time.
        """
        chunk = sorted(set(values))
        tag_match = sa.or_(
            TagRow.value.in_(chunk),
            *(
                sa.and_(TagRow.key == k, TagRow.value.startswith(p))
                for k, p in sorted(set(tag_prefixes))
            ),
        )
        with self.engine.connect() as connection:
            found = set(connection.execute(sa.select(TagRow.run_id).where(tag_match)).scalars())
            found.update(
                connection.execute(
                    sa.select(ParamRow.run_id).where(ParamRow.value.in_(chunk))
                ).scalars()
            )
        return found

    def load_runs(self, run_ids: list[str]) -> list[Run]:
        """Load whole runs, in the order given (unknown ids are left out)."""
        return load_runs(self.engine, run_ids)

    def artifacts_in(self, digests: Iterable[str]) -> list[tuple[str, str]]:
        """Return ``(run_id, artifact name)`` of run artifacts stored in one of these blobs."""
        wanted = sorted(set(digests))
        if not wanted:
            return []
        query = (
            sa.select(ArtifactRow.run_id, ArtifactRow.name)
            .where(ArtifactRow.digest.in_(wanted))
            .order_by(ArtifactRow.run_id, ArtifactRow.name)
        )
        with self.engine.connect() as connection:
            return [(r, n) for r, n in connection.execute(query)]

    def model_versions_of(self, run_ids: Iterable[str]) -> list[tuple[str, int]]:
        """Return ``(name, version)`` of the registered model versions these runs produced."""
        ids = sorted(set(run_ids))
        refs: list[tuple[str, int]] = []
        with self.engine.connect() as connection:
            for start in range(0, len(ids), _CHUNK):
                query = sa.select(ModelVersionRow.name, ModelVersionRow.version).where(
                    ModelVersionRow.run_id.in_(ids[start : start + _CHUNK])
                )
                refs.extend((name, version) for name, version in connection.execute(query))
        return sorted(refs)
