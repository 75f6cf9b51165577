"""CSV column types inferred from a sample, for the columns nobody declared (issue 16).

Without ``csv.columns`` every column used to be read as text, the target included: numbers
were then one-hot encoded as categories and later rows failed as "unseen category". Now the
columns the project does not type itself (``csv.columns``, or a ``harmonize`` ``cast`` or
``map`` of the column, which parse the text their own way) are typed from a sample, the first
``block_size_bytes`` of the first file: a column is ``int64`` when every value of the sample
parses as one (as Polars casts text, the way ``csv_records.parse`` will), else ``float64``,
else ``bool`` (``true`` / ``false``, any case). Anything else stays text, and so do
integer-looking columns with a leading zero (``007``, ZIP codes: identifiers, not numbers).
Dates stay text too: ``harmonize`` parses them with their format.

The inferred types then work exactly like declared ones: a later value that does not parse is
a rejected record (``invalid_value: column 'x' is not int64 (its type was inferred ...)``),
never a silent null. ``csv.infer_types: false`` turns inference off. The pipeline reports what
was inferred (a warning on the ingest stage) and records it in the source's schema snapshot
(``"inferred": "<type>"`` on the column).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from shipyard.data.connectors.csv_text import Utf8Stream, open_file

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.data.connectors.base import CsvOptions

__all__ = ["infer_types", "undeclared"]


def undeclared(
    names: list[str], options: CsvOptions, harmonize: dict[str, Any] | None
) -> list[str]:
    """The columns whose type nobody declared (neither ``csv.columns`` nor harmonize)."""
    declared = set(options.columns or {})
    block = harmonize or {}
    rename = block.get("rename") or {}
    handled = {str(c) for key in ("cast", "map") for c in (block.get(key) or {})}
    for name in names:
        if name in handled or str(rename.get(name, name)) in handled:
            declared.add(name)
    return [n for n in names if n not in declared]


def infer_types(
    source: str, path: Path, names: list[str], columns: list[str], options: CsvOptions
) -> dict[str, str]:
    """Infer ``columns``' types from the start of ``path``: column -> type name.

    Returns only the columns inferred as a number or a boolean; an empty mapping when the
    sample cannot be read by Polars (the connector's own parsers then report the lines).
    """
    if not columns:
        return {}
    with open_file(source, path) as raw:
        head = Utf8Stream(raw, path, options).read(options.block_size_bytes) or b""
    cut = head.rfind(b"\n") + 1
    sample = head[:cut] if cut else head
    try:
        frame = pl.read_csv(
            sample,
            has_header=options.has_header,
            skip_rows=options.skip_rows,
            separator=options.delimiter,
            quote_char=options.quote_char,
            null_values=[v for v in options.null_values if v] or None,
            infer_schema=False,
            truncate_ragged_lines=True,
            raise_if_empty=False,
        )
    except (pl.exceptions.PolarsError, ValueError, OSError):
        return {}  # Polars cannot read the sample: leave the columns as text
    if frame.width != len(names):
        return {}
    frame.columns = names
    inferred: dict[str, str] = {}
    for name in columns:
        kind = _kind(frame[name])
        if kind is not None:
            inferred[name] = kind
    return inferred


def _kind(column: pl.Series) -> str | None:
    """The type every value of a text column parses as (the way ``csv_records.parse`` will)."""
    text = column.str.strip_chars()
    text = text.filter(text.is_not_null() & (text != ""))
    if text.is_empty():
        return None
    if text.cast(pl.Int64, strict=False).null_count() == 0:
        return None if text.str.contains(r"^[+-]?0\d").any() else "int64"
    if text.cast(pl.Float64, strict=False).null_count() == 0:
        return "float64"
    if text.str.to_lowercase().is_in(["true", "false"]).all():
        return "bool"
    return None
