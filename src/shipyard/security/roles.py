"""The four roles and what each adds to the one below it.

Roles are per project and ordered: every role can do what the one before it can, and more.

- ``viewer``: read runs, models and reports; call a served model.
- ``data-scientist``: + log runs, register models, read pseudonymized data.
- ``ml-engineer``: + promote and roll back models, deploy, change traffic.
- ``admin``: + users, roles, tokens, keys, erasure, raw personal data, the audit log.

What each role may do, action by action, is the table in ``shipyard.security.permissions``.
"""

from __future__ import annotations

from enum import StrEnum

from shipyard.core.errors import InvalidArgument


class Role(StrEnum):
    """A role a user holds in a project, weakest first."""

    VIEWER = "viewer"
    DATA_SCIENTIST = "data-scientist"
    ML_ENGINEER = "ml-engineer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for viewer up to 3 for admin."""
        return list(Role).index(self)


def parse_role(text: str) -> Role:
    """Return the role called ``text``.

    Raises:
        InvalidArgument: ``text`` names no role.
    """
    try:
        return Role(text.strip().lower())
    except ValueError as e:
        names = ", ".join(r.value for r in Role)
        raise InvalidArgument(f"unknown role {text!r}; roles are {names}") from e


def at_least(role: Role) -> frozenset[Role]:
    """``role`` and every stronger role."""
    return frozenset(r for r in Role if r.rank >= role.rank)
