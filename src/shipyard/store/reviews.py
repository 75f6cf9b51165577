"""Promotion requests, their evidence and decisions: the rows behind four-eyes promotion.

Knows nothing of models or gates: a request is a row naming ``name@alias`` and a candidate
version, frozen evidence (JSON with its SHA-256) and a list of decisions. Every write that is a
decision (a request made, an approval, a rejection, a request found stale or refused by the
gate) appends its audit entry in the same transaction and keeps that entry's ``seq`` on the
decision row. A request leaves ``open`` once, by compare-and-set, so two reviewers racing to
close it cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.core.errors import Conflict, NotFound
from shipyard.store.engine import run_write
from shipyard.store.teamwork_models import ReviewDecisionRow, ReviewEvidenceRow, ReviewRequestRow

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shipyard.store.security import AuditRecord, AuditWrite, SecurityStore
    from shipyard.store.sql import SqlStore

#: The states of a request; only ``open`` ones can be decided.
OPEN, APPROVED, REJECTED, STALE, REFUSED = "open", "approved", "rejected", "stale", "refused"
STATES = (OPEN, APPROVED, REJECTED, STALE, REFUSED)


@dataclass(frozen=True)
class ReviewRequest:
    """A promotion waiting for (or past) its reviewers."""

    request_id: str
    name: str
    alias: str
    version: int
    from_version: int | None
    candidate_sha256: str
    state: str
    approvals_needed: int
    approver_roles: tuple[str, ...]
    margin: float
    requested_by: str
    reason: str | None
    created_ms: int
    closed_ms: int | None
    closed_note: str | None

    @property
    def target(self) -> str:
        """``name@alias``, as audit entries name it."""
        return f"{self.name}@{self.alias}"


@dataclass(frozen=True)
class ReviewDecision:
    """One decision on a request; ``audit_seq`` is its entry in the audit chain."""

    decision_id: int
    request_id: str
    decision: str
    actor: str
    comment: str | None
    at_ms: int
    audit_seq: int | None


@dataclass(frozen=True)
class ReviewEvidence:
    """What a request was judged on, as recorded when it was made, with its SHA-256."""

    request_id: str
    sha256: str
    body: dict[str, Any]
    created_ms: int


class ReviewStore:
    """Review rows of one metadata store, written with their audit entries."""

    def __init__(self, store: SqlStore, audit_log: SecurityStore) -> None:
        self.engine = store.engine
        self.audit_log = audit_log

    def create(
        self,
        values: Mapping[str, Any],
        evidence: Mapping[str, Any],
        evidence_sha256: str,
        audit: AuditWrite,
    ) -> tuple[ReviewRequest, ReviewDecision]:
        """Insert an open request, its evidence and its ``requested`` decision, audited."""

        def work(c: sa.Connection) -> tuple[ReviewDecision, AuditRecord]:
            c.execute(sa.insert(ReviewRequestRow), {**values, "state": OPEN})
            c.execute(
                sa.insert(ReviewEvidenceRow),
                {
                    "request_id": values["request_id"],
                    "sha256": evidence_sha256,
                    "body": dict(evidence),
                    "created_ms": values["created_ms"],
                },
            )
            return self._decide(
                c,
                values["request_id"],
                "requested",
                values["requested_by"],
                values["reason"],
                values["created_ms"],
                audit,
            )

        decision = self._commit(work)
        return self.get(values["request_id"]), decision

    def decide(
        self,
        request_id: str,
        decision: str,
        actor: str,
        comment: str | None,
        at_ms: int,
        audit: AuditWrite,
        *,
        close_as: str | None = None,
        note: str | None = None,
    ) -> ReviewDecision:
        """Record a decision on an open request (and close it as ``close_as``), audited.

        Raises:
            Conflict: The request is no longer open (someone else closed it first).
        """

        def work(c: sa.Connection) -> tuple[ReviewDecision, AuditRecord]:
            if close_as is not None:
                self._close(c, request_id, close_as, at_ms, note)
            elif self._state(c, request_id) != OPEN:
                raise _closed(request_id, self._state(c, request_id))
            return self._decide(c, request_id, decision, actor, comment, at_ms, audit)

        return self._commit(work)

    def close(self, request_id: str, state: str, at_ms: int, note: str | None) -> None:
        """Close an open request without a decision of its own (the approval that moved it).

        Raises:
            Conflict: The request is no longer open.
        """
        run_write(self.engine, lambda c: self._close(c, request_id, state, at_ms, note))

    def get(self, request_id: str) -> ReviewRequest:
        """One request.

        Raises:
            NotFound: No request has this id.
        """
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(ReviewRequestRow).where(ReviewRequestRow.request_id == request_id)
            ).first()
        if row is None:
            raise NotFound(
                f"no promotion request {request_id!r}; `shipyard models reviews` lists them"
            )
        return _request(row)

    def evidence(self, request_id: str) -> ReviewEvidence:
        """The evidence recorded with a request.

        Raises:
            NotFound: No request has this id.
        """
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(ReviewEvidenceRow).where(ReviewEvidenceRow.request_id == request_id)
            ).first()
        if row is None:
            raise NotFound(f"no evidence for promotion request {request_id!r}")
        return ReviewEvidence(row.request_id, row.sha256, dict(row.body), row.created_ms)

    def decisions(self, request_id: str) -> list[ReviewDecision]:
        """Every decision on a request, oldest first."""
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(ReviewDecisionRow)
                .where(ReviewDecisionRow.request_id == request_id)
                .order_by(ReviewDecisionRow.decision_id)
            ).all()
        return [_decision(r) for r in rows]

    def list(
        self,
        *,
        model: str | None = None,
        alias: str | None = None,
        state: str | None = None,
        limit: int = 200,
    ) -> list[ReviewRequest]:
        """Requests, newest first, optionally of one model, alias or state."""
        query = sa.select(ReviewRequestRow)
        if model is not None:
            query = query.where(ReviewRequestRow.name == model)
        if alias is not None:
            query = query.where(ReviewRequestRow.alias == alias)
        if state is not None:
            query = query.where(ReviewRequestRow.state == state)
        query = query.order_by(
            ReviewRequestRow.created_ms.desc(), ReviewRequestRow.request_id.desc()
        ).limit(limit)
        with self.engine.connect() as c:
            return [_request(r) for r in c.execute(query).all()]

    # -- inside a transaction -----------------------------------------------------------------

    def _commit(self, work: Any) -> ReviewDecision:
        written: tuple[ReviewDecision, AuditRecord] = run_write(self.engine, work)
        self.audit_log.anchor(written[1])
        return written[0]

    def _decide(
        self,
        c: sa.Connection,
        request_id: str,
        decision: str,
        actor: str,
        comment: str | None,
        at_ms: int,
        audit: AuditWrite,
    ) -> tuple[ReviewDecision, AuditRecord]:
        entry = self.audit_log.append_within(c, audit)
        values = {
            "request_id": request_id,
            "decision": decision,
            "actor": actor,
            "comment": comment,
            "at_ms": at_ms,
            "audit_seq": entry.seq,
        }
        decision_id = c.execute(
            sa.insert(ReviewDecisionRow).returning(ReviewDecisionRow.decision_id), values
        ).scalar_one()
        made = ReviewDecision(
            int(decision_id), request_id, decision, actor, comment, at_ms, entry.seq
        )
        return made, entry

    def _state(self, c: sa.Connection, request_id: str) -> str | None:
        return c.execute(
            sa.select(ReviewRequestRow.state).where(ReviewRequestRow.request_id == request_id)
        ).scalar()

    def _close(
        self, c: sa.Connection, request_id: str, state: str, at_ms: int, note: str | None
    ) -> None:
        updated = c.execute(
            sa.update(ReviewRequestRow)
            .where(ReviewRequestRow.request_id == request_id, ReviewRequestRow.state == OPEN)
            .values(state=state, closed_ms=at_ms, closed_note=note)
        )
        if updated.rowcount != 1:
            raise _closed(request_id, self._state(c, request_id))


def _closed(request_id: str, state: str | None) -> Conflict | NotFound:
    if state is None:
        return NotFound(f"no promotion request {request_id!r}")
    return Conflict(
        f"promotion request {request_id} is {state}, not open: nothing more can be decided; "
        "make a new request with `shipyard models request-promotion`"
    )


def _request(row: Any) -> ReviewRequest:
    return ReviewRequest(
        request_id=row.request_id,
        name=row.name,
        alias=row.alias,
        version=row.version,
        from_version=row.from_version,
        candidate_sha256=row.candidate_sha256,
        state=row.state,
        approvals_needed=row.approvals_needed,
        approver_roles=tuple(row.approver_roles or ()),
        margin=float(row.margin),
        requested_by=row.requested_by,
        reason=row.reason,
        created_ms=row.created_ms,
        closed_ms=row.closed_ms,
        closed_note=row.closed_note,
    )


def _decision(row: Any) -> ReviewDecision:
    return ReviewDecision(
        row.decision_id,
        row.request_id,
        row.decision,
        row.actor,
        row.comment,
        row.at_ms,
        row.audit_seq,
    )
