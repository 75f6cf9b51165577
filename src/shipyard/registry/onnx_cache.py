"""Verified ONNX exports kept beside the workspace, keyed by the bundle's SHA-256.

Exporting a pipeline to ONNX and verifying it against the native model takes the whole training
stack (scikit-learn, skl2onnx, the boosting libraries) and a few seconds; a server that did it
at every start would spend most of its cold start there (issue #17). The first load that
exports and verifies a bundle keeps the result here; later loads of the same bundle (same
SHA-256, so the same model) reuse it and need only onnxruntime.

One entry per bundle: ``<sha256>.onnx`` (the graph) and ``<sha256>.json`` (the feature roles
the graph was built with, and the graph's own SHA-256). Both are written atomically (temp file,
rename), the JSON last, so a reader sees a whole entry or none; an entry whose graph does not
match its recorded SHA-256 (a torn or edited file) is ignored and rebuilt. The cache sits in the
workspace's state folder, which holds the embedded store itself: whoever can write it can
already change what is served, so it adds no new way in.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class CachedExport:
    """A verified export: the ONNX graph and the feature roles its inputs follow."""

    onnx: bytes
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]


class OnnxCache:
    """Verified ONNX exports in one folder, keyed by bundle SHA-256."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, bundle_sha256: str) -> CachedExport | None:
        """The cached export of this bundle, or None when there is no whole, intact entry."""
        if not _SHA256.match(bundle_sha256):
            return None
        try:
            meta = json.loads((self.directory / f"{bundle_sha256}.json").read_text("utf-8"))
            onnx = (self.directory / f"{bundle_sha256}.onnx").read_bytes()
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or hashlib.sha256(onnx).hexdigest() != meta.get("sha256"):
            return None
        numeric, categorical = meta.get("numeric"), meta.get("categorical")
        if not isinstance(numeric, list) or not isinstance(categorical, list):
            return None
        if not all(isinstance(n, str) for n in [*numeric, *categorical]):
            return None
        return CachedExport(onnx, tuple(numeric), tuple(categorical))

    def put(self, bundle_sha256: str, export: CachedExport) -> None:
        """Keep a verified export; a cache that cannot be written only costs the next start."""
        if not _SHA256.match(bundle_sha256):
            return
        meta = {
            "sha256": hashlib.sha256(export.onnx).hexdigest(),
            "numeric": list(export.numeric),
            "categorical": list(export.categorical),
        }
        with contextlib.suppress(OSError):
            self.directory.mkdir(parents=True, exist_ok=True)
            _write_atomically(self.directory / f"{bundle_sha256}.onnx", export.onnx)
            _write_atomically(
                self.directory / f"{bundle_sha256}.json", json.dumps(meta).encode("utf-8")
            )


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
