"""Master keys for encryption at rest: where they come from, and their public key ids.

A master key is 32 random bytes (AES-256) given base64-encoded in an environment variable
(``SHIPYARD_MASTER_KEY`` by default) or in a key file. It never touches data directly: it only
wraps the per-object data keys (see ``shipyard.security.envelope``), so rotating it re-wraps
small key rows and never rewrites the data.

Every key has a *key id*: 16 hex characters derived from the key with HKDF-SHA-256 under its own
``info`` label. The id names the key in the store and in messages ("blob X is wrapped under key
3f9c..."); recovering the key from it is as hard as inverting HKDF, and the wrapping itself never
uses the id-derivation output, so printing ids is safe.

Key files must not be readable by group or others (like SSH private keys): a file that is
refused, rather than a key that is silently exposed.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shipyard.core.errors import InvalidSettings

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DEFAULT_KEY_ENV",
    "KEY_BYTES",
    "OLD_KEY_ENV",
    "MasterKey",
    "generate_master_key",
    "load_master_key",
    "parse_master_key",
    "write_key_file",
]

KEY_BYTES = 32
#: The environment variable that holds the workspace's current master key (base64).
DEFAULT_KEY_ENV = "SHIPYARD_MASTER_KEY"
#: The environment variable ``shipyard keys rotate`` reads the key being replaced from.
OLD_KEY_ENV = "SHIPYARD_OLD_MASTER_KEY"
_KEY_ID_INFO = b"shipyard/master-key-id/1"
_MAX_KEY_FILE_BYTES = 4096


@dataclass(frozen=True, slots=True)
class MasterKey:
    """A 256-bit master key and its public id.

    Attributes:
        key_id: 16 hex characters naming the key; safe to print and store.
        material: The 32 key bytes; never printed (``repr`` hides them).
        source: Where the key came from, for messages (an env var name or a file path).
    """

    key_id: str
    material: bytes = field(repr=False)
    source: str = "memory"

    @classmethod
    def from_bytes(cls, material: bytes, source: str = "memory") -> MasterKey:
        """Wrap raw key bytes, deriving the key id.

        Raises:
            InvalidSettings: When ``material`` is not exactly 32 bytes.
        """
        if len(material) != KEY_BYTES:
            raise InvalidSettings(
                f"the master key from {source} is {len(material)} bytes; it must be "
                f"{KEY_BYTES} random bytes, base64-encoded (`shipyard keys generate` makes one)"
            )
        derived = HKDF(algorithm=hashes.SHA256(), length=8, salt=None, info=_KEY_ID_INFO)
        return cls(key_id=derived.derive(material).hex(), material=material, source=source)


def generate_master_key() -> str:
    """Return a new random master key, base64-encoded (what the env var or key file holds)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def parse_master_key(text: str, source: str) -> MasterKey:
    """Decode a base64 master key.

    Args:
        text: The base64 text (surrounding whitespace is ignored).
        source: Where it came from, named in error messages (never the key itself).

    Raises:
        InvalidSettings: When the text is not base64 or does not decode to 32 bytes.
    """
    try:
        material = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidSettings(
            f"the master key in {source} is not valid base64; it must be {KEY_BYTES} random "
            "bytes, base64-encoded (`shipyard keys generate` makes one)"
        ) from e
    return MasterKey.from_bytes(material, source)


def _read_key_file(path: Path) -> MasterKey:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InvalidSettings(f"master key file {path} does not exist") from None
    except OSError as e:
        raise InvalidSettings(f"cannot open master key file {path}: {e.strerror}") from e
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise InvalidSettings(f"master key file {path} is not a regular file")
    with open(fd, "rb") as handle:
        if info.st_mode & 0o077:
            raise InvalidSettings(
                f"master key file {path} is readable by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):o}); run `chmod 600 {path}`"
            )
        data = handle.read(_MAX_KEY_FILE_BYTES + 1)
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise InvalidSettings(f"master key file {path} is too large to hold one key")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as e:
        raise InvalidSettings(f"master key file {path} is not base64 text") from e
    return parse_master_key(text, f"key file {path}")


def load_master_key(
    *,
    key_file: Path | str | None = None,
    env_var: str = DEFAULT_KEY_ENV,
    environ: Mapping[str, str] | None = None,
) -> MasterKey | None:
    """Load the master key from ``key_file`` if given, else from the environment variable.

    Args:
        key_file: A file holding the base64 key (mode 600 or stricter); wins over the variable.
        env_var: The environment variable to read when there is no key file.
        environ: The environment to read (default: ``os.environ``).

    Returns:
        The key, or None when neither source is set.

    Raises:
        InvalidSettings: When the source is set but unreadable, too open, or not a valid key.
    """
    if key_file is not None:
        return _read_key_file(Path(key_file))
    text = (os.environ if environ is None else environ).get(env_var)
    if text is None or not text.strip():
        return None
    return parse_master_key(text, f"${env_var}")


def write_key_file(path: Path, text: str) -> None:
    """Create ``path`` with mode 600 holding ``text``; an existing file is never overwritten.

    Raises:
        InvalidSettings: When the file already exists or cannot be created.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise InvalidSettings(f"{path} already exists; choose a new file for the new key") from None
    except OSError as e:
        raise InvalidSettings(f"cannot create key file {path}: {e.strerror}") from e
    with open(fd, "w", encoding="ascii") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
