"""CSV physical lines: seal lines whose quote is left open, and count the lines read.

Unless ``newlines_in_values: true``, a record is one line, so a quote still open at the end of
a line is an error *of that line*. pyarrow's parser does not know that: it runs on to the next
quote, and every valid line in between vanished into one rejected record (issue 16). In front
of pyarrow, ``SealedLines`` replaces such a line with a marker that cannot parse (a field count
that never matches), so pyarrow rejects that line alone and parses the lines after it;
``FileReader.skip`` swaps the marker back for the line's own text and the reason
``malformed_line: a quoted value spans lines, starting at line N``.

``SealedLines`` also counts the data lines it passes on (non-blank lines after the skipped
rows and the header; comment lines are dropped before it sees them), independently of the
parser, so that the connector can check ``lines read = rows + rejected records``. Line
numbers count the file's lines as read (1 = the first line; with ``comment_prefix`` the
dropped comment lines are not counted).
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from shipyard.data.connectors.base import CsvOptions

__all__ = ["SealedLines", "open_quote", "spans_reason"]

_MARK_CHARS = frozenset("\x02\x03SHIPYARD-OPEN-QUOTE0123456789")
_LINE_END = re.compile(rb"\r\n|\r|\n")


def spans_reason(line: int) -> str:
    """The reason a line with an unclosed quote is rejected."""
    return (
        f"malformed_line: a quoted value spans lines, starting at line {line} (its quote is "
        "not closed on that line; check the quoting, or set csv.newlines_in_values: true)"
    )


def open_quote(line: str, delimiter: str, quote: str) -> bool:
    """Whether ``line`` ends inside a quoted field, as pyarrow parses quotes.

    A quote opens a field only at its start; inside, a doubled quote is a literal quote and a
    single one closes the field (what follows up to the delimiter is kept as text).
    """
    pos, end = 0, len(line)
    while pos <= end:
        if pos < end and line[pos] == quote:
            scan = pos + 1
            while True:
                close = line.find(quote, scan)
                if close < 0:
                    return True
                if close + 1 < end and line[close + 1] == quote:
                    scan = close + 2
                    continue
                break
            pos = close + 1
        nxt = line.find(delimiter, pos)
        if nxt < 0:
            return False
        pos = nxt + 1
    return False


class SealedLines(io.RawIOBase):
    """The bytes of a CSV stream with open-quote lines sealed, and its data lines counted.

    Args:
        chunks: The file's UTF-8 bytes in pieces (``Utf8Stream.blocks()``).
        options: The source's CSV options.
        columns: How many fields a record has (the marker must not have as many).
        preamble: Lines before the data that are neither counted nor sealed (skipped rows and,
            with a header, the header; blank lines before the header are skipped too).
    """

    def __init__(
        self, chunks: Iterator[bytes], options: CsvOptions, *, columns: int, preamble: int
    ) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")
        quote, delimiter = options.quote_char, options.delimiter
        self._seal = (
            quote is not None
            and not options.newlines_in_values
            and not ({quote, delimiter} & _MARK_CHARS)
        )
        self._quote, self._delimiter, self._columns = quote or "", delimiter, columns
        self._header_left = preamble  # lines still to pass before the data
        self._header_blank = options.has_header  # blank lines before a header are skipped
        self._skip_left = options.skip_rows + (
            1 if options.has_header and options.column_names else 0
        )
        self.line = 0  # physical lines seen so far
        self.data_lines = 0  # non-blank data lines passed on
        #: marker text -> (line number, the line's own text)
        self.sealed: dict[str, tuple[int, str]] = {}
        self._lines = self._generate()

    def readable(self) -> bool:
        """Always: the stream is read, never written."""
        return True

    def readinto(self, target: Any) -> int:
        """Fill ``target`` with the next bytes; 0 at the end."""
        view = memoryview(target).cast("B")
        filled = 0
        while filled < len(view):
            if not self._buffer:
                chunk = next(self._lines, None)
                if chunk is None:
                    break
                self._buffer = memoryview(chunk)
            n = min(len(view) - filled, len(self._buffer))
            view[filled : filled + n] = self._buffer[:n]
            self._buffer = self._buffer[n:]
            filled += n
        return filled

    def _generate(self) -> Iterator[bytes]:
        carry = b""
        for chunk in self._chunks:
            data = carry + chunk
            cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
            if cut == len(data) and data.endswith(b"\r"):
                cut -= 1  # a CR may be half of a CRLF: wait for the next piece
            carry, whole = data[cut:], data[:cut]
            if whole:
                yield self._process(whole)
        if carry:
            yield self._process(carry)

    def _process(self, block: bytes) -> bytes:
        """Count (and, where needed, seal) the whole lines of ``block``."""
        quoted = self._seal and self._quote.encode() in block
        if not quoted and not self._header_left and not self._skip_left:
            # The common case: count lines with bytes operations, change nothing.
            lines = _LINE_END.split(block)
            if not lines[-1]:
                lines.pop()  # the block ends with a line end
            self.line += len(lines)
            self.data_lines += len(lines) - lines.count(b"")
            return block
        out: list[bytes] = []
        pos = 0
        for match in [*_LINE_END.finditer(block), None]:
            stop = len(block) if match is None else match.start()
            if match is None and stop == pos:
                break
            text = block[pos:stop]
            ending = b"" if match is None else match.group()
            pos = stop + len(ending)
            out.append(self._one(text) + ending)
        return b"".join(out)

    def _one(self, text: bytes) -> bytes:
        """One line: preamble, blank, or data (sealed when its quote is left open)."""
        self.line += 1
        if self._skip_left:
            self._skip_left -= 1
            return text
        if self._header_left:
            if text or not self._header_blank:
                self._header_left -= 1
            return text
        if not text:
            return text
        self.data_lines += 1
        if not self._seal or self._quote.encode() not in text:
            return text
        line = text.decode("utf-8")
        if not open_quote(line, self._delimiter, self._quote):
            return text
        mark = f"\x02SHIPYARD-OPEN-QUOTE-{len(self.sealed)}\x03"
        if self._columns == 1:
            mark = f"{mark}{self._delimiter}{mark}"
        self.sealed[mark] = (self.line, line)
        return mark.encode()
