"""Rows for security: users and service accounts, API tokens, role bindings, the audit chain.

Rows of the same ``Base`` as ``shipyard.store.models`` (``models.full_metadata()``
loads them with the rest); created by migration ``0005_security``. A token row holds only
the SHA-256 of the token, never the token. Audit rows are written once, numbered without gaps
(``seq``) and chained by hash; ``detail_json`` is kept as the exact canonical text that was
hashed, so a database that normalizes JSON cannot break the chain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text

from shipyard.store.models import Base, mapped_column

if TYPE_CHECKING:
    from sqlalchemy.orm import Mapped

NAME = String(100)


class UserRow(Base):
    """A person or a service account of the workspace."""

    __tablename__ = "security_users"

    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(200))
    disabled_ms: Mapped[int | None] = mapped_column(BigInteger)


class TokenRow(Base):
    """One API token: its public id, the SHA-256 of the whole token, expiry and revocation."""

    __tablename__ = "security_tokens"
    __table_args__ = (Index("ix_security_tokens_user", "user_name"),)

    token_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_name: Mapped[str] = mapped_column(ForeignKey("security_users.name"))
    token_sha256: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(200))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(200))
    expires_ms: Mapped[int | None] = mapped_column(BigInteger)
    revoked_ms: Mapped[int | None] = mapped_column(BigInteger)


class RoleBindingRow(Base):
    """The one role a user holds in one project."""

    __tablename__ = "security_role_bindings"

    user_name: Mapped[str] = mapped_column(ForeignKey("security_users.name"), primary_key=True)
    project: Mapped[str] = mapped_column(NAME, primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    granted_ms: Mapped[int] = mapped_column(BigInteger)
    granted_by: Mapped[str] = mapped_column(String(200))


class AuditRow(Base):
    """One audit entry; ``entry_hash`` covers every other column and ``prev_hash``.

    ``key_id`` names the audit key whose HMAC ``entry_hash`` is (migration 0008); NULL for the
    entries written before, whose ``entry_hash`` is a plain SHA-256.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at_ms"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    object: Mapped[str] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(32))
    detail_json: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(32))
