"""Who tests act as when the identity is not what they test."""

from __future__ import annotations

from shipyard.security.identities import Identity, Kind, local_identity
from shipyard.security.roles import Role

#: The local operator of an embedded workspace: admin, as on a laptop without a token.
OPERATOR = local_identity("project", source="test")


def person(name: str, role: Role = Role.ADMIN, project: str = "project") -> Identity:
    """A token user called ``name`` holding ``role`` (admin unless told) in ``project``."""
    return Identity(name=name, kind=Kind.USER, project=project, role=role, source="test")
