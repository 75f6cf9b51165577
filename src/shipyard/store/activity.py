"""The activity feed: what changed recently, merged from the tables that already record it.

No table of its own: runs (started), dataset versions, model versions, alias moves (and
refusals), comments and review decisions each carry their own time, so the feed is the newest
``limit`` of each, merged and cut to ``limit``. Each item says when, who, what kind, on what,
and a short summary; ``ref`` holds the ids a page needs to link to the thing itself.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Callable

    from shipyard.store.sql import SqlStore

KINDS = ("run", "dataset", "model_version", "alias", "comment", "review")


@dataclass(frozen=True)
class ActivityItem:
    """One thing that happened."""

    at_ms: int
    kind: str
    actor: str | None
    subject: str
    summary: str
    ref: dict[str, Any] = field(default_factory=dict)


def recent_activity(
    store: SqlStore, *, since_ms: int = 0, limit: int = 50, kinds: tuple[str, ...] = KINDS
) -> list[ActivityItem]:
    """The newest ``limit`` items at or after ``since_ms``, newest first.

    Raises:
        InvalidArgument: ``limit`` outside 1-1,000 or an unknown kind.
    """
    if not 1 <= limit <= 1000:
        raise InvalidArgument("limit must be between 1 and 1,000")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InvalidArgument(f"unknown activity kind(s) {unknown}; kinds are {', '.join(KINDS)}")
    readers: dict[str, Callable[[sa.Connection, int, int], list[ActivityItem]]] = {
        "run": _runs,
        "dataset": _datasets,
        "model_version": _versions,
        "alias": _aliases,
        "comment": _comments,
        "review": _reviews,
    }
    with store.engine.connect() as c:
        found = [readers[k](c, since_ms, limit) for k in kinds]
    return list(heapq.merge(*found, key=lambda i: -i.at_ms))[:limit]


def _runs(c: sa.Connection, since: int, limit: int) -> list[ActivityItem]:
    from shipyard.store.models import RunRow

    rows = c.execute(
        sa.select(RunRow.run_id, RunRow.name, RunRow.user, RunRow.status, RunRow.start_ms)
        .where(RunRow.start_ms >= since, RunRow.parent_run_id.is_(None))
        .order_by(RunRow.start_ms.desc())
        .limit(limit)
    ).all()
    return [
        ActivityItem(
            r.start_ms, "run", r.user, r.run_id, f"run {r.name} ({r.status})", {"run_id": r.run_id}
        )
        for r in rows
    ]


def _datasets(c: sa.Connection, since: int, limit: int) -> list[ActivityItem]:
    from shipyard.store.dataset_models import DatasetRow

    rows = c.execute(
        sa.select(
            DatasetRow.dataset_id, DatasetRow.name, DatasetRow.row_count, DatasetRow.created_ms
        )
        .where(DatasetRow.created_ms >= since)
        .order_by(DatasetRow.created_ms.desc())
        .limit(limit)
    ).all()
    return [
        ActivityItem(
            r.created_ms,
            "dataset",
            None,
            r.dataset_id,
            f"dataset {r.name}: {r.row_count:,} rows",
            {"dataset_id": r.dataset_id},
        )
        for r in rows
    ]


def _versions(c: sa.Connection, since: int, limit: int) -> list[ActivityItem]:
    from shipyard.store.registry_models import ModelVersionRow as V

    rows = c.execute(
        sa.select(V.name, V.version, V.created_by, V.created_ms)
        .where(V.created_ms >= since)
        .order_by(V.created_ms.desc())
        .limit(limit)
    ).all()
    return [
        ActivityItem(
            r.created_ms,
            "model_version",
            r.created_by,
            f"{r.name}:{r.version}",
            f"registered {r.name}:{r.version}",
            {"model": r.name, "version": r.version},
        )
        for r in rows
    ]


def _aliases(c: sa.Connection, since: int, limit: int) -> list[ActivityItem]:
    from shipyard.store.registry_models import AliasEventRow as E

    rows = c.execute(
        sa.select(E.name, E.alias, E.action, E.from_version, E.to_version, E.actor, E.at_ms)
        .where(E.at_ms >= since)
        .order_by(E.at_ms.desc(), E.event_id.desc())
        .limit(limit)
    ).all()
    return [
        ActivityItem(
            r.at_ms,
            "alias",
            r.actor,
            f"{r.name}@{r.alias}",
            f"{r.action} {r.name}@{r.alias}: {r.from_version or '-'} -> {r.to_version or '-'}",
            {"model": r.name, "alias": r.alias, "version": r.to_version},
        )
        for r in rows
    ]


def _comments(c: sa.Connection, since: int, limit: int) -> list[ActivityItem]:
    from shipyard.store.teamwork_models import CommentRow as C

    rows = c.execute(
        sa.select(C.comment_id, C.target_kind, C.target_id, C.author, C.created_ms)
        .where(C.created_ms >= since)
        .order_by(C.created_ms.desc())
        .limit(limit)
    ).all()
    return [
        ActivityItem(
            r.created_ms,
            "comment",
            r.author,
            f"{r.target_kind}:{r.target_id}",
            f"commented on {r.target_kind} {r.target_id}",
            {"comment_id": r.comment_id, "target_kind": r.target_kind, "target_id": r.target_id},
        )
        for r in rows
    ]


def _reviews(c: sa.Connection, since: int, limit: int) -> list[ActivityItem]:
    from shipyard.store.teamwork_models import ReviewDecisionRow as D
    from shipyard.store.teamwork_models import ReviewRequestRow as R

    rows = c.execute(
        sa.select(D.decision, D.actor, D.at_ms, R.request_id, R.name, R.alias, R.version)
        .join(R, R.request_id == D.request_id)
        .where(D.at_ms >= since)
        .order_by(D.at_ms.desc(), D.decision_id.desc())
        .limit(limit)
    ).all()
    return [
        ActivityItem(
            r.at_ms,
            "review",
            r.actor,
            f"{r.name}@{r.alias}",
            f"{r.decision} promotion of {r.name}:{r.version} to {r.alias}",
            {"request_id": r.request_id, "model": r.name, "version": r.version},
        )
        for r in rows
    ]
