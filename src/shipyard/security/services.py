"""Service accounts: the named identities that unattended work acts as.

A monitor's retrain and a server's canary verdict move aliases with nobody at the keyboard.
They act as service accounts (``svc-retrain``, ``svc-canary``) so that the alias history and
the audit log name them, and so that what they may do is decided like anyone else's: by the
role the account holds in the project (``shipyard users create svc-retrain --service`` then
``shipyard roles grant svc-retrain ml-engineer``). An account holding no role may do nothing.

One exception keeps the single-user embedded workspace working without setup: when the work
was started by the local operator of an embedded workspace (no token; see
``identities.local_identity``), an account without a role binding acts with the operator's
role, as the operator could have done the same by hand. With a token, only bindings count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.security.identities import Identity, Kind
from shipyard.security.roles import Role

if TYPE_CHECKING:
    from shipyard.store.security import SecurityStore

#: Acts for the retrains a monitor's alert rules ask for (``action: retrain``).
RETRAIN = "svc-retrain"
#: Acts for a served canary's verdict: promotion of the challenger, or its rollback.
CANARY = "svc-canary"

SERVICE_ACCOUNTS = (RETRAIN, CANARY)


def service_identity(
    store: SecurityStore,
    name: str,
    project: str,
    *,
    started_by: Identity | None = None,
    source: str | None = None,
) -> Identity:
    """The identity service account ``name`` acts as in ``project``, with its role now.

    Args:
        store: Where the role bindings are.
        name: The account (``RETRAIN``, ``CANARY``).
        project: The project whose binding decides the role.
        started_by: Who started the work (the CLI's identity, the server's operator); only a
            local operator lends its role, and only to an account without a binding.
        source: Where from, for the audit log (default ``service:<name>``).
    """
    bound = store.role_of(name, project)
    role: Role | None = None if bound is None else Role(bound)
    if role is None and started_by is not None and started_by.kind == Kind.LOCAL:
        role = started_by.role
    via = "" if started_by is None else f" for {started_by.name}"
    return Identity(
        name=name,
        kind=Kind.SERVICE,
        project=project,
        role=role,
        source=source or f"service:{name}{via}",
    )
