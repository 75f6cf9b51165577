"""The prediction log on disk: its columns, its hourly partitions, atomic parts, windowed reads.

The server writes it (``shipyard.serve.prediction_log``); monitoring, cost and the CLI read it.
The format lives here, below both, so readers need not import the HTTP side: hive-partitioned
Parquet, ``date=YYYY-MM-DD/hour=HH/part-<uuid>.parquet`` by each record's ``ts_ms`` (UTC).
Each part is written whole or not at all (temp file, fsync, rename, fsync the directory,
RELIABILITY.md lesson 5), so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from typing import TYPE_CHECKING

import polars as pl

from shipyard.core import faults

if TYPE_CHECKING:
    from pathlib import Path

SCHEMA: dict[str, pl.DataType] = {
    "request_id": pl.String(),
    "model": pl.String(),
    "version": pl.Int64(),
    "variant": pl.String(),
    "ts_ms": pl.Int64(),
    "latency_ms": pl.Float64(),
    "inputs_json": pl.String(),
    "outputs_json": pl.String(),
    "prediction": pl.String(),
    "probability": pl.Float64(),
    "status": pl.Int64(),
    "anomaly_score": pl.Float64(),
}
"""Columns of every partition file, in order. ``inputs_json``/``outputs_json`` hold the request's
columns and the full answer as JSON; ``prediction`` is the first row's label as text and
``probability`` its positive-class (last) probability, for monitors that need one number.
``anomaly_score`` (nullable) is the request's largest robust z-score against the model's
training reference (``shipyard.monitor.anomaly``); files written before it existed read as null."""

PARTITION_FORMAT = "date=%Y-%m-%d/hour=%H"
HIVE_SCHEMA = {"date": pl.String(), "hour": pl.Int32()}


def write_part_atomic(folder: Path, frame: pl.DataFrame) -> None:
    """Write ``frame`` as a new Parquet file in ``folder``: temp, fsync, rename, fsync dir.

    An error (fsync included) propagates and leaves no temp file; the caller retries with a new
    file, never on the same descriptor.
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = f"part-{uuid.uuid4().hex}.parquet"
    tmp = folder / f".{name}.tmp"
    try:
        faults.hit("prediction_log.before_write")
        frame.write_parquet(tmp, compression="zstd")
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        faults.hit("prediction_log.after_tmp_write")
        tmp.replace(folder / name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_part_atomic(path: Path, frame: pl.DataFrame) -> None:
    """Put ``frame`` in place of the part at ``path`` (delete it when ``frame`` is empty).

    For an erasure: temp file, fsync, rename over the old part, fsync the directory, so a
    reader sees the old part or the new one, never both or half of one. Only erasure rewrites a
    part; the server never does (it only adds new ones), so the two do not race.
    """
    folder = path.parent
    if frame.height:
        tmp = folder / f".{path.name}.erasure.tmp"
        try:
            frame.write_parquet(tmp, compression="zstd")
            with tmp.open("rb") as f:
                os.fsync(f.fileno())
            faults.hit("logfiles.erasure.before_replace")
            tmp.replace(path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    else:
        path.unlink(missing_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_prediction_log(
    root: Path, *, since_ms: int | None = None, until_ms: int | None = None
) -> pl.LazyFrame:
    """All logged predictions under ``root``, optionally with ``since_ms <= ts_ms < until_ms``.

    The time bounds also prune partitions (date and hour), so a window reads only its hours.
    """
    if not any(root.glob("date=*/hour=*/*.parquet")):
        return pl.DataFrame(schema=SCHEMA).lazy()
    lf = pl.scan_parquet(
        root / "date=*" / "hour=*" / "*.parquet",
        schema=SCHEMA,  # known: no file is opened just to infer it
        hive_partitioning=True,
        hive_schema=HIVE_SCHEMA,
        missing_columns="insert",  # older parts lack later nullable columns (anomaly_score)
    )
    if since_ms is not None:
        day, hour = _partition_of(since_ms)
        lf = lf.filter(
            (pl.col("date") > day) | ((pl.col("date") == day) & (pl.col("hour") >= hour)),
            pl.col("ts_ms") >= since_ms,
        )
    if until_ms is not None:
        day, hour = _partition_of(until_ms)
        lf = lf.filter(
            (pl.col("date") < day) | ((pl.col("date") == day) & (pl.col("hour") <= hour)),
            pl.col("ts_ms") < until_ms,
        )
    return lf.select(list(SCHEMA))


def _partition_of(ts_ms: int) -> tuple[str, int]:
    moment = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d"), moment.hour
