"""JSON Lines connector: types, nested values, broken lines kept aside, globs, watermarks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from shipyard.core.errors import InvalidData
from shipyard.data.connectors.base import SourceSpec, max_watermark, open_connector


def read(
    directory: Path, uri: str, since: object | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    spec = SourceSpec(name="events", uri=uri, watermark="seq")
    with open_connector(spec, base_dir=directory) as connector:
        frame = connector.scan(since).collect()
        return frame, connector.rejected()


def lines(directory: Path, name: str, rows: list[Any]) -> None:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    (directory / name).write_text(text, encoding="utf-8")


def test_types_nested_values_and_fields_that_appear_late(tmp_path: Path) -> None:
    rows: list[Any] = [{"seq": i, "ok": True, "v": 1} for i in range(3)]
    rows += [{"seq": 3, "v": 2.5, "meta": {"k": [1, 2]}, "tag": "é", "big": 2**70}]
    lines(tmp_path, "e.jsonl", rows)
    frame, rejected = read(tmp_path, "e.jsonl")
    assert frame.schema == pl.Schema(
        {
            "seq": pl.Int64,
            "ok": pl.Boolean,
            "v": pl.Float64,
            "meta": pl.String,
            "tag": pl.String,
            "big": pl.String,
            "_source": pl.String,
            "_row": pl.Int64,
        }
    )
    last = frame.row(3, named=True)
    assert last["meta"] == '{"k":[1,2]}'
    assert last["big"] == str(2**70)
    assert last["ok"] is None
    assert last["v"] == 2.5
    assert rejected.is_empty()


def test_mixed_kinds_become_text(tmp_path: Path) -> None:
    lines(tmp_path, "e.jsonl", [{"seq": 1, "x": 1}, {"seq": 2, "x": "a"}, {"seq": 3, "x": [1]}])
    frame, _ = read(tmp_path, "e.jsonl")
    assert frame["x"].to_list() == ["1", "a", "[1]"]


def test_broken_lines_are_rejected_with_reasons(tmp_path: Path) -> None:
    rows = [
        {"seq": 1},
        "{not json",
        "",
        "[1, 2]",
        '{"seq": NaN}',
        '{"seq": 2, "seq": 3}',
        "[" * 10_000 + "]" * 10_000,
        {"seq": 4},
    ]
    lines(tmp_path, "e.jsonl", rows)
    (tmp_path / "e.jsonl").open("ab").write(b'{"seq": "\xff"}\n')
    frame, rejected = read(tmp_path, "e.jsonl")
    assert frame.select("seq", "_row").to_dicts() == [{"seq": 1, "_row": 0}, {"seq": 4, "_row": 7}]
    reasons = dict(zip(rejected["_row"], rejected["_failed_checks"].to_list(), strict=True))
    assert reasons[1][0].startswith("malformed_json:")
    assert reasons[3] == ["not_an_object: list"]
    assert reasons[4] == ["malformed_json: NaN is not valid JSON"]
    assert reasons[5] == ["malformed_json: duplicate key 'seq'"]
    assert reasons[6][0].startswith("malformed_json:")
    assert reasons[8] == ["invalid_utf8"]
    assert sorted(reasons) == [1, 3, 4, 5, 6, 8]
    assert rejected.filter(pl.col("_row") == 1)["_line"].to_list() == ["{not json"]
    assert rejected["_line"].str.len_bytes().max() <= 10_000  # type: ignore[operator]


def test_glob_and_watermark(tmp_path: Path) -> None:
    lines(tmp_path, "a.jsonl", [{"seq": 1}, {"seq": 2}])
    first, _ = read(tmp_path, "*.jsonl")
    mark = max_watermark(first.lazy(), "seq")
    lines(tmp_path, "b.jsonl", [{"seq": 2}, {"seq": 3}])
    new, _ = read(tmp_path, "*.jsonl", since=mark)
    assert new.select("seq", "_row").to_dicts() == [{"seq": 3, "_row": 3}]


def test_batches_of_a_larger_file(tmp_path: Path) -> None:
    lines(tmp_path, "e.jsonl", [{"seq": i, "s": str(i)} for i in range(25_000)] + ["oops"])
    frame, rejected = read(tmp_path, "e.jsonl")
    assert frame["seq"].to_list() == list(range(25_000)) == frame["_row"].to_list()
    assert rejected["_row"].to_list() == [25_000]


def test_reserved_fields(tmp_path: Path) -> None:
    lines(tmp_path, "e.jsonl", [{"_source": "x"}])
    with pytest.raises(InvalidData, match="reserved"):
        read(tmp_path, "e.jsonl")


def test_rejected_needs_a_collected_scan(tmp_path: Path) -> None:
    lines(tmp_path, "e.jsonl", [{"seq": 1}])
    connector = open_connector(SourceSpec(name="e", uri="e.jsonl"), base_dir=tmp_path)
    with connector, pytest.raises(InvalidData, match="collect"):
        connector.rejected()


def test_empty_file_with_a_watermark(tmp_path: Path) -> None:
    (tmp_path / "e.jsonl").write_text("\n")
    frame, rejected = read(tmp_path, "e.jsonl", since=5)
    assert frame.is_empty()
    assert rejected.is_empty()
