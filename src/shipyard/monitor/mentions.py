"""Deliver @mentions of comments through the project's notifiers (``monitor:`` section).

``track.comments`` resolves mentions but may not import this package (it sits below it); the
entry points (CLI, server, UI) hand ``CommentService`` the sender built here. A mention is a
``Message`` with ``event`` ``"mention"``: the comment's first 500 characters, who wrote it and
on what, and the mentioned user names in ``data["mentions"]`` for notifiers that route by user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.monitor.notify import Message, build_notifiers, dispatch

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from shipyard.monitor.notify import Notifier
    from shipyard.store.comments import Comment
    from shipyard.track.comments import CommentService
    from shipyard.track.workspace import Workspace

_EXCERPT = 500


def mention_message(comment: Comment, mentions: Sequence[str]) -> Message:
    """The message telling ``mentions`` that ``comment`` names them."""
    where = f"{comment.target_kind} {comment.target_id}"
    text = comment.body if len(comment.body) <= _EXCERPT else comment.body[:_EXCERPT] + "…"
    return Message(
        event="mention",
        title=f"{comment.author} mentioned {', '.join('@' + m for m in mentions)} on {where}",
        text=text,
        severity="info",
        data={
            "mentions": list(mentions),
            "author": comment.author,
            "target_kind": comment.target_kind,
            "target_id": comment.target_id,
            "comment_id": comment.comment_id,
        },
    )


def mention_sender(
    notifiers: Sequence[Notifier],
) -> Callable[[Comment, Sequence[str]], None]:
    """A ``notify`` for ``CommentService`` that dispatches to ``notifiers`` (never raises)."""

    def send(comment: Comment, mentions: Sequence[str]) -> None:
        dispatch(notifiers, mention_message(comment, mentions))

    return send


def project_mention_sender(project_dir: Path) -> Callable[[Comment, Sequence[str]], None] | None:
    """The sender for the notifiers of ``<project_dir>/shipyard.yaml``, or None without any.

    Raises:
        InvalidProjectFile: The ``monitor:`` section is invalid.
        InvalidArgument: A notifier's ``${ENV}`` secret is not set.
    """
    from shipyard.core.project_file import load_yaml
    from shipyard.core.settings import PROJECT_FILE
    from shipyard.monitor.config import MonitorConfig

    path = project_dir / PROJECT_FILE
    if not path.is_file():
        return None
    document = load_yaml(path)
    section = document.data.get("monitor")
    if not isinstance(section, dict) or not section.get("notifiers"):
        return None
    from pydantic import ValidationError

    try:
        config = MonitorConfig.model_validate(section)
    except ValidationError as e:
        raise document.error(e, section=("monitor",)) from e
    return mention_sender(list(build_notifiers(config.notifiers).values()))


def workspace_comments(workspace: Workspace) -> CommentService:
    """The comments of ``workspace``, mentions delivered through its project's notifiers.

    What the entry points (CLI, model server, UI) call; ``track.comments`` alone cannot reach
    the notifiers.
    """
    from shipyard.security.audit_chain import security_store
    from shipyard.track.comments import CommentService

    security = security_store(workspace.settings, workspace.store, clock=workspace.clock)
    notify = project_mention_sender(workspace.settings.project_dir)
    return CommentService(workspace.store, security, clock=workspace.clock, notify=notify)
