"""Batch scoring: a large CSV or Parquet file through a model in chunks, with memory flat.

Rows are read ``chunk_rows`` at a time (Polars' batched CSV reader, pyarrow's Parquet batch
iterator), checked against the bundle's input contract with vectorized expressions
(``InputContract.check_frame``: the same rules and messages as an HTTP request), scored, and
appended to the output with a streaming writer. A row that cannot be scored goes to the reject
file with the reasons a 422 would give for it; the counts add up: rows in = rows scored + rows
rejected.

CSV has no types, so its cells are read by the CSV spelling of the feature's kind (digits for
numbers, ``true``/``false`` for booleans): that is the file format, not coercion. Parquet
columns keep their types and get the manifest's policy unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from shipyard.core.errors import InvalidArgument
from shipyard.registry.input_contract import reasons

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from shipyard.registry.bundle import Bundle
    from shipyard.registry.input_contract import FrameCheck, InputContract


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


def csv_column_types(path: Path) -> dict[str, pl.DataType]:
    """Types a CSV file's text columns hold throughout, from one streaming pass.

    Rows go out as they came in, with their prediction: an integer column must stay an integer
    (not ``12.0``, not ``"12"``). A column is ``Int64`` when every non-empty cell of the whole
    file parses as one (leading zeros excepted: ``007`` is an identifier), else ``Float64``,
    else ``Boolean`` (``true``/``false``); otherwise it stays text. The whole file, not a
    sample, so a later chunk can never fail the cast.
    """
    scan = pl.scan_csv(path, infer_schema=False)
    names = scan.collect_schema().names()
    if not names:
        return {}

    def text(name: str) -> pl.Expr:
        value = pl.col(name).str.strip_chars()
        return pl.when(value != "").then(value)

    checks = []
    for i, name in enumerate(names):
        present = text(name).is_not_null()
        checks += [
            (present & text(name).cast(pl.Int64, strict=False).is_null()).sum().alias(f"i{i}"),
            text(name).str.contains(r"^[+-]?0\d").any().alias(f"z{i}"),
            (present & text(name).cast(pl.Float64, strict=False).is_null()).sum().alias(f"f{i}"),
            (present & ~text(name).str.to_lowercase().is_in(["true", "false"]))
            .sum()
            .alias(f"b{i}"),
            present.sum().alias(f"n{i}"),
        ]
    found = scan.select(checks).collect(engine="streaming").row(0, named=True)
    types: dict[str, pl.DataType] = {}
    for i, name in enumerate(names):
        if not found[f"n{i}"]:
            continue
        if found[f"z{i}"]:
            continue  # 007, 00123: identifiers, kept as the text they are
        if found[f"i{i}"] == 0:
            types[name] = pl.Int64()
        elif found[f"f{i}"] == 0:
            types[name] = pl.Float64()
        elif found[f"b{i}"] == 0:
            types[name] = pl.Boolean()
    return types


def _as_typed(chunk: pl.DataFrame, types: dict[str, pl.DataType]) -> pl.DataFrame:
    """A CSV chunk's columns in the types the whole file holds (``csv_column_types``)."""
    if not types:
        return chunk
    exprs = []
    for name, dtype in types.items():
        value = pl.col(name).str.strip_chars()
        value = pl.when(value != "").then(value)
        if dtype == pl.Boolean:
            exprs.append((value.str.to_lowercase() == "true").alias(name))
        else:
            exprs.append(value.cast(dtype, strict=True).alias(name))
    return chunk.with_columns(exprs)


def contract_for(bundle: Bundle, source: Path, unseen: str | None) -> InputContract:
    """The bundle's contract as batch scoring applies it to ``source``."""
    contract = bundle.contract
    changes: dict[str, object] = {}
    if unseen is not None:
        changes["unseen_categories"] = unseen
    if source.suffix.lower() != ".parquet":  # CSV: text is the only spelling a cell has
        changes |= {"text_to_number": True, "text_to_bool": True}
    return contract.with_policy(**changes) if changes else contract


