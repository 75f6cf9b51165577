"""The model registry's metadata: gap-free versions, compare-and-set aliases, their history.

Knows nothing of ML: a version is a row pointing at a bundle blob by sha256. The two rules that
keep a registry trustworthy live here, in transactions: version numbers per model are unique and
gap-free even when many processes register at once, and an alias moves only from the holder the
caller saw (so two concurrent promotions cannot both win), with its event row in the same
transaction as the move. A caller may hand each change an audit entry
(``shipyard.store.security.AuditWrite``): it is appended in that same transaction, so a move
and its audit entry are written together or not at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shipyard.core.errors import Conflict, InvalidArgument, NotFound
from shipyard.store.engine import run_write, upsert_insert
from shipyard.store.registry_models import (
    AliasEventRow,
    ModelAliasRow,
    ModelVersionRow,
    RegisteredModelRow,
)
from shipyard.store.registry_records import AliasEvent as AliasEvent
from shipyard.store.registry_records import ModelVersion as ModelVersion
from shipyard.store.registry_records import alias_event_from_row, version_from_row

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from shipyard.store.security import AuditRecord, AuditWrite, SecurityStore
    from shipyard.store.sql import SqlStore

_T = TypeVar("_T")

_REGISTER_ATTEMPTS = 20


class RegistryStore:
    """Registry rows of one metadata store."""

    def __init__(self, store: SqlStore, audit_log: SecurityStore | None = None) -> None:
        self.engine = store.engine
        self.audit_log = audit_log

    def _write(self, work: Callable[[sa.Connection, list[AuditRecord]], _T]) -> _T:
        """``run_write`` of ``work``, then anchor the audit entries it appended (once committed)."""
        pending: list[AuditRecord] = []

        def attempt(c: sa.Connection) -> _T:
            pending.clear()  # run_write may repeat the work after a failed attempt
            return work(c, pending)

        result = run_write(self.engine, attempt)
        for entry in pending:
            assert self.audit_log is not None  # only _append_audit fills it
            self.audit_log.anchor(entry)
        return result

    def _append_audit(
        self, c: sa.Connection, audit: AuditWrite | None, pending: list[AuditRecord]
    ) -> None:
        if audit is None:
            return
        if self.audit_log is None:
            raise InvalidArgument("this registry store was opened without its audit log")
        pending.append(self.audit_log.append_within(c, audit))

    # -- versions ---------------------------------------------------------------------------

    def create_version(
        self,
        values: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        audit: AuditWrite | None = None,
    ) -> tuple[ModelVersion, bool]:
        """Insert the next version of ``values["name"]``; return it and whether it is new.

        ``values`` holds every column but ``version`` and ``idempotency_key``. A key seen before
        returns the version it created (``False``) if it named the same model and bundle.
        ``audit`` is appended with a new version (not with a replayed one).

        Raises:
            Conflict: The key was used for another model or bundle, or writers kept colliding.
        """
        name = values["name"]
        for _ in range(_REGISTER_ATTEMPTS):
            try:
                return self._write(
                    lambda c, done: self._create(c, name, values, idempotency_key, audit, done)
                )
            except IntegrityError:
                continue  # another writer took this number (or this key) first: look again
        raise Conflict(f"could not register a version of {name!r}: too many concurrent writers")

    def _create(
        self,
        c: sa.Connection,
        name: str,
        values: Mapping[str, Any],
        key: str | None,
        audit: AuditWrite | None,
        pending: list[AuditRecord],
    ) -> tuple[ModelVersion, bool]:
        if key is not None:
            found = c.execute(
                sa.select(ModelVersionRow).where(ModelVersionRow.idempotency_key == key)
            ).first()
            if found is not None:
                earlier = version_from_row(found)
                if (earlier.name, earlier.bundle_sha256) != (name, values["bundle_sha256"]):
                    raise Conflict(
                        f"idempotency key {key!r} already registered {earlier.ref} with bundle "
                        f"{earlier.bundle_sha256[:12]}; use a new key for a different bundle"
                    )
                return earlier, False
        c.execute(
            upsert_insert(self.engine, RegisteredModelRow).on_conflict_do_nothing(
                index_elements=["name"]
            ),
            {"name": name, "description": None, "created_ms": values["created_ms"]},
        )
        latest = c.execute(
            sa.select(sa.func.max(ModelVersionRow.version)).where(ModelVersionRow.name == name)
        ).scalar()
        row = {**values, "version": (latest or 0) + 1, "idempotency_key": key}
        c.execute(sa.insert(ModelVersionRow), row)
        self._append_audit(c, audit, pending)
        found = c.execute(
            sa.select(ModelVersionRow).where(
                ModelVersionRow.name == name, ModelVersionRow.version == row["version"]
            )
        ).one()
        return version_from_row(found), True

    def get_version(self, name: str, version: int) -> ModelVersion:
        """Return one version.

        Raises:
            NotFound: No such model or version.
        """
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(ModelVersionRow).where(
                    ModelVersionRow.name == name, ModelVersionRow.version == version
                )
            ).first()
        if row is None:
            raise NotFound(
                f"model {name!r} has no version {version}; `shipyard models show {name}` lists them"
            )
        return version_from_row(row)

    def latest_version(self, name: str) -> ModelVersion:
        """Return the newest version of ``name``.

        Raises:
            NotFound: No such model.
        """
        versions = self.list_versions(name)
        if not versions:
            raise NotFound(f"no model named {name!r}; `shipyard models list` shows them")
        return versions[-1]

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(ModelVersionRow)
                .where(ModelVersionRow.name == name)
                .order_by(ModelVersionRow.version)
            ).all()
        return [version_from_row(r) for r in rows]

    def list_models(self) -> list[dict[str, Any]]:
        """Every model with its number of versions, latest version and aliases."""
        with self.engine.connect() as c:
            counts = c.execute(
                sa.select(
                    ModelVersionRow.name, sa.func.count(), sa.func.max(ModelVersionRow.version)
                ).group_by(ModelVersionRow.name)
            ).all()
            aliases = c.execute(
                sa.select(ModelAliasRow.name, ModelAliasRow.alias, ModelAliasRow.version)
            ).all()
        by_name: dict[str, dict[str, int]] = {}
        for row in aliases:
            by_name.setdefault(row.name, {})[row.alias] = row.version
        return [
            {
                "name": n,
                "versions": int(count),
                "latest": int(latest),
                "aliases": by_name.get(n, {}),
            }
            for n, count, latest in sorted(counts)
        ]

    # -- aliases ----------------------------------------------------------------------------

    def resolve_alias(self, name: str, alias: str) -> int | None:
        """The version ``alias`` points to, or None."""
        with self.engine.connect() as c:
            return c.execute(
                sa.select(ModelAliasRow.version).where(
                    ModelAliasRow.name == name, ModelAliasRow.alias == alias
                )
            ).scalar()

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of ``name`` and its version."""
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(ModelAliasRow.alias, ModelAliasRow.version).where(
                    ModelAliasRow.name == name
                )
            )
            return {r.alias: r.version for r in rows}

    def move_alias(
        self,
        name: str,
        alias: str,
        *,
        to_version: int,
        expected_from: int | None,
        action: str,
        actor: str,
        reason: str | None,
        gate: dict[str, Any] | None,
        at_ms: int,
        idempotency_key: str | None = None,
        audit: AuditWrite | None = None,
    ) -> AliasEvent:
        """Point ``alias`` at ``to_version`` if it still points at ``expected_from``.

        The check, the move, the event row and ``audit`` (when given) are one transaction; on
        PostgreSQL a concurrent mover that read the same holder finds the row changed (its
        update matches nothing) or the row inserted (a unique violation), and gets
        ``Conflict``. A repeated
        ``idempotency_key`` returns the event it recorded the first time and moves nothing.

        Raises:
            Conflict: The alias moved since the caller looked (compare-and-set failed), or the
                key was used for another move.
            NotFound: ``to_version`` does not exist.
        """
        self.get_version(name, to_version)

        def _move(c: sa.Connection, pending: list[AuditRecord]) -> AliasEvent:
            earlier = self._replay(c, idempotency_key, name, alias, to_version)
            if earlier is not None:
                return earlier
            current = c.execute(
                sa.select(ModelAliasRow.version).where(
                    ModelAliasRow.name == name, ModelAliasRow.alias == alias
                )
            ).scalar()
            if current != expected_from:
                raise _moved(name, alias, current, expected_from)
            if current is None:
                c.execute(
                    sa.insert(ModelAliasRow),
                    {"name": name, "alias": alias, "version": to_version, "updated_ms": at_ms},
                )
            else:
                updated = c.execute(
                    sa.update(ModelAliasRow)
                    .where(
                        ModelAliasRow.name == name,
                        ModelAliasRow.alias == alias,
                        ModelAliasRow.version == current,
                    )
                    .values(version=to_version, updated_ms=at_ms)
                )
                if updated.rowcount != 1:  # another transaction moved it after our read
                    raise _moved(name, alias, None, expected_from)
            self._append_audit(c, audit, pending)
            return self._event(
                c,
                name,
                alias,
                action,
                current,
                to_version,
                actor,
                reason,
                gate,
                at_ms,
                idempotency_key,
            )

        try:
            return self._write(_move)
        except IntegrityError as e:
            # A concurrent first move inserted the alias row, or recorded this key, first.
            if idempotency_key is not None:
                earlier = self.event_by_key(idempotency_key)
                if earlier is not None:
                    return _same_move(earlier, idempotency_key, name, alias, to_version)
            raise _moved(name, alias, self.resolve_alias(name, alias), expected_from) from e

    def record_refusal(
        self,
        name: str,
        alias: str,
        *,
        candidate: int,
        current: int | None,
        actor: str,
        reason: str | None,
        gate: dict[str, Any],
        at_ms: int,
        idempotency_key: str | None = None,
        audit: AuditWrite | None = None,
    ) -> AliasEvent:
        """Record a promotion the gate refused (the alias does not move), with ``audit``.

        Raises:
            Conflict: ``idempotency_key`` was used for another move.
        """

        def _refuse(c: sa.Connection, pending: list[AuditRecord]) -> AliasEvent:
            earlier = self._replay(c, idempotency_key, name, alias, candidate)
            if earlier is not None:
                return earlier
            self._append_audit(c, audit, pending)
            return self._event(
                c,
                name,
                alias,
                "refused",
                current,
                candidate,
                actor,
                reason,
                gate,
                at_ms,
                idempotency_key,
            )

        try:
            return self._write(_refuse)
        except IntegrityError:
            earlier = None if idempotency_key is None else self.event_by_key(idempotency_key)
            if earlier is None or idempotency_key is None:
                raise
            return _same_move(earlier, idempotency_key, name, alias, candidate)

    def event_by_key(self, idempotency_key: str) -> AliasEvent | None:
        """The alias event recorded under ``idempotency_key``, or None."""
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(AliasEventRow).where(AliasEventRow.idempotency_key == idempotency_key)
            ).first()
        return None if row is None else alias_event_from_row(row)

    def _replay(
        self, c: sa.Connection, key: str | None, name: str, alias: str, to_version: int
    ) -> AliasEvent | None:
        if key is None:
            return None
        row = c.execute(
            sa.select(AliasEventRow).where(AliasEventRow.idempotency_key == key)
        ).first()
        return (
            None
            if row is None
            else _same_move(alias_event_from_row(row), key, name, alias, to_version)
        )

    def previous_holder(self, name: str, alias: str) -> int | None:
        """The version a rollback of ``alias`` returns to, or None when there is none.

        Moves are replayed as a stack: promote, force and set push the new holder, a rollback
        pops the current one, refusals change nothing. So rolling back twice undoes the last
        two promotions, and a rollback is never itself "rolled back" into the bad version.
        """
        holders: list[int] = []
        for event in self.history(name, alias):
            if event.action == "refused" or event.to_version is None:
                continue
            if event.action == "rollback":
                while holders and holders[-1] != event.to_version:
                    holders.pop()
                if not holders:
                    holders.append(event.to_version)
            else:
                holders.append(event.to_version)
        return holders[-2] if len(holders) >= 2 else None

    def _event(
        self,
        c: sa.Connection,
        name: str,
        alias: str,
        action: str,
        from_version: int | None,
        to_version: int | None,
        actor: str,
        reason: str | None,
        gate: dict[str, Any] | None,
        at_ms: int,
        idempotency_key: str | None = None,
    ) -> AliasEvent:
        values = {
            "name": name,
            "alias": alias,
            "action": action,
            "from_version": from_version,
            "to_version": to_version,
            "actor": actor,
            "reason": reason,
            "gate": gate,
            "at_ms": at_ms,
            "idempotency_key": idempotency_key,
        }
        event_id = c.execute(
            sa.insert(AliasEventRow).returning(AliasEventRow.event_id), values
        ).scalar_one()
        return AliasEvent(event_id=int(event_id), **values)  # type: ignore[arg-type]

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Alias events of ``name`` (of one alias if given), oldest first."""
        query = sa.select(AliasEventRow).where(AliasEventRow.name == name)
        if alias is not None:
            query = query.where(AliasEventRow.alias == alias)
        with self.engine.connect() as c:
            rows = c.execute(query.order_by(AliasEventRow.event_id)).all()
        return [alias_event_from_row(r) for r in rows]


def _moved(name: str, alias: str, current: int | None, expected: int | None) -> Conflict:
    now = "elsewhere" if current is None else f"to version {current}"
    return Conflict(
        f"{name}@{alias} moved {now} meanwhile (expected {expected}); look again and retry"
    )


def _same_move(earlier: AliasEvent, key: str, name: str, alias: str, to_version: int) -> AliasEvent:
    if (earlier.name, earlier.alias, earlier.to_version) != (name, alias, to_version):
        raise Conflict(
            f"idempotency key {key!r} was already used to move {earlier.name}@{earlier.alias} "
            f"to version {earlier.to_version}; use a new key for a different move"
        )
    return earlier
