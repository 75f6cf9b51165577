"""Artifact storage: content-addressed blobs, and validated logical names that point at them.

``open_blob_store`` picks a backend from a URL or path: plain paths and ``file://`` URLs get
``LocalBlobStore`` (fsync-durable), any other fsspec URL (``memory://``, ``s3://``, ...) gets
``FsspecBlobStore``. Backends are imported lazily, so importing this package does not import
fsspec.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from shipyard.core.errors import InvalidArgument
from shipyard.store.artifacts.base import BlobInfo, BlobStore
from shipyard.store.artifacts.names import safe_destination, validate_artifact_name

__all__ = [
    "REFUSED_SCHEMES",
    "BlobInfo",
    "BlobStore",
    "open_blob_store",
    "safe_destination",
    "validate_artifact_name",
]

#: Schemes that can fetch but never hold a blob root; refusing them keeps a misconfigured root
#: from turning the store into an SSRF client (RELIABILITY.md lesson 4).
REFUSED_SCHEMES = frozenset({"http", "https", "gopher", "dict", "ftp", "ftps"})

# Two or more characters, so that a Windows drive letter ("C:\\x") is not mistaken for a scheme.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def _local_path_from_file_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.netloc not in {"", "localhost"}:
        raise InvalidArgument(
            f"file URL {url!r} names host {parts.netloc!r}; only local file:///abs/path is allowed"
        )
    if parts.query or parts.fragment or not parts.path.startswith("/"):
        raise InvalidArgument(
            f"file URL {url!r} must be an absolute path with no query or fragment"
        )
    return _url2pathname(parts.path)


def _url2pathname(path: str) -> str:
    """``urllib.request.url2pathname``, which on POSIX is ``unquote``.

    Importing ``urllib.request`` loads ``http.client`` and ``email`` (~7 ms), for every command
    that opens a workspace (issue #17); only Windows needs its drive-letter handling.
    """
    if os.name == "nt":
        from urllib.request import url2pathname

        return url2pathname(path)
    return unquote(path)


def open_blob_store(url_or_path: str | Path) -> BlobStore:
    """Open the blob store at a local path or fsspec URL.

    Args:
        url_or_path: A path (``Path`` or a string without a scheme), a ``file://`` URL, or any
            other fsspec URL such as ``memory://name`` or ``s3://bucket/prefix``.

    Returns:
        A ``LocalBlobStore`` for paths and ``file://`` URLs, otherwise a ``FsspecBlobStore``.

    Raises:
        InvalidArgument: For an empty string, a scheme in ``REFUSED_SCHEMES`` (``http``, ...), a
            ``file://`` URL with a host, query or fragment, or a protocol fsspec cannot open.
    """
    if isinstance(url_or_path, os.PathLike):
        from shipyard.store.artifacts.local import LocalBlobStore

        return LocalBlobStore(Path(url_or_path))
    if not isinstance(url_or_path, str) or not url_or_path.strip():
        raise InvalidArgument(
            f"blob store location must be a non-empty path or URL: {url_or_path!r}"
        )
    match = _SCHEME.match(url_or_path)
    scheme = match.group(1).lower() if match else ""
    if scheme in REFUSED_SCHEMES:
        raise InvalidArgument(
            f"{scheme}:// cannot be a blob store root ({url_or_path!r}); use a local path, "
            "file://, s3:// or another fsspec storage URL"
        )
    if scheme in {"", "file", "local"}:
        from shipyard.store.artifacts.local import LocalBlobStore

        path = _local_path_from_file_url(url_or_path) if scheme else url_or_path
        return LocalBlobStore(path)
    from shipyard.store.artifacts.fsspec_store import FsspecBlobStore

    return FsspecBlobStore(url_or_path)
