"""A content-addressed blob store over any fsspec filesystem (``memory://``, ``s3://``, ...).

The layout matches ``LocalBlobStore`` under the URL's path: ``blobs/sha256/<2 hex>/<62 hex>``
and ``tmp/<uuid>``.

How a blob becomes visible atomically depends on the filesystem:

* Object stores (S3, GCS, Azure, ...) have no rename, but a single PUT is atomic: readers see the
  old state or the whole object, never a prefix. ``put_bytes`` knows the digest before uploading,
  so it PUTs straight to the final key with ``fs.pipe_file``. ``put_file`` cannot know the digest
  before reading the whole stream, so it streams into ``tmp/<uuid>`` while hashing and then
  ``fs.mv``-s it; on an object store that is a server-side copy (atomic at the destination) plus
  a delete of the temp object.
* Every other filesystem (``memory://``, SFTP, HDFS, ...) writes to ``tmp/<uuid>`` and then
  ``fs.mv``-s into place. fsspec does not fsync, so local directories should use
  ``LocalBlobStore`` (which ``open_blob_store`` picks for ``file://`` and plain paths).

A writer that dies mid-way leaves at most a temp object, which ``sweep_temp`` removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from fsspec.core import url_to_fs

from shipyard.core import faults
from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import ArtifactNotFound, IntegrityFailure, InvalidArgument
from shipyard.core.ids import CHUNK_SIZE, is_sha256_hex
from shipyard.store.artifacts.base import BlobInfo
from shipyard.store.artifacts.local import check_digest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_TMP_DIR = "tmp"

#: Protocols where a single PUT is atomic but there is no atomic rename.
OBJECT_STORE_PROTOCOLS = frozenset(
    {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "r2", "b2", "wasb", "wasbs"}
)


class FsspecBlobStore:
    """``BlobStore`` over the fsspec filesystem named by ``url``.

    Attributes:
        url: The store's canonical URL (``memory:///tests/store``, ``s3://bucket/prefix``).
    """

    def __init__(
        self,
        url: str,
        *,
        object_store: bool | None = None,
        clock: Clock = SYSTEM_CLOCK,
        **storage_options: Any,
    ) -> None:
        """Open the store; nothing is created until the first write.

        Args:
            url: An fsspec URL such as ``"memory://tests/store"`` or ``"s3://bucket/prefix"``.
            object_store: Whether the filesystem is an object store (single atomic PUTs, no
                rename or directories); ``None`` decides from ``OBJECT_STORE_PROTOCOLS``.
            clock: Time source for ``sweep_temp``.
            **storage_options: Passed to the filesystem (credentials, endpoint, ...).

        Raises:
            InvalidArgument: When fsspec does not know the protocol or its driver is missing.
        """
        try:
            self._fs, path = url_to_fs(url, **storage_options)
        except (ValueError, ImportError) as exc:
            raise InvalidArgument(f"cannot open blob store {url!r}: {exc}") from exc
        self._root = str(path).rstrip("/")
        self.url = str(self._fs.unstrip_protocol(self._root))
        self._blobs = f"{self._root}/blobs/sha256"
        self._tmp = f"{self._root}/{_TMP_DIR}"
        protocols = self._fs.protocol
        protocols = {protocols} if isinstance(protocols, str) else set(protocols)
        detected = bool(protocols & OBJECT_STORE_PROTOCOLS)
        self._object_store = detected if object_store is None else object_store
        self._clock = clock

    def __repr__(self) -> str:
        return f"FsspecBlobStore({self.url!r})"

    def _path(self, digest: str) -> str:
        check_digest(digest)
        return f"{self._blobs}/{digest[:2]}/{digest[2:]}"

    def _not_found(self, digest: str) -> ArtifactNotFound:
        return ArtifactNotFound(f"no blob with digest {digest} in {self.url}")

    # -- writing -----------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> BlobInfo:
        """Store ``data`` atomically and return its digest; storing twice is a no-op."""
        if not self._object_store:
            return self._put_stream(
                data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)
            )
        digest = hashlib.sha256(data).hexdigest()
        final = self._path(digest)
        faults.hit("artifact.after_tmp_write")
        if self._fs.isfile(final):
            return BlobInfo(digest=digest, size_bytes=len(data), created=False)
        self._fs.pipe_file(final, bytes(data))  # one PUT: atomic on object stores
        faults.hit("artifact.after_rename")
        return BlobInfo(digest=digest, size_bytes=len(data), created=True)

    def put_file(self, path: Path, *, scratch: bool = False) -> BlobInfo:
        """Stream the file at ``path`` into the store in ``CHUNK_SIZE`` pieces.

        ``scratch`` changes nothing: a remote store cannot take over a local file.
        """
        with open(path, "rb") as source:
            return self._put_stream(iter(lambda: source.read(CHUNK_SIZE), b""))

    def _put_stream(self, chunks: Iterator[bytes]) -> BlobInfo:
        tmp = f"{self._tmp}/{uuid.uuid4().hex}"
        if not self._object_store:  # object stores have no directories (s3fs would make buckets)
            self._fs.makedirs(self._tmp, exist_ok=True)
        try:
            hasher = hashlib.sha256()
            size = 0
            with self._fs.open(tmp, "wb") as out:
                for chunk in chunks:
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            faults.hit("artifact.after_tmp_write")
            digest = hasher.hexdigest()
            final = self._path(digest)
            if self._fs.isfile(final):
                return BlobInfo(digest=digest, size_bytes=size, created=False)
            if not self._object_store:
                self._fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            self._fs.mv(tmp, final)
            faults.hit("artifact.after_rename")
            return BlobInfo(digest=digest, size_bytes=size, created=True)
        finally:
            with contextlib.suppress(FileNotFoundError):
                self._fs.rm_file(tmp)

    # -- reading -----------------------------------------------------------------------------

    def open(self, digest: str) -> BinaryIO:
        """Open the blob for streaming reads (no digest check; use ``verify``).

        Raises:
            ArtifactNotFound: When no blob has this digest.
        """
        path = self._path(digest)
        try:
            return cast("BinaryIO", self._fs.open(path, "rb"))
        except FileNotFoundError:
            raise self._not_found(digest) from None

    def get_bytes(self, digest: str) -> bytes:
        """Return the blob's content, checking it against its digest.

        Raises:
            ArtifactNotFound: When no blob has this digest.
            IntegrityFailure: When the content no longer matches the digest.
        """
        path = self._path(digest)
        try:
            data = bytes(self._fs.cat_file(path))
        except FileNotFoundError:
            raise self._not_found(digest) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise IntegrityFailure(
                f"blob {digest} in {self.url} is corrupt: its content hashes to {actual}"
            )
        return data

    def exists(self, digest: str) -> bool:
        """Tell whether a blob with this digest is stored."""
        return bool(self._fs.isfile(self._path(digest)))

    def size(self, digest: str) -> int:
        """Return the stored blob's size in bytes."""
        path = self._path(digest)
        try:
            return int(self._fs.size(path))
        except FileNotFoundError:
            raise self._not_found(digest) from None

    def verify(self, digest: str) -> bool:
        """Re-hash the stored blob and tell whether it still matches its digest.

        Raises:
            ArtifactNotFound: When no blob has this digest.
        """
        hasher = hashlib.sha256()
        with self.open(digest) as stream:
            while chunk := stream.read(CHUNK_SIZE):
                hasher.update(chunk)
        return hasher.hexdigest() == digest

    def delete(self, digest: str) -> None:
        """Remove a blob; deleting a missing blob is a no-op."""
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(self._path(digest))

    def iter_digests(self) -> Iterator[str]:
        """Yield the digest of every stored blob, in sorted order."""
        prefix = self._blobs + "/"  # find() returns paths without the protocol, like _blobs
        try:
            found = self._fs.find(self._blobs)
        except FileNotFoundError:
            return
        for full in sorted(found):
            rel = str(full)[len(prefix) :] if str(full).startswith(prefix) else ""
            shard, _, rest = rel.partition("/")
            if len(shard) == 2 and is_sha256_hex(shard + rest):
                yield shard + rest

    # -- maintenance -------------------------------------------------------------------------

    def sweep_temp(self, older_than_s: float = 3600) -> int:
        """Remove temp objects left by crashed writers; return how many were removed.

        Objects whose modification time the filesystem cannot report are removed only when
        ``older_than_s`` is 0.

        Raises:
            InvalidArgument: When ``older_than_s`` is negative.
        """
        if older_than_s < 0:
            raise InvalidArgument(f"older_than_s must be >= 0, got {older_than_s}")
        cutoff = self._clock.now_ms() / 1000 - older_than_s
        try:
            found = self._fs.find(self._tmp)
        except FileNotFoundError:
            return 0
        removed = 0
        for path in found:
            try:
                modified: datetime = self._fs.modified(path)
                if modified.tzinfo is None:
                    modified = modified.replace(tzinfo=UTC)
                stale = modified.timestamp() <= cutoff
            except NotImplementedError:
                stale = older_than_s == 0
            except FileNotFoundError:
                continue
            if stale:
                with contextlib.suppress(FileNotFoundError):
                    self._fs.rm_file(path)
                    removed += 1
        return removed
