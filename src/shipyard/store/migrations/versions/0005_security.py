"""security: users, tokens, role bindings, audit chain, data keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 18:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401 - used once tables land
from alembic import op  # noqa: F401 - used once tables land

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
