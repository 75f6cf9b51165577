"""Rows for encryption at rest: each encrypted blob's wrapped data key, and the master keys.

Rows of the same ``Base`` as ``shipyard.store.models`` (``models.full_metadata()``
loads them with the rest); created by migration ``0007_encryption``.

Why a table rather than a header in the blob: blobs are write-once and content-addressed, so a
key kept inside one could only be re-wrapped by rewriting the object. A row per object lets
``shipyard keys rotate`` re-wrap each data key in its own small transaction, and a rerun picks up
exactly the rows still under the old key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String

from shipyard.store.models import Base, mapped_column

if TYPE_CHECKING:
    from sqlalchemy.orm import Mapped

DIGEST = String(64)
KEY_ID = String(32)


class BlobKeyRow(Base):
    """Where an encrypted blob's ciphertext lives and its data key, wrapped by a master key."""

    __tablename__ = "blob_keys"
    __table_args__ = (Index("ix_blob_keys_key_id", "key_id"),)

    digest: Mapped[str] = mapped_column(DIGEST, primary_key=True)
    cipher_digest: Mapped[str] = mapped_column(DIGEST)
    key_id: Mapped[str] = mapped_column(KEY_ID)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    rewrapped_ms: Mapped[int | None] = mapped_column(BigInteger)


class MasterKeyRow(Base):
    """A master key the workspace has used; the one with the highest ``seq`` is current."""

    __tablename__ = "master_keys"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    key_id: Mapped[str] = mapped_column(KEY_ID, unique=True)
    activated_ms: Mapped[int] = mapped_column(BigInteger)
    retired_ms: Mapped[int | None] = mapped_column(BigInteger)
