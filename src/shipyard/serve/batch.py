"""Batch scoring: a large CSV or Parquet file through a model in chunks, with memory flat.

Rows are read ``chunk_rows`` at a time (Polars' batched CSV reader, pyarrow's Parquet batch
iterator), checked row by row against the contract, scored, and appended to the output with a
streaming writer. A row that cannot be scored goes to the reject file with its reasons; the
counts add up: rows in = rows scored + rows rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from shipyard.core.errors import InvalidArgument, InvalidData
from shipyard.serve.contract import NUMERIC_TYPES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from shipyard.registry.bundle import Bundle


@dataclass(frozen=True)
class BatchReport:
    """What a batch scoring run did."""

    rows_in: int
    rows_scored: int
    rows_rejected: int
    chunks: int
    output: Path
    rejects: Path | None

    @property
    def conserved(self) -> bool:
        """Every row was either scored or rejected."""
        return self.rows_in == self.rows_scored + self.rows_rejected


def _chunks(path: Path, chunk_rows: int) -> Iterator[pl.DataFrame]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        scan = pl.scan_parquet(path)
    elif suffix in (".csv", ".txt"):
        scan = pl.scan_csv(path, infer_schema=False)  # text in; the contract casts per column
    else:
        raise InvalidArgument(f"{path.name}: batch scoring reads .csv or .parquet files")
    yield from scan.collect_batches(chunk_size=chunk_rows, engine="streaming")


def _split_valid(
    bundle: Bundle, chunk: pl.DataFrame, unseen: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cast the features to the contract; rows with a failed cast or unseen category go aside."""
    manifest = bundle.manifest
    missing = [f.name for f in manifest.features if f.name not in chunk.columns]
    if missing:
        raise InvalidData(f"the input has no column(s) {', '.join(missing)}; the model needs them")
    reasons: list[pl.Expr] = []
    casts: list[pl.Expr] = []
    for f in manifest.features:
        column = pl.col(f.name)
        if f.dtype in NUMERIC_TYPES:
            cast = column.cast(pl.Float64, strict=False)
            reasons.append(
                pl.when(column.is_not_null() & cast.is_null()).then(
                    pl.lit(f"{f.name}: not a number")
                )
            )
        elif f.dtype == "bool":
            text = column.cast(pl.String).str.to_lowercase()
            cast = (
                pl.when(text.is_in(["true", "1"]))
                .then(True)
                .when(text.is_in(["false", "0"]))
                .then(False)
            )
            reasons.append(
                pl.when(column.is_not_null() & cast.is_null()).then(
                    pl.lit(f"{f.name}: not true/false")
                )
            )
        else:
            cast = column.cast(pl.String)
            if f.categories is not None and unseen == "error":
                reasons.append(
                    pl.when(cast.is_not_null() & ~cast.is_in(f.categories)).then(
                        pl.lit(f"{f.name}: unseen category")
                    )
                )
        casts.append(cast.alias(f.name))
    checked = chunk.with_row_index("_row").with_columns(
        pl.concat_str(reasons, separator="; ", ignore_nulls=True).alias("_reasons")
        if reasons
        else pl.lit(None, pl.String).alias("_reasons")
    )
    bad = checked.filter(pl.col("_reasons").is_not_null() & (pl.col("_reasons") != ""))
    good = checked.filter(pl.col("_reasons").is_null() | (pl.col("_reasons") == "")).with_columns(
        casts
    )
    return good.drop("_reasons"), bad


def score_file(
    bundle: Bundle,
    source: Path,
    output: Path,
    *,
    rejects: Path | None = None,
    chunk_rows: int = 50_000,
    unseen: str = "error",
    keep_columns: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> BatchReport:
    """Score ``source`` into ``output`` (Parquet, or CSV by suffix) chunk by chunk.

    Raises:
        InvalidArgument: Unsupported file types. InvalidData: a feature column is missing.
    """
    if output.suffix.lower() not in (".parquet", ".csv"):
        raise InvalidArgument(f"{output.name}: write .parquet or .csv")
    rejects = rejects or output.with_name(output.stem + ".rejects.csv")
    tmp_out = output.with_name(output.name + ".partial")
    tmp_rej = rejects.with_name(rejects.name + ".partial")
    writer: Any = None
    rows_in = scored = rejected = chunks = offset = 0
    try:
        with tmp_rej.open("w", encoding="utf-8") as reject_file:
            reject_file.write("row,reasons\n")
            for chunk in _chunks(source, chunk_rows):
                chunks += 1
                rows_in += chunk.height
                good, bad = _split_valid(bundle, chunk, unseen)
                for row, reason in bad.select("_row", "_reasons").iter_rows():
                    reject_file.write(f'{offset + row},"{reason}"\n')
                rejected += bad.height
                if good.height:
                    predictions = bundle.predict(good)
                    out = good.drop("_row") if keep_columns else pl.DataFrame()
                    out = out.with_columns(
                        pl.Series("prediction", predictions.labels).alias("prediction")
                    )
                    if predictions.proba is not None and bundle.manifest.classes is not None:
                        for j, label in enumerate(bundle.manifest.classes):
                            out = out.with_columns(
                                pl.Series(f"proba_{label}", predictions.proba[:, j])
                            )
                    out = out.with_columns((pl.lit(offset) + good["_row"]).alias("source_row"))
                    writer = _write(out, tmp_out, writer, csv=output.suffix.lower() == ".csv")
                    scored += out.height
                offset += chunk.height
                if on_chunk is not None:
                    on_chunk(chunk.height)
        if writer is not None:
            writer.close()
        elif output.suffix.lower() == ".parquet":
            pq.write_table(pa.table({"prediction": pa.array([], pa.string())}), tmp_out)
        else:
            tmp_out.write_text("prediction\n")
        tmp_out.replace(output)
        tmp_rej.replace(rejects)
    except BaseException:
        for partial in (tmp_out, tmp_rej):
            partial.unlink(missing_ok=True)
        raise
    return BatchReport(rows_in, scored, rejected, chunks, output, rejects if rejected else None)


def _write(frame: pl.DataFrame, path: Path, writer: Any, *, csv: bool) -> Any:
    if csv:
        with path.open("a" if writer is not None else "w", encoding="utf-8") as f:
            frame.write_csv(f, include_header=writer is None)
        return writer or _CsvMarker()
    table = frame.to_arrow()
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema, compression="zstd")
    writer.write_table(table.cast(writer.schema))
    return writer


class _CsvMarker:
    """Stands for an open CSV output (appended per chunk); nothing to close."""

    def close(self) -> None:
        """Nothing is held open between chunks."""
