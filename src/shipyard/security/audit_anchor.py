"""The audit anchor: the chain's head, kept in a small file outside the database.

A hash chain cannot show that its newest entries were cut off, or that the whole log was
deleted: nothing comes after them. The anchor can. It holds the ``seq`` and keyed hash of an
entry the log reached, and the id of the key that sealed it; ``shipyard audit verify`` checks
that the log still holds that entry unchanged. Someone who can rewrite the database but not this
file (put it on another volume, an append-only mount, or ship its log line elsewhere) can
neither shorten the log nor re-seal it without being caught.

The file is replaced atomically (temp file, ``fsync``, rename, ``fsync`` of the folder, as in
``store/artifacts/local.py``): a crash leaves the old anchor or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipyard.core.errors import IntegrityFailure, Unavailable

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["ANCHOR_FORMAT", "Anchor", "AnchorFile"]

ANCHOR_FORMAT = 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MAX_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Anchor:
    """An entry the log is known to have reached.

    Attributes:
        seq: The entry's number.
        head_hash: Its stored hash (an HMAC for keyed entries).
        key_id: The audit key that sealed it (None for a pre-HMAC entry or a hand-kept anchor).
        written_ms: When the anchor was written (0 when unknown).
    """

    seq: int
    head_hash: str
    key_id: str | None = None
    written_ms: int = 0

    def to_json(self) -> str:
        """The file's text."""
        return json.dumps(
            {
                "format": ANCHOR_FORMAT,
                "head_seq": self.seq,
                "head_hash": self.head_hash,
                "key_id": self.key_id,
                "written_ms": self.written_ms,
            },
            sort_keys=True,
        )


class AnchorFile:
    """The anchor file at ``path``: read it, replace it atomically.

    Attributes:
        path: Where the anchor lives.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Anchor | None:
        """Return the anchor, or None when there is no file.

        Raises:
            IntegrityFailure: The file is not an anchor (damaged or tampered with).
        """
        try:
            with open(self.path, "rb") as handle:
                data = handle.read(_MAX_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise Unavailable(f"cannot read the audit anchor {self.path}: {e.strerror}") from e
        try:
            doc = json.loads(data.decode("utf-8")) if len(data) <= _MAX_BYTES else None
            if not isinstance(doc, dict) or doc.get("format") != ANCHOR_FORMAT:
                raise ValueError("not an anchor document")
            seq, head, key_id, written = (
                doc["head_seq"],
                doc["head_hash"],
                doc.get("key_id"),
                doc.get("written_ms", 0),
            )
            if not (isinstance(seq, int) and seq >= 0 and isinstance(head, str)):
                raise ValueError("bad head")
            if not _HEX64.match(head) or not (key_id is None or isinstance(key_id, str)):
                raise ValueError("bad hash or key id")
        except (ValueError, KeyError, UnicodeDecodeError) as e:
            raise IntegrityFailure(
                f"the audit anchor {self.path} is not a valid anchor (damaged or edited); keep "
                "it for investigation, then move it away and run `shipyard audit anchor`"
            ) from e
        return Anchor(seq, head, key_id, int(written) if isinstance(written, int) else 0)

    def write(self, anchor: Anchor) -> None:
        """Replace the anchor atomically and durably.

        Raises:
            Unavailable: The file or its folder cannot be written (the message names it).
        """
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".anchor-", dir=folder)
            try:
                with open(fd, "w", encoding="utf-8") as handle:
                    handle.write(anchor.to_json() + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
            dir_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as e:
            raise Unavailable(
                f"cannot write the audit anchor {self.path} ({e.strerror}); the change itself "
                "was recorded: fix the folder's permissions or set audit.anchor_file"
            ) from e