def score_file(
    bundle: Bundle,
    source: Path,
    output: Path,
    *,
    rejects: Path | None = None,
    chunk_rows: int = 50_000,
    unseen: str | None = None,
    keep_columns: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> BatchReport:
    """Score ``source`` into ``output`` (Parquet, or CSV by suffix) chunk by chunk.

    ``unseen`` (``error`` or ``unknown``) overrides the manifest's ``unseen_categories``.

    Raises:
        InvalidArgument: Unsupported file types.
        ContractViolation: A feature column is missing (an ``InvalidData``).
    """
    rejects, tmp_out, tmp_rej = output_paths(output, rejects)
    contract = contract_for(bundle, source, unseen)
    # Rows go out as they came in (plus their prediction): a CSV's columns in the types the
    # whole file holds, a Parquet file's in its own types.
    types = csv_column_types(source) if source.suffix.lower() != ".parquet" else {}
    writer: Any = None
    rows_in = scored = rejected = chunks = offset = 0
    try:
        with tmp_rej.open("w", encoding="utf-8") as reject_file:
            reject_file.write("row,reasons\n")
            for chunk in _chunks(source, chunk_rows):
                chunks += 1
                rows_in += chunk.height
                check = contract.check_frame(chunk)
                for row, pairs in check.rejected:
                    reject_file.write(f'{offset + row},"{reasons(pairs)}"\n')
                rejected += len(check.rejected)
                if check.good.size:
                    out = _scored(bundle, _as_typed(chunk, types), check, keep_columns=keep_columns)
                    out = out.with_columns(
                        pl.Series("source_row", offset + check.good, dtype=pl.Int64)
                    )
                    writer = _write(out, tmp_out, writer, csv=output.suffix.lower() == ".csv")
                    scored += out.height
                offset += chunk.height
                if on_chunk is not None:
                    on_chunk(chunk.height)
        finish_outputs(writer, output, tmp_out, tmp_rej, rejects)
    except BaseException:
        for partial in (tmp_out, tmp_rej):
            partial.unlink(missing_ok=True)
        raise
    return BatchReport(rows_in, scored, rejected, chunks, output, rejects if rejected else None)


def _scored(
    bundle: Bundle, chunk: pl.DataFrame, check: FrameCheck, *, keep_columns: bool
) -> pl.DataFrame:
    """The good rows, as given, with predictions and probabilities."""
    predictions = bundle.predict_input(check.inputs)
    out = chunk[check.good] if keep_columns else pl.DataFrame()
    out = out.with_columns(pl.Series("prediction", predictions.labels))
    if predictions.proba is not None and bundle.manifest.classes is not None:
        out = out.with_columns(
            pl.Series(f"proba_{label}", predictions.proba[:, j])
            for j, label in enumerate(bundle.manifest.classes)
        )
    return out


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


def output_paths(output: Path, rejects: Path | None) -> tuple[Path, Path, Path]:
    """The reject file (default ``<output>.rejects.csv``) and both files' partial names.

    Raises:
        InvalidArgument: ``output`` is neither ``.parquet`` nor ``.csv``.
    """
    if output.suffix.lower() not in (".parquet", ".csv"):
        raise InvalidArgument(f"{output.name}: write .parquet or .csv")
    rejects = rejects or output.with_name(output.stem + ".rejects.csv")
    return (
        rejects,
        output.with_name(output.name + ".partial"),
        rejects.with_name(rejects.name + ".partial"),
    )


def finish_outputs(writer: Any, output: Path, tmp_out: Path, tmp_rej: Path, rejects: Path) -> None:
    """Close the output (an empty one still gets its column) and move both files into place.

    Outputs are renamed into place only here, at the end, so a failed run leaves none.
    """
    if writer is not None:
        writer.close()
    elif output.suffix.lower() == ".parquet":
        pq.write_table(pa.table({"prediction": pa.array([], pa.string())}), tmp_out)
    else:
        tmp_out.write_text("prediction\n")
    tmp_out.replace(output)
    tmp_rej.replace(rejects)
