"""CSV files and globs of CSV files, streamed, with malformed lines kept aside.

A scan is a Polars IO source that reads a file block by block (``4 x block_size_bytes`` of
whole lines at a time), so files larger than memory stream into ``sink_parquet``. Every column
is String unless ``csv.columns`` types it; typing is harmonization's job. Two parsers share the
work and give the same rows, record numbers and rejected records:

- **Polars** (multi-threaded) parses a block when its lines are plain records: no quote, or
  quotes that enclose whole fields within the line; no lone CR. It first checks that cheaply
  (without quotes: counts of line ends and delimiters, and Polars refusing a line with too many
  fields; with quotes: a regex per line). Lines with the wrong number of fields (and no quote)
  are rejected, the rest parsed.
- **pyarrow**'s streaming reader (``pyarrow.csv.open_csv``, single-threaded so that it numbers
  records) takes over from the first block that is not plain (broken quoting, a value spanning
  lines, a lone CR, a quoted null value such as ``"NA"``), and for the whole file when the lines
  up to the header are not plain. It reads the file from the start and skips the records
  already produced, so it costs a second read of those.

**Rejected records.** Nothing is silently dropped. A record that cannot become a row is left out
of the scan and listed by ``connector.rejected()`` (after the scan was collected), with
``_source``, ``_file``, ``_row`` (the record number it would have had), ``_line`` (its raw text,
at most 10 kB) and ``_failed_checks``:

- ``malformed_line: expected N fields, found M`` — wrong field count, including broken quoting
  (pyarrow's ``invalid_row_handler``; an unclosed quote runs on to the next quote, so the lines
  it swallowed are part of that one rejected record's text);
- ``malformed_line: a quoted value spans lines`` — unless ``newlines_in_values: true``, a value
  with a line break means a quote was left open (it swallowed the lines up to the next quote);
- ``nul_byte: column 'c'`` — a NUL character in a field;
- ``invalid_value: column 'c' is not <type>`` — a value that does not parse as its ``columns`` type.

For the last three, ``_line`` is rebuilt from the parsed fields. ``_row`` counts data records
(after ``skip_rows`` and the header; blank lines do not count), good and rejected alike, so
``rows scanned + rows rejected`` = records in the file.

**Memory.** The Polars path holds a block, its parsed rows and a few copies: about 60 MB with
the default ``block_size_bytes`` (1 MiB), plus the batches the consumer holds; a line longer
than a block makes that block longer. pyarrow parses one block at a time and reads up to 32
blocks ahead, so memory is about ``33 x block_size_bytes``. A record longer than a block makes
pyarrow fail; the file is then read again with blocks 16 times larger (up to 256 MiB), resuming
after the rows already produced, so a 10 MB field just works.

**Encodings.** The bytes pass through a streaming decoder before parsing: ``utf8`` (a leading
BOM is dropped) fails on invalid UTF-8 with ``InvalidData`` naming the file and line and
suggesting ``utf8-lossy`` (invalid bytes become U+FFFD) or ``latin1`` (transcoded); for plain
``utf8`` Polars checks the bytes as it parses and the line is found when it refuses them. With
``comment_prefix``, lines starting with it are dropped before parsing (even inside a quoted
multi-line value). A last line without a line break reads as if it had one. Spreadsheet
formulas (``=SUM(A1)``, ``@x``) are data and are kept verbatim.
"""

from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from shipyard.core.errors import InvalidData, SourceUnavailable
from shipyard.data.connectors.base import (
    ROW,
    SOURCE,
    ConnectorBase,
    CsvOptions,
    lazy_from_batches,
    rejected_frame,
    resolve_files,
    since_filter,
    truncate_line,
)
from shipyard.data.dtypes import to_polars

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator
    from pathlib import Path

    from shipyard.data.connectors.base import SourceSpec

__all__ = ["CsvConnector", "CsvOptions"]

