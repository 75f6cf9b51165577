"""The ``sources:`` section of ``shipyard.yaml`` and what every connector shares.

A source is a :class:`SourceSpec`; :func:`open_connector` turns it into a :class:`Connector`,
importing only the module of the kind it needs (so a CSV project never imports SQLAlchemy).
``connector.scan(since)`` returns a ``pl.LazyFrame`` of the source's columns plus two bookkeeping
columns: ``_source`` (String, the source's name) and ``_row`` (Int64, the 0-based number of the
record in the source; for a glob of files numbering continues across the files in sorted path
order, so it is stable across runs as long as files are only added at the end of that order).

With ``since`` (the previous run's :func:`max_watermark`), only rows whose watermark column is
strictly greater are returned. ``connector.rejected()`` returns the records the last completed
scan could not read (malformed CSV lines, broken JSON lines, ...), with the columns of
:data:`REJECTED_SCHEMA`, so that ``rows in = rows scanned + rows rejected`` holds from the start.

The option models of each kind (``csv:``, ``http:``) live here too, because ``SourceSpec``
validates them; the connector modules re-export them.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, Self

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shipyard.core.errors import InvalidArgument, InvalidData, SourceUnavailable
from shipyard.data.dtypes import to_polars

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import TracebackType

_CFG = ConfigDict(extra="forbid", frozen=True)
SOURCE = "_source"
ROW = "_row"
#: Columns of ``Connector.rejected()``: the source, the file (empty when not a file), the
#: record number, the raw text (truncated to ``MAX_LINE_BYTES``) and why it was rejected.
REJECTED_SCHEMA: dict[str, pl.DataType] = {
    SOURCE: pl.String(),
    "_file": pl.String(),
    ROW: pl.Int64(),
    "_line": pl.String(),
    "_failed_checks": pl.List(pl.String()),
}
MAX_LINE_BYTES = 10_000
Format = Literal["csv", "parquet", "jsonl", "sql", "http"]
_EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "mssql", "oracle")
_CONNECTORS: dict[str, str] = {
    "csv": "shipyard.data.connectors.csv:CsvConnector",
    "parquet": "shipyard.data.connectors.parquet:ParquetConnector",
    "jsonl": "shipyard.data.connectors.jsonl:JsonlConnector",
    "sql": "shipyard.data.connectors.sql:SqlConnector",
    "http": "shipyard.data.connectors.http:HttpConnector",
}


class CsvOptions(BaseModel):
    """``csv:`` options. Every column is read as String unless ``columns`` gives its type."""

    model_config = _CFG
    delimiter: str = Field(",", min_length=1, max_length=1)
    quote_char: str | None = Field('"', min_length=1, max_length=1)  # None: no quoting
    encoding: Literal["utf8", "utf8-lossy", "latin1"] = "utf8"
    has_header: bool = True
    column_names: tuple[str, ...] | None = None  # names for a file without header
    null_values: tuple[str, ...] = ("",)  # field values read as null
    skip_rows: int = Field(0, ge=0)  # records skipped before the header
    comment_prefix: str | None = Field(None, min_length=1)  # lines starting with it are dropped
    newlines_in_values: bool = False  # else a value spanning lines is a malformed record
    columns: dict[str, str] | None = None  # column -> contract type name (dtypes.py)
    infer_types: bool = True  # type the other columns from a sample (int64 / float64 / bool)
    # Polars parses 4 blocks of whole lines at a time; pyarrow (where lines are not plain)
    # reads up to 32 blocks ahead, and a longer record makes it re-read the file with larger
    # blocks (see connectors/csv.py).
    block_size_bytes: int = Field(1 << 20, ge=1 << 12, le=256 << 20)

    @field_validator("columns")
    @classmethod
    def _known_types(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for type_name in (value or {}).values():
            to_polars(type_name)
        return value


class NoPagination(BaseModel):
    """One request."""

    model_config = _CFG
    type: Literal["none"] = "none"


class PagePagination(BaseModel):
    """``?page=N&size=M`` from ``start`` upwards until a page has no records."""

    model_config = _CFG
    type: Literal["page"]
    page_param: str = "page"
    size_param: str | None = "size"
    size: int = Field(100, ge=1)
    start: int = 1


class CursorPagination(BaseModel):
    """The next request sends the cursor found at ``cursor_field`` until there is none."""

    model_config = _CFG
    type: Literal["cursor"]
    cursor_field: str = Field(min_length=1)  # dotted path in the response
    cursor_param: str = Field(min_length=1)


Pagination = Annotated[
    NoPagination | PagePagination | CursorPagination, Field(discriminator="type")
]


class HttpOptions(BaseModel):
    """``http:`` options of a JSON API source (see ``connectors/http.py``)."""

    model_config = _CFG
    records: str = ""  # dotted path to the list of records; "" = the response is the list
    pagination: Pagination = NoPagination()
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)  # values may say ${ENV_NAME}
    since_param: str | None = None  # query parameter that passes the watermark to the API
    timeout_s: float = Field(10.0, gt=0, le=600)
    retries: int = Field(3, ge=0, le=20)
    max_pages: int = Field(10_000, ge=1)
    max_response_bytes: int = Field(50_000_000, ge=1)
    allow_private_network: bool = False


class SourceSpec(BaseModel):
    """One entry of ``sources:``; ``format`` is inferred from the URI when not given."""

    model_config = _CFG
    name: str = Field(min_length=1)
    uri: str = Field(min_length=1)
    format: Format | None = None
    csv: CsvOptions | None = None
    table: str | None = None
    query: str | None = None
    http: HttpOptions | None = None
    watermark: str | None = None
    harmonize: dict[str, Any] | None = None  # owned by harmonize.py
    on_schema_drift: Literal["fail", "adapt"] = "fail"  # owned by schema_drift.py

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        kind = self.resolved_format
        if self.table is not None and self.query is not None:
            raise ValueError(f"source {self.name!r}: give either table or query, not both")
        if kind == "sql" and self.table is None and self.query is None:
            raise ValueError(f"source {self.name!r}: an SQL source needs table or query")
        if kind != "sql" and (self.table is not None or self.query is not None):
            raise ValueError(f"source {self.name!r}: table/query only apply to SQL sources")
        if self.csv is not None and kind != "csv":
            raise ValueError(f"source {self.name!r}: csv options only apply to CSV sources")
        if self.http is not None and kind != "http":
            raise ValueError(f"source {self.name!r}: http options only apply to HTTP sources")
        return self

    @property
    def resolved_format(self) -> Format:
        """The format given, else the one the URI's scheme or extension implies."""
        if self.format is not None:
            return self.format
        if self.table is not None or self.query is not None:
            return "sql"
        scheme = self.uri.split("://", 1)[0].lower() if "://" in self.uri else ""
        if scheme in ("http", "https"):
            return "http"
        if scheme.split("+", 1)[0] in _SQL_SCHEMES:
            return "sql"
        suffixes = [s.lower() for s in Path(self.uri.split("?", 1)[0]).suffixes]
        for suffix in reversed(suffixes):
            if suffix in _EXTENSIONS:
                return _EXTENSIONS[suffix]
        raise ValueError(
            f"source {self.name!r}: cannot tell the format of {self.uri!r}; "
            "set format: csv | parquet | jsonl | sql | http"
        )


