"""Who is acting: users, service accounts, and the local operator of an embedded workspace.

An ``Identity`` is what every permission check and audit entry receives. It is built in one of
three ways: from an API token (HTTP server, or the CLI with ``SHIPYARD_TOKEN`` set), or as the
local OS user of an embedded workspace, who holds ``admin`` there (the person who owns the
files owns the data; see docs/security.md).
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from shipyard.core.errors import InvalidArgument, PermissionDenied

if TYPE_CHECKING:
    from shipyard.security.roles import Role

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


class Kind(StrEnum):
    """What an identity is."""

    USER = "user"
    SERVICE = "service"
    LOCAL = "local"


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller and the role it holds in the project it acts on.

    Attributes:
        name: The user or service account (or OS user, for ``local``).
        kind: user, service or local.
        project: The project the role applies to.
        role: The role in ``project``; None when the caller holds none there.
        token_id: The public id of the token used, if any (never the token).
        source: Where the call came from (``cli:host``, ``http:10.0.0.5``), for the audit log.
    """

    name: str
    kind: Kind
    project: str
    role: Role | None
    token_id: str | None = None
    source: str = "unknown"


def check_user_name(name: str) -> str:
    """Return ``name`` if it is a valid user or service-account name.

    Raises:
        InvalidArgument: Empty, too long, or with characters other than letters, digits and
            ``_ . @ -`` (so names are safe in logs, tables and file names).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"invalid user name {name!r}: use 1-100 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_project(project: str) -> str:
    """Return ``project`` if it is a valid project name (same rules as user names).

    Raises:
        InvalidArgument: The name is malformed.
    """
    if not isinstance(project, str) or not _NAME.fullmatch(project):
        raise InvalidArgument(
            f"invalid project name {project!r}: use 1-100 letters, digits, '_', '.', '@' or '-'"
        )
    return project


class AuthenticationFailed(PermissionDenied):
    """A token was missing, malformed, unknown, expired or revoked (HTTP 401).

    Attributes:
        reason: Why, for the server's log (never contains the token).
    """

    code = "authentication_failed"

    def __init__(self, reason: str) -> None:
        super().__init__(f"authentication failed: {reason}")
        self.reason = reason


def local_user() -> str:
    """The operating-system user running this process."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid-{os.getuid()}"


def local_identity(project: str, source: str = "cli:local") -> Identity:
    """The OS user acting on an embedded workspace it owns: ``admin`` there.

    Whoever can write the workspace's files can change anything in it anyway; the role only
    makes that explicit, and the audit log still names the OS user.
    """
    from shipyard.security.roles import Role

    return Identity(
        name=local_user(), kind=Kind.LOCAL, project=project, role=Role.ADMIN, source=source
    )