_CHUNK = 1 << 20
MAX_BLOCK = 256 << 20
FAST_BLOCKS = 4  # the Polars path reads 4 x block_size_bytes at a time
_BOM = b"\xef\xbb\xbf"
# Polars decompresses bytes that start like gzip, zlib, zstd or lz4 data; such text goes to pyarrow
_MAGIC = (b"\x1f\x8b", b"x\x01", b"x^", b"x\x9c", b"x\xda", b"(\xb5/\xfd", b'\x04"M\x18')
_CODECS = {"utf8": ("utf-8-sig", "strict"), "utf8-lossy": ("utf-8-sig", "replace")}
_Rejected = tuple[str, str, int, str, list[str]]


class _Utf8Stream(io.RawIOBase):
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
        return True

    def readinto(self, target: Any) -> int:
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
                line = _lines_in(self._path, consumed) + e.object[: e.start].count(b"\n") + 1
                raise _invalid_utf8(self._path, line) from None
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


def _lines_in(path: Path, size: int) -> int:
    """The line breaks in the file's first ``size`` bytes (for an error message)."""
    count = 0
    with path.open("rb") as f:
        while size > 0 and (piece := f.read(min(size, _CHUNK))):
            count, size = count + piece.count(b"\n"), size - len(piece)
    return count


def _invalid_utf8(path: Path, line: int) -> InvalidData:
    return InvalidData(
        f"{path}: invalid UTF-8 at line {line}; set csv.encoding to utf8-lossy (replace bad "
        "bytes) or latin1 (if the file is Latin-1)"
    )


