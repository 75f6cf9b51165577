"""Window features over a historical dataset: the stream's engine, fed row by row.

The dataset's row order is taken as the arrival order, so a row sees the rows above it whose
time is not after its own (``data.windows`` says why that is both point-in-time correct and
what the stream computes). The engine is shared with the stream on purpose: one code path is
what makes training and serving features agree, and a test feeds the same events both ways.
Cost is the events in each row's window per row, in Python: fine for the windows features are
made of (minutes to days of one key's events), slow for a key with millions of events in one
window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from shipyard.core.errors import InvalidArgument
from shipyard.data.windows import WindowBook, compute

if TYPE_CHECKING:
    from shipyard.data.windows import WindowDef

_NUMERIC_AGGS = ("sum", "mean")


def add_window_features(frame: pl.DataFrame, defs: list[WindowDef]) -> pl.DataFrame:
    """``frame`` with one new column per window feature, in the frame's row order.

    A row without a time or a key gets null features and is not stored for later rows.

    Raises:
        InvalidArgument: A feature names a missing column, a time column that is neither an
            integer (epoch milliseconds) nor a date/datetime, or sums a non-numeric column.
    """
    schema = frame.schema
    check_columns(defs, schema)
    times = sorted({d.time for d in defs})
    columns = sorted({c for d in defs for c in (d.key, d.column) if c is not None} - set(times))
    view = frame.select(*columns, *(_epoch_ms(t, schema[t]) for t in times))
    book = WindowBook()
    values: dict[str, list[Any]] = {d.name: [] for d in defs}
    needed = sorted({d.key for d in defs} | set(times))
    for i, row in enumerate(view.iter_rows(named=True)):
        event_id, order = str(i), (i,)
        if any(row[c] is None for c in needed):
            for d in defs:
                values[d.name].append(None)
            continue
        features = compute(defs, book, event_id, row, order)
        for name, value in features.items():
            values[name].append(value)
        book.add(defs, event_id, row, order)
    return frame.with_columns(
        pl.Series(d.name, values[d.name], dtype=_dtype(d, schema), strict=False) for d in defs
    )


def check_columns(defs: list[WindowDef], schema: pl.Schema) -> None:
    """Refuse features whose columns are missing or of a type the aggregate cannot use."""
    for d in defs:
        for column in (d.key, d.time, d.column):
            if column is not None and column not in schema:
                raise InvalidArgument(
                    f"feature {d.name}: no column {column!r}; columns are {', '.join(schema)}"
                )
        time_type = schema[d.time]
        if not (time_type.is_integer() or time_type in (pl.Date, pl.Datetime)):
            raise InvalidArgument(
                f"feature {d.name}: time column {d.time!r} is {time_type}; it must hold epoch "
                "milliseconds (an integer) or dates/datetimes"
            )
        if d.agg in _NUMERIC_AGGS and d.column is not None and not schema[d.column].is_numeric():
            raise InvalidArgument(
                f"feature {d.name}: {d.agg} needs a numeric column; {d.column!r} is "
                f"{schema[d.column]}"
            )


def _epoch_ms(name: str, dtype: pl.DataType) -> pl.Expr:
    if dtype.is_integer():
        return pl.col(name).cast(pl.Int64)
    return pl.col(name).cast(pl.Datetime("ms")).dt.epoch("ms").alias(name)


def _dtype(d: WindowDef, schema: pl.Schema) -> pl.DataType:
    if d.agg in ("count", "distinct"):
        return pl.Int64()
    if d.agg in ("sum", "mean"):
        return pl.Float64()
    assert d.column is not None  # only count may omit it
    source = schema[d.column]
    return pl.Float64() if source.is_numeric() else source
