"""Registered models as names of their own, and aliases taken away: for the MLflow API.

Shipyard's registry creates a model with its first version and only ever moves aliases; the
MLflow client also creates an empty registered model, lists models, and deletes an alias
(issue 22). Each change here commits together with its audit entry, as in ``registry``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shipyard.core.errors import AlreadyExists, NotFound
from shipyard.store.engine import run_write
from shipyard.store.registry_models import (
    AliasEventRow,
    ModelAliasRow,
    ModelVersionRow,
    RegisteredModelRow,
)

if TYPE_CHECKING:
    from shipyard.store.security import AuditWrite, SecurityStore


def create_model(
    engine: sa.Engine,
    audit_log: SecurityStore,
    name: str,
    *,
    description: str | None,
    created_ms: int,
    audit: AuditWrite,
) -> None:
    """Create registered model ``name`` with no version yet.

    Raises:
        AlreadyExists: A model of that name exists.
    """
    row = {"name": name, "description": description, "created_ms": created_ms}

    def _create(c: sa.Connection) -> Any:
        c.execute(sa.insert(RegisteredModelRow), row)
        return audit_log.append_within(c, audit)

    try:
        entry = run_write(engine, _create)
    except IntegrityError as e:
        raise AlreadyExists(f"registered model {name!r} already exists") from e
    audit_log.anchor(entry)


def get_model(engine: sa.Engine, name: str) -> dict[str, Any]:
    """One registered model's row as a dict (name, description, created_ms).

    Raises:
        NotFound: No such model.
    """
    with engine.connect() as c:
        row = c.execute(
            sa.select(RegisteredModelRow).where(RegisteredModelRow.name == name)
        ).first()
    if row is None:
        raise NotFound(f"no registered model named {name!r}; `shipyard models list` shows them")
    return {"name": row.name, "description": row.description, "created_ms": row.created_ms}


def list_models(engine: sa.Engine) -> list[dict[str, Any]]:
    """Every registered model (with or without versions), by name."""
    with engine.connect() as c:
        rows = c.execute(sa.select(RegisteredModelRow).order_by(RegisteredModelRow.name)).all()
    return [
        {"name": r.name, "description": r.description, "created_ms": r.created_ms} for r in rows
    ]


def versions_of_run(engine: sa.Engine, run_id: str) -> list[tuple[str, int]]:
    """(model, version) of every version registered from ``run_id``."""
    with engine.connect() as c:
        rows = c.execute(
            sa.select(ModelVersionRow.name, ModelVersionRow.version)
            .where(ModelVersionRow.run_id == run_id)
            .order_by(ModelVersionRow.name, ModelVersionRow.version)
        ).all()
    return [(r.name, int(r.version)) for r in rows]


def remove_alias(
    engine: sa.Engine,
    audit_log: SecurityStore,
    name: str,
    alias: str,
    *,
    actor: str,
    at_ms: int,
    audit: AuditWrite,
) -> None:
    """Take ``alias`` off model ``name``, leaving an ``unset`` event and the audit entry.

    Raises:
        NotFound: The model has no such alias.
    """

    def _remove(c: sa.Connection) -> Any:
        current = c.execute(
            sa.select(ModelAliasRow.version).where(
                ModelAliasRow.name == name, ModelAliasRow.alias == alias
            )
        ).scalar()
        if current is None:
            raise NotFound(f"model {name!r} has no alias {alias!r}")
        c.execute(
            sa.delete(ModelAliasRow).where(ModelAliasRow.name == name, ModelAliasRow.alias == alias)
        )
        c.execute(
            sa.insert(AliasEventRow),
            {
                "name": name,
                "alias": alias,
                "action": "unset",
                "from_version": current,
                "to_version": None,
                "actor": actor,
                "reason": "alias deleted through the MLflow API",
                "gate": None,
                "at_ms": at_ms,
                "idempotency_key": None,
            },
        )
        return audit_log.append_within(c, audit)

    audit_log.anchor(run_write(engine, _remove))
