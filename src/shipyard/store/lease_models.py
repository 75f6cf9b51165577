"""Rows for replicated work: leases of singleton jobs, and canaries shared by replicas (issue 20).

Rows of the same ``Base`` as ``shipyard.store.models`` (``models.full_metadata()`` loads them
with the rest); created by migration ``0010_leases``. One row per lease name, kept after it
expires: ``token`` counts how many times the lease changed hands, a fencing number a holder
can compare before acting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, String

from shipyard.store.models import Base, mapped_column

if TYPE_CHECKING:
    from sqlalchemy.orm import Mapped


class LeaseRow(Base):
    """One named lease and its current (or last) holder."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    token: Mapped[int] = mapped_column(BigInteger)
    acquired_ms: Mapped[int] = mapped_column(BigInteger)
    expires_ms: Mapped[int] = mapped_column(BigInteger)


class CanaryRow(Base):
    """One canary's traffic counts and verdict, shared by every replica that serves it.

    Keyed by served name, champion alias and challenger version, so a new challenger version
    is a new canary. ``verdict`` is written once: the first replica to decide wins.
    """

    __tablename__ = "canaries"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    verdict: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(500))
    decided_ms: Mapped[int | None] = mapped_column(BigInteger)
