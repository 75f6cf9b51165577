"""Windows of the prediction log: one row per model input row, split by time or by count.

The log stores one row per request, with the request's columns as JSON (``inputs_json``,
column-oriented: ``{"feature": [v1, v2, ...]}``) and the answer likewise (``outputs_json``:
``{"predictions": [...], "probabilities": [[...], ...]}``). Drift needs the opposite shape:
one typed column per feature, one row per scored row. ``decode_log`` does that in Polars:
``str.json_decode`` with the reference's types (no schema inference, no Python per row), then
one ``explode`` of all list columns together, so a request of 50 rows becomes 50 rows.

The log is written by our own server, so malformed JSON should not occur; if it does, those
log rows are counted and left out (never a crash, never silently). A value of the wrong type
(text in a numeric feature) becomes missing, and shows up as a higher missing rate. Shadow
answers repeat the primary's inputs, so they are left out unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
import polars as pl

from shipyard.core.errors import InvalidArgument
from shipyard.monitor.drift_report import PREDICTION, PROBABILITY
from shipyard.monitor.logfiles import read_prediction_log

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

META = ("request_id", "model", "version", "variant", "ts_ms")
"""Log columns kept on every decoded row."""
_OUTPUTS = (PREDICTION, PROBABILITY)


@dataclass(frozen=True)
class DecodedLog:
    """Log rows turned into feature rows.

    Attributes:
        frame: ``META`` columns, then one column per schema entry, one row per scored row.
        requests: Log rows read (successful answers of the chosen variants), malformed included.
        malformed: Log rows left out: unreadable JSON, or feature lists of unequal lengths.
    """

    frame: pl.DataFrame
    requests: int
    malformed: int


@dataclass(frozen=True)
class Window:
    """Rows of one window of the log.

    Attributes:
        start_ms: Start (inclusive), epoch milliseconds.
        end_ms: End (exclusive).
        frame: The window's rows (as ``DecodedLog.frame``), in time order.
        versions: Model versions that served them, ascending.
        complete: False for the last window of a count split when it is short, or a time
            window that had not ended at ``now_ms``.
    """

    start_ms: int
    end_ms: int
    frame: pl.DataFrame
    versions: tuple[int, ...]
    complete: bool = True

    @property
    def rows(self) -> int:
        """Rows in the window."""
        return self.frame.height

    @property
    def version(self) -> int | None:
        """The one version that served the window, or None when several (or none) did."""
        return self.versions[0] if len(self.versions) == 1 else None


def decode_log(
    log: pl.DataFrame | pl.LazyFrame,
    schema: Mapping[str, pl.DataType],
    *,
    include_shadow: bool = False,
) -> DecodedLog:
    """Turn prediction-log rows into one typed row per scored input row.

    Args:
        log: Rows of ``read_prediction_log`` (its ``SCHEMA``).
        schema: Feature name to type (``DriftReference.schema()``); ``__prediction__`` and
            ``__probability__`` entries are read from the answers.
        include_shadow: Keep ``shadow:*`` variants (their inputs repeat the primary's).

    Returns:
        The decoded rows and the counts of what was read and left out.
    """
    frame = log.lazy().filter(pl.col("status") == 200)
    if not include_shadow:
        frame = frame.filter(~pl.col("variant").fill_null("").str.starts_with("shadow:"))
    rows = frame.select(*META, "inputs_json", "outputs_json").collect()
    features = {k: v for k, v in schema.items() if k not in _OUTPUTS}
    outputs = {k: v for k, v in schema.items() if k in _OUTPUTS}
    read, unreadable = rows.height, 0
    try:
        wide = _decode_both(rows, features, outputs)
    except pl.exceptions.ComputeError:  # unparseable JSON somewhere: find it the slow way
        rows, unreadable = _readable(rows)
        wide = _decode_both(rows, features, outputs)
    lengths = [pl.col(f).list.len() for f in features]
    size = pl.max_horizontal(lengths) if lengths else pl.col("predictions").list.len()
    wide = wide.with_columns(size.fill_null(0).alias("_n"))
    even = pl.all_horizontal([n.is_null() | (n == pl.col("_n")) for n in lengths] or [True])
    uneven = wide.filter(~even).height
    wide = wide.filter(even & (pl.col("_n") > 0))
    lists = [*features, *(_output_lists(outputs))]
    wide = wide.with_columns(
        *(_blank_if_short(name, dtype) for name, dtype in features.items()),
        *_output_columns(outputs),
    )
    decoded = wide.select(*META, *lists).explode(lists) if lists else wide.select(META)
    return DecodedLog(decoded, read, unreadable + uneven)


def _decode_both(
    rows: pl.DataFrame, features: Mapping[str, pl.DataType], outputs: Mapping[str, pl.DataType]
) -> pl.DataFrame:
    inputs = _decode(rows.get_column("inputs_json"), {k: pl.List(v) for k, v in features.items()})
    answers = _decode(rows.get_column("outputs_json"), _answer_struct(outputs))
    return pl.concat([rows.select(META), inputs, answers], how="horizontal")


def _readable(rows: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Keep the rows whose two JSON documents parse as objects; count the others."""
    pairs = rows.select("inputs_json", "outputs_json").iter_rows()
    keep = pl.Series([_parses(a) and _parses(b) for a, b in pairs], dtype=pl.Boolean)
    kept = rows.filter(keep)
    return kept, rows.height - kept.height


def _parses(text: str | None) -> bool:
    if text is None:
        return False
    try:
        return isinstance(orjson.loads(text), dict)
    except orjson.JSONDecodeError:
        return False


def _decode(texts: pl.Series, fields: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Decode JSON objects into typed columns; a value of the wrong type becomes null."""
    if not fields:
        return pl.DataFrame()
    struct = pl.Struct(dict(fields))
    try:
        decoded = texts.str.json_decode(struct)
    except pl.exceptions.ComputeError:
        # A value that does not fit its type fails the whole column: read everything as text,
        # then cast each list leniently (so one bad value is one missing value).
        as_text = pl.Struct({k: _as_text(v) for k, v in fields.items()})
        decoded = texts.str.json_decode(as_text)
        return decoded.struct.unnest().with_columns(
            pl.col(k).cast(v, strict=False) for k, v in fields.items()
        )
    return decoded.struct.unnest()


def _as_text(dtype: pl.DataType) -> pl.DataType:
    if isinstance(dtype, pl.List):
        inner = dtype.inner
        return pl.List(_as_text(inner if isinstance(inner, pl.DataType) else inner()))
    return pl.String()


def _answer_struct(outputs: Mapping[str, pl.DataType]) -> dict[str, pl.DataType]:
    fields: dict[str, pl.DataType] = {}
    if PREDICTION in outputs:
        fields["predictions"] = pl.List(outputs[PREDICTION])
    if PROBABILITY in outputs:
        fields["probabilities"] = pl.List(pl.List(pl.Float64()))
    return fields


def _output_lists(outputs: Mapping[str, pl.DataType]) -> list[str]:
    return [name for name in _OUTPUTS if name in outputs]


def _output_columns(outputs: Mapping[str, pl.DataType]) -> list[pl.Expr]:
    """The answer lists, blanked where they do not line up with the inputs."""
    out = []
    if PREDICTION in outputs:
        source = pl.col("predictions")
        out.append(_aligned(source, outputs[PREDICTION]).alias(PREDICTION))
    if PROBABILITY in outputs:
        last = pl.col("probabilities").list.eval(pl.element().list.last())
        out.append(_aligned(last, pl.Float64()).alias(PROBABILITY))
    return out


def _aligned(values: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    blank = pl.int_ranges(0, pl.col("_n")).list.eval(pl.lit(None, dtype))
    return pl.when(values.list.len() == pl.col("_n")).then(values).otherwise(blank)


def _blank_if_short(name: str, dtype: pl.DataType) -> pl.Expr:
    """A feature absent from a request: as many missing values as the request has rows."""
    blank = pl.int_ranges(0, pl.col("_n")).list.eval(pl.lit(None, dtype))
    return pl.when(pl.col(name).is_null()).then(blank).otherwise(pl.col(name)).alias(name)


def _versions(frame: pl.DataFrame) -> tuple[int, ...]:
    if "version" not in frame.columns:
        return ()
    return tuple(int(v) for v in frame.get_column("version").drop_nulls().unique().sort())


def windows_by_time(
    frame: pl.DataFrame, every_ms: int, *, origin_ms: int = 0, now_ms: int | None = None
) -> list[Window]:
    """Split rows into windows of ``every_ms``, aligned to ``origin_ms``; empty ones omitted.

    Args:
        frame: Decoded rows with ``ts_ms``.
        every_ms: Window length.
        origin_ms: A window boundary (windows are ``[origin + k*every, origin + (k+1)*every)``).
        now_ms: When given, windows ending after it are marked incomplete.

    Raises:
        InvalidArgument: ``every_ms`` is not positive, or ``frame`` has no ``ts_ms``.
    """
    if every_ms <= 0:
        raise InvalidArgument(f"every_ms must be positive, got {every_ms}")
    _need_ts(frame)
    start = ((pl.col("ts_ms") - origin_ms) // every_ms) * every_ms + origin_ms
    keyed = frame.sort("ts_ms", maintain_order=True).with_columns(start.alias("_start"))
    out = []
    for part in keyed.partition_by("_start", maintain_order=True):
        begin = int(part.get_column("_start")[0])
        end = begin + every_ms
        rows = part.drop("_start")
        complete = now_ms is None or end <= now_ms
        out.append(Window(begin, end, rows, _versions(rows), complete))
    return out


def windows_by_count(frame: pl.DataFrame, rows: int) -> list[Window]:
    """Split rows, in time order, into consecutive windows of ``rows`` rows.

    Each window spans its first ``ts_ms`` to its last + 1. A short last window is kept and
    marked incomplete.

    Raises:
        InvalidArgument: ``rows`` is not positive, or ``frame`` has no ``ts_ms``.
    """
    if rows <= 0:
        raise InvalidArgument(f"rows must be positive, got {rows}")
    _need_ts(frame)
    ordered = frame.sort("ts_ms", maintain_order=True)
    out = []
    for offset in range(0, ordered.height, rows):
        part = ordered.slice(offset, rows)
        ts = part.get_column("ts_ms")
        start, end = int(ts.min()), int(ts.max()) + 1  # type: ignore[arg-type]
        out.append(Window(start, end, part, _versions(part), part.height == rows))
    return out


def split_windows(
    frame: pl.DataFrame, *, every_ms: int | None = None, rows: int | None = None
) -> list[Window]:
    """Split by time (``every_ms``) or by count (``rows``); exactly one must be given.

    Raises:
        InvalidArgument: Neither or both given, or a non-positive size.
    """
    if (every_ms is None) == (rows is None):
        raise InvalidArgument("give exactly one of every_ms (time windows) or rows (count windows)")
    if every_ms is not None:
        return windows_by_time(frame, every_ms)
    assert rows is not None  # narrowed by the check above
    return windows_by_count(frame, rows)


def read_windows(
    root: Path,
    schema: Mapping[str, pl.DataType],
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    every_ms: int | None = None,
    rows: int | None = None,
    model: str | None = None,
) -> tuple[list[Window], DecodedLog]:
    """Read the log under ``root`` between two times, decode it and split it into windows.

    Returns:
        The windows and the decoded log (with its counts of rows left out).
    """
    log = read_prediction_log(root, since_ms=since_ms, until_ms=until_ms)
    if model is not None:
        log = log.filter(pl.col("model") == model)
    decoded = decode_log(log, schema)
    return split_windows(decoded.frame, every_ms=every_ms, rows=rows), decoded


def _need_ts(frame: pl.DataFrame) -> None:
    if "ts_ms" not in frame.columns:
        raise InvalidArgument("the rows have no ts_ms column; decode them with decode_log")
