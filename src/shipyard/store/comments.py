"""Comments on runs, dataset versions, model versions and promotion requests.

The body is stored as written (Markdown, raw): escaping and sanitizing happen when it is shown
(``shipyard.track.markdown``), so a renderer fix applies to every comment ever written. A
comment and its audit entry are one transaction; a comment on something that does not exist is
refused before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.core.errors import InvalidArgument, NotFound
from shipyard.store.engine import run_write
from shipyard.store.teamwork_models import CommentRow, ReviewRequestRow

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shipyard.store.security import AuditRecord, AuditWrite, SecurityStore
    from shipyard.store.sql import SqlStore

#: What a comment may be on, and how its ``target_id`` is written.
TARGET_KINDS = {
    "run": "a run id",
    "dataset": "a dataset version id",
    "model": "name:version of a model version",
    "review": "a promotion request id",
}


@dataclass(frozen=True)
class Comment:
    """One comment, its body raw as written."""

    comment_id: str
    target_kind: str
    target_id: str
    author: str
    body: str
    mentions: tuple[str, ...]
    created_ms: int
    audit_seq: int | None


class CommentStore:
    """Comment rows of one metadata store."""

    def __init__(self, store: SqlStore, audit_log: SecurityStore) -> None:
        self.engine = store.engine
        self.audit_log = audit_log

    def add(self, values: Mapping[str, Any], audit: AuditWrite) -> Comment:
        """Insert a comment (every column but ``audit_seq``) with its audit entry.

        Raises:
            NotFound: The target does not exist.
        """
        self.check_target(values["target_kind"], values["target_id"])

        def work(c: sa.Connection) -> AuditRecord:
            entry = self.audit_log.append_within(c, audit)
            c.execute(sa.insert(CommentRow), {**values, "audit_seq": entry.seq})
            return entry

        entry = run_write(self.engine, work)
        self.audit_log.anchor(entry)
        return _comment({**values, "audit_seq": entry.seq})

    def for_target(self, target_kind: str, target_id: str) -> list[Comment]:
        """The comments on one target, oldest first."""
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(CommentRow)
                .where(CommentRow.target_kind == target_kind, CommentRow.target_id == target_id)
                .order_by(CommentRow.created_ms, CommentRow.comment_id)
            ).all()
        return [_comment(dict(r._mapping)) for r in rows]

    def recent(self, *, since_ms: int = 0, limit: int = 100) -> list[Comment]:
        """Comments written at or after ``since_ms``, newest first."""
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(CommentRow)
                .where(CommentRow.created_ms >= since_ms)
                .order_by(CommentRow.created_ms.desc(), CommentRow.comment_id.desc())
                .limit(limit)
            ).all()
        return [_comment(dict(r._mapping)) for r in rows]

    def check_target(self, kind: str, target_id: str) -> None:
        """Raise unless ``kind`` names a kind of target and ``target_id`` one that exists.

        Raises:
            InvalidArgument: Unknown kind or malformed id. NotFound: No such target.
        """
        if kind not in TARGET_KINDS:
            raise InvalidArgument(f"comments are on {', '.join(TARGET_KINDS)}; not on {kind!r}")
        if not isinstance(target_id, str) or not 1 <= len(target_id) <= 250:
            raise InvalidArgument(f"a {kind} comment needs {TARGET_KINDS[kind]} (1-250 chars)")
        query = _target_query(kind, target_id)
        with self.engine.connect() as c:
            found = c.execute(query).first()
        if found is None:
            raise NotFound(f"no {kind} {target_id!r} to comment on")


def _target_query(kind: str, target_id: str) -> sa.Select[Any]:
    # The tables are imported here: each is a domain module of its own (store/models.py).
    if kind == "run":
        from shipyard.store.models import RunRow

        return sa.select(RunRow.run_id).where(RunRow.run_id == target_id)
    if kind == "dataset":
        from shipyard.store.dataset_models import DatasetRow

        return sa.select(DatasetRow.dataset_id).where(DatasetRow.dataset_id == target_id)
    if kind == "review":
        return sa.select(ReviewRequestRow.request_id).where(
            ReviewRequestRow.request_id == target_id
        )
    from shipyard.store.registry_models import ModelVersionRow

    name, _, number = target_id.rpartition(":")
    if not name or not number.isdigit():
        raise InvalidArgument(
            f"a model comment is on name:version (e.g. churn:3), not {target_id!r}"
        )
    return sa.select(ModelVersionRow.version).where(
        ModelVersionRow.name == name, ModelVersionRow.version == int(number)
    )


def _comment(row: Mapping[str, Any]) -> Comment:
    return Comment(
        comment_id=row["comment_id"],
        target_kind=row["target_kind"],
        target_id=row["target_id"],
        author=row["author"],
        body=row["body"],
        mentions=tuple(row["mentions"] or ()),
        created_ms=row["created_ms"],
        audit_seq=row["audit_seq"],
    )
