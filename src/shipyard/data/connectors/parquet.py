"""Parquet files and globs of Parquet files, scanned natively by Polars.

``pl.scan_parquet`` streams row groups and pushes the watermark filter down to row-group
statistics. The files of a glob are read in sorted path order; ``_row`` numbers rows across them
in that order. Every file's schema (its footer, cheap to read) must equal the first file's, else
``InvalidData`` names the odd file: give files with other columns their own source. Parquet
files are typed and self-describing, so nothing is ever rejected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from shipyard.core.errors import InvalidData, SourceUnavailable
from shipyard.data.connectors.base import (
    ROW,
    SOURCE,
    ConnectorBase,
    resolve_files,
    since_filter,
)

if TYPE_CHECKING:
    from pathlib import Path


class ParquetConnector(ConnectorBase):
    """Reads ``uri`` (a path or glob) as Parquet."""

    def scan(self, since: object | None = None) -> pl.LazyFrame:
        """Lazily scan the files; only their footers are read now."""
        files = resolve_files(self.spec, self.base_dir)
        schema = self._schema(files[0])
        for path in files[1:]:
            other = self._schema(path)
            if other != schema:
                raise InvalidData(
                    f"source {self.spec.name!r}: {path} has schema {dict(other)}, the first "
                    f"file {files[0]} has {dict(schema)}; give it its own source"
                )
        reserved = sorted({SOURCE, ROW} & set(schema.names()))
        if reserved:
            raise InvalidData(f"source {self.spec.name!r}: columns {reserved} are reserved")
        lf = pl.scan_parquet([str(p) for p in files], row_index_name=ROW, glob=False)
        lf = lf.with_columns(
            pl.col(ROW).cast(pl.Int64), pl.lit(self.spec.name, dtype=pl.String).alias(SOURCE)
        ).select([*schema.names(), SOURCE, ROW])
        if since is not None and self.spec.watermark is not None:
            lf = lf.filter(since_filter(self.spec.name, schema, self.spec.watermark, since))
        return lf

    def _schema(self, path: Path) -> pl.Schema:
        try:
            return pl.Schema(pl.read_parquet_schema(path))
        except OSError as e:
            raise SourceUnavailable(f"source {self.spec.name!r}: cannot read {path}: {e}") from e
        except pl.exceptions.PolarsError as e:
            raise InvalidData(
                f"source {self.spec.name!r}: {path} is not a readable Parquet file: {e}"
            ) from e
