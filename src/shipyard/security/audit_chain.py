"""The audit key and the sealer that keys, checks and anchors the audit chain.

**The key.** 32 random bytes, base64, read like a master key (``shipyard.security.keys``: a
file of mode 600 or stricter, or an environment variable), from ``audit.key_file``, else
``$SHIPYARD_AUDIT_KEY``, else ``.shipyard/keys/audit.key``. That last file is created on first
use, but only while the log holds no keyed entry: a process that finds the log keyed and has no
key refuses to append ("copy the key from the host that holds it") rather than start a second
key, and a process holding another key is refused too, so one chain has one key. Two labels of
HKDF-SHA-256 turn the key into a public *key id* (printed, stored in each entry) and the MAC key
(never stored), as for master keys.

**Held apart from the database.** The key never enters the metadata store. With PostgreSQL the
store and the key live on different machines; with the embedded SQLite store both sit under
``.shipyard/`` unless the key (``$SHIPYARD_AUDIT_KEY``) and the anchor are put elsewhere, see
docs/security.md's threat model.

**The anchor.** After an entry commits, the head is written to the anchor file every
``audit.anchor_every`` entries (and on the first keyed entry), and logged on the
``shipyard.audit`` logger for a log shipper. The anchor never moves backwards, and never moves
past a log that no longer holds the previous anchor's entry unchanged: after a truncation, new
entries cannot bury the evidence.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import InvalidSettings
from shipyard.security.audit import entry_hash, entry_mac
from shipyard.security.audit_anchor import Anchor, AnchorFile
from shipyard.security.keys import generate_master_key, load_master_key
from shipyard.store.security import SecurityStore

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from shipyard.core.settings import Settings
    from shipyard.store.security import AuditRecord
    from shipyard.store.sql import SqlStore

__all__ = [
    "AuditChain",
    "AuditKey",
    "AuditKeyRequired",
    "AuditKeySource",
    "audit_chain",
    "security_store",
]

logger = logging.getLogger("shipyard.audit")

_ID_INFO = b"shipyard/audit-key-id/1"
_MAC_INFO = b"shipyard/audit-mac/1"


class AuditKeyRequired(InvalidSettings):
    """The audit log needs an audit key this process does not have (or holds another key)."""

    code = "audit_key_required"


def _derive(material: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(material)


@dataclass(frozen=True, slots=True)
class AuditKey:
    """The key that seals audit entries.

    Attributes:
        key_id: 16 hex characters naming the key; stored in each entry, safe to print.
        mac_key: The HMAC key derived from it; never printed or stored.
        source: Where it came from, for messages.
    """

    key_id: str
    mac_key: bytes = field(repr=False)
    source: str = "memory"

    @classmethod
    def from_bytes(cls, material: bytes, source: str = "memory") -> AuditKey:
        """Derive the key id and MAC key from 32 random bytes."""
        return cls(_derive(material, _ID_INFO, 8).hex(), _derive(material, _MAC_INFO, 32), source)


@dataclass(frozen=True, slots=True)
class AuditKeySource:
    """Where this process finds the audit key.

    Attributes:
        key_file: A key file set explicitly; it must exist.
        env_var: The environment variable read when there is no ``key_file``.
        default_file: Read when neither is set, and created when the log is not keyed yet.
        environ: The environment to read (default: ``os.environ``).
    """

    key_file: Path | None = None
    env_var: str = "SHIPYARD_AUDIT_KEY"
    default_file: Path | None = None
    environ: Mapping[str, str] | None = None

    def load(self) -> AuditKey | None:
        """Return the key, or None when no source holds one.

        Raises:
            InvalidSettings: A source is set but unreadable, too open or malformed.
        """
        if self.key_file is None:
            env = os.environ if self.environ is None else self.environ
            if env.get(self.env_var, "").strip():
                master = load_master_key(env_var=self.env_var, environ=env)
                assert master is not None
                return AuditKey.from_bytes(master.material, master.source)
        path = self.key_file or self.default_file
        if path is None or (self.key_file is None and not path.exists()):
            return None
        master = load_master_key(key_file=path)
        assert master is not None
        return AuditKey.from_bytes(master.material, master.source)

    def create(self) -> AuditKey | None:
        """Create the default key file (mode 600) unless a key exists; None when not allowed."""
        if self.key_file is not None or self.default_file is None:
            return None
        path = self.default_file
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".audit-key-", dir=path.parent)  # mode 600
        try:
            with open(fd, "w", encoding="ascii") as handle:
                handle.write(generate_master_key() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # a concurrent process made it first
                os.link(temp, path)
        finally:
            os.unlink(temp)
        return self.load()

    def describe(self) -> str:
        """How to give this process the key, for messages."""
        where = self.key_file or self.default_file
        return f"set ${self.env_var} (base64) or audit.key_file" + (
            f", or copy the key file to {where}" if where is not None else ""
        )


class AuditChain:
    """Seals new audit entries under the audit key, checks stored ones, anchors the head.

    The ``AuditSealer`` a ``SecurityStore`` is built with; ``security_store`` builds both.

    Attributes:
        keys: Where the audit key comes from (read once, then kept).
        anchors: The anchor file, or None to keep no anchor (tests of the chain alone).
        anchor_every: Anchor the head every N entries.
    """

    def __init__(
        self,
        keys: AuditKeySource | AuditKey,
        anchors: AnchorFile | None,
        *,
        anchor_every: int = 1,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.keys = keys
        self.anchors = anchors
        self.anchor_every = anchor_every
        self._clock = clock
        self._key: AuditKey | None = keys if isinstance(keys, AuditKey) else None
        self._lock = threading.Lock()

    def key(self, *, create: bool = False) -> AuditKey | None:
        """This process's audit key; with ``create``, make the default key file if there is none."""
        with self._lock:
            if self._key is None and isinstance(self.keys, AuditKeySource):
                self._key = self.keys.load() or (self.keys.create() if create else None)
            return self._key

    def seal(self, fields: Mapping[str, Any], prev_key_id: str | None) -> tuple[str | None, str]:
        """Seal a new entry with HMAC under the audit key.

        Raises:
            AuditKeyRequired: The log is keyed and this process has no key, or another key.
        """
        key = self.key(create=prev_key_id is None)
        if key is None:
            raise AuditKeyRequired(
                f"the audit log is sealed with audit key {prev_key_id} and this process has "
                f"no audit key, so it cannot record changes: {self._how_to()}"
            )
        if prev_key_id is not None and prev_key_id != key.key_id:
            raise AuditKeyRequired(
                f"the audit log is sealed with audit key {prev_key_id}, but this process holds "
                f"audit key {key.key_id} ({key.source}): {self._how_to()}"
            )
        return key.key_id, entry_mac({**fields, "key_id": key.key_id}, key.mac_key)

    def expected(self, fields: Mapping[str, Any]) -> str | None:
        """The seal a stored entry must carry (plain SHA-256 for entries from before keying).

        Raises:
            AuditKeyRequired: The entry is keyed and this process has no audit key to check it.
        """
        key_id = fields["key_id"]
        if key_id is None:
            return entry_hash(fields)
        key = self.key()
        if key is None:
            raise AuditKeyRequired(
                f"the audit log is sealed with audit key {key_id}; this process has no audit "
                f"key to check it: {self._how_to()}"
            )
        return entry_mac(fields, key.mac_key) if key.key_id == key_id else None

    def committed(self, entry: AuditRecord, lookup: Callable[[int], AuditRecord | None]) -> None:
        """Anchor ``entry`` when it is due (see the module docstring).

        Raises:
            Unavailable: The anchor could not be written (the change itself is recorded).
        """
        if self.anchors is None or entry.key_id is None:
            return
        with self._lock:
            current = self.anchors.read()
            if current is not None:
                not_due = entry.seq % self.anchor_every != 0 and current.key_id is not None
                if current.seq >= entry.seq or not_due:
                    return
                held = lookup(current.seq)
                if held is None or held.entry_hash != current.head_hash:
                    logger.error(
                        "audit anchor kept at entry %d: the log no longer holds that entry "
                        "unchanged; run `shipyard audit verify`",
                        current.seq,
                    )
                    return
            self.write_anchor(entry)

    def write_anchor(self, entry: AuditRecord | None) -> Anchor | None:
        """Anchor the log at ``entry`` (its head) now; None when there is no anchor file."""
        if self.anchors is None or entry is None:
            return None
        anchor = Anchor(entry.seq, entry.entry_hash, entry.key_id, self._clock.now_ms())
        self.anchors.write(anchor)
        logger.info("audit head anchored: %d:%s key %s", anchor.seq, anchor.head_hash, entry.key_id)
        return anchor

    def _how_to(self) -> str:
        if isinstance(self.keys, AuditKeySource):
            return self.keys.describe()
        return "use the workspace's audit key"


def _resolve(settings: Settings, path: Path | None, default: Path) -> Path:
    if path is None:
        return default
    return path if path.is_absolute() else settings.project_dir / path


def audit_chain(settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> AuditChain:
    """The audit chain the settings describe (key source, anchor file, anchoring interval)."""
    config = settings.audit
    key_file = None if config.key_file is None else _resolve(settings, config.key_file, Path())
    source = AuditKeySource(
        key_file=key_file,
        env_var=config.key_env,
        default_file=settings.state_dir / "keys" / "audit.key",
    )
    anchor = _resolve(settings, config.anchor_file, settings.state_dir / "audit-anchor.json")
    return AuditChain(source, AnchorFile(anchor), anchor_every=config.anchor_every, clock=clock)


def security_store(
    settings: Settings, store: SqlStore, *, clock: Clock = SYSTEM_CLOCK
) -> SecurityStore:
    """The security store over ``store``, sealing its audit entries as the settings say."""
    return SecurityStore(store, audit_chain(settings, clock=clock))
