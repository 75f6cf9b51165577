"""Comments on runs, dataset versions, model versions and promotion requests, and the feed.

A page that shows comments calls ``comment_section`` for its target and includes
``comments.html``. Bodies are stored raw and shown through ``track.markdown.render_markdown``
(CommonMark, raw HTML off, safe link schemes only, images as links): that sanitized HTML is
the one string the UI marks safe, and it is marked here, never in a template. Adding a
comment goes through ``CommentService.add`` (``comments.write``, audited, @mentions delivered
through the project's notifiers) and answers the section again, so htmx swaps it in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from shipyard.core.errors import ShipyardError
from shipyard.store.activity import recent_activity
from shipyard.track.markdown import render_markdown
from shipyard.ui.render import render

if TYPE_CHECKING:
    from starlette.requests import Request

    from shipyard.security.identities import Identity
    from shipyard.store.activity import ActivityItem
    from shipyard.ui.context import UiContext

FEED_LIMIT = 100


def comment_section(
    ui: UiContext, identity: Identity, kind: str, target: str, error: str | None = None
) -> dict[str, Any]:
    """What ``comments.html`` needs: the target's comments (rendered), and where to post."""
    try:
        found = ui.comments().for_target(kind, target, actor=identity)
    except ShipyardError as e:
        found, error = [], error or str(e)
    return {
        "comments": [(c, Markup(render_markdown(c.body))) for c in found],  # noqa: S704
        "comment_kind": kind,
        "comment_target": target,
        "comment_error": error,
    }


def target_url(kind: str, target: str) -> str:
    """The page that shows ``kind`` ``target``'s comments."""
    if kind == "run":
        return f"/runs/{quote(target, safe='')}"
    if kind == "model":
        name, _, version = target.rpartition(":")
        return f"/models/{quote(name, safe='')}?version={quote(version, safe='')}"
    if kind == "dataset":
        return f"/datasets/{quote(target, safe='')}"
    if kind == "review":
        return f"/reviews/{quote(target, safe='')}"
    return "/activity"


async def add_comment(request: Request) -> Response:
    """Add a comment; htmx gets the section back, a plain form is sent back to the page."""
    ui = request.app.state.ui
    identity = request.state.identity
    form = request.state.form
    kind, target, body = form.get("kind", ""), form.get("target", ""), form.get("body", "")

    def write() -> dict[str, Any]:
        error = None
        try:
            ui.comments().add(kind, target, body, actor=identity)
        except ShipyardError as e:
            error = str(e)
        return comment_section(ui, identity, kind, target, error)

    section = await run_in_threadpool(write)
    if not request.headers.get("hx-request"):
        return RedirectResponse(target_url(kind, target), status_code=303)
    return render(request, "comments.html", **section)


def _link(item: ActivityItem) -> str | None:
    ref = item.ref
    if "request_id" in ref:
        return target_url("review", str(ref["request_id"]))
    if "target_kind" in ref:
        return target_url(str(ref["target_kind"]), str(ref["target_id"]))
    if "run_id" in ref:
        return target_url("run", str(ref["run_id"]))
    if "dataset_id" in ref:
        return target_url("dataset", str(ref["dataset_id"]))
    if "model" in ref:
        return target_url("model", f"{ref['model']}:{ref.get('version') or ''}")
    return None


async def activity_page(request: Request) -> Response:
    """What changed lately: runs, datasets, model versions, alias moves, comments, reviews."""
    store = request.app.state.ui.workspace.store
    items = await run_in_threadpool(lambda: recent_activity(store, limit=FEED_LIMIT))
    return render(request, "activity.html", items=[(i, _link(i)) for i in items])


ROUTES = [
    Route("/comments", add_comment, methods=["POST"]),
    Route("/activity", activity_page, methods=["GET"]),
]
