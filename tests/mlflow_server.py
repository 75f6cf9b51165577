"""A real Shipyard tracking server (the MLflow API) on 127.0.0.1 for tests, with real tokens.

The workspace, its security store and the server are shared by a module's tests (starting
them is most of a test's time); each test makes the users and tokens it needs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipyard.security.accounts import Accounts
from shipyard.security.audit_chain import security_store
from shipyard.security.identities import Identity, Kind
from shipyard.security.roles import Role
from shipyard.serve.auth import ServerAuth
from shipyard.serve.mlflow.app import create_tracking_app
from shipyard.track.workspace import Workspace
from tests.servers import running

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PROJECT = "project"
_BOOTSTRAP = Identity(name="test-admin", kind=Kind.LOCAL, project=PROJECT, role=Role.ADMIN)


@dataclass
class TrackingServer:
    """A running tracking server: its URL, workspace and a way to make tokens."""

    url: str
    workspace: Workspace
    accounts: Accounts

    def token(self, role: Role | None = Role.ADMIN, name: str | None = None) -> str:
        """A fresh token of a new user holding ``role`` (or none) in the project."""
        name = name or f"user-{role or 'none'}-{len(self.accounts.store.list_users())}"
        self.accounts.create_user(_BOOTSTRAP, name)
        if role is not None:
            self.accounts.grant(_BOOTSTRAP, name, role, PROJECT)
        return self.accounts.create_token(_BOOTSTRAP, name).text


@contextlib.contextmanager
def tracking_server(folder: Path, store_url: str | None = None) -> Iterator[TrackingServer]:
    """Serve the MLflow API over a fresh workspace in ``folder`` until the block ends.

    The metadata store is SQLite in ``folder`` unless ``store_url`` names another.
    """
    options = {"store_url": store_url} if store_url else {}
    workspace = Workspace.open(folder, tracking={"capture_git": False}, **options)
    accounts = Accounts(security_store(workspace.settings, workspace.store))
    app = create_tracking_app(workspace, auth=ServerAuth(accounts, project=PROJECT))
    try:
        with running(app) as port:
            yield TrackingServer(f"http://127.0.0.1:{port}", workspace, accounts)
    finally:
        workspace.close()
