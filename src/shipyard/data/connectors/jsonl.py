"""JSON Lines files and globs, with broken lines kept aside; the JSON-to-frame rules of HTTP.

Each non-blank line is one JSON object. Python's ``json`` parses the lines (strictly: ``NaN`` and
``Infinity`` are not JSON, duplicate keys are refused) and a Polars frame is built per batch of
``BATCH_LINES`` lines, so files stream. ``scan()`` first reads the files once to learn every
field and its type (so a field that first appears late is not lost), then each collection reads
them again. ``_row`` is the 0-based line number (blank lines are skipped but counted), so
``line = _row + 1``; it continues across the files of a glob in sorted path order.

**Types** (shared with the HTTP connector): a field whose values are all booleans is Boolean,
all integers Int64, integers and floats Float64; anything else (strings, nested objects and
lists, mixed kinds, integers beyond 64 bits) is String, non-strings written as compact JSON text
(``{"a":1}``), which harmonization can ``str.json_decode``. Structs were not chosen because
their fields can differ between lines and pages.

**Rejected lines** (``connector.rejected()`` after the scan was collected), ``_failed_checks``:
``invalid_utf8``, ``malformed_json: <reason>``, ``not_an_object: <kind>``,
``line_too_long: over N bytes``, ``type_mismatch: column 'c' is <type>`` (the file changed
between the two reads).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import polars as pl

from shipyard.core.errors import InvalidData, SourceUnavailable
from shipyard.data.connectors.base import (
    ROW,
    SOURCE,
    ConnectorBase,
    bookkeeping,
    lazy_from_batches,
    rejected_frame,
    resolve_files,
    since_filter,
    truncate_line,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

BATCH_LINES = 10_000
MAX_LINE_BYTES = 64 << 20
_INT64 = (-(1 << 63), (1 << 63) - 1)
_Rejected = tuple[str, str, int, str, list[str]]


class JsonError(ValueError):
    """A JSON text is not strict JSON (or nests too deeply); the message says why."""


def _refuse_constant(token: str) -> object:
    raise JsonError(f"{token} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        dupe = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise JsonError(f"duplicate key {dupe!r}")
    return result


def parse_json(text: str | bytes) -> Any:
    """Parse strict JSON; raises ``JsonError`` with the reason."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise JsonError(str(e)) from None
    except RecursionError:
        raise JsonError("nested too deeply") from None


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if _INT64[0] <= value <= _INT64[1] else "text"
    if isinstance(value, float):
        return "float"
    return "text"


class SchemaBuilder:
    """Learns each field's type from records seen one at a time (see the module docstring)."""

    def __init__(self) -> None:
        self.kinds: dict[str, set[str]] = {}

    def add(self, record: dict[str, Any]) -> None:
        """Take one record into account."""
        for key, value in record.items():
            kinds = self.kinds.setdefault(key, set())
            if value is not None:
                kinds.add(_kind(value))

    def schema(self) -> dict[str, pl.DataType]:
        """The Polars type of each field, in order of first appearance."""
        out: dict[str, pl.DataType] = {}
        for key, kinds in self.kinds.items():
            if kinds == {"bool"}:
                out[key] = pl.Boolean()
            elif kinds == {"int"}:
                out[key] = pl.Int64()
            elif kinds and kinds <= {"int", "float"}:
                out[key] = pl.Float64()
            else:
                out[key] = pl.String()
        return out


def _convert(value: object, dtype: pl.DataType) -> tuple[object, bool]:
    """``(value as dtype, ok)``; text columns take anything, written as JSON when not a str."""
    if value is None:
        return None, True
    if dtype == pl.String():
        return (value if isinstance(value, str) else _compact(value)), True
    kind = _kind(value)
    if dtype == pl.Boolean():
        return value, kind == "bool"
    if dtype == pl.Int64():
        return value, kind == "int"
    if kind in ("int", "float") and isinstance(value, int | float):
        return float(value), True
    return None, False


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def records_frame(
    records: Iterable[dict[str, Any]], schema: dict[str, pl.DataType]
) -> tuple[pl.DataFrame, list[tuple[int, list[str]]]]:
    """Build a frame of ``schema`` from records; also return ``(index, reasons)`` of misfits."""
    columns: dict[str, list[object]] = {key: [] for key in schema}
    misfits: list[tuple[int, list[str]]] = []
    for index, record in enumerate(records):
        reasons = [f"unexpected_field: {k!r}" for k in record if k not in schema]
        values = {}
        for key, dtype in schema.items():
            value, ok = _convert(record.get(key), dtype)
            values[key] = value
            if not ok:
                reasons.append(f"type_mismatch: column {key!r} is {dtype}")
        if reasons:
            misfits.append((index, reasons))
            continue
        for key, value in values.items():
            columns[key].append(value)
    frame = pl.DataFrame(
        [pl.Series(k, v, dtype=schema[k], strict=True) for k, v in columns.items()]
    )
    return frame, misfits


