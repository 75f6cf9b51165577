"""A ``BlobStore`` that encrypts every blob before it reaches another ``BlobStore``.

The wrapper keeps the blob-store contract: blobs are still addressed by the SHA-256 of their
*plaintext* (so registry and dataset digests mean the same with encryption on or off). Under
the hood each blob is sealed by a ``BlobCipher`` (``shipyard.security.envelope.Envelope``:
AES-256-GCM under a fresh data key, the digest bound in as associated data) and the ciphertext
is stored in the inner store under *its own* digest. A ``blob_keys`` row maps the plaintext
digest to the ciphertext digest and the wrapped data key; rotating the master key rewrites
those rows only.

Order of writes: ciphertext first, then its key row. A crash between the two leaves an
unreferenced ciphertext (listed by ``iter_digests`` as a blob nothing references, which garbage
collection removes); never a row pointing at nothing. Deletes go the other way round: row first.

Blobs written before encryption was switched on stay readable (they are read from the inner
store as plaintext and checked against their digest); writing the same content again stores it
encrypted and removes the plaintext copy. Large blobs are streamed: ``put_file`` hashes the file,
then encrypts it chunk by chunk into a spooled temp file holding only ciphertext, and reads
decrypt chunk by chunk, so memory stays at a few chunks whatever the blob's size.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import ArtifactNotFound, IntegrityFailure
from shipyard.core.ids import CHUNK_SIZE
from shipyard.store.artifacts.base import BlobInfo
from shipyard.store.artifacts.local import check_digest
from shipyard.store.encryption import BlobKey

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from shipyard.store.artifacts.base import BlobStore
    from shipyard.store.encryption import BlobKeyStore, WrappedKey

__all__ = ["BlobCipher", "EncryptedBlobStore"]


class BlobCipher(Protocol):
    """Seals and unseals one object at a time (``shipyard.security.envelope.Envelope``)."""

    key_id: str

    def seal(self, name: str, chunks: Iterable[bytes]) -> tuple[WrappedKey, Iterator[bytes]]:
        """Encrypt ``chunks`` under a new data key bound to ``name``; lazy ciphertext stream."""
        ...

    def unseal(self, name: str, wrapped: WrappedKey, stream: BinaryIO) -> Iterator[bytes]:
        """Decrypt and authenticate the ciphertext ``stream`` of object ``name``."""
        ...


class _PlainReader(io.RawIOBase):
    """A read-only file over an iterator of decrypted chunks; closes the ciphertext stream."""

    def __init__(self, chunks: Iterator[bytes], source: BinaryIO) -> None:
        self._chunks = chunks
        self._source = source
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            piece = next(self._chunks, None)
            if piece is None:
                return 0
            self._pending = piece
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        if not self.closed:
            self._source.close()
        super().close()


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK_SIZE):
            yield chunk


def _hashing(chunks: Iterable[bytes], hasher: hashlib._Hash) -> Iterator[bytes]:
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk


class EncryptedBlobStore:
    """``BlobStore`` that seals blobs with a ``BlobCipher`` and keeps them in ``inner``.

    Attributes:
        url: The inner store's URL (where the ciphertext lives).
        inner: The store holding ciphertext (and plaintext blobs from before encryption).
        keys: The key rows in the metadata store.
        cipher: What seals and unseals blobs (holds the master key; never printed).
    """

    def __init__(
        self,
        inner: BlobStore,
        keys: BlobKeyStore,
        cipher: BlobCipher,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.inner = inner
        self.keys = keys
        self.url = inner.url
        self.cipher = cipher
        self._clock = clock

    def __repr__(self) -> str:
        return f"EncryptedBlobStore({self.inner!r}, key_id={self.cipher.key_id!r})"

    # -- writing -----------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> BlobInfo:
        """Encrypt and store ``data``; storing the same content twice is a no-op."""
        digest = hashlib.sha256(data).hexdigest()
        if self._already_stored(digest):
            return BlobInfo(digest=digest, size_bytes=len(data), created=False)
        view = memoryview(data)
        wrapped, sealed = self.cipher.seal(
            digest, (bytes(view[i : i + CHUNK_SIZE]) for i in range(0, len(view), CHUNK_SIZE))
        )
        cipher_info = self.inner.put_bytes(b"".join(sealed))
        return self._record(BlobKey(digest, cipher_info.digest, wrapped, len(data)))

    def put_file(self, path: Path, *, scratch: bool = False) -> BlobInfo:
        """Encrypt and store the file at ``path``, streaming it in bounded memory.

        ``scratch`` changes nothing: the stored bytes are ciphertext, never the file itself.

        Raises:
            IntegrityFailure: When the file changed between hashing and encrypting it.
        """
        first = hashlib.sha256()
        size = 0
        for chunk in _hashing(_file_chunks(path), first):
            size += len(chunk)
        digest = first.hexdigest()
        if self._already_stored(digest):
            return BlobInfo(digest=digest, size_bytes=size, created=False)
        second = hashlib.sha256()
        wrapped, sealed = self.cipher.seal(digest, _hashing(_file_chunks(path), second))
        with tempfile.TemporaryDirectory(prefix="shipyard-seal-") as spool:
            spooled = Path(spool) / "blob.enc"
            with open(spooled, "wb") as out:
                for piece in sealed:
                    out.write(piece)
            if second.hexdigest() != digest:
                raise IntegrityFailure(f"{path} changed while it was being stored; store it again")
            cipher_info = self.inner.put_file(spooled)
        return self._record(BlobKey(digest, cipher_info.digest, wrapped, size))

    def _already_stored(self, digest: str) -> bool:
        self.keys.require_current(self.cipher.key_id, self._clock.now_ms())
        found = self.keys.get(digest)
        if found is None:
            return False
        if self.inner.exists(found.cipher_digest):
            return True
        self.keys.delete(digest)  # its ciphertext is gone: store the content afresh
        return False

    def _record(self, key: BlobKey) -> BlobInfo:
        stored = self.keys.insert(key, self._clock.now_ms())
        created = stored.cipher_digest == key.cipher_digest
        if not created:  # a concurrent writer recorded the same content first: drop our copy
            self.inner.delete(key.cipher_digest)
        elif self.inner.exists(key.digest) and not self.keys.is_ciphertext(key.digest):
            self.inner.delete(key.digest)  # the plaintext copy from before encryption
        return BlobInfo(digest=key.digest, size_bytes=key.size_bytes, created=created)

    # -- reading -----------------------------------------------------------------------------

    def _key(self, digest: str) -> BlobKey | None:
        """Return the blob's key row; None for a plaintext blob from before encryption."""
        key = self.keys.get(check_digest(digest))
        if key is None and self.keys.is_ciphertext(digest):
            # The ciphertext of another blob is storage, not a blob of its own.
            raise ArtifactNotFound(f"no blob with digest {digest} in {self.url}")
        return key

    def _open_sealed(self, key: BlobKey) -> BinaryIO:
        try:
            return self.inner.open(key.cipher_digest)
        except ArtifactNotFound:
            raise ArtifactNotFound(
                f"blob {key.digest} in {self.url} is missing: its ciphertext "
                f"{key.cipher_digest} is not stored"
            ) from None

    def _plain_chunks(self, key: BlobKey) -> tuple[Iterator[bytes], BinaryIO]:
        source = self._open_sealed(key)
        try:
            return self.cipher.unseal(key.digest, key.key, source), source
        except BaseException:
            source.close()
            raise

    def open(self, digest: str) -> BinaryIO:
        """Open the blob for streaming, decrypted reads (each chunk is authenticated).

        Raises:
            ArtifactNotFound: When no blob has this digest.
            MasterKeyMismatch: When the blob is wrapped under another master key.
        """
        key = self._key(digest)
        if key is None:
            return self.inner.open(digest)
        chunks, source = self._plain_chunks(key)
        return cast("BinaryIO", io.BufferedReader(_PlainReader(chunks, source), CHUNK_SIZE))

    def get_bytes(self, digest: str) -> bytes:
        """Return the blob's decrypted content, checked against its digest.

        Raises:
            ArtifactNotFound: When no blob has this digest.
            IntegrityFailure: When the ciphertext fails authentication or the digest check.
            MasterKeyMismatch: When the blob is wrapped under another master key.
        """
        key = self._key(digest)
        if key is None:
            return self.inner.get_bytes(digest)
        chunks, source = self._plain_chunks(key)
        with source:
            data = b"".join(chunks)
        if hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityFailure(f"blob {digest} in {self.url} decrypts to other content")
        return data

    def exists(self, digest: str) -> bool:
        """Tell whether a blob with this digest is stored (encrypted, or plaintext from before)."""
        try:
            key = self._key(digest)
        except ArtifactNotFound:
            return False
        return self.inner.exists(digest if key is None else key.cipher_digest)

    def size(self, digest: str) -> int:
        """Return the blob's plaintext size in bytes."""
        key = self._key(digest)
        if key is None:
            return self.inner.size(digest)
        if not self.inner.exists(key.cipher_digest):
            self._open_sealed(key)  # raises ArtifactNotFound with the reason
        return key.size_bytes

    def verify(self, digest: str) -> bool:
        """Decrypt, authenticate and re-hash the blob; False when it is corrupt.

        Raises:
            ArtifactNotFound: When no blob has this digest.
            MasterKeyMismatch: When the blob is wrapped under another master key (that is a
                configuration problem, not corruption).
        """
        key = self._key(digest)
        if key is None:
            return self.inner.verify(digest)
        chunks, source = self._plain_chunks(key)
        hasher = hashlib.sha256()
        with source:
            try:
                for chunk in chunks:
                    hasher.update(chunk)
            except IntegrityFailure:
                return False
        return hasher.hexdigest() == digest

    def delete(self, digest: str) -> None:
        """Remove a blob (its key row, then its ciphertext); a missing blob is a no-op."""
        removed = self.keys.delete(check_digest(digest))
        if removed is not None:
            self.inner.delete(removed.cipher_digest)
        elif not self.keys.is_ciphertext(digest):
            self.inner.delete(digest)

    def iter_digests(self) -> Iterator[str]:
        """Yield every blob's plaintext digest, sorted (ciphertexts in use are not blobs)."""
        in_use = self.keys.cipher_digests()
        legacy = (d for d in self.inner.iter_digests() if d not in in_use)
        yield from sorted({*self.keys.digests(), *legacy})

    # -- maintenance -------------------------------------------------------------------------

    def sweep_temp(self, older_than_s: float = 3600) -> int:
        """Remove the inner store's temp files left by crashed writers; return how many."""
        sweep = getattr(self.inner, "sweep_temp", None)
        if sweep is None:
            return 0
        with contextlib.suppress(NotImplementedError):
            return int(sweep(older_than_s))
        return 0