class Connector(Protocol):
    """What every connector offers; use it as a context manager so it is closed."""

    spec: SourceSpec

    def scan(self, since: object | None = None) -> pl.LazyFrame:
        """Rows of the source (watermark > ``since`` when given) plus ``_source`` and ``_row``."""
        ...

    def rejected(self) -> pl.DataFrame:
        """Records the last completed scan could not read (columns: ``REJECTED_SCHEMA``)."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class ConnectorBase:
    """Context-manager plumbing and ``rejected()`` for every connector."""

    #: Set by connectors that can reject records, once a scan has been fully collected.
    _rejected: pl.DataFrame | None = None
    _can_reject = False

    def __init__(self, spec: SourceSpec, *, base_dir: Path) -> None:
        self.spec = spec
        self.base_dir = base_dir

    def rejected(self) -> pl.DataFrame:
        """Records the last completed scan could not read (see the connector's module)."""
        if not self._can_reject:
            return pl.DataFrame(schema=REJECTED_SCHEMA)
        if self._rejected is None:
            raise InvalidData(
                f"source {self.spec.name!r}: no scan has been collected yet; collect scan() "
                "before asking for rejected records"
            )
        return self._rejected

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_connector(spec: SourceSpec, *, base_dir: Path) -> Connector:
    """Return the connector for ``spec``; relative file paths resolve against ``base_dir``."""
    module_name, class_name = _CONNECTORS[spec.resolved_format].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    connector: Connector = cls(spec, base_dir=base_dir)
    return connector


def max_watermark(lf: pl.LazyFrame, column: str) -> object | None:
    """Return the largest value of ``column`` in ``lf`` (None when it has no non-null value)."""
    if column not in lf.collect_schema():
        raise InvalidData(f"watermark column {column!r} is not in the frame; check `watermark:`")
    value: object | None = lf.select(pl.col(column).max()).collect().item()
    return value


def since_filter(name: str, schema: pl.Schema, column: str, since: object) -> pl.Expr:
    """The expression ``column > since``, with ``since`` converted to the column's type.

    Text columns (CSV reads everything as text) compare as text, so ISO-8601 timestamps order
    correctly; a ``datetime``/``date`` ``since`` is written in ISO form for them.
    """
    if column not in schema:
        raise InvalidData(
            f"source {name!r}: watermark column {column!r} not found; "
            f"columns are {', '.join(schema.names())}"
        )
    dtype = schema[column]
    if dtype == pl.String():
        text = since.isoformat() if isinstance(since, dt.date | dt.time) else str(since)
        return pl.col(column) > pl.lit(text)
    try:
        if isinstance(since, str) and dtype.is_numeric():
            # A text watermark recorded before the column was typed (inferred CSV types).
            since = pl.Series([since]).str.strip_chars().cast(dtype, strict=True)[0]
        return pl.col(column) > pl.lit(since, dtype=dtype)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as e:
        raise InvalidArgument(
            f"source {name!r}: watermark {since!r} cannot be compared with column {column!r} "
            f"of type {dtype}"
        ) from e


def check_identifier(name: str, what: str, source: str) -> str:
    """Return ``name`` when it is a plain SQL identifier (letters, digits, ``_``, ``$``)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]{0,127}", name):
        raise InvalidArgument(
            f"source {source!r}: {what} {name!r} is not a plain identifier (letters, digits, _); "
            "use query: for anything else"
        )
    return name


def rejected_frame(rows: list[tuple[str, str, int, str, list[str]]]) -> pl.DataFrame:
    """Build a ``REJECTED_SCHEMA`` frame from ``(source, file, row, line, reasons)`` tuples."""
    return pl.DataFrame(rows, schema=REJECTED_SCHEMA, orient="row")


def truncate_line(text: str) -> str:
    """Cut raw text to ``MAX_LINE_BYTES`` bytes of UTF-8 (never inside a character)."""
    raw = text.encode("utf-8", "replace")
    return text if len(raw) <= MAX_LINE_BYTES else raw[:MAX_LINE_BYTES].decode("utf-8", "ignore")


def lazy_from_batches(
    batches: Callable[[], Iterator[pl.DataFrame]], schema: dict[str, pl.DataType], label: str
) -> pl.LazyFrame:
    """A LazyFrame whose every collection calls ``batches()`` and streams what it yields.

    Polars pushes projections, filters (the watermark) and row limits into the source; they are
    applied batch by batch here, so memory holds one batch at a time when the consumer streams
    (``sink_parquet``, ``collect(engine="streaming")``).
    """
    from polars.io.plugins import register_io_source

    def source(
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        _batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        remaining = n_rows
        stream = batches()
        try:
            for batch in stream:
                frame = batch if predicate is None else batch.filter(predicate)
                if with_columns is not None:
                    frame = frame.select(with_columns)
                if remaining is not None:
                    frame = frame.head(remaining)
                    remaining -= frame.height
                yield frame
                if remaining == 0:
                    return
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    return register_io_source(source, schema=schema, explain_name=label)


def bookkeeping(frame: pl.DataFrame, name: str, first_row: int) -> pl.DataFrame:
    """Add ``_source`` and ``_row`` (``first_row`` upwards) to a batch."""
    rows = pl.int_range(first_row, first_row + frame.height, dtype=pl.Int64, eager=True)
    return frame.with_columns(pl.lit(name, dtype=pl.String).alias(SOURCE), rows.alias(ROW))


def resolve_files(spec: SourceSpec, base_dir: Path) -> list[Path]:
    """The files a path or glob URI names, sorted; relative paths resolve against ``base_dir``."""
    uri = spec.uri
    if "://" in uri or uri.lower().startswith("file:"):
        raise InvalidArgument(
            f"source {spec.name!r}: {spec.uri!r} is not a local path; file sources read local "
            "paths or globs (relative to the project directory)"
        )
    path = Path(uri).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    if any(ch in uri for ch in "*?["):
        anchor = Path(path.anchor)
        files = sorted(p for p in anchor.glob(str(path.relative_to(anchor))) if p.is_file())
    else:
        files = [path] if path.is_file() else []
    if not files:
        raise SourceUnavailable(
            f"source {spec.name!r}: no file matches {str(path)!r}; check `uri:` "
            "(relative paths are read from the project directory)"
        )
    return files
