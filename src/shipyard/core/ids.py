"""Identifiers and content hashes."""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

_CHUNK = 1 << 20


def new_id() -> str:
    """Return a new random 32-hex-character id (a UUID4 without dashes)."""
    return uuid.uuid4().hex


def sha256_hex(chunks: Iterable[bytes]) -> str:
    """Return the SHA-256 hex digest of a stream of byte chunks."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def is_sha256_hex(value: str) -> bool:
    """Tell whether ``value`` looks like a lowercase SHA-256 hex digest."""
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


CHUNK_SIZE = _CHUNK
