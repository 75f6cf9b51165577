"""CSV files and globs of CSV files, streamed, with malformed lines kept aside.

A scan is a Polars IO source that reads a file block by block, so files larger than memory
stream into ``sink_parquet``. A column is typed by ``csv.columns``, else (unless a harmonize
cast or map handles it) by inference on a sample (``csv_infer``), else read as String. Two
parsers share the work and give the same rows, record numbers and rejected records:

- **Polars** (multi-threaded, ``csv_fast.FastReader``) parses ``4 x block_size_bytes`` of whole
  lines at a time while the lines are plain records: no quote, or quotes that enclose whole
  fields within the line; no lone CR. Lines with the wrong number of fields (and no quote) are
  rejected, the rest parsed.
- **pyarrow**'s streaming reader (``pyarrow.csv.open_csv``, single-threaded so that it numbers
  records; here, with ``csv_records.FileReader``) takes over from the first block that is not
  plain (broken quoting, a value spanning lines, a lone CR, a quoted null value such as
  ``"NA"``), and for the whole file when the lines up to the header are not plain. It reads the
  file from the start and skips the records already produced, so it costs a second read of
  those.

Both read the bytes through ``csv_text.Utf8Stream`` (encodings, comment lines, invalid UTF-8
named by file and line), and both pass their rows through ``csv_records.checked``.

**Rejected records.** Nothing is silently dropped. A record that cannot become a row is left out
of the scan and listed by ``connector.rejected()`` (after the scan was collected), with
``_source``, ``_file``, ``_row`` (the record number it would have had), ``_line`` (its raw text,
at most 10 kB) and ``_failed_checks``:

- ``malformed_line: expected N fields, found M`` — wrong field count (pyarrow's
  ``invalid_row_handler``);
- ``malformed_line: a quoted value spans lines, starting at line N`` — unless
  ``newlines_in_values: true``, a line whose quote is still open at its end; it is rejected
  alone and the lines after it are read (``csv_lines.SealedLines`` seals it before pyarrow,
  which would otherwise run on to the next quote and swallow the lines in between);
- ``nul_byte: column 'c'`` — a NUL character in a field;
- ``invalid_value: column 'c' is not <type>`` — a value that does not parse as its ``columns`` type.

For the last three, ``_line`` is rebuilt from the parsed fields. ``_row`` counts data records
(after ``skip_rows`` and the header; blank lines do not count), good and rejected alike, so
``rows scanned + rows rejected`` = records in the file; and, unless ``newlines_in_values``, a
record is a line: ``lines_read`` (counted from the bytes, not by the parser) minus rows minus
rejected records is ``lines_unaccounted``, which must be 0.

**Memory.** The Polars path holds a block, its parsed rows and a few copies: about 60 MB with
the default ``block_size_bytes`` (1 MiB), plus the batches the consumer holds; a line longer
than a block makes that block longer. pyarrow parses one block at a time and reads up to 32
blocks ahead, so memory is about ``33 x block_size_bytes``. A record longer than a block makes
pyarrow fail; the file is then read again with blocks 16 times larger (up to 256 MiB), resuming
after the rows already produced, so a 10 MB field just works.

**Encodings.** ``utf8`` (a leading BOM is dropped), ``utf8-lossy`` or ``latin1``; invalid UTF-8
is an error naming the file and line (see ``csv_text``). A last line without a line break reads
as if it had one. Spreadsheet formulas (``=SUM(A1)``, ``@x``) are data and are kept verbatim.

**Modules.** ``csv`` (this one: ``CsvConnector``, the scan and the pyarrow path), ``csv_fast``
(the Polars path), ``csv_records`` (the Polars path's options, pyarrow's record numbering, the
checks that reject records), ``csv_text`` (the streaming UTF-8 decoder).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import polars as pl

from shipyard.core.errors import InvalidData
from shipyard.data.connectors.base import (
    ROW,
    SOURCE,
    ConnectorBase,
    CsvOptions,
    lazy_from_batches,
    rejected_frame,
    resolve_files,
    since_filter,
)
from shipyard.data.connectors.csv_fast import FastReader
from shipyard.data.connectors.csv_infer import infer_types, undeclared
from shipyard.data.connectors.csv_lines import SealedLines
from shipyard.data.connectors.csv_records import (
    FileReader,
    check_same_columns,
    checked,
    column_names,
)
from shipyard.data.connectors.csv_text import Utf8Stream, open_file
from shipyard.data.dtypes import to_polars

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator
    from pathlib import Path

    from shipyard.data.connectors.base import SourceSpec
    from shipyard.data.connectors.csv_records import Rejected

__all__ = ["CsvConnector", "CsvOptions"]

MAX_BLOCK = 256 << 20


class CsvConnector(ConnectorBase):
    """Reads ``uri`` (a path or glob) as CSV; see the module docstring."""

    _can_reject = True
    #: Data lines the last collected scan read (non-blank, after the header).
    lines_read: int | None = None
    #: Rows the last collected scan produced (before any watermark filter); None: none yet.
    rows_read: int | None = None
    #: Lines read that are neither a row nor a rejected record (None: not checked, as
    #: ``newlines_in_values`` lets one record span lines); 0 when every line is accounted for.
    lines_unaccounted: int | None = None
    #: Column -> type name inferred by the last scan (``csv_infer``); declared ones are not here.
    inferred: dict[str, str] = {}

    def __init__(self, spec: SourceSpec, *, base_dir: Path) -> None:
        super().__init__(spec, base_dir=base_dir)
        self.options = spec.csv or CsvOptions()
        self._fast = FastReader.of(spec.name, self.options)  # None: pyarrow reads every file

    def content_files(self) -> list[Path]:
        """The files a scan reads, in order: with the options, their bytes decide its output.

        The pipeline fingerprints them instead of the parsed rows (``pipeline.ingest``).
        """
        return resolve_files(self.spec, self.base_dir)

    def scan(self, since: object | None = None) -> pl.LazyFrame:
        """Stream the rows; ``rejected()`` lists the records left out once it was collected."""
        files, names, types, schema = self.plan()
        lf = lazy_from_batches(
            lambda: self._batches(files, names, types), schema, f"csv:{self.spec.name}"
        )
        if since is not None and self.spec.watermark is not None:
            lf = lf.filter(
                since_filter(self.spec.name, pl.Schema(schema), self.spec.watermark, since)
            )
        return lf

    def plan(
        self,
    ) -> tuple[list[Path], list[str], dict[str, pl.DataType], dict[str, pl.DataType]]:
        """The files, the header's names, the column types and the scan's schema.

        Every file is read with these (``csv_parallel`` reads each on its own worker).
        """
        files = resolve_files(self.spec, self.base_dir)
        names = self._header(next((f for f in files if f.stat().st_size), files[0]))
        types = {c: to_polars(t) for c, t in (self.options.columns or {}).items()}
        if missing := sorted(set(types) - set(names)):
            raise InvalidData(
                f"source {self.spec.name!r}: csv.columns names {missing} not in the header "
                f"({', '.join(names)})"
            )
        if self.options.infer_types:
            sample = next((f for f in files if f.stat().st_size), files[0])
            todo = undeclared(names, self.options, self.spec.harmonize)
            self.inferred = infer_types(self.spec.name, sample, names, todo, self.options)
            types |= {c: to_polars(t) for c, t in self.inferred.items()}
        schema = {n: types.get(n, pl.String()) for n in names}
        schema |= {SOURCE: pl.String(), ROW: pl.Int64()}
        return files, names, types, schema

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
            check_utf8=False,  # Utf8Stream already guarantees it
        )
        return read, parse, convert, skip + (1 if o.has_header and not renamed else 0)

    def _raw_names(self, path: Path, block: int) -> list[str]:
        """The column names pyarrow sees, from the file's first ``block`` bytes."""
        import pyarrow.csv as pacsv

        read, parse, convert, _ = self._pyarrow_options(block, lambda _row: "skip")
        with open_file(self.spec.name, path) as raw:
            head = Utf8Stream(raw, path, self.options).read(block) or b""
        probe = pacsv.open_csv(io.BytesIO(head), read, parse, convert)
        probe.close()
        return list(probe.schema.names)

    def _open_reader(self, path: Path, block: int) -> FileReader:
        """Open pyarrow's streaming reader on ``path`` with every column as String."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        file = FileReader(path)
        read, parse, convert, file.offset = self._pyarrow_options(block, file.skip)
        raw_names = self._raw_names(path, block)
        convert.column_types = {n: pa.string() for n in raw_names}
        file.handle = open_file(self.spec.name, path)
        o = self.options
        file.lines = SealedLines(
            Utf8Stream(file.handle, path, o).blocks(),
            o,
            columns=len(raw_names),
            preamble=1 if o.has_header and not o.column_names else 0,
        )
        file.reader = pacsv.open_csv(file.lines, read, parse, convert)
        file.names = column_names(raw_names, self.options)
        return file

    def _header(self, path: Path) -> list[str]:
        raw_names = None if self._fast is None else self._fast.names(path)
        if raw_names is None:
            raw_names = self._pyarrow_names(path)
        names = column_names(raw_names, self.options)
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

    def _batches(
        self, files: list[Path], names: list[str], types: dict[str, pl.DataType]
    ) -> Iterator[pl.DataFrame]:
        rejected: list[Rejected] = []
        first_row = rows = lines = 0
        for path in files:
            if path.stat().st_size:
                batches = self.file_batches(path, names, types, first_row, rejected)
                while True:
                    try:
                        batch = next(batches)
                    except StopIteration as done:
                        records, read = done.value
                        break
                    rows += batch.height
                    yield batch
                first_row += records
                lines += read
        self._rejected = rejected_frame(rejected).sort(ROW)
        self.lines_read = lines
        self.rows_read = rows
        # Records are lines unless values may span lines (then only the records are counted).
        self.lines_unaccounted = (
            None if self.options.newlines_in_values else lines - rows - len(rejected)
        )

    def file_batches(
        self,
        path: Path,
        names: list[str],
        types: dict[str, pl.DataType],
        first_row: int,
        rejected: list[Rejected],
    ) -> Generator[pl.DataFrame, None, tuple[int, int]]:
        """Yield the file's batches; return how many records and data lines it has.

        Polars parses the file while its lines are plain records (``FastReader.batches``); from the
        first block that is not, pyarrow reads the file, skipping the records already yielded.
        A record longer than the block makes pyarrow fail; the file is then read again with
        blocks 16 times larger (up to ``MAX_BLOCK``), resuming after the rows already yielded.
        """
        resume = 0
        if self._fast is not None:
            resume, done = yield from self._fast.batches(path, names, types, first_row, rejected)
            if done:
                return resume, resume  # the Polars path reads plain lines: one record each

        import pyarrow as pa

        block = self.options.block_size_bytes
        while True:
            file = FileReader(path)
            try:
                file = self._open_reader(path, block)
                file.resume = resume
                check_same_columns(self.spec.name, path, file.names, names)
                for batch in file.reader:
                    yield self._frame(file, batch, names, types, first_row, rejected)
                rejected.extend(file.take_rejected(self.spec.name, first_row, final=True))
                return file.next_number, file.lines.data_lines if file.lines else 0
            except pa.ArrowInvalid as e:
                if "straddl" not in str(e) or block >= MAX_BLOCK:
                    raise InvalidData(
                        f"source {self.spec.name!r}: cannot read {path} as CSV: {e}"
                    ) from None
                block, resume = block * 16, file.next_number
            finally:
                file.close()

    def _frame(
        self,
        file: FileReader,
        batch: Any,
        names: list[str],
        types: dict[str, pl.DataType],
        first_row: int,
        rejected: list[Rejected],
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
        return checked(
            frame, names, types, file.path, rejected, source=self.spec.name, options=self.options
        )
