"""``create_app``: the UI's routes, behind its guard. Pages live in ``pages/``, one per area."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette

from shipyard.security.accounts import Accounts
from shipyard.security.audit_chain import security_store
from shipyard.ui.context import UiContext
from shipyard.ui.guard import UiGuard
from shipyard.ui.render import environment
from shipyard.ui.sessions import Sessions

if TYPE_CHECKING:
    from shipyard.track.workspace import Workspace


def create_app(workspace: Workspace, *, project: str) -> Starlette:
    """The UI over ``workspace`` for users holding roles in ``project``."""
    from shipyard.ui.pages import (
        audit,
        auth,
        comments,
        compare,
        cost,
        datasets,
        models,
        monitoring,
        overview,
        reviews,
        run_page,
        runs,
        static,
    )

    routes = [
        *static.ROUTES,
        *auth.ROUTES,
        *overview.ROUTES,
        *runs.ROUTES,  # before run_page: /runs/table is not a run id
        *run_page.ROUTES,
        *compare.ROUTES,
        *datasets.ROUTES,
        *models.ROUTES,
        *reviews.ROUTES,
        *comments.ROUTES,
        *monitoring.ROUTES,
        *cost.ROUTES,
        *audit.ROUTES,
    ]
    app = Starlette(routes=routes)
    accounts = Accounts(
        security_store(workspace.settings, workspace.store, clock=workspace.clock),
        clock=workspace.clock,
    )
    sessions = Sessions(accounts, project=project, clock=workspace.clock)
    app.state.ui = UiContext(workspace, accounts, sessions, environment(), project)
    app.add_middleware(UiGuard, sessions=sessions, router=app.router)
    return app
