"""teamwork: promotion requests, their evidence and decisions; comments

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 22:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "review_requests",
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("alias", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("candidate_sha256", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("approvals_needed", sa.Integer(), nullable=False),
        sa.Column("approver_roles", sa.JSON(), nullable=False),
        sa.Column("margin", sa.Float(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=2000), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("closed_ms", sa.BigInteger(), nullable=True),
        sa.Column("closed_note", sa.String(length=2000), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index("ix_review_requests_target", "review_requests", ["name", "alias", "state"])
    op.create_index("ix_review_requests_created", "review_requests", ["created_ms"])
    op.create_table(
        "review_evidence",
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["review_requests.request_id"]),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_table(
        "review_decisions",
        sa.Column("decision_id", _BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["review_requests.request_id"]),
        sa.PrimaryKeyConstraint("decision_id"),
    )
    op.create_index(
        "ix_review_decisions_request", "review_decisions", ["request_id", "decision_id"]
    )
    op.create_table(
        "comments",
        sa.Column("comment_id", sa.String(length=32), nullable=False),
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.String(length=250), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("mentions", sa.JSON(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("comment_id"),
    )
    op.create_index("ix_comments_target", "comments", ["target_kind", "target_id", "created_ms"])
    op.create_index("ix_comments_created", "comments", ["created_ms"])


def downgrade() -> None:
    op.drop_index("ix_comments_created", table_name="comments")
    op.drop_index("ix_comments_target", table_name="comments")
    op.drop_table("comments")
    op.drop_index("ix_review_decisions_request", table_name="review_decisions")
    op.drop_table("review_decisions")
    op.drop_table("review_evidence")
    op.drop_index("ix_review_requests_created", table_name="review_requests")
    op.drop_index("ix_review_requests_target", table_name="review_requests")
    op.drop_table("review_requests")
