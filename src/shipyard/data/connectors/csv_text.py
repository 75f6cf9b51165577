"""CSV bytes as UTF-8: the streaming decoder in front of both CSV parsers.

The bytes pass through ``Utf8Stream`` before parsing: ``utf8`` (a leading BOM is dropped) fails
on invalid UTF-8 with ``InvalidData`` naming the file and line and suggesting ``utf8-lossy``
(invalid bytes become U+FFFD) or ``latin1`` (transcoded); for plain ``utf8`` the Polars path
checks the bytes as it parses and the line is found when it refuses them (``lines_in``,
``invalid_utf8``). With ``comment_prefix``, lines starting with it are dropped before parsing
(even inside a quoted multi-line value). A last line without a line break reads as if it had
one.
"""

from __future__ import annotations

import codecs
import io
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import InvalidData, SourceUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from shipyard.data.connectors.base import CsvOptions

__all__ = ["Utf8Stream", "invalid_utf8", "lines_in", "open_file"]

_CHUNK = 1 << 20
_CODECS = {"utf8": ("utf-8-sig", "strict"), "utf8-lossy": ("utf-8-sig", "replace")}


class Utf8Stream(io.RawIOBase):
    """A binary file read as valid UTF-8, decoded and re-encoded one chunk at a time."""

    def __init__(
        self,
        raw: io.BufferedIOBase,
        path: Path,
        options: CsvOptions,
        chunk: int = _CHUNK,
        *,
        validate: bool = True,
    ) -> None:
        self._raw, self._path, self._options, self._chunk = raw, path, options, chunk
        self._validate = validate  # False: the consumer checks UTF-8 (only where passthrough)
        self._chunks = self._generate()
        self._buffer = memoryview(b"")

    def blocks(self) -> Iterator[bytes]:
        """The UTF-8 bytes in pieces of about ``chunk`` bytes (instead of ``read``)."""
        return self._chunks

    @property
    def passthrough(self) -> bool:
        """Whether the bytes are the file's own (UTF-8 without comment lines to drop)."""
        return self._options.encoding == "utf8" and self._options.comment_prefix is None

    def readable(self) -> bool:
        """Always: the stream is read, never written."""
        return True

    def readinto(self, target: Any) -> int:
        """Fill ``target`` with the next bytes; 0 at the end."""
        view = memoryview(target).cast("B")
        filled = 0
        while filled < len(view):
            if not self._buffer:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._buffer = memoryview(chunk)
            n = min(len(view) - filled, len(self._buffer))
            view[filled : filled + n] = self._buffer[:n]
            self._buffer = self._buffer[n:]
            filled += n
        return filled

    def _generate(self) -> Iterator[bytes]:
        """The bytes, always ending with a line break.

        Without one, pyarrow reads a last line ``"",`` as two empty texts; with it, as an empty
        text and a null (an unquoted empty field), like every other line and like Polars.
        """
        last = b"\n"
        for chunk in self._decoded():
            if chunk:
                last = chunk[-1:]
                yield chunk
        if last not in (b"\n", b"\r"):
            yield b"\n"

    def _decoded(self) -> Iterator[bytes]:
        codec, errors = _CODECS.get(self._options.encoding, ("latin-1", "strict"))
        decoder = codecs.getincrementaldecoder(codec)(errors)
        prefix = self._options.comment_prefix
        passthrough = self.passthrough
        if passthrough and not self._validate:
            while raw := self._raw.read(self._chunk):
                yield raw
            return
        consumed, carry = 0, ""
        while True:
            raw = self._raw.read(self._chunk)
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as e:
                line = lines_in(self._path, consumed) + e.object[: e.start].count(b"\n") + 1
                raise invalid_utf8(self._path, line) from None
            consumed += len(raw)
            if passthrough:  # valid UTF-8: hand pyarrow the bytes as they are
                if raw:
                    yield raw
            elif prefix is not None:
                lines = (carry + text).split("\n")
                carry = lines.pop() if raw else ""
                kept = [ln for ln in lines if not ln.startswith(prefix)]
                if kept:
                    yield ("\n".join(kept) + ("\n" if raw else "")).encode("utf-8")
            elif text:
                yield text.encode("utf-8")
            if not raw:
                return


def lines_in(path: Path, size: int) -> int:
    """The line breaks in the file's first ``size`` bytes (for an error message)."""
    count = 0
    with path.open("rb") as f:
        while size > 0 and (piece := f.read(min(size, _CHUNK))):
            count, size = count + piece.count(b"\n"), size - len(piece)
    return count


def invalid_utf8(path: Path, line: int) -> InvalidData:
    """The error for invalid UTF-8 at ``line`` of ``path``, naming the fix."""
    return InvalidData(
        f"{path}: invalid UTF-8 at line {line}; set csv.encoding to utf8-lossy (replace bad "
        "bytes) or latin1 (if the file is Latin-1)"
    )


def open_file(source: str, path: Path) -> io.BufferedReader:
    """Open ``path`` for reading bytes; ``SourceUnavailable`` naming the source if it cannot."""
    try:
        return path.open("rb")
    except OSError as e:
        raise SourceUnavailable(f"source {source!r}: cannot open {path}: {e}") from e
