"""What every page reads: the workspace, the security service, sessions and templates."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shipyard.security.ratelimit import FailureLimiter

_PRICING_TTL_S = 60.0

if TYPE_CHECKING:
    from jinja2 import Environment

    from shipyard.cost.catalog import ActiveInstance
    from shipyard.registry.registry import ModelRegistry
    from shipyard.registry.reviews import ReviewService
    from shipyard.security.accounts import Accounts
    from shipyard.track.comments import CommentService
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
    _pricing: tuple[ActiveInstance, float] | None = None
    _reviews: ReviewService | None = None
    _comments: CommentService | None = None

    def pricing(self) -> ActiveInstance:
        """The workspace's active instance and its price, re-read at most once a minute.

        Parsing the price catalog costs more than the rest of a run page; prices change
        rarely, and a minute's delay shows nowhere but in this page's cost line.
        """
        now = time.monotonic()
        if self._pricing is None or now - self._pricing[1] > _PRICING_TTL_S:
            from shipyard.cost.catalog import active_instance

            self._pricing = (active_instance(self.workspace.settings), now)
        return self._pricing[0]

    def registry(self) -> ModelRegistry:
        """The model registry, built on first use (model pages only)."""
        if self._registry is None:
            from shipyard.registry.registry import ModelRegistry

            self._registry = ModelRegistry.for_workspace(self.workspace)
        return self._registry

    def reviews(self) -> ReviewService:
        """Promotion requests over the registry (review pages and the request form only)."""
        if self._reviews is None:
            from shipyard.registry.reviews import ReviewService

            self._reviews = ReviewService(self.registry())
        return self._reviews

    def comments(self) -> CommentService:
        """Comments, with @mentions delivered through the project's notifiers."""
        if self._comments is None:
            from shipyard.monitor.mentions import workspace_comments

            self._comments = workspace_comments(self.workspace)
        return self._comments
