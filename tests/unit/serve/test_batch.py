"""Batch scoring through a real bundle: chunks, rejects with reasons, conserved counts."""

from __future__ import annotations

import polars as pl
import pytest

from shipyard.core.errors import InvalidData
from shipyard.registry.input_contract import NOT_NUMBER, NULL, UNSEEN
from shipyard.serve.batch import score_file


def _input(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "tenure": [float(i % 60) for i in range(n)],
            "charges": [50.0 + i % 7 for i in range(n)],
            "plan": [["basic", "plus", "pro"][i % 3] for i in range(n)],
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_chunks_are_scored_and_bad_rows_rejected_with_reasons(tmp_path, bundles, suffix):
    frame = _input(1000).with_columns(
        pl.when(pl.int_range(pl.len()) == 10)
        .then(pl.lit("gold"))
        .otherwise(pl.col("plan"))
        .alias("plan"),
        pl.when(pl.int_range(pl.len()) == 20)
        .then(None)
        .otherwise(pl.col("charges"))
        .alias("charges"),
    )
    source = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        text = frame.write_csv()
        lines = text.splitlines()
        lines[31] = "abc,50.0,basic"  # row 30: tenure is not a number
        source.write_text("\n".join(lines) + "\n")
    else:
        frame.write_parquet(source)
    out = tmp_path / "scored.parquet"
    report = score_file(bundles[1], source, out, chunk_rows=128)
    assert report.chunks >= 8
    assert report.conserved
    rejects = pl.read_csv(report.rejects)
    # Row 20's null is refused: the training rows had no missing charges (nullable: false).
    expected_rejects = {10: f"plan: {UNSEEN}", 20: f"charges: {NULL}"} | (
        {30: f"tenure: {NOT_NUMBER}"} if suffix == ".csv" else {}
    )
    assert dict(zip(rejects["row"], rejects["reasons"], strict=True)) == expected_rejects
    scored = pl.read_parquet(out)
    assert scored.height == 1000 - len(expected_rejects)
    sample = scored.filter(pl.col("source_row") == 5)
    direct = bundles[1].predict(_input(1000)[5])
    assert sample["prediction"].to_list() == direct.labels.tolist()
    assert sample["proba_1"].item() == pytest.approx(direct.proba[0][1])
    assert not list(tmp_path.glob("*.partial"))


def test_a_missing_feature_column_fails_and_leaves_nothing(tmp_path, bundles):
    source = tmp_path / "in.parquet"
    _input(10).drop("plan").write_parquet(source)
    out = tmp_path / "out.parquet"
    with pytest.raises(InvalidData, match="plan"):
        score_file(bundles[1], source, out)
    assert not out.exists()
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_rows_go_out_as_they_came_in_integers_included(tmp_path, bundles, suffix):
    """Batch output keeps the input's types: ids and integer features stay integers."""
    frame = pl.DataFrame(
        {
            "customer_id": [101, 102, 103],
            "zip": ["00123", "04567", "10001"],  # leading zeros: an identifier, text
            "tenure": [12, 30, 1],
            "charges": [50.5, 70.0, 20.25],
            "plan": ["basic", "pro", "plus"],
        }
    )
    source = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        frame.write_csv(source)
    else:
        frame.write_parquet(source)
    out = tmp_path / "scored.parquet"
    report = score_file(bundles[1], source, out)
    assert report.conserved
    scored = pl.read_parquet(out)
    assert scored.schema["customer_id"] == pl.Int64
    assert scored.schema["tenure"] == pl.Int64
    assert scored.schema["zip"] == pl.String
    assert scored["customer_id"].to_list() == [101, 102, 103]
    assert scored["zip"].to_list() == ["00123", "04567", "10001"]
    assert scored["prediction"].dtype.is_integer()
