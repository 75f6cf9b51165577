"""What the registry's store hands back: plain, immutable versions and alias events.

Apart from ``store/registry.py`` (the transactions) so readers of a version need no SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from shipyard.store.registry_models import ModelVersionRow


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
    idempotency_key: str | None = None


def alias_event_from_row(r: Any) -> AliasEvent:
    """An ``alias_events`` row as the dataclass callers get."""
    return AliasEvent(
        event_id=int(r.event_id),
        name=r.name,
        alias=r.alias,
        action=r.action,
        from_version=r.from_version,
        to_version=r.to_version,
        actor=r.actor,
        reason=r.reason,
        gate=r.gate,
        at_ms=int(r.at_ms),
        idempotency_key=r.idempotency_key,
    )


def version_from_row(row: Any) -> ModelVersion:
    """A ``model_versions`` row (or a one-element row holding it) as the dataclass."""
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
