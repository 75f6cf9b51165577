"""The CSV connector's Polars path: multi-threaded parsing of blocks of plain records.

``FastReader`` reads a file ``FAST_BLOCKS x block_size_bytes`` of whole lines at a time and
parses a block with Polars when its lines are plain records: no quote, or quotes that enclose
whole fields within the line; no lone CR. It first checks that cheaply (without quotes: counts
of line ends and delimiters, and Polars refusing a line with too many fields; with quotes: a
regex per line). Lines with the wrong number of fields (and no quote) are rejected, the rest
parsed. At the first block that is not plain (or when the lines up to the header are not), it
stops and says how many records it produced, and pyarrow's reader goes on from there; both give
the same rows, record numbers and rejected records.

It holds a block, its parsed rows and a few copies: about 60 MB with the default
``block_size_bytes`` (1 MiB); a line longer than a block makes that block longer. For plain
``utf8`` Polars checks the bytes as it parses, and ``_parse_utf8`` finds the line it refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from shipyard.data.connectors.base import ROW, SOURCE, truncate_line
from shipyard.data.connectors.csv_records import (
    Plan,
    check_same_columns,
    checked,
    column_names,
)
from shipyard.data.connectors.csv_text import Utf8Stream, invalid_utf8, lines_in, open_file

if TYPE_CHECKING:
    from collections.abc import Generator
    from pathlib import Path

    from shipyard.data.connectors.base import CsvOptions
    from shipyard.data.connectors.csv_records import Rejected

__all__ = ["FAST_BLOCKS", "FastReader"]

FAST_BLOCKS = 4  # the Polars path reads 4 x block_size_bytes at a time
_BOM = b"\xef\xbb\xbf"
# Polars decompresses bytes that start like gzip, zlib, zstd or lz4 data; such text goes to pyarrow
_MAGIC = (b"\x1f\x8b", b"x\x01", b"x^", b"x\x9c", b"x\xda", b"(\xb5/\xfd", b'\x04"M\x18')
_Parsed = tuple[pl.DataFrame, list[tuple[int, str, str]], int]
_SPACES = (b" ", b"\t", b"\v", b"\f")  # what makes a field blank without being empty


class FastReader:
    """Reads a source's CSV files with Polars while their lines are plain records."""

    def __init__(self, source: str, options: CsvOptions, plan: Plan) -> None:
        self.source, self.options, self.plan = source, options, plan
        #: Numeric ``csv.columns`` Polars may parse straight to their type (see ``_parse_plain``).
        self._direct: dict[str, pl.DataType] = {}
        #: Of those, the ones that held a null or a value that did not parse: read as text.
        self._as_text: set[str] = set()

    @classmethod
    def of(cls, source: str, options: CsvOptions) -> FastReader | None:
        """The reader for ``options``, or None where only pyarrow can read (``Plan.of``)."""
        plan = Plan.of(options)
        return None if plan is None else cls(source, options, plan)

    def names(self, path: Path) -> list[str] | None:
        """The raw column names, when the lines up to the data are plain (else pyarrow's)."""
        size = self.options.block_size_bytes
        with open_file(self.source, path) as raw:
            head = Utf8Stream(raw, path, self.options).read(size) or b""
        found = self._preamble(head.removeprefix(_BOM))
        return None if found is None else found[0]

    def batches(
        self,
        path: Path,
        names: list[str],
        types: dict[str, pl.DataType],
        first_row: int,
        rejected: list[Rejected],
    ) -> Generator[pl.DataFrame, None, tuple[int, bool]]:
        """Yield batches parsed by Polars, block by block, while the lines are plain records.

        Returns how many records it yielded or rejected, and whether that was the whole file.
        Every block ends at a line end and holds whole records only, so the next block starts
        a record: where a block is not plain (broken quoting, a value spanning lines, a lone
        CR), pyarrow takes over from there.
        """
        size = FAST_BLOCKS * self.options.block_size_bytes
        records, eof = 0, False
        self._direct = {c: t for c, t in types.items() if t.is_numeric() and t != pl.Decimal}
        with open_file(self.source, path) as handle:
            # Polars checks UTF-8 as it parses (then _parse_utf8 finds the line)
            stream = Utf8Stream(handle, path, self.options, chunk=size, validate=False)
            blocks = stream.blocks()
            head = next(blocks, b"")
            offset = 0  # of pending[0] in the file, where the stream is the file's bytes
            if head.startswith(_BOM):
                head, offset = head[len(_BOM) :], len(_BOM)
            found = self._preamble(head)
            if found is None:
                return 0, False
            raw_names, start = found
            file_names = column_names(raw_names, self.options)
            check_same_columns(self.source, path, file_names, names)
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
                        (self.source, str(path), first + k, truncate_line(t), [r])
                        for k, t, r in bad
                    )
                    if frame.height:
                        yield checked(
                            frame,
                            names,
                            # columns Polars already parsed to their type need no second parse
                            {c: t for c, t in types.items() if frame.schema[c] != t},
                            path,
                            rejected,
                            source=self.source,
                            options=self.options,
                            spans=False,
                            nul=b"\x00" in block,
                        )
                    records += count
                    first += count
                if eof:
                    return records, True
                piece = next(blocks, None)
                more, eof = piece or b"", piece is None

    def _preamble(self, data: bytes) -> tuple[list[str], int] | None:
        """The raw column names and where the data starts, as pyarrow would read them.

        pyarrow skips ``skip_rows`` lines (blank ones count), then blank lines, then the header;
        this needs those lines complete in ``data`` and plain (no quoting but the header's,
        no lone CR), else it returns None and pyarrow reads the file.
        """
        o, plan = self.options, self.plan

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

    def _parse_utf8(
        self, path: Path, block: bytes, file_names: list[str], names: list[str], *where: int
    ) -> _Parsed | None:
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
                line = lines_in(path, offset) + block[: e.start].count(b"\n") + 1
                raise invalid_utf8(path, line) from None
            return None  # whatever Polars could not read, pyarrow reads

    def _parse_block(
        self, block: bytes, file_names: list[str], names: list[str], first: int
    ) -> _Parsed | None:
        """Parse whole lines with Polars, their records numbered from ``first``.

        Returns the good rows (``names``, ``_source``, ``_row``), the malformed lines as
        (record, text, reason), and how many records the block holds; or None when a line is
        not plain: a lone CR (pyarrow ends a record there) or a quote that does not make whole
        fields, which pyarrow must parse.
        """
        plan = self.plan
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
            pl.lit(self.source, dtype=pl.String).alias(SOURCE),
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
        n = len(file_names)
        if not block.endswith(b"\n"):
            return None
        # bytes.count, not numpy: no boolean array the size of the block per check
        if b"\r" in block and block.count(b"\r") != block.count(b"\r\n"):
            return None  # a lone CR ends a record for pyarrow
        if n == 1 and (
            block.startswith((b"\n", b"\r\n")) or b"\n\n" in block or b"\n\r\n" in block
        ):
            return None  # blank lines are not records
        lines = block.count(b"\n")
        if block.count(self.plan.delimiter.encode()) != (n - 1) * lines:
            return None
        frame = self._parse_typed(block, file_names, names, first)
        if frame is None:
            try:
                frame = self._rows(self._scan_block(block, file_names), names, first).collect()
            except pl.exceptions.PolarsError:
                return None  # a line with too many fields (or invalid UTF-8: found again later)
        return frame if frame.height == lines else None

    def _parse_typed(
        self, block: bytes, file_names: list[str], names: list[str], first: int
    ) -> pl.DataFrame | None:
        """Parse the numeric ``csv.columns`` straight to their types, where that is the same.

        Reading text and casting it (``csv_records.parse``) cost as much again as parsing the
        block (issue 17). Polars' typed parse fails on any value it cannot read, and where it
        succeeds it gives the cast's value; but it reads a blank or whitespace-only field (or a
        ``null_values`` entry) as null, where the text path rejects a non-empty one. A null
        stands where the block cannot hold such a field (``_no_blank_field``) and an empty
        field is null as text too; otherwise a column that comes out with a null is read as
        text from then on (``_as_text``), and the block parsed again. A failure sends the block
        to the text path. Returns None when no column can be parsed so, or the typed parse
        failed.
        """
        while direct := {c: t for c, t in self._direct.items() if c not in self._as_text}:
            try:
                frame = self._rows(self._scan_block(block, file_names, direct), names, first)
                parsed = frame.collect()
            except pl.exceptions.PolarsError:
                return None
            nulls = {c for c in direct if parsed[c].has_nulls()}
            if not nulls or (self.plan.empty_is_null and _no_blank_field(block)):
                return parsed
            self._as_text |= nulls
        return None

    def _rows(self, lf: pl.LazyFrame, names: list[str], first: int) -> pl.LazyFrame:
        """``names``, ``_source`` and ``_row`` (the records numbered from ``first``)."""
        return lf.with_row_index(ROW).select(
            *names,
            pl.lit(self.source, dtype=pl.String).alias(SOURCE),
            pl.col(ROW).cast(pl.Int64) + first,
        )

    def _scan_block(
        self, data: bytes, file_names: list[str], typed: dict[str, pl.DataType] | None = None
    ) -> pl.LazyFrame:
        """Polars' multi-threaded parse of whole, plain records; String columns but ``typed``."""
        plan = self.plan
        typed = typed or {}
        return pl.scan_csv(
            data,
            has_header=False,
            schema={c: typed.get(c, pl.String()) for c in file_names},
            separator=plan.delimiter,
            quote_char=plan.quote,
            null_values=plan.nulls or None,
            empty_string_is_null=plan.empty_is_null,
            raise_if_empty=False,
        )


def _no_blank_field(block: bytes) -> bool:
    """Whether ``block`` (plain records, unquoted) has no whitespace, so no blank field.

    Then a typed null is an empty field or a ``null_values`` entry, null as text too. Four
    byte searches and an ASCII check cost about 1 ms per 4 MiB; reading a column with a few
    nulls as text cost 0.2 CPU-s per 2M rows (issue 17's benchmark: 1% of ``x1`` is empty).
    """
    return block.isascii() and not any(space in block for space in _SPACES)
