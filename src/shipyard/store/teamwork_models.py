"""The teamwork schema: promotion requests with their evidence and decisions, and comments.

Rows of the same ``Base`` as ``shipyard.store.models`` (``models.full_metadata()`` loads them);
created by migration ``0009_teamwork``. A request row changes state once (open -> approved,
rejected, refused or stale); its evidence and every decision are rows of their own, written
once, each decision holding the ``seq`` of its audit entry so the two can be joined both ways.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text

from shipyard.store.models import Base, mapped_column

if TYPE_CHECKING:
    from sqlalchemy.orm import Mapped

NAME = String(100)
ID = String(32)


class ReviewRequestRow(Base):
    """A request to move ``name@alias`` to ``version``, waiting for (or past) its reviewers."""

    __tablename__ = "review_requests"
    __table_args__ = (
        Index("ix_review_requests_target", "name", "alias", "state"),
        Index("ix_review_requests_created", "created_ms"),
    )

    request_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME)
    alias: Mapped[str] = mapped_column(NAME)
    version: Mapped[int] = mapped_column(Integer)
    from_version: Mapped[int | None] = mapped_column(Integer)
    candidate_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    approvals_needed: Mapped[int] = mapped_column(Integer)
    approver_roles: Mapped[list[str]] = mapped_column(JSON)
    margin: Mapped[float] = mapped_column(Float)
    requested_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(2000))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    closed_ms: Mapped[int | None] = mapped_column(BigInteger)
    closed_note: Mapped[str | None] = mapped_column(String(2000))


class ReviewEvidenceRow(Base):
    """What a request was judged on (gate comparison, slices, drift, cost), frozen at request."""

    __tablename__ = "review_evidence"

    request_id: Mapped[str] = mapped_column(
        ForeignKey("review_requests.request_id"), primary_key=True
    )
    sha256: Mapped[str] = mapped_column(String(64))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class ReviewDecisionRow(Base):
    """One decision on a request (approve, reject, stale, refused) and its audit entry's seq."""

    __tablename__ = "review_decisions"
    __table_args__ = (Index("ix_review_decisions_request", "request_id", "decision_id"),)

    decision_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str] = mapped_column(ForeignKey("review_requests.request_id"))
    decision: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    audit_seq: Mapped[int | None] = mapped_column(BigInteger)


class CommentRow(Base):
    """A Markdown comment (stored raw) on a run, dataset version, model version or request."""

    __tablename__ = "comments"
    __table_args__ = (
        Index("ix_comments_target", "target_kind", "target_id", "created_ms"),
        Index("ix_comments_created", "created_ms"),
    )

    comment_id: Mapped[str] = mapped_column(ID, primary_key=True)
    target_kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(250))
    author: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    mentions: Mapped[list[str]] = mapped_column(JSON)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    audit_seq: Mapped[int | None] = mapped_column(BigInteger)
