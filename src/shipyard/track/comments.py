"""Comments on runs, dataset versions, model versions and promotion requests, with @mentions.

A comment is Markdown, stored raw and rendered only for display (``track.markdown``: HTML off,
safe links). ``@name`` mentions a user when a user of that name exists (others stay text);
mentioned users are handed to ``notify`` after the comment is committed, which the entry points
wire to the project's notifiers (``monitor.mentions``): this package may not import ``monitor``.
Writing needs ``comments.write``, reading ``comments.read``; each comment has its audit entry.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import InvalidArgument
from shipyard.core.ids import new_id
from shipyard.security import audit
from shipyard.security.guard import guard
from shipyard.security.permissions import Action, require
from shipyard.store.comments import TARGET_KINDS, Comment, CommentStore

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from shipyard.security.identities import Identity
    from shipyard.store.security import SecurityStore
    from shipyard.store.sql import SqlStore

__all__ = ["MAX_BODY", "TARGET_KINDS", "Comment", "CommentService", "find_mentions"]

MAX_BODY = 20_000
#: ``@name`` not preceded by a word character (so e-mail addresses are not mentions).
_MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9][A-Za-z0-9_.@-]{0,99})")
log = logging.getLogger("shipyard.comments")


def find_mentions(body: str) -> list[str]:
    """The ``@names`` in ``body``, in order of first appearance, without duplicates."""
    seen: dict[str, None] = {}
    for match in _MENTION.finditer(body):
        seen.setdefault(match.group(1).rstrip(".-"), None)
    return list(seen)


class CommentService:
    """Comments of one workspace: checked, audited, mentions resolved and delivered."""

    def __init__(
        self,
        store: SqlStore,
        security: SecurityStore,
        *,
        clock: Clock = SYSTEM_CLOCK,
        notify: Callable[[Comment, Sequence[str]], None] | None = None,
    ) -> None:
        self.security = security
        self.store = CommentStore(store, security)
        self.clock = clock
        self.notify = notify

    def add(self, kind: str, target_id: str, body: str, *, actor: Identity) -> Comment:
        """Write a comment on ``kind`` ``target_id`` and deliver its mentions.

        Raises:
            PermissionDenied: ``actor`` may not comment (audited).
            InvalidArgument: Empty or over-long body, unknown kind, malformed id.
            NotFound: The target does not exist.
        """
        obj = f"{kind}:{target_id}"
        guard(self.security, actor, Action.COMMENTS_WRITE, obj, clock=self.clock)
        if not isinstance(body, str) or not body.strip():
            raise InvalidArgument("a comment needs some text")
        if len(body) > MAX_BODY or "\x00" in body:
            raise InvalidArgument(f"a comment is at most {MAX_BODY:,} characters, without NUL")
        mentions = [
            name for name in find_mentions(body) if name != actor.name and self._user_exists(name)
        ]
        comment_id = new_id()
        entry = audit.draft(
            actor,
            Action.COMMENTS_WRITE,
            obj,
            detail={"comment": comment_id, "mentions": mentions, "chars": len(body)},
            clock=self.clock,
        )
        comment = self.store.add(
            {
                "comment_id": comment_id,
                "target_kind": kind,
                "target_id": target_id,
                "author": actor.name,
                "body": body,
                "mentions": mentions,
                "created_ms": self.clock.now_ms(),
            },
            entry,
        )
        if mentions and self.notify is not None:
            try:
                self.notify(comment, mentions)
            except Exception:  # the comment is written; a notifier's failure is logged only
                log.exception("delivering the mentions of comment %s failed", comment_id)
        return comment

    def for_target(self, kind: str, target_id: str, *, actor: Identity) -> list[Comment]:
        """The comments on one target, oldest first (bodies raw: render them to show them).

        Raises:
            PermissionDenied: ``actor`` may not read comments. InvalidArgument / NotFound: as
                ``add``.
        """
        require(actor, Action.COMMENTS_READ)
        self.store.check_target(kind, target_id)
        return self.store.for_target(kind, target_id)

    def recent(self, *, actor: Identity, since_ms: int = 0, limit: int = 100) -> list[Comment]:
        """Comments written since ``since_ms``, newest first."""
        require(actor, Action.COMMENTS_READ)
        return self.store.recent(since_ms=since_ms, limit=limit)

    def _user_exists(self, name: str) -> bool:
        user = self.security.get_user(name)
        return user is not None and user.disabled_ms is None
