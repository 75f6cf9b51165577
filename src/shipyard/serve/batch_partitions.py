"""Batch scoring with partitions on an executor: ``shipyard predict --executor ray``.

The driver reads the source in chunks of ``chunk_rows`` (as ``score_file`` does), and each
round hands as many chunks as the executor runs at once to its workers as partitions. Every
worker reads the bundle from its bytes (verified against the registered SHA-256, through the
registry's one reader under the workspace's caps, ``read_under_limits``), put in Ray's object
store once, and keeps it loaded for the partitions that follow; workers never touch the
metadata database. A partition comes back as its scored rows and its rejects with their
reasons, and the driver writes both in source order, so the output and the reject file are
the ones ``score_file`` writes, row for row.

Accounting: rows in = rows scored + rows rejected, per partition and in total. A partition
that fails (its worker died more than ``executor.max_retries`` times, or an error) fails the
command with the partition's first row and reason; nothing is written (outputs are renamed
into place only at the end).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from shipyard.core.errors import Unavailable
from shipyard.registry.input_contract import reasons
from shipyard.serve.batch import (
    BatchReport,
    _as_typed,
    _chunks,
    _scored,
    _write,
    contract_for,
    csv_column_types,
    finish_outputs,
    output_paths,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from shipyard.core.executor import Executor
    from shipyard.core.settings import RegistrySettings
    from shipyard.registry.bundle import Bundle


@dataclass(frozen=True)
class _Scoring:
    """What every partition reads: the bundle's bytes and how to read the source's cells."""

    bundle_bytes: bytes
    bundle_sha256: str
    limits: RegistrySettings
    source: Path
    unseen: str | None
    types: dict[str, pl.DataType]
    keep_columns: bool


@dataclass(frozen=True)
class PartitionResult:
    """One partition: its rows in, its scored rows, and its rejects (row within it, reasons)."""

    rows_in: int
    scored: pl.DataFrame | None
    rejects: list[tuple[int, str]]


_LOADED: dict[str, Bundle] = {}  # per worker process: bundles by SHA-256, loaded once


def _bundle(shared: _Scoring) -> Bundle:
    from shipyard.registry.reads import read_under_limits

    bundle = _LOADED.get(shared.bundle_sha256)
    if bundle is None:  # the registry's own reader, under the same caps
        bundle = read_under_limits(
            shared.bundle_bytes, shared.limits, shared.bundle_sha256, "(partition)"
        )
        _LOADED.clear()  # one model at a time per worker
        _LOADED[shared.bundle_sha256] = bundle
    return bundle


def score_partition(shared: _Scoring, chunk: pl.DataFrame) -> PartitionResult:
    """Check and score one partition where it runs (rows numbered from its start)."""
    bundle = _bundle(shared)
    check = contract_for(bundle, shared.source, shared.unseen).check_frame(chunk)
    rejects = [(row, reasons(pairs)) for row, pairs in check.rejected]
    scored = None
    if check.good.size:
        scored = _scored(
            bundle, _as_typed(chunk, shared.types), check, keep_columns=shared.keep_columns
        )
        scored = scored.with_columns(pl.Series("source_row", check.good, dtype=pl.Int64))
    return PartitionResult(chunk.height, scored, rejects)


def score_file_on(
    executor: Executor,
    bundle_bytes: bytes,
    bundle_sha256: str,
    source: Path,
    output: Path,
    *,
    limits: RegistrySettings,
    rejects: Path | None = None,
    chunk_rows: int = 50_000,
    unseen: str | None = None,
    keep_columns: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> BatchReport:
    """``score_file`` with each chunk a partition on ``executor``; the same files result.

    Raises:
        InvalidArgument: Unsupported file types.
        Unavailable: A partition failed on the cluster; the message names its rows.
    """
    rejects, tmp_out, tmp_rej = output_paths(output, rejects)
    types = csv_column_types(source) if source.suffix.lower() != ".parquet" else {}
    shared = _Scoring(bundle_bytes, bundle_sha256, limits, source, unseen, types, keep_columns)
    csv = output.suffix.lower() == ".csv"
    writer: Any = None
    totals = {"in": 0, "scored": 0, "rejected": 0, "chunks": 0}
    try:
        with tmp_rej.open("w", encoding="utf-8") as reject_file:
            reject_file.write("row,reasons\n")
            round_: list[pl.DataFrame] = []
            width = executor.parallelism
            for chunk in _chunks(source, chunk_rows):
                round_.append(chunk)
                if len(round_) >= width:
                    writer = _settle(
                        executor, shared, round_, totals, (tmp_out, writer, reject_file, csv),
                        on_chunk,
                    )  # fmt: skip
                    round_ = []
            if round_:
                writer = _settle(
                    executor, shared, round_, totals, (tmp_out, writer, reject_file, csv), on_chunk
                )
        finish_outputs(writer, output, tmp_out, tmp_rej, rejects)
    except BaseException:
        for partial in (tmp_out, tmp_rej):
            partial.unlink(missing_ok=True)
        raise
    return BatchReport(
        totals["in"], totals["scored"], totals["rejected"], totals["chunks"], output,
        rejects if totals["rejected"] else None,
    )  # fmt: skip


def _settle(
    executor: Executor,
    shared: _Scoring,
    chunks: list[pl.DataFrame],
    totals: dict[str, int],
    sink: tuple[Path, Any, Any, bool],
    on_chunk: Callable[[int], None] | None,
) -> Any:
    """Score one round of partitions and write their rows and rejects in source order.

    ``sink``: the partial output path, its writer (``None`` before the first rows), the
    open reject file, and whether the output is CSV. Returns the writer.
    """
    tmp_out, writer, reject_file, csv = sink
    results = executor.map(score_partition, shared, chunks)
    for chunk, result in zip(chunks, results, strict=True):
        offset = totals["in"]
        part = result.value
        if part is None:
            raise Unavailable(
                f"batch scoring: the partition of rows {offset}..{offset + chunk.height - 1} "
                f"failed on the {executor.name} executor ({result.error}); nothing was written, "
                "run the command again"
            )
        if part.rows_in != chunk.height:
            raise Unavailable(
                f"batch scoring: a partition returned {part.rows_in} of {chunk.height} rows"
            )
        for row, why in part.rejects:
            reject_file.write(f'{offset + row},"{why}"\n')
        if part.scored is not None:
            out = part.scored.with_columns(pl.col("source_row") + offset)
            writer = _write(out, tmp_out, writer, csv=csv)
            totals["scored"] += out.height
        totals["rejected"] += len(part.rejects)
        totals["in"] += chunk.height
        totals["chunks"] += 1
        if on_chunk is not None:
            on_chunk(chunk.height)
    return writer
