"""CSV column types inferred from a sample when the project declares none (issue 16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from shipyard.data.connectors.base import SourceSpec, open_connector
from shipyard.data.connectors.csv import CsvConnector


def read(
    directory: Path, harmonize: dict[str, Any] | None = None, **csv: Any
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, str]]:
    spec = SourceSpec(name="orders", uri="o.csv", csv=csv or None, harmonize=harmonize)
    with open_connector(spec, base_dir=directory) as connector:
        assert isinstance(connector, CsvConnector)
        frame = connector.scan().collect()
        return frame, connector.rejected(), connector.inferred


def test_numbers_and_booleans_are_inferred_text_and_leading_zeros_stay_text(
    tmp_path: Path,
) -> None:
    (tmp_path / "o.csv").write_text(
        "id,amount,paid,zip,name,churned\n1,10.5,true,01234,ana,0\n2,,FALSE,02000,bob,1\n"
    )
    frame, rejected, inferred = read(tmp_path)
    assert inferred == {"id": "int64", "amount": "float64", "paid": "bool", "churned": "int64"}
    assert frame.schema["id"] == pl.Int64
    assert frame.schema["amount"] == pl.Float64
    assert frame.schema["paid"] == pl.Boolean
    assert frame.schema["zip"] == pl.String
    assert frame.schema["name"] == pl.String
    assert frame["amount"].to_list() == [10.5, None]
    assert frame["paid"].to_list() == [True, False]
    assert rejected.is_empty()


def test_a_later_value_that_does_not_fit_is_rejected_with_the_fix(tmp_path: Path) -> None:
    good = "".join(f"{i},{i}.5\n" for i in range(5000))
    (tmp_path / "o.csv").write_text("id,v\n" + good + "5000,n/a\n")
    frame, rejected, inferred = read(tmp_path, block_size_bytes=4096)
    assert inferred == {"id": "int64", "v": "float64"}
    assert frame.height == 5000
    assert rejected["_line"].to_list() == ["5000,n/a"]
    reason = rejected["_failed_checks"][0].to_list()[0]
    assert reason.startswith("invalid_value: column 'v' is not float64")
    assert "csv.columns.v" in reason


def test_declared_and_harmonized_columns_are_not_inferred(tmp_path: Path) -> None:
    (tmp_path / "o.csv").write_text("a,b,c,d\n1,2,3,4\n")
    harmonize = {"rename": {"c": "see"}, "cast": {"see": "float64"}, "map": {"d": {"4": "four"}}}
    frame, _, inferred = read(tmp_path, harmonize, columns={"a": "string"})
    assert inferred == {"b": "int64"}
    assert frame.schema["a"] == pl.String
    assert frame.schema["c"] == pl.String
    assert frame.schema["d"] == pl.String


def test_inference_can_be_turned_off(tmp_path: Path) -> None:
    (tmp_path / "o.csv").write_text("a\n1\n")
    frame, _, inferred = read(tmp_path, infer_types=False)
    assert inferred == {}
    assert frame.schema["a"] == pl.String
