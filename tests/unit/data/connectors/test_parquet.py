"""Parquet connector: files, globs, watermarks, schema mismatches."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from shipyard.core.errors import InvalidData, SourceUnavailable
from shipyard.data.connectors.base import SourceSpec, max_watermark, open_connector


def scan(directory: Path, uri: str, since: object | None = None) -> pl.DataFrame:
    spec = SourceSpec(name="sales", uri=uri, watermark="day")
    with open_connector(spec, base_dir=directory) as connector:
        frame = connector.scan(since).collect()
        assert connector.rejected().is_empty()
        return frame


def part(directory: Path, name: str, days: list[int]) -> None:
    (directory / "p").mkdir(exist_ok=True)
    pl.DataFrame({"day": days, "amount": [d * 1.5 for d in days]}).write_parquet(
        directory / "p" / name
    )


def test_glob_keeps_types_and_numbers_rows_across_files(tmp_path: Path) -> None:
    part(tmp_path, "b.parquet", [3, 4])
    part(tmp_path, "a.parquet", [1, 2])
    frame = scan(tmp_path, "p/*.parquet")
    assert frame.schema == pl.Schema(
        {"day": pl.Int64, "amount": pl.Float64, "_source": pl.String, "_row": pl.Int64}
    )
    assert frame["day"].to_list() == [1, 2, 3, 4]
    assert frame["_row"].to_list() == [0, 1, 2, 3]
    assert frame["_source"].unique().to_list() == ["sales"]


def test_watermark_incremental(tmp_path: Path) -> None:
    part(tmp_path, "a.parquet", [1, 2])
    mark = max_watermark(scan(tmp_path, "p/*.parquet").lazy(), "day")
    part(tmp_path, "b.parquet", [2, 3])
    new = scan(tmp_path, "p/*.parquet", since=mark)
    assert new.select("day", "_row").to_dicts() == [{"day": 3, "_row": 3}]


def test_files_with_other_schemas_are_named(tmp_path: Path) -> None:
    part(tmp_path, "a.parquet", [1])
    pl.DataFrame({"day": ["x"]}).write_parquet(tmp_path / "p" / "b.parquet")
    with pytest.raises(InvalidData, match=r"b\.parquet has schema"):
        scan(tmp_path, "p/*.parquet")


def test_not_parquet_and_missing(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InvalidData, match="not a readable Parquet file"):
        scan(tmp_path, "bad.parquet")
    with pytest.raises(SourceUnavailable, match="no file matches"):
        scan(tmp_path, "nothing/*.parquet")


def test_reserved_column_names(tmp_path: Path) -> None:
    pl.DataFrame({"_row": [1]}).write_parquet(tmp_path / "x.parquet")
    with pytest.raises(InvalidData, match="reserved"):
        scan(tmp_path, "x.parquet")
