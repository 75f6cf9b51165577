"""audit log keyed by HMAC: the id of the audit key that sealed each entry

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 16:00:00.000000

Entries written before this revision keep ``key_id`` NULL: they were sealed with plain SHA-256
and still verify that way; every later entry is sealed with HMAC-SHA-256 under the audit key
whose id it names.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("key_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("key_id")
