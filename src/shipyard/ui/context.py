"""What every page reads: the workspace, the security service, sessions and templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shipyard.security.ratelimit import FailureLimiter

if TYPE_CHECKING:
    from jinja2 import Environment

    from shipyard.registry.registry import ModelRegistry
    from shipyard.security.accounts import Accounts
    from shipyard.track.workspace import Workspace
    from shipyard.ui.sessions import Sessions


@dataclass
class UiContext:
    """One UI process's state, on ``app.state.ui``.

    Attributes:
        workspace: The workspace the pages read (the same stores the CLI reads).
        accounts: The security service (sign-in, audit entries of UI changes).
        sessions: Browser sessions.
        templates: The Jinja2 environment (autoescape on).
        project: The project whose role bindings apply.
        limiter: Failed sign-ins per client address.
    """

    workspace: Workspace
    accounts: Accounts
    sessions: Sessions
    templates: Environment
    project: str
    limiter: FailureLimiter = field(default_factory=FailureLimiter)
    _registry: ModelRegistry | None = None

    def registry(self) -> ModelRegistry:
        """The model registry, built on first use (model pages only)."""
        if self._registry is None:
            from shipyard.registry.registry import ModelRegistry

            self._registry = ModelRegistry.for_workspace(self.workspace)
        return self._registry