class JsonlConnector(ConnectorBase):
    """Reads ``uri`` (a path or glob) as JSON Lines; see the module docstring."""

    _can_reject = True

    def scan(self, since: object | None = None) -> pl.LazyFrame:
        """Learn the fields (one read), then return the lazy scan (read again per collection)."""
        files = resolve_files(self.spec, self.base_dir)
        builder = SchemaBuilder()
        for path in files:
            for _, _, record in self._lines(path):
                if isinstance(record, dict):
                    builder.add(record)
        schema = builder.schema()
        if reserved := sorted({SOURCE, ROW} & set(schema)):
            raise InvalidData(f"source {self.spec.name!r}: fields {reserved} are reserved")
        full = {**schema, SOURCE: pl.String(), ROW: pl.Int64()}
        lf = lazy_from_batches(
            lambda: self._batches(files, schema), full, f"jsonl:{self.spec.name}"
        )
        if since is not None and self.spec.watermark is not None and schema:
            lf = lf.filter(
                since_filter(self.spec.name, pl.Schema(full), self.spec.watermark, since)
            )
        return lf

    def _lines(self, path: Path) -> Iterator[tuple[int, str, object]]:
        """``(line index, raw text, record or reason)`` per non-blank line; a reason is a str."""
        try:
            handle = path.open("rb")
        except OSError as e:
            raise SourceUnavailable(f"source {self.spec.name!r}: cannot open {path}: {e}") from e
        with handle:
            for index, raw in enumerate(iter(lambda: handle.readline(MAX_LINE_BYTES + 1), b"")):
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    while (rest := handle.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                        pass
                    text = raw[:20_000].decode("utf-8", "replace")
                    yield index, text, f"line_too_long: over {MAX_LINE_BYTES} bytes"
                    continue
                if not raw.strip():
                    continue
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                yield index, text, self._record(raw)

    @staticmethod
    def _record(raw: bytes) -> object:
        try:
            value = parse_json(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return "invalid_utf8"
        except JsonError as e:
            return f"malformed_json: {e}"
        if not isinstance(value, dict):
            return f"not_an_object: {type(value).__name__}"
        return value

    def _batches(self, files: list[Path], schema: dict[str, pl.DataType]) -> Iterator[pl.DataFrame]:
        rejected: list[_Rejected] = []
        first_row = 0
        for path in files:
            batch: list[tuple[int, str, dict[str, Any]]] = []
            last = -1
            for index, text, record in self._lines(path):
                last = index
                if isinstance(record, str):
                    rejected.append(
                        (
                            self.spec.name,
                            str(path),
                            first_row + index,
                            truncate_line(text),
                            [record],
                        )
                    )
                    continue
                batch.append((index, text, record))  # type: ignore[arg-type]
                if len(batch) >= BATCH_LINES:
                    yield self._frame(batch, schema, path, first_row, rejected)
                    batch = []
            if batch:
                yield self._frame(batch, schema, path, first_row, rejected)
            first_row += last + 1  # numbering goes on after this file's last line
        self._rejected = rejected_frame(rejected).sort(ROW)

    def _frame(
        self,
        batch: list[tuple[int, str, dict[str, Any]]],
        schema: dict[str, pl.DataType],
        path: Path,
        first_row: int,
        rejected: list[_Rejected],
    ) -> pl.DataFrame:
        frame, misfits = records_frame((r for _, _, r in batch), schema)
        bad = {i for i, _ in misfits}
        for i, reasons in misfits:
            index, text, _ = batch[i]
            rejected.append(
                (self.spec.name, str(path), first_row + index, truncate_line(text), reasons)
            )
        rows = [first_row + index for i, (index, _, _) in enumerate(batch) if i not in bad]
        frame = bookkeeping(frame, self.spec.name, 0)
        return frame.with_columns(pl.Series(ROW, rows, dtype=pl.Int64))