class CsvConnector(ConnectorBase):
    """Reads ``uri`` (a path or glob) as CSV; see the module docstring."""

    _can_reject = True

    def __init__(self, spec: SourceSpec, *, base_dir: Path) -> None:
        super().__init__(spec, base_dir=base_dir)
        self.options = spec.csv or CsvOptions()
        self._fast = _Plan.of(self.options)

    def scan(self, since: object | None = None) -> pl.LazyFrame:
        """Stream the rows; ``rejected()`` lists the records left out once it was collected."""
        files = resolve_files(self.spec, self.base_dir)
        names = self._header(next((f for f in files if f.stat().st_size), files[0]))
        types = {c: to_polars(t) for c, t in (self.options.columns or {}).items()}
        if missing := sorted(set(types) - set(names)):
            raise InvalidData(
                f"source {self.spec.name!r}: csv.columns names {missing} not in the header "
                f"({', '.join(names)})"
            )
        schema = {n: types.get(n, pl.String()) for n in names}
        schema |= {SOURCE: pl.String(), ROW: pl.Int64()}
        lf = lazy_from_batches(
            lambda: self._batches(files, names, types), schema, f"csv:{self.spec.name}"
        )
        if since is not None and self.spec.watermark is not None:
            lf = lf.filter(
                since_filter(self.spec.name, pl.Schema(schema), self.spec.watermark, since)
            )
        return lf

    # -- reading -------------------------------------------------------------------------------

    def _pyarrow_options(self, block: int, handler: Any) -> tuple[Any, Any, Any, int]:
        """Pyarrow's read/parse/convert options and how many records precede the data."""
        import pyarrow.csv as pacsv

        o = self.options
        renamed = o.has_header and o.column_names is not None
        skip = o.skip_rows + (1 if renamed else 0)
        read = pacsv.ReadOptions(
            use_threads=False,  # serial parsing numbers records, in order
            block_size=block,
            skip_rows=skip,
            column_names=list(o.column_names) if o.column_names else None,
            autogenerate_column_names=not o.has_header and not o.column_names,
        )
        parse = pacsv.ParseOptions(
            delimiter=o.delimiter,
            quote_char=o.quote_char or False,
            newlines_in_values=o.newlines_in_values,
            invalid_row_handler=handler,
        )
        convert = pacsv.ConvertOptions(
            null_values=list(o.null_values),
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            check_utf8=False,  # _Utf8Stream already guarantees it
        )
        return read, parse, convert, skip + (1 if o.has_header and not renamed else 0)

    def _raw_names(self, path: Path, block: int) -> list[str]:
        """The column names pyarrow sees, from the file's first ``block`` bytes."""
        import pyarrow.csv as pacsv

        read, parse, convert, _ = self._pyarrow_options(block, lambda _row: "skip")
        with self._open(path) as raw:
            head = _Utf8Stream(raw, path, self.options).read(block) or b""
        probe = pacsv.open_csv(io.BytesIO(head), read, parse, convert)
        probe.close()
        return list(probe.schema.names)

    def _open_reader(self, path: Path, block: int) -> _FileReader:
        """Open pyarrow's streaming reader on ``path`` with every column as String."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        file = _FileReader(path)
        read, parse, convert, file.offset = self._pyarrow_options(block, file.skip)
        raw_names = self._raw_names(path, block)
        convert.column_types = {n: pa.string() for n in raw_names}
        file.handle = self._open(path)
        file.reader = pacsv.open_csv(
            _Utf8Stream(file.handle, path, self.options), read, parse, convert
        )
        file.names = self._names(raw_names)
        return file

    def _header(self, path: Path) -> list[str]:
        raw_names = self._fast_names(path)
        if raw_names is None:
            raw_names = self._pyarrow_names(path)
        names = self._names(raw_names)
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise InvalidData(f"{path}: duplicate column names {dupes} in the header")
        return names

    def _pyarrow_names(self, path: Path) -> list[str]:
        import pyarrow as pa

        try:
            return self._raw_names(path, self.options.block_size_bytes)
        except pa.ArrowInvalid as e:
            raise InvalidData(
                f"source {self.spec.name!r}: cannot read the header of {path}: {e}; if the "
                "header is long, raise csv.block_size_bytes"
            ) from None

    def _names(self, raw_names: list[str]) -> list[str]:
        if self.options.has_header or self.options.column_names:
            return raw_names
        return [f"column_{i + 1}" for i in range(len(raw_names))]

    def _open(self, path: Path) -> io.BufferedReader:
        try:
            return path.open("rb")
        except OSError as e:
            raise SourceUnavailable(f"source {self.spec.name!r}: cannot open {path}: {e}") from e

    def _batches(
        self, files: list[Path], names: list[str], types: dict[str, pl.DataType]
    ) -> Iterator[pl.DataFrame]:
        rejected: list[_Rejected] = []
        first_row = 0
        for path in files:
            if path.stat().st_size:
                first_row += yield from self._file_batches(path, names, types, first_row, rejected)
        self._rejected = rejected_frame(rejected).sort(ROW)

    def _file_batches(
        self,
        path: Path,
        names: list[str],
        types: dict[str, pl.DataType],
        first_row: int,
        rejected: list[_Rejected],
    ) -> Generator[pl.DataFrame, None, int]:
        """Yield the file's batches; return how many records it has.

        Polars parses the file while its lines are plain records (``_fast_batches``); from the
        first block that is not, pyarrow reads the file, skipping the records already yielded.
        A record longer than the block makes pyarrow fail; the file is then read again with
        blocks 16 times larger (up to ``MAX_BLOCK``), resuming after the rows already yielded.
        """
        resume = 0
        if self._fast is not None:
            resume, done = yield from self._fast_batches(path, names, types, first_row, rejected)
            if done:
                return resume

        import pyarrow as pa

        block = self.options.block_size_bytes
        while True:
            file = _FileReader(path)
            try:
                file = self._open_reader(path, block)
                file.resume = resume
                self._same_columns(path, file.names, names)
                for batch in file.reader:
                    yield self._frame(file, batch, names, types, first_row, rejected)
                rejected.extend(file.take_rejected(self.spec.name, first_row, final=True))
                return file.next_number
            except pa.ArrowInvalid as e:
                if "straddl" not in str(e) or block >= MAX_BLOCK:
                    raise InvalidData(
                        f"source {self.spec.name!r}: cannot read {path} as CSV: {e}"
                    ) from None
                block, resume = block * 16, file.next_number
            finally:
                file.close()

    def _same_columns(self, path: Path, found: list[str], names: list[str]) -> None:
        if sorted(found) != sorted(names):
            raise InvalidData(
                f"source {self.spec.name!r}: {path} has columns {found}, the first file has "
                f"{names}; give files with different columns their own source"
            )

    # -- the Polars path -----------------------------------------------------------------------

    def _fast_names(self, path: Path) -> list[str] | None:
        """The raw column names, when the lines up to the data are plain (else pyarrow's)."""
        if self._fast is None:
            return None
        size = self.options.block_size_bytes
        with self._open(path) as raw:
            head = _Utf8Stream(raw, path, self.options).read(size) or b""
        found = self._preamble(head.removeprefix(_BOM))
        return None if found is None else found[0]

    def _preamble(self, data: bytes) -> tuple[list[str], int] | None:
        """The raw column names and where the data starts, as pyarrow would read them.

        pyarrow skips ``skip_rows`` lines (blank ones count), then blank lines, then the header;
        this needs those lines complete in ``data`` and plain (no quoting but the header's,
        no lone CR), else it returns None and pyarrow reads the file.
        """
        o, plan = self.options, self._fast
        assert plan is not None

        def line(pos: int) -> tuple[str, int] | None:
            end = data.find(b"\n", pos)
            if end < 0:
                return None
            try:
                text = data[pos:end].decode("utf-8").removesuffix("\r")
            except UnicodeDecodeError:
                return None  # pyarrow's path names the line
            return None if "\r" in text else (text, end + 1)

        pos = 0
        for _ in range(o.skip_rows + (1 if o.has_header and o.column_names else 0)):
            found = line(pos)
            if found is None or (plan.quote is not None and plan.quote in found[0]):
                return None
            pos = found[1]
        if o.column_names:
            return list(o.column_names), pos
        while (found := line(pos)) is not None and not found[0]:
            pos = found[1]  # blank lines before the header or the first record
        if found is None or not plan.plain(found[0], None) or found[0].encode().startswith(_MAGIC):
            return None
        fields = plan.split(found[0])
        if o.has_header:
            return fields, found[1]
        return [f"f{i}" for i in range(len(fields))], pos

    def _fast_batches(
        self,
        path: Path,
        names: list[str],
        types: dict[str, pl.DataType],
        first_row: int,
        rejected: list[_Rejected],
    ) -> Generator[pl.DataFrame, None, tuple[int, bool]]:
        """Yield batches parsed by Polars, block by block, while the lines are plain records.

        Returns how many records it yielded or rejected, and whether that was the whole file.
        Every block ends at a line end and holds whole records only, so the next block starts
        a record: where a block is not plain (broken quoting, a value spanning lines, a lone
        CR), pyarrow takes over from there.
        """
        size = FAST_BLOCKS * self.options.block_size_bytes
        records, eof = 0, False
        with self._open(path) as handle:
            # Polars checks UTF-8 as it parses (then _parse_utf8 finds the line)
            stream = _Utf8Stream(handle, path, self.options, chunk=size, validate=False)
            blocks = stream.blocks()
            head = next(blocks, b"")
            offset = 0  # of pending[0] in the file, where the stream is the file's bytes
            if head.startswith(_BOM):
                head, offset = head[len(_BOM) :], len(_BOM)
            found = self._preamble(head)
            if found is None:
                return 0, False
            raw_names, start = found
            file_names = self._names(raw_names)
            self._same_columns(path, file_names, names)
            more, pending, offset = head[start:], b"", offset + start
            first = first_row  # the record number of the next block's first record
            while True:
                cut = more.rfind(b"\n") + 1  # blocks end at a line end (the stream's too)
                if eof:
                    block, pending = pending, b""
                elif not cut:  # no line ends in it: read on
                    block, pending = b"", pending + more
                elif pending or cut < len(more):
                    block = b"".join((pending, memoryview(more)[:cut]))
                    pending = more[cut:]
                else:
                    block, pending = more, b""
                if block:
                    parsed = self._parse_utf8(path, block, file_names, names, offset, first)
                    offset += len(block)
                    if parsed is None:
                        return records, False
                    frame, bad, count = parsed
                    rejected.extend(
                        (self.spec.name, str(path), first + k, truncate_line(t), [r])
                        for k, t, r in bad
                    )
                    if frame.height:
                        yield self._checked(
                            frame, names, types, path, rejected, spans=False, nul=b"\x00" in block
                        )
                    records += count
                    first += count
                if eof:
                    return records, True
                piece = next(blocks, None)
                more, eof = piece or b"", piece is None

    def _parse_utf8(
        self, path: Path, block: bytes, file_names: list[str], names: list[str], *where: int
    ) -> tuple[pl.DataFrame, list[tuple[int, str, str]], int] | None:
        """``_parse_block``, naming the line of invalid UTF-8 that Polars refused.

        ``where``: the block's offset in the file and its first record's number.
        """
        offset, first = where
        try:
            return self._parse_block(block, file_names, names, first)
        except (pl.exceptions.PolarsError, OSError):
            try:
                block.decode("utf-8")
            except UnicodeDecodeError as e:
                line = _lines_in(path, offset) + block[: e.start].count(b"\n") + 1
                raise _invalid_utf8(path, line) from None
            return None  # whatever Polars could not read, pyarrow reads

    def _parse_block(
        self, block: bytes, file_names: list[str], names: list[str], first: int
    ) -> tuple[pl.DataFrame, list[tuple[int, str, str]], int] | None:
        """Parse whole lines with Polars, their records numbered from ``first``.

        Returns the good rows (``names``, ``_source``, ``_row``), the malformed lines as
        (record, text, reason), and how many records the block holds; or None when a line is
        not plain: a lone CR (pyarrow ends a record there) or a quote that does not make whole
        fields, which pyarrow must parse.
        """
        plan = self._fast
        assert plan is not None
        if block.startswith(_MAGIC):
            return None
        n = len(file_names)
        quoted = plan.quote is not None and plan.quote.encode() in block
        if quoted and any(f"{plan.quote}{v}{plan.quote}".encode() in block for v in plan.nulls):
            return None  # pyarrow keeps a quoted null value as text, Polars would not
        cr = b"\r" in block
        if not quoted and (frame := self._parse_plain(block, file_names, names, first)) is not None:
            return frame, [], frame.height
        line = pl.col("line")
        fields = line.str.count_matches(plan.delimiter, literal=True) + 1
        has_quote = line.str.contains(plan.quote or "", literal=True)
        well = pl.when(has_quote).then(plan.plain_expr(line, n)).otherwise(fields == n)
        if not quoted:
            well = fields == n
        lone_cr = line.str.contains("\r", literal=True)
        good = (line != "") & well & ~lone_cr if cr else (line != "") & well
        lines = pl.scan_lines(block)
        total, ok = lines.select(pl.len(), good.all()).collect().row(0)
        if ok:
            frame = self._rows(self._scan_block(block, file_names), names, first).collect()
            return (frame, [], total) if frame.height == total else None
        detail = lines.select(
            line,
            good.alias("good"),
            (line == "").alias("blank"),
            fields.alias("fields"),
            (has_quote if quoted else pl.lit(value=False)).alias("quoted"),
            (lone_cr if cr else pl.lit(value=False)).alias("cr"),
        ).collect()
        bad = ~detail["blank"] & ~detail["good"]
        if detail["cr"].any() or (bad & detail["quoted"]).any():
            return None
        record = (~detail["blank"]).cum_sum().cast(pl.Int64) - 1 + first
        malformed = [
            (k - first, text, f"malformed_line: expected {n} fields, found {found}")
            for k, text, found in zip(
                record.filter(bad),
                detail["line"].filter(bad),
                detail["fields"].filter(bad),
                strict=True,
            )
        ]
        kept = detail["line"].filter(detail["good"])
        data = "".join(f"{t}\n" for t in kept).encode()
        if data.startswith(_MAGIC):
            return None
        frame = (
            self._scan_block(data, file_names).select(names).collect()
            if data
            else pl.DataFrame(schema={c: pl.String() for c in names})
        )
        if frame.height != kept.len():
            return None
        frame = frame.with_columns(
            pl.lit(self.spec.name, dtype=pl.String).alias(SOURCE),
            record.filter(detail["good"]).alias(ROW),
        )
        count = int(detail.height - detail["blank"].sum())
        return frame, malformed, count

    def _parse_plain(
        self, block: bytes, file_names: list[str], names: list[str], first: int
    ) -> pl.DataFrame | None:
        """Parse a block without quotes whose lines all have the right number of fields.

        Without quotes, a line is a record and its fields are its delimiters plus one. Polars
        fails on a line with too many fields; so with no failure, no lone CR, as many rows as
        lines and (n - 1) x lines delimiters in all, every line has exactly n - 1 (a blank line
        has none, so there is none; with one column, blank lines are looked for). Returns None
        where that does not hold (``_parse_block`` then looks line by line).
        """
        plan = self._fast
        assert plan is not None
        n = len(file_names)
        data = np.frombuffer(block, dtype=np.uint8)
        if not block.endswith(b"\n"):
            return None
        if b"\r" in block:
            cr = np.flatnonzero(data == ord("\r"))
            if not (data[cr + 1] == ord("\n")).all():
                return None  # a lone CR ends a record for pyarrow
        if n == 1 and (
            block.startswith((b"\n", b"\r\n")) or b"\n\n" in block or b"\n\r\n" in block
        ):
            return None  # blank lines are not records
        lines = int(np.count_nonzero(data == ord("\n")))
        if np.count_nonzero(data == ord(plan.delimiter)) != (n - 1) * lines:
            return None
        try:
            frame = self._rows(self._scan_block(block, file_names), names, first).collect()
        except pl.exceptions.PolarsError:
            return None  # a line with too many fields (or invalid UTF-8: found again later)
        return frame if frame.height == lines else None

    def _rows(self, lf: pl.LazyFrame, names: list[str], first: int) -> pl.LazyFrame:
        """``names``, ``_source`` and ``_row`` (the records numbered from ``first``)."""
        return lf.with_row_index(ROW).select(
            *names,
            pl.lit(self.spec.name, dtype=pl.String).alias(SOURCE),
            pl.col(ROW).cast(pl.Int64) + first,
        )

    def _scan_block(self, data: bytes, file_names: list[str]) -> pl.LazyFrame:
        """Polars' multi-threaded parse of whole, plain records; every column is String."""
        plan = self._fast
        assert plan is not None
        return pl.scan_csv(
            data,
            has_header=False,
            schema={c: pl.String() for c in file_names},
            separator=plan.delimiter,
            quote_char=plan.quote,
            null_values=plan.nulls or None,
            empty_string_is_null=plan.empty_is_null,
            raise_if_empty=False,
        )

    def _frame(
        self,
        file: _FileReader,
        batch: Any,
        names: list[str],
        types: dict[str, pl.DataType],
        first_row: int,
        rejected: list[_Rejected],
    ) -> pl.DataFrame:
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.rename(dict(zip(frame.columns, file.names, strict=True)))
        numbers = file.place(frame.height)
        rejected.extend(file.take_rejected(self.spec.name, first_row, final=False))
        keep = numbers >= file.resume
        if not keep.all():  # already yielded before a re-read with larger blocks
            frame, numbers = frame.filter(pl.Series(keep)), numbers[keep]
        frame = frame.select(names).with_columns(
            pl.lit(self.spec.name, dtype=pl.String).alias(SOURCE),
            pl.Series(ROW, numbers + first_row, dtype=pl.Int64),
        )
        return self._checked(frame, names, types, file.path, rejected)

    def _checked(
        self,
        frame: pl.DataFrame,
        names: list[str],
        types: dict[str, pl.DataType],
        path: Path,
        rejected: list[_Rejected],
        *,
        spans: bool = True,
        nul: bool = True,
    ) -> pl.DataFrame:
        """Move rows with NUL bytes or values that do not parse to ``rejected``; type columns.

        ``spans``/``nul``: whether values may hold line breaks or NUL bytes at all (the Polars
        path knows that they cannot when its block has none).
        """
        if not (spans or nul or types):
            return frame
        checks: dict[str, pl.Expr] = {}
        if spans and not self.options.newlines_in_values:
            spanning = pl.any_horizontal(pl.col(c).str.contains("[\r\n]") for c in names)
            checks[
                "malformed_line: a quoted value spans lines (check the quoting, or set "
                "csv.newlines_in_values: true)"
            ] = spanning.fill_null(value=False)
        if nul:
            checks |= {
                f"nul_byte: column {c!r}": pl.col(c)
                .str.contains("\x00", literal=True)
                .fill_null(value=False)
                for c in names
            }
        typed = {c: _parse(c, t) for c, t in types.items()}
        for c in types:
            checks[f"invalid_value: column {c!r} is not {(self.options.columns or {})[c]}"] = (
                pl.col(c).is_not_null() & typed[c].is_null()
            )
        flags = frame.select(**{f"_{i}": e for i, e in enumerate(checks.values())})
        any_bad = flags.select(pl.any_horizontal(pl.all())).to_series()
        if any_bad.any():
            reasons = list(checks)
            for index in any_bad.arg_true().to_list():
                record = frame.row(index, named=True)
                line = truncate_line(_rebuild([record[c] for c in names], self.options))
                failed = [reasons[j] for j, flag in enumerate(flags.row(index)) if flag]
                rejected.append((self.spec.name, str(path), record[ROW], line, failed))
            frame = frame.filter(~any_bad)
        return frame.with_columns(**typed) if typed else frame


@dataclass(frozen=True)
class _Plan:
    """The options as the Polars path uses them; ``of`` is None where only pyarrow can read."""

    delimiter: str
    quote: str | None
    nulls: list[str]  # null values other than "" (pyarrow: unquoted values only)
    empty_is_null: bool

    @classmethod
    def of(cls, o: CsvOptions) -> _Plan | None:
        chars = [o.delimiter, *([o.quote_char] if o.quote_char else [])]
        if any(not c.isascii() or c in "\r\n" for c in chars) or o.delimiter == o.quote_char:
            return None
        return cls(o.delimiter, o.quote_char, [v for v in o.null_values if v], "" in o.null_values)

    def record(self, n: int | None) -> str:
        """A regex for one line that is a whole record (``n`` fields; None: any number)."""
        d = f"\\x{ord(self.delimiter):02x}"
        if self.quote is None:
            field = f"[^{d}\\r]*"
        else:
            q = f"\\x{ord(self.quote):02x}"
            field = f"(?:[^{q}{d}\\r]*|{q}(?:[^{q}\\r]|{q}{q})*{q})"
        repeat = "*" if n is None else f"{{{n - 1}}}"
        return f"^{field}(?:{d}{field}){repeat}$"

    def plain(self, line: str, n: int | None) -> bool:
        """Whether the line is a whole record whose quotes (if any) enclose whole fields."""
        return re.fullmatch(self.record(n), line) is not None

    def plain_expr(self, line: pl.Expr, n: int) -> pl.Expr:
        return line.str.contains(self.record(n))

    def split(self, line: str) -> list[str]:
        """The fields of a plain line (Polars parses it)."""
        frame = pl.read_csv(
            line.encode() + b"\n",
            has_header=False,
            infer_schema=False,
            separator=self.delimiter,
            quote_char=self.quote,
            empty_string_is_null=False,
        )
        return [v or "" for v in frame.row(0)]


class _FileReader:
    """One open file: pyarrow's reader, its rejected records, and who gets which ``_row``.

    pyarrow numbers records from 1, counting skipped rows and the header (``offset`` of them);
    good rows come in batches, malformed ones through ``skip`` (called before the batch that
    follows them is returned, as parsing is serial). Good rows take the numbers not rejected.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: io.BufferedReader | None = None
        self.reader: Any = None
        self.resume = 0  # records below this number were yielded by an earlier read
        self.names: list[str] = []
        self.offset = 0
        self.bad: dict[int, tuple[str, str]] = {}
        self.next_number = 0  # relative to offset: the next record number not yet placed

    def skip(self, row: Any) -> str:
        """Record a malformed record (pyarrow's ``invalid_row_handler``; must not raise)."""
        number = row.number if row.number is not None else 1 << 62
        found = f"expected {row.expected_columns} fields, found {row.actual_columns}"
        self.bad[number - self.offset - 1] = (row.text or "", f"malformed_line: {found}")
        return "skip"

    def place(self, count: int) -> np.ndarray[Any, np.dtype[np.int64]]:
        """The 0-based record numbers of the next ``count`` good rows."""
        pending = np.array(sorted(k for k in self.bad if k >= self.next_number), dtype=np.int64)
        candidates = np.arange(self.next_number, self.next_number + count + len(pending))
        numbers = candidates[~np.isin(candidates, pending)][:count]
        if count:
            self.next_number = int(numbers[-1]) + 1
        return numbers

    def take_rejected(self, source: str, first_row: int, *, final: bool) -> list[_Rejected]:
        """Rejected records placed so far (all of them when ``final``), as rejected rows."""
        done = sorted(k for k in self.bad if final or k < self.next_number)
        out: list[_Rejected] = []
        for k in done:
            text, reason = self.bad.pop(k)
            if k >= self.resume:  # else it was reported by an earlier read
                out.append((source, str(self.path), first_row + k, truncate_line(text), [reason]))
        if final and done:
            self.next_number = max(self.next_number, done[-1] + 1)
        return out

    def close(self) -> None:
        """Close the reader and the file."""
        if self.reader is not None:
            self.reader.close()
        if self.handle is not None:
            self.handle.close()


def _rebuild(values: list[str | None], o: CsvOptions) -> str:
    """A CSV line from parsed fields, quoting the fields that need it."""
    q, specials = o.quote_char, (o.delimiter, o.quote_char or "", "\n", "\r")
    fields = [
        q + v.replace(q, q * 2) + q if q and v and any(c and c in v for c in specials) else v or ""
        for v in values
    ]
    return o.delimiter.join(fields)


def _parse(column: str, dtype: pl.DataType) -> pl.Expr:
    """Parse a text column as ``dtype``; values that do not parse become null."""
    col = pl.col(column)
    if dtype == pl.String():
        return col
    if dtype == pl.Boolean():
        mapping = {"true": True, "false": False}
        return col.str.to_lowercase().replace_strict(mapping, default=None, return_dtype=pl.Boolean)
    if dtype == pl.Date():
        return col.str.to_date(strict=False)
    if isinstance(dtype, pl.Datetime):
        return col.str.to_datetime(time_unit="us", time_zone=dtype.time_zone, strict=False)
    return col.str.strip_chars().cast(dtype, strict=False)
