"""Where drift reads its columns from: a frame in memory, or a lazy scan read column by column.

A window decoded from the prediction log is a DataFrame already. A large comparison (a
million-row window against the full training data, issue #17) is not: holding both tables
costs gigabytes. ``ColumnSource`` gives the drift check one column at a time from either, so a
Parquet file (or any ``pl.LazyFrame``) is never collected whole: each read selects one column
(Polars pushes the projection into the Parquet reader), and the caller drops it before asking
for the next.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import polars as pl

from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from numpy.typing import NDArray

Columns: TypeAlias = "pl.DataFrame | pl.LazyFrame | str | os.PathLike[str]"
"""What drift accepts as rows: a frame, a lazy frame, or the path of a Parquet file."""


class ColumnSource:
    """Rows that drift reads one column at a time.

    Args:
        data: A DataFrame (read in place), a LazyFrame (each column collected on its own), or
            the path of a Parquet file or folder/glob of Parquet files (scanned lazily).

    Raises:
        InvalidArgument: A path that does not exist.
    """

    def __init__(self, data: Columns) -> None:
        if isinstance(data, str | os.PathLike):
            path = Path(data)
            if not path.exists() and not any(ch in str(path) for ch in "*?["):
                raise InvalidArgument(
                    f"no Parquet file at {path}: drift reads a path as Parquet; pass an "
                    "existing file, or a DataFrame / LazyFrame"
                )
            data = pl.scan_parquet(path)
        self._frame = data if isinstance(data, pl.DataFrame) else None
        self._lazy = data if isinstance(data, pl.LazyFrame) else None
        self._columns = tuple(data.collect_schema().names())
        self._height: int | None = self._frame.height if self._frame is not None else None

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names, without reading any data."""
        return self._columns

    @property
    def height(self) -> int:
        """Rows (for Parquet, from the file footers)."""
        if self._height is None:
            assert self._lazy is not None
            self._height = int(self._lazy.select(pl.len()).collect().item())
        return self._height

    def series(self, name: str) -> pl.Series:
        """One column, read on its own."""
        if self._frame is not None:
            return self._frame.get_column(name)
        assert self._lazy is not None
        return self._lazy.select(name).collect().to_series()

    def floats(self, name: str) -> NDArray[np.float64]:
        """One numeric column as float64 (null as NaN).

        Raises:
            InvalidArgument: The column holds something other than numbers.
        """
        series = self.series(name)
        if not (series.dtype.is_numeric() or series.dtype == pl.Boolean or series.dtype == pl.Null):
            raise InvalidArgument(
                f"feature {name!r} is numeric in the reference but the data holds "
                f"{series.dtype}; decode the window with DriftReference.schema()"
            )
        return np.asarray(series.cast(pl.Float64).to_numpy(), dtype=np.float64)

    def time_bounds(self) -> tuple[int, int] | None:
        """The smallest ``ts_ms`` and the largest + 1, or None without timestamps."""
        if "ts_ms" not in self._columns:
            return None
        ts = pl.col("ts_ms")
        query = [ts.min().alias("low"), ts.max().alias("high")]
        source = self._frame.lazy() if self._frame is not None else self._lazy
        assert source is not None
        low, high = source.select(query).collect().row(0)
        if low is None:
            return None
        return int(low), int(high) + 1
