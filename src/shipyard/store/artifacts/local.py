"""A content-addressed blob store on the local filesystem.

Layout under the root::

    blobs/sha256/<first 2 hex>/<remaining 62 hex>   one file per blob, never rewritten
    tmp/<random>.tmp                                 writes in progress (or left by a crash)

Writes follow the durability protocol of RELIABILITY.md lesson 5: stream into a temp file while
hashing, ``flush`` + ``fsync``, hard-link the temp file to its final name (so an existing blob is
never overwritten), unlink the temp file, then ``fsync`` the directory. An ``fsync`` error is
fatal for that write: the error propagates, the temp file is removed and nothing is retried on
the same descriptor. A writer killed mid-way leaves at most a temp file, never a partial blob;
``sweep_temp`` removes those.

Reads open every path component with ``O_NOFOLLOW``: a symlink planted inside the store (lesson
1) is refused with ``IntegrityFailure`` instead of being followed out of the root.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from shipyard.core import faults
from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import ArtifactNotFound, IntegrityFailure, InvalidArgument
from shipyard.core.ids import CHUNK_SIZE, is_sha256_hex
from shipyard.store.artifacts.base import BlobInfo

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK keeps a FIFO planted at a blob path from blocking the open; regular files ignore it.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS}


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is 64 lowercase hex characters.

    Raises:
        InvalidArgument: For anything else, before it can become part of a path.
    """
    if not isinstance(digest, str) or not is_sha256_hex(digest):
        shown = repr(digest)[:80]
        raise InvalidArgument(
            f"invalid blob digest {shown}: expected 64 lowercase hexadecimal characters (SHA-256)"
        )
    return digest


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, _DIR_FLAGS)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_SIZE):
        yield chunk


