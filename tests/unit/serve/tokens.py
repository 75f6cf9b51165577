"""Tokens for tests that call the model server: a real security store on SQLite, real tokens."""

from __future__ import annotations

from pathlib import Path

from shipyard.security.accounts import Accounts
from shipyard.security.audit_anchor import AnchorFile
from shipyard.security.audit_chain import AuditChain, AuditKeySource
from shipyard.security.identities import Identity, Kind
from shipyard.security.roles import Role
from shipyard.serve.auth import ServerAuth
from shipyard.store.security import SecurityStore
from shipyard.store.sql import SqlStore

PROJECT = "project"
BOOTSTRAP = Identity(name="test-admin", kind=Kind.LOCAL, project=PROJECT, role=Role.ADMIN)


class ServerTokens:
    """A token store for one test server: ``headers(role)`` makes a user holding ``role``."""

    def __init__(self, folder: Path, *, cache_ttl_s: float = 5.0) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.sql = SqlStore(f"sqlite:///{folder / 'security.db'}")
        keys = AuditKeySource(default_file=folder / "audit.key")  # made on first use
        chain = AuditChain(keys, AnchorFile(folder / "audit-anchor.json"))
        self.store = SecurityStore(self.sql, chain)
        self.accounts = Accounts(self.store)
        self.auth = ServerAuth(self.accounts, project=PROJECT, cache_ttl_s=cache_ttl_s)

    def token(self, role: Role | None = Role.ADMIN, name: str | None = None) -> str:
        """A fresh token of a new user holding ``role`` (or no role) in the project."""
        name = name or f"user-{role or 'none'}-{len(self.store.list_users())}"
        self.accounts.create_user(BOOTSTRAP, name)
        if role is not None:
            self.accounts.grant(BOOTSTRAP, name, role, PROJECT)
        return self.accounts.create_token(BOOTSTRAP, name).text

    def headers(self, role: Role | None = Role.ADMIN) -> dict[str, str]:
        """``Authorization`` headers of a fresh user holding ``role``."""
        return {"authorization": f"Bearer {self.token(role)}"}
