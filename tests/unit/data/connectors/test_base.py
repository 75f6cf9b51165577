"""SourceSpec validation, format inference, lazy connector choice, watermark helpers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from pydantic import ValidationError

from shipyard.core.errors import InvalidArgument, InvalidData
from shipyard.data.connectors.base import (
    Connector,
    SourceSpec,
    max_watermark,
    open_connector,
    since_filter,
)


@pytest.mark.parametrize(
    ("uri", "extra", "expected"),
    [
        ("data/orders*.csv", {}, "csv"),
        ("data/x.TSV", {}, "csv"),
        ("data/x.parquet", {}, "parquet"),
        ("events.jsonl", {}, "jsonl"),
        ("events.ndjson", {}, "jsonl"),
        ("postgresql+psycopg://u@h/db", {"table": "t"}, "sql"),
        ("sqlite:///x.db", {"query": "select 1"}, "sql"),
        ("https://api.example.com/v1/items", {}, "http"),
        ("whatever.bin", {"format": "parquet"}, "parquet"),
    ],
)
def test_format_is_inferred(uri: str, extra: dict[str, str], expected: str) -> None:
    assert SourceSpec(name="s", uri=uri, **extra).resolved_format == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"uri": "data/x.xlsx"}, "cannot tell the format"),
        ({"uri": "sqlite:///x.db"}, "needs table or query"),
        ({"uri": "sqlite:///x.db", "table": "t", "query": "select 1"}, "not both"),
        ({"uri": "x.csv", "table": "t", "format": "csv"}, "only apply to SQL"),
        ({"uri": "x.parquet", "csv": {}}, "csv options only apply"),
        ({"uri": "x.csv", "http": {}}, "http options only apply"),
        ({"uri": "x.csv", "csv": {"delimiter": ";;"}}, "delimiter"),
        ({"uri": "x.csv", "csv": {"columns": {"a": "money"}}}, "unknown type"),
        ({"uri": "x.csv", "surprise": 1}, "surprise"),
        ({"uri": "https://x", "http": {"pagination": {"type": "offset"}}}, "pagination"),
    ],
)
def test_invalid_specs_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SourceSpec(name="s", **fields)  # type: ignore[arg-type]


def test_spec_is_frozen_and_carries_other_modules_sections() -> None:
    spec = SourceSpec(
        name="s", uri="x.csv", harmonize={"rename": {"A": "a"}}, on_schema_drift="adapt"
    )
    assert spec.harmonize == {"rename": {"A": "a"}}
    with pytest.raises(ValidationError):
        spec.uri = "y.csv"  # type: ignore[misc]


@pytest.mark.slow
def test_open_connector_imports_only_what_it_needs(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a\n1\n")
    code = (
        "import sys; from pathlib import Path\n"
        "from shipyard.data.connectors.base import SourceSpec, open_connector\n"
        f"c = open_connector(SourceSpec(name='s', uri='x.csv'), base_dir=Path({str(tmp_path)!r}))\n"
        "print(c.scan().collect().height, 'sqlalchemy' in sys.modules, "
        "'shipyard.data.connectors.http' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "False", "False"]


def test_connectors_satisfy_the_protocol(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a\n1\n")
    connector: Connector = open_connector(SourceSpec(name="s", uri="x.csv"), base_dir=tmp_path)
    with connector as c:
        assert c.scan().collect_schema().names() == ["a", "_source", "_row"]


def test_file_sources_take_local_paths_only(tmp_path: Path) -> None:
    for uri in ("file:///etc/passwd.csv", "s3://bucket/x.csv"):
        with pytest.raises(InvalidArgument, match="not a local path"):
            open_connector(SourceSpec(name="s", uri=uri), base_dir=tmp_path).scan()


def test_absolute_paths_are_used_as_given(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a\n1\n")
    spec = SourceSpec(name="s", uri=str(tmp_path / "x.csv"))
    assert open_connector(spec, base_dir=Path("/nonexistent")).scan().collect().height == 1


def test_max_watermark() -> None:
    lf = pl.LazyFrame({"t": [3, None, 7, 5]})
    assert max_watermark(lf, "t") == 7
    assert max_watermark(lf.filter(pl.col("t") > 100), "t") is None
    with pytest.raises(InvalidData, match="'x'"):
        max_watermark(lf, "x")


def test_since_filter_converts_since_to_the_column_type() -> None:
    import datetime as dt

    frame = pl.DataFrame(
        {"n": [1, 2, 3], "s": ["2024-01-01", "2024-01-02", "2024-01-03"]},
    )
    assert frame.filter(since_filter("x", frame.schema, "n", 2))["n"].to_list() == [3]
    since = dt.date(2024, 1, 1)
    assert frame.filter(since_filter("x", frame.schema, "s", since)).height == 2
    with pytest.raises(InvalidArgument, match="cannot be compared"):
        since_filter("x", frame.schema, "n", "not a number")
