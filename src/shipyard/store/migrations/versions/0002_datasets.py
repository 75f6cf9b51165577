"""dataset versions, lineage edges, cache keys, source snapshots

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("schema", sa.JSON(), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=True),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"]),
        sa.PrimaryKeyConstraint("dataset_id"),
    )
    op.create_index("ix_datasets_name_created", "datasets", ["name", "created_ms"])
    op.create_index("ix_datasets_digest", "datasets", ["digest"])
    op.create_index("ix_datasets_run", "datasets", ["run_id"])

    op.create_table(
        "dataset_parents",
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("parent_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.dataset_id"]),
        sa.ForeignKeyConstraint(["parent_id"], ["datasets.dataset_id"]),
        sa.PrimaryKeyConstraint("dataset_id", "parent_id"),
    )
    op.create_index("ix_dataset_parents_parent", "dataset_parents", ["parent_id"])

    op.create_table(
        "dataset_cache_keys",
        sa.Column("cache_key", sa.String(length=128), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.dataset_id"]),
        sa.PrimaryKeyConstraint("cache_key", "dataset_id"),
    )

    op.create_table(
        "source_snapshots",
        sa.Column(
            "snapshot_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("source", sa.String(length=250), nullable=False),
        sa.Column("watermark", sa.JSON(), nullable=True),
        sa.Column("schema", sa.JSON(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=True),
        sa.Column("dataset_id", sa.String(length=64), nullable=True),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.dataset_id"]),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"]),
        sa.PrimaryKeyConstraint("snapshot_id"),
    )
    op.create_index(
        "ix_source_snapshots_source_created", "source_snapshots", ["source", "created_ms"]
    )
    op.create_index("ix_source_snapshots_dataset", "source_snapshots", ["dataset_id"])


def downgrade() -> None:
    op.drop_index("ix_source_snapshots_dataset", table_name="source_snapshots")
    op.drop_index("ix_source_snapshots_source_created", table_name="source_snapshots")
    op.drop_table("source_snapshots")
    op.drop_table("dataset_cache_keys")
    op.drop_index("ix_dataset_parents_parent", table_name="dataset_parents")
    op.drop_table("dataset_parents")
    op.drop_index("ix_datasets_run", table_name="datasets")
    op.drop_index("ix_datasets_digest", table_name="datasets")
    op.drop_index("ix_datasets_name_created", table_name="datasets")
    op.drop_table("datasets")
