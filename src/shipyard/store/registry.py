"""The model registry's metadata: gap-free versions, compare-and-set aliases, their history.

Knows nothing of ML: a version is a row pointing at a bundle blob by sha256. The two rules that
keep a registry trustworthy live here, in transactions: version numbers per model are unique and
gap-free even when many processes register at once, and an alias moves only from the holder the
caller saw (so two concurrent promotions cannot both win), with its event row in the same
transaction as the move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shipyard.core.errors import Conflict, NotFound
from shipyard.store.engine import run_write, upsert_insert
from shipyard.store.registry_models import (
    AliasEventRow,
    ModelAliasRow,
    ModelVersionRow,
    RegisteredModelRow,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

_REGISTER_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered, immutable model version."""

    name: str
    version: int
    bundle_sha256: str
    size_bytes: int
    run_id: str | None
    task: str
    primary_metric: str
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    description: str | None
    created_by: str
    created_ms: int

    @property
    def ref(self) -> str:
        """``name:version``, the reference that never moves."""
        return f"{self.name}:{self.version}"


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One alias move, or a promotion the gate refused."""

    event_id: int
    name: str
    alias: str
    action: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str | None
    gate: dict[str, Any] | None
    at_ms: int


class RegistryStore:
    """Registry rows over a SQLAlchemy engine (the workspace's metadata store)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # -- versions ---------------------------------------------------------------------------

    def create_version(
        self, values: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> tuple[ModelVersion, bool]:
        """Insert the next version of ``values["name"]``; return it and whether it is new.

        ``values`` holds every column but ``version`` and ``idempotency_key``. A key seen before
        returns the version it created (``False``), whatever ``values`` says now.
        """
        name = values["name"]
        for _ in range(_REGISTER_ATTEMPTS):
            try:
                return run_write(
                    self.engine, lambda c: self._create(c, name, values, idempotency_key)
                )
            except IntegrityError:
                continue  # another writer took this number (or this key) first: look again
        raise Conflict(f"could not register a version of {name!r}: too many concurrent writers")

    def _create(
        self, c: sa.Connection, name: str, values: Mapping[str, Any], key: str | None
    ) -> tuple[ModelVersion, bool]:
        if key is not None:
            found = c.execute(
                sa.select(ModelVersionRow).where(ModelVersionRow.idempotency_key == key)
            ).first()
            if found is not None:
                return _version(found), False
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
        found = c.execute(
            sa.select(ModelVersionRow).where(
                ModelVersionRow.name == name, ModelVersionRow.version == row["version"]
            )
        ).one()
        return _version(found), True

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
        return _version(row)

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
        return [_version(r) for r in rows]

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
    ) -> AliasEvent:
        """Point ``alias`` at ``to_version`` if it still points at ``expected_from``.

        Raises:
            Conflict: The alias moved since the caller looked (compare-and-set failed).
            NotFound: ``to_version`` does not exist.
        """
        self.get_version(name, to_version)

        def _move(c: sa.Connection) -> AliasEvent:
            current = c.execute(
                sa.select(ModelAliasRow.version).where(
                    ModelAliasRow.name == name, ModelAliasRow.alias == alias
                )
            ).scalar()
            if current != expected_from:
                raise Conflict(
                    f"{name}@{alias} moved to version {current} meanwhile "
                    f"(expected {expected_from}); "
                    "look again and retry"
                )
            if current is None:
                c.execute(
                    sa.insert(ModelAliasRow),
                    {"name": name, "alias": alias, "version": to_version, "updated_ms": at_ms},
                )
            else:
                c.execute(
                    sa.update(ModelAliasRow)
                    .where(
                        ModelAliasRow.name == name,
                        ModelAliasRow.alias == alias,
                        ModelAliasRow.version == current,
                    )
                    .values(version=to_version, updated_ms=at_ms)
                )
            return self._event(
                c, name, alias, action, current, to_version, actor, reason, gate, at_ms
            )

        return run_write(self.engine, _move)

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
    ) -> AliasEvent:
        """Record a promotion the gate refused (the alias does not move)."""
        return run_write(
            self.engine,
            lambda c: self._event(
                c, name, alias, "refused", current, candidate, actor, reason, gate, at_ms
            ),
        )

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
        return [
            AliasEvent(
                r.event_id,
                r.name,
                r.alias,
                r.action,
                r.from_version,
                r.to_version,
                r.actor,
                r.reason,
                r.gate,
                r.at_ms,
            )
            for r in rows
        ]


def _version(row: Any) -> ModelVersion:
    r = (
        row[0]
        if isinstance(row, sa.Row) and len(row) == 1 and isinstance(row[0], ModelVersionRow)
        else row
    )
    return ModelVersion(
        name=r.name,
        version=int(r.version),
        bundle_sha256=r.bundle_sha256,
        size_bytes=int(r.size_bytes),
        run_id=r.run_id,
        task=r.task,
        primary_metric=r.primary_metric,
        metrics=dict(r.metrics),
        lineage=dict(r.lineage),
        description=r.description,
        created_by=r.created_by,
        created_ms=int(r.created_ms),
    )
