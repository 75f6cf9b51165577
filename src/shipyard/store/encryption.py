"""The key rows of encryption at rest: wrapped data keys per blob, and which master key is current.

Knows nothing of cryptography: a wrapped key is opaque bytes plus the id of the master key that
wrapped it (``shipyard.security.envelope`` makes and opens them). Two rules live here, in
transactions:

* **One current master key.** The master key with the highest ``seq`` is current. The first
  key a workspace sees is adopted; any other key is refused with ``MasterKeyMismatch`` (a
  process holding a retired key cannot write objects that the current key cannot read).
* **Re-wrapping is compare-and-set.** ``replace_wrapped`` changes a row only if it still holds
  the wrapped key the caller read, so a crashed or concurrent rotation never loses a key, and a
  rerun finds exactly the rows still under the old key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.core.errors import InvalidSettings
from shipyard.store.encryption_models import BlobKeyRow, MasterKeyRow
from shipyard.store.engine import run_write, upsert_insert

if TYPE_CHECKING:
    from collections.abc import Iterable

    from shipyard.store.sql import SqlStore

__all__ = ["BlobKey", "BlobKeyStore", "MasterKeyMismatch", "MasterKeyRecord", "WrappedKey"]


class MasterKeyMismatch(InvalidSettings):
    """The master key given is not the workspace's current one (unknown, or retired)."""

    code = "master_key_mismatch"


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key encrypted under a master key.

    Attributes:
        key_id: Id of the master key that wrapped it.
        wrapped: The opaque wrapped bytes.
    """

    key_id: str
    wrapped: bytes


@dataclass(frozen=True, slots=True)
class BlobKey:
    """One encrypted blob: its plaintext digest and size, where the ciphertext is, its key."""

    digest: str
    cipher_digest: str
    key: WrappedKey
    size_bytes: int


@dataclass(frozen=True, slots=True)
class MasterKeyRecord:
    """A master key the workspace has used, and how many blobs are wrapped under it."""

    seq: int
    key_id: str
    activated_ms: int
    retired_ms: int | None
    blob_count: int


def _blob_key(r: sa.Row[Any]) -> BlobKey:
    return BlobKey(
        r.digest, r.cipher_digest, WrappedKey(r.key_id, bytes(r.wrapped_key)), r.size_bytes
    )


class BlobKeyStore:
    """Key rows of one metadata store."""

    def __init__(self, store: SqlStore) -> None:
        self.engine = store.engine

    # -- blob keys --------------------------------------------------------------------------

    def get(self, digest: str) -> BlobKey | None:
        """Return the key row of the blob with this plaintext digest, if it is encrypted."""
        with self.engine.connect() as c:
            row = c.execute(sa.select(BlobKeyRow).where(BlobKeyRow.digest == digest)).first()
        return None if row is None else _blob_key(row)

    def insert(self, key: BlobKey, created_ms: int) -> BlobKey:
        """Record a new encrypted blob; return the row stored (an earlier writer's wins)."""

        def _insert(c: sa.Connection) -> BlobKey:
            c.execute(
                upsert_insert(self.engine, BlobKeyRow).on_conflict_do_nothing(
                    index_elements=["digest"]
                ),
                {
                    "digest": key.digest,
                    "cipher_digest": key.cipher_digest,
                    "key_id": key.key.key_id,
                    "wrapped_key": key.key.wrapped,
                    "size_bytes": key.size_bytes,
                    "created_ms": created_ms,
                    "rewrapped_ms": None,
                },
            )
            row = c.execute(sa.select(BlobKeyRow).where(BlobKeyRow.digest == key.digest)).one()
            return _blob_key(row)

        return run_write(self.engine, _insert)

    def delete(self, digest: str) -> BlobKey | None:
        """Remove a blob's key row; return what it held (None when there was none)."""

        def _delete(c: sa.Connection) -> BlobKey | None:
            row = c.execute(sa.select(BlobKeyRow).where(BlobKeyRow.digest == digest)).first()
            if row is None:
                return None
            c.execute(sa.delete(BlobKeyRow).where(BlobKeyRow.digest == digest))
            return _blob_key(row)

        return run_write(self.engine, _delete)

    def digests(self) -> list[str]:
        """Return the plaintext digest of every encrypted blob, sorted."""
        with self.engine.connect() as c:
            return list(
                c.execute(sa.select(BlobKeyRow.digest).order_by(BlobKeyRow.digest)).scalars()
            )

    def cipher_digests(self) -> set[str]:
        """Return the digests of every stored ciphertext (blobs that are not logical names)."""
        with self.engine.connect() as c:
            return set(c.execute(sa.select(BlobKeyRow.cipher_digest)).scalars())

    def is_ciphertext(self, digest: str) -> bool:
        """Tell whether ``digest`` names the ciphertext of some encrypted blob."""
        with self.engine.connect() as c:
            found = c.execute(
                sa.select(BlobKeyRow.digest).where(BlobKeyRow.cipher_digest == digest).limit(1)
            ).first()
        return found is not None

    def under_key(self, key_id: str, limit: int) -> list[BlobKey]:
        """Return up to ``limit`` blob keys still wrapped under master key ``key_id``."""
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(BlobKeyRow)
                .where(BlobKeyRow.key_id == key_id)
                .order_by(BlobKeyRow.digest)
                .limit(limit)
            ).all()
        return [_blob_key(r) for r in rows]

    def replace_wrapped(self, digest: str, old: WrappedKey, new: WrappedKey, now_ms: int) -> bool:
        """Swap one blob's wrapped key, only if it still holds ``old``; tell whether it did.

        One transaction per blob: a crash leaves every row either under the old or the new key.
        """

        def _swap(c: sa.Connection) -> bool:
            changed = c.execute(
                sa.update(BlobKeyRow)
                .where(
                    BlobKeyRow.digest == digest,
                    BlobKeyRow.key_id == old.key_id,
                    BlobKeyRow.wrapped_key == old.wrapped,
                )
                .values(key_id=new.key_id, wrapped_key=new.wrapped, rewrapped_ms=now_ms)
                .returning(BlobKeyRow.digest)
            ).first()
            return changed is not None

        return run_write(self.engine, _swap)

    def counts_by_key(self) -> dict[str, int]:
        """Return how many blobs each master key id wraps."""
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(BlobKeyRow.key_id, sa.func.count()).group_by(BlobKeyRow.key_id)
            ).all()
        return {key_id: int(count) for key_id, count in rows}

    # -- master keys ------------------------------------------------------------------------

    def master_keys(self) -> list[MasterKeyRecord]:
        """Return every master key the workspace has used, oldest first (the last is current)."""
        counts = self.counts_by_key()
        with self.engine.connect() as c:
            rows = c.execute(sa.select(MasterKeyRow).order_by(MasterKeyRow.seq)).all()
        return [
            MasterKeyRecord(r.seq, r.key_id, r.activated_ms, r.retired_ms, counts.get(r.key_id, 0))
            for r in rows
        ]

    def current_key_id(self) -> str | None:
        """Return the current master key's id (None before the first encrypted write)."""
        with self.engine.connect() as c:
            return c.execute(
                sa.select(MasterKeyRow.key_id).order_by(MasterKeyRow.seq.desc()).limit(1)
            ).scalar()

    def require_current(self, key_id: str, now_ms: int) -> None:
        """Check that ``key_id`` is the current master key, adopting it if there is none yet.

        Raises:
            MasterKeyMismatch: When another key is current; the message says whether
                ``key_id`` was retired by a rotation or was never this workspace's key.
        """

        def _check(c: sa.Connection) -> list[tuple[str, int | None]]:
            rows = c.execute(
                sa.select(MasterKeyRow.key_id, MasterKeyRow.retired_ms).order_by(MasterKeyRow.seq)
            ).all()
            if not rows:
                c.execute(sa.insert(MasterKeyRow), {"key_id": key_id, "activated_ms": now_ms})
                return [(key_id, None)]
            return [(r[0], r[1]) for r in rows]

        current = self.current_key_id()
        if current == key_id:
            return
        history = run_write(self.engine, _check)
        current = history[-1][0]
        if current == key_id:
            return
        if key_id in {k for k, _ in history}:
            raise MasterKeyMismatch(
                f"master key {key_id} was replaced by key {current} (`shipyard keys rotate`); "
                "use the new master key"
            )
        raise MasterKeyMismatch(
            f"master key {key_id} is not this workspace's key (its data is under key {current}); "
            "set SHIPYARD_MASTER_KEY or encryption.key_file to the workspace's key"
        )

    def activate(self, key_id: str, now_ms: int) -> None:
        """Make ``key_id`` the current master key (no-op when it is already known)."""

        def _activate(c: sa.Connection) -> None:
            c.execute(
                upsert_insert(self.engine, MasterKeyRow).on_conflict_do_nothing(
                    index_elements=["key_id"]
                ),
                {"key_id": key_id, "activated_ms": now_ms},
            )

        run_write(self.engine, _activate)

    def retire(self, key_ids: Iterable[str], now_ms: int) -> None:
        """Mark master keys retired (kept for the record; they can no longer be used)."""
        ids = list(key_ids)

        def _retire(c: sa.Connection) -> None:
            c.execute(
                sa.update(MasterKeyRow)
                .where(MasterKeyRow.key_id.in_(ids), MasterKeyRow.retired_ms.is_(None))
                .values(retired_ms=now_ms)
            )

        run_write(self.engine, _retire)
