"""The blob-store protocol: content-addressed bytes, nothing else.

Blobs are addressed by the SHA-256 of their content, never by a user-chosen name, so a name can
never become a path (RELIABILITY.md lesson 1). Logical names ("model/model.skops") live in the
metadata store and point at digests; see ``shipyard.store.artifacts.names`` for how they are
validated and where they may be materialized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """Where a blob landed: its content digest and size.

    Attributes:
        digest: Lowercase SHA-256 hex digest of the content.
        size_bytes: Length of the content.
        created: False when an identical blob was already stored (deduplicated).
    """

    digest: str
    size_bytes: int
    created: bool


class BlobStore(Protocol):
    """Content-addressed, write-once blob storage behind an fsspec-style URL."""

    url: str

    def put_bytes(self, data: bytes) -> BlobInfo:
        """Store ``data`` atomically and return its digest; storing twice is a no-op."""
        ...

    def put_file(self, path: Path, *, scratch: bool = False) -> BlobInfo:
        """Stream the file at ``path`` into the store without loading it whole.

        ``scratch``: the caller has no further use for the file, so a store may take it over
        (move it) instead of copying it; afterwards the file may be gone.
        """
        ...

    def get_bytes(self, digest: str) -> bytes:
        """Return the blob's content, checking it against its digest."""
        ...

    def open(self, digest: str) -> BinaryIO:
        """Open the blob for streaming reads (no digest check; use ``verify``)."""
        ...

    def exists(self, digest: str) -> bool:
        """Tell whether a blob with this digest is stored."""
        ...

    def size(self, digest: str) -> int:
        """Return the stored blob's size in bytes."""
        ...

    def verify(self, digest: str) -> bool:
        """Re-hash the stored blob and tell whether it still matches its digest."""
        ...

    def delete(self, digest: str) -> None:
        """Remove a blob; deleting a missing blob is a no-op."""
        ...

    def iter_digests(self) -> Iterator[str]:
        """Yield the digest of every stored blob."""
        ...
