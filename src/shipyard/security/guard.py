"""The one guard services call before a change: check the actor, audit a denial, raise.

``security.accounts`` showed the pattern (the service checks the acting identity itself, so no
adapter can forget to); this module is that pattern for every other service: the registry,
retention, key rotation. The change itself is then written together with its audit entry
(``audit.draft`` handed to the store), so a change without its entry cannot exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import PermissionDenied
from shipyard.security import audit
from shipyard.security.permissions import check

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shipyard.security.identities import Identity
    from shipyard.security.permissions import Action
    from shipyard.store.security import SecurityStore


def guard(
    store: SecurityStore,
    actor: Identity,
    action: Action,
    obj: str,
    *,
    detail: Mapping[str, Any] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Let ``actor`` do ``action`` on ``obj``, or audit the denial and raise.

    Raises:
        PermissionDenied: The actor's role (or lack of one) does not allow ``action``; the
            denial is in the audit log (outcome ``denied``) before this is raised.
    """
    decision = check(actor, action)
    if decision.allowed:
        return
    audit.record(store, actor, action, obj, outcome="denied", detail=detail, clock=clock)
    raise PermissionDenied(
        f"permission denied: {decision.reason}; an admin can grant it with `shipyard roles grant`"
    )
