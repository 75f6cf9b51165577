"""cost: budgets, serving meters, retention releases, blob tiers, blob GC sweeps

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 18:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_releases",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=250), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("released_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "ref"),
    )
    op.create_table(
        "blob_tiers",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("tier", sa.String(length=32), nullable=False),
        sa.Column("changed_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_table(
        "gc_sweeps",
        sa.Column("sweep_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=False),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.Column("grace_seconds", sa.Float(), nullable=False),
        sa.Column("blobs_seen", sa.Integer(), nullable=False),
        sa.Column("candidates", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("bytes_freed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sweep_id"),
    )
    op.create_table(
        "gc_candidates",
        sa.Column("sweep_id", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("deleted_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["sweep_id"], ["gc_sweeps.sweep_id"]),
        sa.PrimaryKeyConstraint("sweep_id", "digest"),
    )
    op.create_index("ix_gc_candidates_digest", "gc_candidates", ["digest"])


def downgrade() -> None:
    op.drop_index("ix_gc_candidates_digest", table_name="gc_candidates")
    op.drop_table("gc_candidates")
    op.drop_table("gc_sweeps")
    op.drop_table("blob_tiers")
    op.drop_table("retention_releases")
