"""CSV: every physical line ends up in the rows or in the rejects (issue 16, data correctness).

An unclosed quote used to swallow the valid lines after it into one rejected record, and the
run still reported its rows conserved (it counted records, not lines).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from shipyard.data.connectors.base import SourceSpec, open_connector
from shipyard.data.connectors.csv import CsvConnector

GOOD = "".join(f"{i},name {i},{i}.5\n" for i in range(3000))


def read(
    directory: Path, *, polars: bool = True, **csv: Any
) -> tuple[pl.DataFrame, pl.DataFrame, CsvConnector]:
    spec = SourceSpec(name="orders", uri="o.csv", csv={"infer_types": False, **csv})
    with open_connector(spec, base_dir=directory) as connector:
        assert isinstance(connector, CsvConnector)
        if not polars:
            connector._fast = None  # pyarrow reads every file
        return connector.scan().collect(), connector.rejected(), connector


@pytest.mark.parametrize("polars", [True, False], ids=["polars", "pyarrow"])
def test_an_unclosed_quote_rejects_its_own_line_only(tmp_path: Path, *, polars: bool) -> None:
    lines = ["id,name,amount", "1,ana,10", '2,"bob,20', "3,cy,30", '4,"dan",40', "5,eve,50"]
    (tmp_path / "o.csv").write_text("\n".join(lines) + "\n")
    frame, rejected, _ = read(tmp_path, polars=polars)
    assert frame["id"].to_list() == ["1", "3", "4", "5"]
    assert frame["name"].to_list() == ["ana", "cy", "dan", "eve"]
    assert frame["_row"].to_list() == [0, 2, 3, 4]
    assert rejected.select("_row", "_line").to_dicts() == [{"_row": 1, "_line": '2,"bob,20'}]
    reason = rejected["_failed_checks"][0].to_list()
    assert len(reason) == 1
    assert "a quoted value spans lines, starting at line 3" in reason[0]


@pytest.mark.parametrize("polars", [True, False], ids=["polars", "pyarrow"])
def test_an_unclosed_quote_to_the_end_of_the_file(tmp_path: Path, *, polars: bool) -> None:
    (tmp_path / "o.csv").write_text('a,b\n1,x\n2,"unclosed\n3,y\n')
    frame, rejected, _ = read(tmp_path, polars=polars)
    assert frame["a"].to_list() == ["1", "3"]
    assert rejected["_row"].to_list() == [1]
    assert rejected["_line"].to_list() == ['2,"unclosed']


def test_far_into_a_file_every_line_is_accounted_for(tmp_path: Path) -> None:
    content = "id,name,v\n" + GOOD + '3000,"unclosed,x\n3001,a,b\n"\n' + GOOD
    (tmp_path / "o.csv").write_text(content)
    frame, rejected, connector = read(tmp_path, block_size_bytes=4096)
    data_lines = content.count("\n") - 1
    assert frame.height + rejected.height == data_lines
    assert connector.lines_read == data_lines
    assert "3001" in frame["id"].to_list()
    assert rejected["_row"].to_list() == [3000, 3002]
    assert rejected["_line"].to_list() == ['3000,"unclosed,x', '"']


def test_real_multiline_values_still_read_when_allowed(tmp_path: Path) -> None:
    (tmp_path / "o.csv").write_text('a,b\n1,"two\nlines"\n2,x\n')
    frame, rejected, connector = read(tmp_path, newlines_in_values=True)
    assert frame["b"].to_list() == ["two\nlines", "x"]
    assert rejected.is_empty()
    assert connector.lines_read == 3


def test_lines_read_counts_physical_lines_not_blank_ones(tmp_path: Path) -> None:
    (tmp_path / "o.csv").write_text("a,b\n1,x\n\n2,y,extra\n3,z\n")
    frame, rejected, connector = read(tmp_path)
    assert connector.lines_read == 3
    assert frame.height + rejected.height == 3
