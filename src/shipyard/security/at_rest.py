"""Encryption at rest for a workspace: its blob store wrapped, and master-key rotation.

``workspace_blob_store`` is what the workspace calls when ``encryption.enabled`` is set or the
workspace records a master key: it loads the master key, checks it is the workspace's current
key (adopting it on first use, which records in the workspace that it is encrypted and under
which key id), and wraps the plain blob store.

Once a workspace is encrypted, encryption cannot be bypassed by a process that lacks the setting
(issue 14): with the key at hand it encrypts anyway; without it, its blob store refuses every
write (so it never leaves plaintext behind) and a read of an encrypted blob says that the blob
is encrypted and which key it needs, instead of "no blob with digest ...". Blobs from before
encryption stay readable. ``rotate_master_key`` re-wraps every data key from an old master key
to a new one, one row per transaction, without touching the data: after a crash a rerun with the
same two keys finishes the rest (see docs/security.md for the procedure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from shipyard.core import faults
from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import Conflict, InvalidArgument, InvalidSettings
from shipyard.security.envelope import Envelope, rewrap
from shipyard.security.keys import load_master_key
from shipyard.store.artifacts.encrypted import EncryptedBlobStore
from shipyard.store.encryption import BlobKeyStore, MasterKeyMismatch

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import BinaryIO

    from shipyard.core.settings import Settings
    from shipyard.security.identities import Identity
    from shipyard.security.keys import MasterKey
    from shipyard.store.artifacts.base import BlobStore
    from shipyard.store.encryption import WrappedKey
    from shipyard.store.security import SecurityStore
    from shipyard.store.sql import SqlStore

__all__ = [
    "MasterKeyRequired",
    "RotationReport",
    "encrypted_blob_store",
    "rotate_master_key",
    "settings_master_key",
    "workspace_blob_store",
]

_BATCH = 500


def settings_master_key(settings: Settings) -> MasterKey | None:
    """Load the master key the settings name (key file, else environment variable).

    Raises:
        InvalidSettings: When the key source is set but unreadable or malformed.
    """
    config = settings.encryption
    key_file = config.key_file
    if key_file is not None and not key_file.is_absolute():
        key_file = settings.project_dir / key_file
    return load_master_key(key_file=key_file, env_var=config.key_env)


class MasterKeyRequired(InvalidSettings):
    """The workspace is encrypted and this process has no master key to write or read with."""

    code = "master_key_required"


class _KeylessCipher:
    """The cipher of a process without the master key: every seal and unseal is refused."""

    def __init__(self, key_id: str, how_to: str) -> None:
        self.key_id = key_id
        self._how_to = how_to

    def seal(self, name: str, chunks: Iterable[bytes]) -> NoReturn:
        raise MasterKeyRequired(
            f"this workspace is encrypted (master key {self.key_id}) and this process has no "
            f"master key, so it will not write blob {name} in plaintext: {self._how_to}"
        )

    def unseal(self, name: str, wrapped: WrappedKey, stream: BinaryIO) -> Iterator[bytes]:
        raise MasterKeyRequired(
            f"blob {name} is encrypted under master key {wrapped.key_id} and this process has "
            f"no master key to read it: {self._how_to}"
        )


def workspace_blob_store(
    settings: Settings, inner: BlobStore, store: SqlStore, *, clock: Clock = SYSTEM_CLOCK
) -> BlobStore:
    """The workspace's blob store: encrypted when the settings or the workspace say so.

    Returns:
        ``inner`` for a workspace that never was encrypted and is not to be; an
        ``EncryptedBlobStore`` under the master key when one is set; for an encrypted workspace
        opened without a key, an ``EncryptedBlobStore`` that refuses to write and to decrypt.

    Raises:
        InvalidSettings: ``encryption.enabled`` is set but no master key is, or it is unreadable.
        MasterKeyMismatch: The key is not the workspace's current master key.
    """
    recorded = BlobKeyStore(store).current_key_id()
    if recorded is None and not settings.encryption.enabled:
        return inner
    if settings_master_key(settings) is None and recorded is not None:
        how_to = (
            f"set ${settings.encryption.key_env} (base64) or encryption.key_file to the "
            "workspace's master key (`shipyard keys status` lists its key ids)"
        )
        return EncryptedBlobStore(
            inner, BlobKeyStore(store), _KeylessCipher(recorded, how_to), clock=clock
        )
    return encrypted_blob_store(settings, inner, store, clock=clock)


def encrypted_blob_store(
    settings: Settings, inner: BlobStore, store: SqlStore, *, clock: Clock = SYSTEM_CLOCK
) -> EncryptedBlobStore:
    """Wrap ``inner`` so that blobs are encrypted under the settings' master key.

    Raises:
        InvalidSettings: When no master key is configured, or it cannot be read.
        MasterKeyMismatch: When the key is not the workspace's current master key.
    """
    master = settings_master_key(settings)
    if master is None:
        raise InvalidSettings(
            "encryption at rest is on but no master key is set: set "
            f"${settings.encryption.key_env} (base64, 32 bytes) or encryption.key_file; "
            "`shipyard keys generate` makes a key"
        )
    keys = BlobKeyStore(store)
    keys.require_current(master.key_id, clock.now_ms())
    cipher = Envelope(master, chunk_bytes=settings.encryption.chunk_bytes)
    return EncryptedBlobStore(inner, keys, cipher, clock=clock)


@dataclass(frozen=True, slots=True)
class RotationReport:
    """What one ``rotate_master_key`` call did.

    Attributes:
        old_key_id: The key the data keys were wrapped under.
        new_key_id: The key they are wrapped under now.
        rewrapped: Data keys re-wrapped by this call.
        skipped: Rows another writer changed while this call ran (re-read and handled).
    """

    old_key_id: str
    new_key_id: str
    rewrapped: int
    skipped: int


def rotate_master_key(
    keys: BlobKeyStore,
    old: MasterKey,
    new: MasterKey,
    *,
    actor: Identity,
    audit_log: SecurityStore,
    clock: Clock = SYSTEM_CLOCK,
) -> RotationReport:
    """Re-wrap every data key from ``old`` to ``new`` and make ``new`` the current key.

    Safe to rerun: ``new`` becomes current first (so writers holding ``old`` stop adding rows
    under it), each row is re-wrapped in its own transaction, and ``old`` is marked retired only
    when no row remains under it. ``actor`` needs ``keys.manage``; the finished rotation is
    audited (a rotation spans many transactions, so its entry follows the last one).

    Raises:
        PermissionDenied: ``actor`` may not manage keys (audited).
        InvalidArgument: When ``old`` and ``new`` are the same key.
        MasterKeyMismatch: When ``old`` is not the current key (nor, for a rerun, the key being
            rotated away from), so the data cannot be under it.
        Conflict: When rows remain under a third key from an unfinished earlier rotation.
    """
    from shipyard.security import audit
    from shipyard.security.guard import guard
    from shipyard.security.permissions import Action

    security = audit_log
    target = f"master-key:{new.key_id}"
    guard(security, actor, Action.KEYS_MANAGE, target, detail={"op": "rotate"}, clock=clock)
    if old.key_id == new.key_id:
        raise InvalidArgument(f"the old and new master keys are the same key ({old.key_id})")
    history = keys.master_keys()
    known = {record.key_id: record for record in history}
    current = history[-1].key_id if history else None
    rerun = current == new.key_id and old.key_id in known
    if current is not None and current != old.key_id and not rerun:
        raise MasterKeyMismatch(
            f"the old key {old.key_id} is not this workspace's current master key "
            f"({current}); give the key the data is under as the old key"
        )
    leftover = {
        k: n for k, n in keys.counts_by_key().items() if k not in {old.key_id, new.key_id} and n
    }
    if leftover:
        shown = ", ".join(f"{n} under {k}" for k, n in sorted(leftover.items()))
        raise Conflict(
            f"data keys remain under other master keys ({shown}) from an unfinished rotation; "
            "finish that rotation first"
        )
    keys.activate(new.key_id, clock.now_ms())
    rewrapped = skipped = 0
    while batch := keys.under_key(old.key_id, _BATCH):
        for row in batch:
            fresh = rewrap(row.digest, row.key, old, new)
            if keys.replace_wrapped(row.digest, row.key, fresh, clock.now_ms()):
                rewrapped += 1
                faults.hit("keys.after_rewrap")
            else:
                skipped += 1  # deleted or re-wrapped meanwhile; the next batch re-reads
    keys.retire([old.key_id], clock.now_ms())
    detail = {"op": "rotate", "from": old.key_id, "rewrapped": rewrapped}
    audit.record(security, actor, Action.KEYS_MANAGE, target, detail=detail, clock=clock)
    return RotationReport(old.key_id, new.key_id, rewrapped, skipped)
