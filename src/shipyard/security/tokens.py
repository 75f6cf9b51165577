"""API tokens: 256 random bits, shown once, stored only as a SHA-256, compared in constant time.

A token reads ``sy_<id>_<secret>``: ``id`` (12 hex characters) is public, lets the store find the
row without a scan and names the token in listings and audit entries; ``secret`` is 32 bytes
from ``secrets`` (URL-safe base64). Only SHA-256 of the whole token is stored: with 256 bits of
entropy a fast hash is as strong as a slow one (nothing to brute-force), so no password hash is
needed. Comparison uses ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from shipyard.core.errors import InvalidArgument

PREFIX = "sy_"
SECRET_BYTES = 32  # 256 bits
_TOKEN = re.compile(r"^sy_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class NewToken:
    """A freshly made token: ``text`` is shown to the user once and never stored."""

    token_id: str
    text: str
    sha256: str


def new_token() -> NewToken:
    """Make a token with 256 bits of randomness."""
    token_id = secrets.token_hex(6)
    text = f"{PREFIX}{token_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    return NewToken(token_id=token_id, text=text, sha256=token_sha256(text))


def token_sha256(text: str) -> str:
    """The hex SHA-256 of a token, as stored."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def token_id_of(text: str) -> str:
    """The public id inside a token.

    Raises:
        InvalidArgument: ``text`` is not shaped like a Shipyard token (the message never
            repeats it).
    """
    match = _TOKEN.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InvalidArgument("malformed token: Shipyard tokens look like sy_<id>_<secret>")
    return match.group(1)


def matches(text: str, stored_sha256: str) -> bool:
    """Whether ``text`` hashes to ``stored_sha256`` (constant-time comparison)."""
    return hmac.compare_digest(token_sha256(text.strip()), stored_sha256)
