"""What the route modules need from their server, in one small typed object on app state.

``create_app`` builds one ``ServerContext`` and leaves it on ``app.state.shipyard``; each route
module (``shipyard.serve.routes``) reads it with ``context_of(request)``, so a route can be read
and tested alone with whatever runtime, auth and log a test gives it (issue 15).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shipyard.serve.lifecycle import Lifecycle

if TYPE_CHECKING:
    from starlette.requests import Request

    from shipyard.monitor.feedback import FeedbackStore
    from shipyard.registry.reviews import ReviewService
    from shipyard.serve.auth import ServerAuth
    from shipyard.serve.metrics import Metrics
    from shipyard.serve.prediction_log import PredictionLog
    from shipyard.serve.runtime import Runtime
    from shipyard.store.sql import SqlStore
    from shipyard.track.comments import CommentService


@dataclass(frozen=True)
class Teamwork:
    """What ``/reviews``, ``/comments`` and ``/activity`` use (``serve.routes.teamwork``).

    Attributes:
        reviews: Promotion requests of the served registry.
        comments: Comments, mentions delivered through the project's notifiers.
        store: The metadata store the activity feed reads.
    """

    reviews: ReviewService
    comments: CommentService
    store: SqlStore


@dataclass(frozen=True)
class ServerContext:
    """One server's moving parts, as the routes see them.

    Attributes:
        runtime: The loaded models, routers and alias watcher.
        auth: Token checks and the audit trail of changes made through the server.
        metrics: The Prometheus series of this server.
        max_body_bytes: Largest request body read (413 beyond).
        prediction_log: Where answers are logged; None when the server keeps no log.
        feedback: Where ground-truth labels go; None answers ``/feedback`` with 503.
        lifecycle: Whether the process is draining after SIGTERM (readiness off).
        teamwork: Reviews, comments and activity; None answers their routes with 503.
    """

    runtime: Runtime
    auth: ServerAuth
    metrics: Metrics
    max_body_bytes: int
    prediction_log: PredictionLog | None = None
    feedback: FeedbackStore | None = None
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    teamwork: Teamwork | None = None

    @property
    def ready(self) -> bool:
        """Every model loaded and warmed, and the process not draining."""
        return self.runtime.ready and not self.lifecycle.draining


def context_of(request: Request) -> ServerContext:
    """The ``ServerContext`` of the app serving ``request``."""
    context: ServerContext = request.app.state.shipyard
    return context
