"""Users, service accounts, role bindings and tokens: the changes, each checked and audited.

Every change takes the acting ``Identity``, passes the one permission check
(``permissions.require``) and is written together with its audit entry in one transaction; a
denied attempt is audited too. ``authenticate`` turns a token into an ``Identity`` for a
project: unknown, malformed, expired and revoked tokens and disabled users all fail the same
way for the caller, with the precise reason kept for the server's log.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import AlreadyExists, InvalidArgument, PermissionDenied
from shipyard.security import audit
from shipyard.security.identities import (
    AuthenticationFailed,
    Identity,
    Kind,
    check_project,
    check_user_name,
)
from shipyard.security.permissions import Action, check
from shipyard.security.roles import Role, parse_role
from shipyard.security.tokens import NewToken, matches, new_token, token_id_of

if TYPE_CHECKING:
    from shipyard.store.security import RoleBinding, SecurityStore, TokenRecord, UserRecord

MAX_TOKEN_DAYS = 3650


class Accounts:
    """The security service over one workspace's store."""

    def __init__(self, store: SecurityStore, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.clock = clock

    # -- users ------------------------------------------------------------------------------

    def create_user(self, actor: Identity, name: str, *, service: bool = False) -> UserRecord:
        """Create a user (or a service account with ``service``).

        Raises:
            PermissionDenied: ``actor`` may not manage users.
            InvalidArgument: A malformed name.
            AlreadyExists: The name is taken.
        """
        check_user_name(name)
        self._guard(actor, Action.USERS_MANAGE, f"user:{name}")
        kind = Kind.SERVICE if service else Kind.USER
        entry = audit.draft(
            actor,
            Action.USERS_MANAGE,
            f"user:{name}",
            detail={"op": "create", "kind": kind},
            clock=self.clock,
        )
        values = {
            "name": name,
            "kind": str(kind),
            "created_ms": self.clock.now_ms(),
            "created_by": actor.name,
        }
        return self.store.create_user(values, entry)

    def disable_user(self, actor: Identity, name: str) -> None:
        """Disable a user: its tokens stop authenticating (within the server's cache time).

        Raises:
            PermissionDenied: ``actor`` may not manage users.
            NotFound: No such user.
        """
        self._guard(actor, Action.USERS_MANAGE, f"user:{name}")
        entry = audit.draft(
            actor, Action.USERS_MANAGE, f"user:{name}", detail={"op": "disable"}, clock=self.clock
        )
        self.store.disable_user(name, self.clock.now_ms(), entry)

    def users(self, actor: Identity) -> list[UserRecord]:
        """Every user and service account.

        Raises:
            PermissionDenied: ``actor`` may not manage users.
        """
        self._guard(actor, Action.USERS_MANAGE, "users", audit_denial=False)
        return self.store.list_users()

    # -- roles ------------------------------------------------------------------------------

    def grant(self, actor: Identity, user: str, role: Role | str, project: str) -> None:
        """Give ``user`` ``role`` in ``project`` (replacing the role it held there).

        Raises:
            PermissionDenied: ``actor`` may not manage roles.
            InvalidArgument: Unknown role or malformed project.
            NotFound: No such user.
        """
        role = parse_role(str(role))
        check_project(project)
        self._guard(actor, Action.ROLES_MANAGE, f"role:{user}@{project}")
        before = self.store.role_of(user, project)
        entry = audit.draft(
            actor,
            Action.ROLES_MANAGE,
            f"role:{user}@{project}",
            detail={"op": "grant", "role": role, "before": before},
            clock=self.clock,
        )
        values = {
            "user_name": user,
            "project": project,
            "role": str(role),
            "granted_ms": self.clock.now_ms(),
            "granted_by": actor.name,
        }
        self.store.set_role(values, entry)

    def revoke_role(self, actor: Identity, user: str, project: str) -> None:
        """Take ``user``'s role in ``project`` away.

        Raises:
            PermissionDenied: ``actor`` may not manage roles.
            NotFound: The user holds no role there.
        """
        self._guard(actor, Action.ROLES_MANAGE, f"role:{user}@{project}")
        before = self.store.role_of(user, project)
        entry = audit.draft(
            actor,
            Action.ROLES_MANAGE,
            f"role:{user}@{project}",
            detail={"op": "revoke", "before": before},
            clock=self.clock,
        )
        self.store.remove_role(user, project, entry)

    def roles(self, actor: Identity, project: str | None = None) -> list[RoleBinding]:
        """Role bindings, of one project if given.

        Raises:
            PermissionDenied: ``actor`` may not manage roles.
        """
        self._guard(actor, Action.ROLES_MANAGE, "roles", audit_denial=False)
        return self.store.list_roles(project)

    # -- tokens -----------------------------------------------------------------------------

    def create_token(
        self,
        actor: Identity,
        user: str,
        *,
        expires_in_days: float | None = 90,
        description: str | None = None,
    ) -> NewToken:
        """Make a token for ``user``; its text is in the result and nowhere else, ever.

        Args:
            actor: Who asks.
            user: The user or service account the token acts as.
            expires_in_days: Lifetime; None for a token that never expires.
            description: What it is for (shown in listings).

        Raises:
            PermissionDenied: ``actor`` may not manage tokens.
            InvalidArgument: A lifetime outside (0, 3650] days or a description over 200
                characters.
            NotFound: No such user.
        """
        if expires_in_days is not None and not 0 < expires_in_days <= MAX_TOKEN_DAYS:
            raise InvalidArgument(f"token lifetime must be within (0, {MAX_TOKEN_DAYS}] days")
        if description is not None and len(description) > 200:
            raise InvalidArgument("token description is over 200 characters")
        self._guard(actor, Action.TOKENS_MANAGE, f"user:{user}")
        token = new_token()
        now = self.clock.now_ms()
        expires = None if expires_in_days is None else now + round(expires_in_days * 86_400_000)
        entry = audit.draft(
            actor,
            Action.TOKENS_MANAGE,
            f"token:{token.token_id}",
            detail={"op": "create", "user": user, "expires_ms": expires},
            clock=self.clock,
        )
        values = {
            "token_id": token.token_id,
            "user_name": user,
            "token_sha256": token.sha256,
            "description": description,
            "created_ms": now,
            "created_by": actor.name,
            "expires_ms": expires,
        }
        self.store.create_token(values, entry)
        return token

    def revoke_token(self, actor: Identity, token_id: str) -> None:
        """Revoke a token by its public id (the servers stop accepting it within seconds).

        Raises:
            PermissionDenied: ``actor`` may not manage tokens.
            NotFound: No such token.
        """
        self._guard(actor, Action.TOKENS_MANAGE, f"token:{token_id}")
        entry = audit.draft(
            actor,
            Action.TOKENS_MANAGE,
            f"token:{token_id}",
            detail={"op": "revoke"},
            clock=self.clock,
        )
        self.store.revoke_token(token_id, self.clock.now_ms(), entry)

    def tokens(self, actor: Identity, user: str | None = None) -> list[TokenRecord]:
        """Tokens (ids, owners, dates; never secrets), of one user if given.

        Raises:
            PermissionDenied: ``actor`` may not manage tokens.
        """
        self._guard(actor, Action.TOKENS_MANAGE, "tokens", audit_denial=False)
        return self.store.list_tokens(user)

    def ensure_user(self, actor: Identity, name: str, *, service: bool = False) -> None:
        """Create ``name`` unless it exists (for the bootstrap ``tokens create --user``)."""
        if self.store.get_user(name) is None:
            with contextlib.suppress(AlreadyExists):  # created concurrently: fine
                self.create_user(actor, name, service=service)

    # -- authentication ---------------------------------------------------------------------

    def authenticate(self, text: str, *, project: str, source: str) -> Identity:
        """The identity a token stands for in ``project``.

        Raises:
            AuthenticationFailed: Malformed, unknown, revoked or expired token, or a disabled
                user (``reason`` says which; the token itself is never in it).
        """
        try:
            token_id = token_id_of(text)
        except InvalidArgument:
            raise AuthenticationFailed("malformed token") from None
        found = self.store.get_token(token_id)
        if found is None or not matches(text, found[0].token_sha256):
            raise AuthenticationFailed(f"unknown token {token_id}")
        token, user = found
        now = self.clock.now_ms()
        if token.revoked_ms is not None:
            raise AuthenticationFailed(f"token {token_id} was revoked")
        if token.expires_ms is not None and token.expires_ms <= now:
            raise AuthenticationFailed(f"token {token_id} has expired")
        if user.disabled_ms is not None:
            raise AuthenticationFailed(f"user {user.name} is disabled")
        role = self.store.role_of(user.name, project)
        return Identity(
            name=user.name,
            kind=Kind(user.kind),
            project=project,
            role=None if role is None else Role(role),
            token_id=token_id,
            source=source,
        )

    def _guard(
        self, actor: Identity, action: Action, obj: str, *, audit_denial: bool = True
    ) -> None:
        decision = check(actor, action)
        if decision.allowed:
            return
        if audit_denial:
            audit.record(self.store, actor, action, obj, outcome="denied", clock=self.clock)
        raise PermissionDenied(
            f"permission denied: {decision.reason}; an admin can grant it with "
            "`shipyard roles grant`"
        )
