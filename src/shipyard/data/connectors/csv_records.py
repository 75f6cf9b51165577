"""CSV records: the options as the Polars path sees them, pyarrow's record numbering, checks.

``Plan`` tells whether a line is a plain record (quotes, if any, enclose whole fields).
``FileReader`` holds pyarrow's streaming reader on one file and gives every good row and every
malformed record its ``_row``. ``checked`` moves rows that hold a value spanning lines, a NUL
byte or a value that does not parse as its ``csv.columns`` type to the rejected records, whose
``_line`` is then rebuilt from the parsed fields (``rebuild``), and types the other rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from shipyard.core.errors import InvalidData
from shipyard.data.connectors.base import ROW, truncate_line
from shipyard.data.connectors.csv_lines import spans_reason
from shipyard.data.dtypes import type_name

if TYPE_CHECKING:
    import io
    from pathlib import Path

    import numpy as np

    from shipyard.data.connectors.base import CsvOptions
    from shipyard.data.connectors.csv_lines import SealedLines

__all__ = [
    "FileReader",
    "Plan",
    "Rejected",
    "check_same_columns",
    "checked",
    "column_names",
    "parse",
    "rebuild",
]

#: A rejected record: source, file, record number, raw text, failed checks.
Rejected = tuple[str, str, int, str, list[str]]
_PARSED = "__shipyard_parsed_"  # prefix of the temporary parsed copies of typed columns


@dataclass(frozen=True)
class Plan:
    """The options as the Polars path uses them; ``of`` is None where only pyarrow can read."""

    delimiter: str
    quote: str | None
    nulls: list[str]  # null values other than "" (pyarrow: unquoted values only)
    empty_is_null: bool

    @classmethod
    def of(cls, o: CsvOptions) -> Plan | None:
        """The plan for ``o``, or None when the delimiter or quote rule out the Polars path."""
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
        """``plain`` for a column of lines."""
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


class FileReader:
    """One open file: pyarrow's reader, its rejected records, and who gets which ``_row``.

    pyarrow numbers records from 1, counting skipped rows and the header (``offset`` of them);
    good rows come in batches, malformed ones through ``skip`` (called before the batch that
    follows them is returned, as parsing is serial). Good rows take the numbers not rejected.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: io.BufferedReader | None = None
        self.lines: SealedLines | None = None
        self.reader: Any = None
        self.resume = 0  # records below this number were yielded by an earlier read
        self.names: list[str] = []
        self.offset = 0
        self.bad: dict[int, tuple[str, str]] = {}
        self.next_number = 0  # relative to offset: the next record number not yet placed

    def skip(self, row: Any) -> str:
        """Record a malformed record (pyarrow's ``invalid_row_handler``; must not raise)."""
        number = row.number if row.number is not None else 1 << 62
        text = row.text or ""
        sealed = self.lines.sealed.pop(text, None) if self.lines is not None else None
        if sealed is not None:  # a line whose quote was left open (see csv_lines)
            self.bad[number - self.offset - 1] = (sealed[1], spans_reason(sealed[0]))
            return "skip"
        found = f"expected {row.expected_columns} fields, found {row.actual_columns}"
        self.bad[number - self.offset - 1] = (text, f"malformed_line: {found}")
        return "skip"

    def place(self, count: int) -> np.ndarray[Any, np.dtype[np.int64]]:
        """The 0-based record numbers of the next ``count`` good rows.

        numpy is imported here: only the pyarrow reader (which loads it anyway) places rows,
        and the default reader's start-up has no other use for it (issue 17).
        """
        import numpy as np

        pending = np.array(sorted(k for k in self.bad if k >= self.next_number), dtype=np.int64)
        candidates = np.arange(self.next_number, self.next_number + count + len(pending))
        numbers = candidates[~np.isin(candidates, pending)][:count]
        if count:
            self.next_number = int(numbers[-1]) + 1
        return numbers

    def take_rejected(self, source: str, first_row: int, *, final: bool) -> list[Rejected]:
        """Rejected records placed so far (all of them when ``final``), as rejected rows."""
        done = sorted(k for k in self.bad if final or k < self.next_number)
        out: list[Rejected] = []
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


def column_names(raw_names: list[str], options: CsvOptions) -> list[str]:
    """The columns' names: the header's or ``column_names``, else ``column_1``, ``column_2``..."""
    if options.has_header or options.column_names:
        return raw_names
    return [f"column_{i + 1}" for i in range(len(raw_names))]


def check_same_columns(source: str, path: Path, found: list[str], names: list[str]) -> None:
    """Refuse a file of a glob whose columns differ from the first file's."""
    if sorted(found) != sorted(names):
        raise InvalidData(
            f"source {source!r}: {path} has columns {found}, the first file has "
            f"{names}; give files with different columns their own source"
        )


def checked(
    frame: pl.DataFrame,
    names: list[str],
    types: dict[str, pl.DataType],
    path: Path,
    rejected: list[Rejected],
    *,
    source: str,
    options: CsvOptions,
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
    if spans and not options.newlines_in_values:
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
    # Each typed column is parsed once, into a temporary column beside its text: the check
    # compares the two and the rows that pass keep the parsed values (parsing in the check and
    # again for the output cost a third of the connector's time, issue 17).
    parsed = {c: f"{_PARSED}{i}" for i, c in enumerate(types)}
    for c in types:
        declared = (options.columns or {}).get(c)
        wanted = declared or (
            f"{type_name(types[c])} (its type was inferred from the file's first lines; "
            f"declare csv.columns.{c} to read it otherwise)"
        )
        checks[f"invalid_value: column {c!r} is not {wanted}"] = (
            pl.col(c).is_not_null() & pl.col(parsed[c]).is_null()
        )
    if parsed:
        frame = frame.with_columns(parse(c, t).alias(parsed[c]) for c, t in types.items())
    flags = frame.select(**{f"_{i}": e for i, e in enumerate(checks.values())})
    any_bad = flags.select(pl.any_horizontal(pl.all())).to_series()
    if any_bad.any():
        reasons = list(checks)
        for index in any_bad.arg_true().to_list():
            record = frame.row(index, named=True)
            # Columns the Polars path parsed straight to their type hold numbers, not text.
            values = [None if record[c] is None else str(record[c]) for c in names]
            line = truncate_line(rebuild(values, options))
            failed = [reasons[j] for j, flag in enumerate(flags.row(index)) if flag]
            rejected.append((source, str(path), record[ROW], line, failed))
        frame = frame.filter(~any_bad)
    if not parsed:
        return frame
    return frame.with_columns(pl.col(t).alias(c) for c, t in parsed.items()).drop(
        list(parsed.values())
    )


def rebuild(values: list[str | None], o: CsvOptions) -> str:
    """A CSV line from parsed fields, quoting the fields that need it."""
    q, specials = o.quote_char, (o.delimiter, o.quote_char or "", "\n", "\r")
    fields = [
        q + v.replace(q, q * 2) + q if q and v and any(c and c in v for c in specials) else v or ""
        for v in values
    ]
    return o.delimiter.join(fields)


def parse(column: str, dtype: pl.DataType) -> pl.Expr:
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