class LocalBlobStore:
    """``BlobStore`` on a local directory; created on first write.

    Attributes:
        url: ``file://`` URL of the absolute root.
        root: Absolute root directory.
    """

    def __init__(self, root: Path | str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.root = Path(os.path.abspath(root))
        self.url = self.root.as_uri()
        self._blobs = self.root / "blobs" / "sha256"
        self._tmp = self.root / "tmp"
        self._clock = clock

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    # -- writing -----------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> BlobInfo:
        """Store ``data`` atomically and return its digest; storing twice is a no-op."""
        view = memoryview(data)
        return self._write(view[i : i + CHUNK_SIZE] for i in range(0, len(view), CHUNK_SIZE))

    def put_file(self, path: Path, *, scratch: bool = False) -> BlobInfo:
        """Stream the file at ``path`` into the store in ``CHUNK_SIZE`` pieces.

        With ``scratch`` (the caller has no further use for the file) a file on the store's
        filesystem is taken over instead: renamed into the store's temp folder, hashed, fsynced
        and installed like a written one, so storing a run's output costs one read instead of a
        read and a write (issue 17). The file is then gone; on another filesystem it is copied.
        """
        if scratch:
            taken = self._take(path)
            if taken is not None:
                return taken
        with open(path, "rb") as source:
            return self._write(_read_chunks(source))

    def _take(self, path: Path) -> BlobInfo | None:
        """Move ``path`` into the store; None (nothing moved) when it is on another filesystem."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"{uuid.uuid4().hex}.tmp"
        try:
            os.replace(path, tmp)  # from here the file is the store's: no one else writes it
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                return None
            raise
        try:
            with open(tmp, "rb") as taken:
                digest = hashlib.file_digest(taken, "sha256").hexdigest()
                size = os.fstat(taken.fileno()).st_size
                os.fsync(taken.fileno())
            os.chmod(tmp, 0o644)
            faults.hit("artifact.after_tmp_write")
            created = self._install(tmp, digest)
            return BlobInfo(digest=digest, size_bytes=size, created=created)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _write(self, chunks: Iterable[bytes | memoryview]) -> BlobInfo:
        self._tmp.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"{uuid.uuid4().hex}.tmp"
        try:
            digest, size = self._write_tmp(tmp, chunks)
            faults.hit("artifact.after_tmp_write")
            created = self._install(tmp, digest)
            return BlobInfo(digest=digest, size_bytes=size, created=created)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    @staticmethod
    def _write_tmp(tmp: Path, chunks: Iterable[bytes | memoryview]) -> tuple[str, int]:
        hasher = hashlib.sha256()
        size = 0
        with open(os.open(tmp, _TMP_FLAGS, 0o644), "wb", closefd=True) as out:
            for chunk in chunks:
                hasher.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        return hasher.hexdigest(), size

    def _install(self, tmp: Path, digest: str) -> bool:
        """Move the fsynced temp file to the blob path; False when the blob was already there."""
        final = self._path(digest)
        if final.parent.is_symlink():
            raise IntegrityFailure(
                f"shard directory {final.parent} in {self.url} is a symlink; refusing to write"
            )
        try:
            if stat.S_ISREG(os.lstat(final).st_mode):
                return False  # content-addressed: the same digest is the same bytes
        except FileNotFoundError:
            pass
        shard_is_new = not final.parent.is_dir()
        final.parent.mkdir(parents=True, exist_ok=True)
        created = True
        try:
            os.link(tmp, final)  # fails instead of overwriting
            os.unlink(tmp)
        except FileExistsError:
            # A concurrent writer won the race (same bytes), or something that is not a regular
            # file squats on the path: replacing swaps the directory entry, never a link target.
            created = not stat.S_ISREG(os.lstat(final).st_mode)
            if created:
                os.replace(tmp, final)
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            os.replace(tmp, final)  # filesystems without hard links
        faults.hit("artifact.after_rename")
        _fsync_dir(final.parent)
        if shard_is_new:
            _fsync_dir(self._blobs)
        return created

    # -- reading -----------------------------------------------------------------------------

    def _path(self, digest: str) -> Path:
        check_digest(digest)
        return self._blobs / digest[:2] / digest[2:]

    def local_path(self, digest: str) -> Path:
        """Return the file of a stored blob, for readers that scan files in place (Parquet).

        The blob is opened first without following symlinks, so a missing, planted or
        non-regular file is refused before its path is handed out.

        Raises:
            ArtifactNotFound: When no blob has this digest.
            IntegrityFailure: When the blob path is a symlink or not a regular file.
        """
        os.close(self._open_fd(digest))
        return self._path(digest)

    def _open_fd(self, digest: str) -> int:
        """Open the blob read-only without following any symlink below the root."""
        self._path(digest)
        fd = -1
        try:
            fd = os.open(self._blobs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            parent, fd = fd, os.open(digest[:2], _DIR_FLAGS, dir_fd=fd)
            os.close(parent)
            blob = os.open(digest[2:], _READ_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            raise ArtifactNotFound(f"no blob with digest {digest} in {self.url}") from None
        except OSError as exc:
            if exc.errno in {errno.ELOOP, errno.ENOTDIR}:
                raise IntegrityFailure(
                    f"blob {digest} in {self.url} is reached through a symlink; refusing to read"
                ) from exc
            raise
        finally:
            if fd >= 0:
                os.close(fd)
        if not stat.S_ISREG(os.fstat(blob).st_mode):
            os.close(blob)
            raise IntegrityFailure(f"blob {digest} in {self.url} is not a regular file")
        os.set_blocking(blob, True)
        return blob

    def open(self, digest: str) -> BinaryIO:
        """Open the blob for streaming reads (no digest check; use ``verify``).

        Raises:
            ArtifactNotFound: When no blob has this digest.
            IntegrityFailure: When the blob path is a symlink or not a regular file.
        """
        return cast("BinaryIO", open(self._open_fd(digest), "rb"))

    def get_bytes(self, digest: str) -> bytes:
        """Return the blob's content, checking it against its digest.

        Raises:
            ArtifactNotFound: When no blob has this digest.
            IntegrityFailure: When the content no longer matches the digest.
        """
        with self.open(digest) as stream:
            data = stream.read()
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise IntegrityFailure(
                f"blob {digest} in {self.url} is corrupt: its content hashes to {actual}"
            )
        return data

    def exists(self, digest: str) -> bool:
        """Tell whether a blob with this digest is stored (as a regular file)."""
        try:
            return stat.S_ISREG(os.lstat(self._path(digest)).st_mode)
        except FileNotFoundError:
            return False

    def size(self, digest: str) -> int:
        """Return the stored blob's size in bytes."""
        fd = self._open_fd(digest)
        try:
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def verify(self, digest: str) -> bool:
        """Re-hash the stored blob; False when it is corrupt or reached through a symlink.

        Raises:
            ArtifactNotFound: When no blob has this digest.
        """
        try:
            stream = self.open(digest)
        except IntegrityFailure:
            return False
        with stream:
            hasher = hashlib.sha256()
            for chunk in _read_chunks(stream):
                hasher.update(chunk)
        return hasher.hexdigest() == digest

    def delete(self, digest: str) -> None:
        """Remove a blob; deleting a missing blob is a no-op."""
        path = self._path(digest)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    def iter_digests(self) -> Iterator[str]:
        """Yield the digest of every stored blob, in sorted order."""
        try:
            shards = sorted(
                e.name for e in os.scandir(self._blobs) if e.is_dir(follow_symlinks=False)
            )
        except FileNotFoundError:
            return
        for shard in shards:
            with os.scandir(self._blobs / shard) as entries:
                names = sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
            for name in names:
                if is_sha256_hex(shard + name):
                    yield shard + name

    # -- maintenance -------------------------------------------------------------------------

    def sweep_temp(self, older_than_s: float = 3600) -> int:
        """Remove temp files left by crashed writers; return how many were removed.

        Args:
            older_than_s: Only files last modified at least this many seconds ago are removed,
                so writes in progress survive. ``0`` removes every temp file.

        Raises:
            InvalidArgument: When ``older_than_s`` is negative.
        """
        if older_than_s < 0:
            raise InvalidArgument(f"older_than_s must be >= 0, got {older_than_s}")
        cutoff = self._clock.now_ms() / 1000 - older_than_s
        removed = 0
        try:
            entries = list(os.scandir(self._tmp))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.stat(follow_symlinks=False).st_mtime <= cutoff:
                    os.unlink(entry.path)
                    removed += 1
        return removed
