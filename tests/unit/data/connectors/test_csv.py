"""CSV connector: options, encodings, malformed lines kept aside, globs, watermarks, streaming."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from shipyard.core.errors import InvalidData, SourceUnavailable
from shipyard.data.connectors.base import REJECTED_SCHEMA, SourceSpec, max_watermark, open_connector
from shipyard.data.connectors.csv import CsvConnector

TEXT: dict[str, Any] = {"infer_types": False}  # columns stay text (inference: test_csv_infer.py)


def write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def read(
    directory: Path, uri: str, since: object | None = None, watermark: str | None = None, **csv: Any
) -> tuple[pl.DataFrame, pl.DataFrame]:
    # These tests are about parsing: columns stay text (type inference: test_csv_infer.py).
    csv = {"infer_types": False, **csv}
    spec = SourceSpec(name="orders", uri=uri, csv=csv, watermark=watermark)
    with open_connector(spec, base_dir=directory) as connector:
        frame = connector.scan(since).collect()
        return frame, connector.rejected()


def data(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return frame.drop("_source", "_row").to_dicts()


def test_reads_every_column_as_text_with_bookkeeping(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", "id,amount,note\n1,10.5,a\n2,,b\n")
    frame, rejected = read(tmp_path, "o.csv")
    assert frame.schema == pl.Schema(
        {
            "id": pl.String,
            "amount": pl.String,
            "note": pl.String,
            "_source": pl.String,
            "_row": pl.Int64,
        }
    )
    assert frame.to_dicts() == [
        {"id": "1", "amount": "10.5", "note": "a", "_source": "orders", "_row": 0},
        {"id": "2", "amount": None, "note": "b", "_source": "orders", "_row": 1},
    ]
    assert rejected.schema == pl.Schema(REJECTED_SCHEMA)
    assert rejected.is_empty()


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_delimiters(tmp_path: Path, delimiter: str) -> None:
    write(tmp_path, "o.csv", f"a{delimiter}b\n1{delimiter}x,y\n")
    frame, _ = read(tmp_path, "o.csv", delimiter=delimiter)
    assert data(frame) == [{"a": "1", "b": "x,y"}]


def test_quoted_fields_crlf_and_multiline_values(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", 'a,b\r\n1,"x, ""y"""\r\n2,"two\nlines"\r\n')
    frame, rejected = read(tmp_path, "o.csv", newlines_in_values=True)
    assert data(frame) == [{"a": "1", "b": 'x, "y"'}, {"a": "2", "b": "two\nlines"}]
    assert rejected.is_empty()


def test_quote_char_none_keeps_quotes(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", 'a,b\n"1",x\n')
    frame, _ = read(tmp_path, "o.csv", quote_char=None)
    assert data(frame) == [{"a": '"1"', "b": "x"}]


def test_latin1_is_transcoded(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", "name,city\nRené,Zürich\n".encode("latin-1"))
    frame, _ = read(tmp_path, "o.csv", encoding="latin1")
    assert data(frame) == [{"name": "René", "city": "Zürich"}]


def test_invalid_utf8_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", b"a,b\n1,ok\n2,caf\xe9\n")
    with pytest.raises(InvalidData, match=r"o\.csv: invalid UTF-8 at line 3.*utf8-lossy"):
        read(tmp_path, "o.csv")


def test_invalid_utf8_far_into_a_file_names_the_line(tmp_path: Path) -> None:
    body = "".join(f"{i},x\n" for i in range(300_000)).encode()
    write(tmp_path, "o.csv", b"a,b\n" + body + b"9,\xff\n")
    with pytest.raises(InvalidData, match="line 300002"):
        read(tmp_path, "o.csv")


def test_utf8_lossy_replaces_bad_bytes(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", b"\xef\xbb\xbfa,b\n1,caf\xe9\n")
    frame, _ = read(tmp_path, "o.csv", encoding="utf8-lossy")
    assert data(frame) == [{"a": "1", "b": "caf\ufffd"}]


def test_bom_is_dropped(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", b"\xef\xbb\xbfid,name\n1,a\n")
    frame, _ = read(tmp_path, "o.csv")
    assert frame.columns[:2] == ["id", "name"]


def test_without_header_columns_are_numbered_or_named(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", "1,a\n2,b\n")
    frame, _ = read(tmp_path, "o.csv", has_header=False)
    assert data(frame) == [{"column_1": "1", "column_2": "a"}, {"column_1": "2", "column_2": "b"}]
    assert frame["_row"].to_list() == [0, 1]
    frame, _ = read(tmp_path, "o.csv", has_header=False, column_names=["id", "name"])
    assert data(frame)[1] == {"id": "2", "name": "b"}


def test_column_names_replace_a_header(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", "ID,Name\n1,a\n")
    frame, _ = read(tmp_path, "o.csv", column_names=["id", "name"])
    assert data(frame) == [{"id": "1", "name": "a"}]


def test_skip_rows_comments_and_null_values(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", "exported by X\n\nid,v\n# a comment\n1,NA\n2,\n#3,x\n")
    frame, _ = read(tmp_path, "o.csv", skip_rows=1, comment_prefix="#", null_values=["NA"])
    assert data(frame) == [{"id": "1", "v": None}, {"id": "2", "v": ""}]


def test_spreadsheet_formulas_are_data(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", "a,b,c,d\n=SUM(A1:A9),+1,-2,@cmd\n")
    frame, _ = read(tmp_path, "o.csv")
    assert data(frame) == [{"a": "=SUM(A1:A9)", "b": "+1", "c": "-2", "d": "@cmd"}]


def test_malformed_lines_are_rejected_with_reasons_and_good_rows_kept(tmp_path: Path) -> None:
    lines = ["id,name,v", "1,a,x", "2,b", "3,c,y", "4,d,y,extra", "", "5,e,z", "6"]
    write(tmp_path, "o.csv", "\n".join(lines) + "\n")
    frame, rejected = read(tmp_path, "o.csv")
    assert frame["id"].to_list() == ["1", "3", "5"]
    assert frame["_row"].to_list() == [0, 2, 4]
    assert rejected.select("_row", "_line", "_failed_checks").to_dicts() == [
        {
            "_row": 1,
            "_line": "2,b",
            "_failed_checks": ["malformed_line: expected 3 fields, found 2"],
        },
        {
            "_row": 3,
            "_line": "4,d,y,extra",
            "_failed_checks": ["malformed_line: expected 3 fields, found 4"],
        },
        {"_row": 5, "_line": "6", "_failed_checks": ["malformed_line: expected 3 fields, found 1"]},
    ]
    assert rejected["_source"].unique().to_list() == ["orders"]
    assert rejected["_file"].to_list() == [str(tmp_path / "o.csv")] * 3
    # Every record is accounted for exactly once.
    assert sorted(frame["_row"].to_list() + rejected["_row"].to_list()) == list(range(6))


def test_broken_quoting_is_rejected_not_lost(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", 'a,b\n1,x\n2,"unclosed\n3,y\n4,"z"\n5,w\n')
    frame, rejected = read(tmp_path, "o.csv")
    assert frame["a"].to_list() == ["1", "3", "4", "5"]  # the lines after it are not swallowed
    assert rejected["_line"].to_list() == ['2,"unclosed']
    assert (
        rejected["_failed_checks"][0]
        .to_list()[0]
        .startswith("malformed_line: a quoted value spans lines, starting at line 3")
    )


def test_broken_quoting_to_the_end_of_the_file(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", 'a,b\n1,x\n2,"unclosed\n3,y\n')
    frame, rejected = read(tmp_path, "o.csv")
    assert frame["a"].to_list() == ["1", "3"]
    assert rejected["_row"].to_list() == [1]
    assert rejected["_line"].to_list() == ['2,"unclosed']


def test_many_malformed_lines_across_blocks(tmp_path: Path) -> None:
    lines = [f"{i},x" if i % 3 else f"{i},x,extra" for i in range(50_000)]
    write(tmp_path, "o.csv", "a,b\n" + "\n".join(lines) + "\n")
    frame, rejected = read(tmp_path, "o.csv", block_size_bytes=1 << 16)
    assert frame.height + rejected.height == 50_000
    assert frame["a"].cast(pl.Int64).to_list() == frame["_row"].to_list()
    assert (
        rejected["_line"].str.split(",").list.first().cast(pl.Int64).to_list()
        == rejected["_row"].to_list()
    )


def test_long_rejected_line_is_truncated_to_10kb(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", "a,b\n" + "é" * 20_000 + "\n1,2\n")
    frame, rejected = read(tmp_path, "o.csv")
    assert frame.height == 1
    assert len(rejected["_line"][0].encode()) <= 10_000


def test_nul_bytes_are_rejected(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", b"a,b\n1,x\x00y\n2,ok\n")
    frame, rejected = read(tmp_path, "o.csv")
    assert frame["a"].to_list() == ["2"]
    assert rejected.select("_row", "_line", "_failed_checks").to_dicts() == [
        {"_row": 0, "_line": "1,x\x00y", "_failed_checks": ["nul_byte: column 'b'"]}
    ]


def test_a_10mb_field_is_read(tmp_path: Path) -> None:
    big = "x" * (10 << 20)
    write(tmp_path, "o.csv", f"a,b\n1,{big}\n2,y\n")
    frame, _ = read(tmp_path, "o.csv")
    assert frame["b"].str.len_bytes().to_list() == [10 << 20, 1]


def test_record_larger_than_the_block_rereads_without_duplicates(tmp_path: Path) -> None:
    before = [f"{i},x" for i in range(2_000)]
    after = [f"{i},y" for i in range(2_001, 3_000)]
    lines = ["a,b", *before, "bad", "2000," + "z" * 100_000, *after, "bad"]
    write(tmp_path, "o.csv", "\n".join(lines) + "\n")
    frame, rejected = read(tmp_path, "o.csv", block_size_bytes=4096)
    assert frame["a"].to_list() == [str(i) for i in range(3_000)]
    assert frame["_row"].to_list() == list(range(2_000)) + list(range(2_001, 3_001))
    assert frame["b"][2_000] == "z" * 100_000
    assert rejected["_row"].to_list() == [2_000, 3_001]


def test_typed_columns_and_values_that_do_not_parse(tmp_path: Path) -> None:
    write(
        tmp_path, "o.csv", "id,ok,day\n1,true,2024-01-02\nx,false,2024-01-03\n3,maybe,2024-13-01\n"
    )
    frame, rejected = read(tmp_path, "o.csv", columns={"id": "int64", "ok": "bool", "day": "date"})
    assert frame.schema["id"] == pl.Int64
    assert frame.schema["day"] == pl.Date
    assert data(frame) == [{"id": 1, "ok": True, "day": __import__("datetime").date(2024, 1, 2)}]
    assert rejected["_failed_checks"].to_list() == [
        ["invalid_value: column 'id' is not int64"],
        ["invalid_value: column 'ok' is not bool", "invalid_value: column 'day' is not date"],
    ]


def test_typed_column_missing_from_header(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", "a\n1\n")
    with pytest.raises(InvalidData, match="'zz'"):
        read(tmp_path, "o.csv", columns={"zz": "int64"})


def test_glob_of_three_files_numbers_rows_across_them(tmp_path: Path) -> None:
    for i in range(3):
        write(tmp_path, f"in/orders_{i}.csv", f"id,v\n{i}a,1\n{i}b,2\n")
    write(tmp_path, "in/empty.csv", "")
    write(tmp_path, "in/other.txt", "not,csv\n")
    frame, _ = read(tmp_path, "in/orders_*.csv")
    assert frame["id"].to_list() == ["0a", "0b", "1a", "1b", "2a", "2b"]
    assert frame["_row"].to_list() == list(range(6))


def test_glob_with_reordered_columns_is_aligned_and_other_columns_refused(tmp_path: Path) -> None:
    write(tmp_path, "a1.csv", "id,v\n1,x\n")
    write(tmp_path, "a2.csv", "v,id\ny,2\n")
    frame, _ = read(tmp_path, "a*.csv")
    assert data(frame) == [{"id": "1", "v": "x"}, {"id": "2", "v": "y"}]
    write(tmp_path, "a3.csv", "id,w\n3,z\n")
    with pytest.raises(InvalidData, match=r"a3\.csv has columns"):
        read(tmp_path, "a*.csv")


def test_no_matching_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="no file matches"):
        read(tmp_path, "missing/*.csv")


def test_duplicate_header_names_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", "a,a\n1,2\n")
    with pytest.raises(InvalidData, match="duplicate"):
        read(tmp_path, "o.csv")


def test_rejected_before_a_scan_was_collected(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", "a\n1\n")
    with open_connector(
        SourceSpec(name="s", uri="o.csv", csv=TEXT), base_dir=tmp_path
    ) as connector:
        lf = connector.scan()
        with pytest.raises(InvalidData, match="collect"):
            connector.rejected()
        lf.collect()
        assert connector.rejected().is_empty()


def test_watermark_incremental_read(tmp_path: Path) -> None:
    write(tmp_path, "d/1.csv", "id,updated_at\n1,2024-01-01T10:00\n2,2024-01-02T10:00\n")
    first, _ = read(tmp_path, "d/*.csv", watermark="updated_at")
    mark = max_watermark(first.lazy(), "updated_at")
    assert mark == "2024-01-02T10:00"
    write(tmp_path, "d/2.csv", "id,updated_at\n2,2024-01-02T10:00\n3,2024-01-03T09:00\n")
    second, _ = read(tmp_path, "d/*.csv", since=mark, watermark="updated_at")
    assert second.select("id", "_row").to_dicts() == [{"id": "3", "_row": 3}]
    third, _ = read(
        tmp_path,
        "d/*.csv",
        since=max_watermark(second.lazy(), "updated_at"),
        watermark="updated_at",
    )
    assert third.is_empty()


def test_watermark_on_typed_column_and_datetime_since(tmp_path: Path) -> None:
    import datetime as dt

    write(tmp_path, "o.csv", "id,at\n1,2024-01-01 00:00:00\n2,2024-02-01 00:00:00\n")
    frame, _ = read(
        tmp_path,
        "o.csv",
        since=dt.datetime(2024, 1, 15),
        watermark="at",
        columns={"at": "datetime"},
    )
    assert frame["id"].to_list() == ["2"]
    frame, _ = read(tmp_path, "o.csv", since=dt.date(2024, 1, 15), watermark="at")
    assert frame["id"].to_list() == ["2"]


def test_unknown_watermark_column(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", "a\n1\n")
    with pytest.raises(InvalidData, match="watermark column 'nope'"):
        read(tmp_path, "o.csv", since="x", watermark="nope")


def test_scan_is_lazy_and_can_be_collected_twice(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", "a,b\n1,x\n2\n")
    with open_connector(
        SourceSpec(name="s", uri="o.csv", csv=TEXT), base_dir=tmp_path
    ) as connector:
        lf = connector.scan()
        assert lf.select("a").filter(pl.col("a") == "1").collect()["a"].to_list() == ["1"]
        assert lf.collect().height == 1
        assert connector.rejected().height == 1
        assert lf.head(0).collect().height == 0


@pytest.mark.slow
def test_a_million_rows_stream_with_modest_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    pad = "lorem ipsum dolor sit amet " * 7
    row = "{i},customer_{i},2024-01-01T00:00:00,{i}.25," + pad + "\n"
    with path.open("w") as f:
        f.write("id,customer,at,amount,note\n")
        for start in range(0, 1_000_000, 100_000):
            f.write("".join(row.format(i=i) for i in range(start, start + 100_000)))
        f.write("broken,line\n")
    size_mb = path.stat().st_size / 2**20  # about 230 MB
    script = textwrap.dedent(
        f"""
        import json, resource
        from pathlib import Path
        import polars as pl
        from shipyard.data.connectors.base import SourceSpec, open_connector

        def peak_mb():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        def run(uri):
            spec = SourceSpec(name="s", uri=uri, csv={{"infer_types": False}})
            with open_connector(spec, base_dir=Path("/")) as c:
                query = c.scan().select(pl.len(), pl.col("amount").str.len_bytes().sum())
                counts = query.collect(engine="streaming").row(0)
                return counts, c.rejected().height

        small = Path({str(tmp_path)!r}) / "small.csv"
        small.write_text("id,customer,at,amount,note\\n1,a,b,c,d\\n")
        run(str(small))  # warm up: imports, thread pools
        base = peak_mb()
        counts, rejected = run({str(path)!r})
        print(json.dumps({{"grown": peak_mb() - base, "counts": counts, "rejected": rejected}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    report = json.loads(result.stdout)
    assert report["counts"][0] == 1_000_000
    assert report["rejected"] == 1
    assert report["grown"] < size_mb / 2, (report, size_mb)


def test_stopping_early_closes_cleanly(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", "a,b\n" + "".join(f"{i},x\n" for i in range(500_000)))
    with open_connector(
        SourceSpec(name="s", uri="o.csv", csv=TEXT), base_dir=tmp_path
    ) as connector:
        assert connector.scan().head(3).collect()["a"].to_list() == ["0", "1", "2"]
        assert connector.scan().filter(pl.col("a") == "499999").collect().height == 1


# ── the Polars path and the pyarrow path ─────────────────────────────────────────────────────


def read_via(
    directory: Path, uri: str, *, polars: bool, **csv: Any
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read with the Polars path (pyarrow takes over where a block is not plain) or pyarrow's."""
    spec = SourceSpec(name="orders", uri=uri, csv={"infer_types": False, **csv})
    with open_connector(spec, base_dir=directory) as connector:
        assert isinstance(connector, CsvConnector)
        if not polars:
            connector._fast = None  # pyarrow reads every file
        return connector.scan().collect(), connector.rejected()


@pytest.fixture
def no_pyarrow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if a read falls back to pyarrow's reader."""

    def refuse(*_args: Any) -> None:
        raise AssertionError("pyarrow read the file")

    monkeypatch.setattr(CsvConnector, "_open_reader", refuse)


GOOD = "".join(f"{i},name {i},{i}.5\n" for i in range(3000))
QUOTED = "".join(f'{i},"last, first {i}","say ""{i}"""\r\n' for i in range(3000))
MALFORMED = "".join(
    f"{i},x\n" if i % 7 == 3 else f"{i},x,y,z\n" if i % 11 == 5 else f"{i},x,{i}\n"
    for i in range(3000)
)
SAME_BOTH_WAYS: dict[str, tuple[bytes, dict[str, Any]]] = {
    "well-formed": (("id,name,v\n" + GOOD).encode(), {}),
    "quoted with CRLF and blank lines": (("id,name,v\r\n\r\n" + QUOTED + "\r\n").encode(), {}),
    "malformed lines and blank lines": (("id,name,v\n" + MALFORMED + "\n\n7,a,b").encode(), {}),
    "broken quoting after many blocks": (
        ("id,name,v\n" + GOOD + '3000,"unclosed,x\n3001,a,b\n"\n' + GOOD).encode(),
        {"block_size_bytes": 4096},
    ),
    "a value spanning lines": (
        ("id,name,v\n" + GOOD + '3000,"two\nlines",x\n' + GOOD).encode(),
        {"block_size_bytes": 4096, "newlines_in_values": True},
    ),
    "lone carriage returns": (
        ("id,name,v\n" + GOOD + "1,a,b\r2,c,d\n" + GOOD).encode(),
        {"block_size_bytes": 4096},
    ),
    "NUL bytes and typed columns": (
        ("id,name,v\n" + GOOD + "x,a\x00b,1\n" + "1,b,zz\n" + GOOD).encode(),
        {"columns": {"id": "int64", "v": "float64"}, "block_size_bytes": 4096},
    ),
    "null values": (
        ('id,name,v\n1,NA,"x"\n2,"",\n3,-,"N"\n' + GOOD).encode(),
        {"null_values": ["NA", "-", ""]},
    ),
    "null values, quoted and not": (
        ('id,name,v\n1,NA,"NA"\n2,"",\n3,-,x\n' + GOOD).encode(),
        {"null_values": ["NA", "-", ""]},
    ),
    "BOM, skipped rows and a last line without line break": (
        b"\xef\xbb\xbfexported by X\n\nid,name,v\n" + GOOD.encode() + b'4,"",',
        {"skip_rows": 1},
    ),
    "latin1 and comments": (
        ("id,name,v\n# note\n" + GOOD + "9,Zürich,é\n").encode("latin-1"),
        {"encoding": "latin1", "comment_prefix": "#"},
    ),
    "no header": (GOOD.encode(), {"has_header": False}),
    "column names over a header": (("a,b,c\n" + GOOD).encode(), {"column_names": ["i", "n", "v"]}),
    "tab-separated without quoting": (
        GOOD.replace(",", "\t").replace("name", '"name').encode(),
        {"delimiter": "\t", "quote_char": None, "has_header": False},
    ),
}


@pytest.mark.parametrize("case", list(SAME_BOTH_WAYS))
def test_polars_and_pyarrow_paths_give_the_same_rows_and_rejects(tmp_path: Path, case: str) -> None:
    content, options = SAME_BOTH_WAYS[case]
    write(tmp_path, "o.csv", content)
    fast, fast_rejected = read_via(tmp_path, "o.csv", polars=True, **options)
    slow, slow_rejected = read_via(tmp_path, "o.csv", polars=False, **options)
    assert fast.height > 0
    assert fast.equals(slow)
    assert fast_rejected.equals(slow_rejected)


@pytest.mark.usefixtures("no_pyarrow")
def test_plain_files_are_read_by_polars_alone(tmp_path: Path) -> None:
    write(tmp_path, "a.csv", "id,name,v\r\n\r\n" + QUOTED)
    write(tmp_path, "b.csv", "v,id,name\n" + MALFORMED + "\n")
    frame, rejected = read(tmp_path, "*.csv", block_size_bytes=4096)
    good = [r for r in MALFORMED.splitlines() if r.count(",") == 2]
    assert frame.height == 3000 + len(good)
    assert frame["_row"].to_list()[:3] == [0, 1, 2]
    assert frame.row(1, named=True) == {
        "id": "1",
        "name": "last, first 1",
        "v": 'say "1"',
        "_source": "orders",
        "_row": 1,
    }
    assert frame.height + rejected.height == 6000
    assert rejected["_line"][0] == "3,x"
    assert rejected["_row"][0] == 3003
    assert rejected["_failed_checks"][0].to_list() == ["malformed_line: expected 3 fields, found 2"]


def test_broken_quoting_far_into_a_file_hands_over_to_pyarrow(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", "id,name,v\n" + GOOD + '3000,"unclosed,x\n3001,a,b\n"\n' + GOOD)
    frame, rejected = read(tmp_path, "o.csv", block_size_bytes=4096)
    assert frame["_row"].to_list() == [*range(3000), 3001, *range(3003, 6003)]
    assert frame["id"].to_list()[2998:3002] == ["2998", "2999", "3001", "0"]
    assert rejected["_row"].to_list() == [3000, 3002]
    assert rejected["_line"].to_list() == ['3000,"unclosed,x', '"']


def test_invalid_utf8_in_a_later_block_names_the_line(tmp_path: Path) -> None:
    write(tmp_path, "o.csv", ("id,name,v\n" + GOOD).encode() + b"1,caf\xe9,2\n")
    with pytest.raises(InvalidData, match="invalid UTF-8 at line 3002"):
        read(tmp_path, "o.csv", block_size_bytes=4096)


def test_lines_that_look_like_compressed_data_are_text(tmp_path: Path) -> None:
    # Polars decompresses bytes starting like zlib ("x^") or lz4; such blocks go to pyarrow.
    write(tmp_path, "o.csv", "a,b\nx^1,2\n" + "".join(f"x{i},y\n" for i in range(3000)))
    frame, rejected = read(tmp_path, "o.csv", block_size_bytes=4096)
    assert frame["a"].to_list()[:2] == ["x^1", "x0"]
    assert frame.height == 3001
    assert rejected.is_empty()
    write(tmp_path, "o.csv", "x^a,b\n1,2\n")
    assert read(tmp_path, "o.csv")[0].columns[0] == "x^a"


def test_typed_columns_parsed_directly_still_reject_blank_and_bad_values(tmp_path: Path) -> None:
    """Numeric columns are parsed straight to their type while that gives the text path's rows.

    Blocks of clean numbers parse typed; a later block with a whitespace-only value, an empty
    value and a value that is not a number must come out as the text path has them: the
    whitespace and the word rejected with their reason, the empty value a null.
    """
    clean = "".join(f"{i},{i}.5,n{i}\n" for i in range(3000))
    tail = "3000,  ,blank\n3001,,empty\n3002,x1,word\n3003,7,ok\n"
    write(tmp_path, "o.csv", "id,amount,note\n" + clean + tail)
    columns = {"id": "int64", "amount": "float64"}
    frame, rejected = read(tmp_path, "o.csv", block_size_bytes=4096, columns=columns)
    assert frame.schema["id"] == pl.Int64
    assert frame.schema["amount"] == pl.Float64
    assert frame.height == 3002
    assert frame["amount"][:3000].to_list() == [i + 0.5 for i in range(3000)]
    tail_rows = frame.filter(pl.col("id") >= 3000).select("id", "amount", "note").to_dicts()
    assert tail_rows == [
        {"id": 3001, "amount": None, "note": "empty"},
        {"id": 3003, "amount": 7.0, "note": "ok"},
    ]
    assert rejected["_row"].to_list() == [3000, 3002]
    assert all(
        reasons == ["invalid_value: column 'amount' is not float64"]
        for reasons in rejected["_failed_checks"].to_list()
    )


def test_typed_columns_keep_empty_values_as_null_and_still_reject_blank_ones(
    tmp_path: Path,
) -> None:
    """An empty value in a block without whitespace keeps the typed parse (issue 17).

    Later blocks with a whitespace-only value (ASCII or not) must still come out as the text
    path has them: rejected with their reason, while the empty values stay nulls.
    """
    first = "".join(f"{i},{'' if i % 100 == 0 else i},n{i}\n" for i in range(3000))
    nbsp = "\u00a0"  # a no-break space: whitespace to the text path's strip
    middle = "".join(f"{i},{nbsp if i == 3500 else i},n{i}\n" for i in range(3000, 6000))
    space = "".join(f"{i},{' ' if i == 6500 else ''},n{i}\n" for i in range(6000, 9000))
    write(tmp_path, "o.csv", "id,amount,note\n" + first + middle + space)
    columns = {"id": "int64", "amount": "float64"}
    frame, rejected = read(tmp_path, "o.csv", block_size_bytes=4096, columns=columns)
    assert frame.schema["amount"] == pl.Float64
    assert frame.height == 9000 - 2
    head = frame.filter(pl.col("id") < 3000)
    assert head["amount"].null_count() == 30
    assert head.filter(pl.col("amount").is_null())["id"].to_list() == list(range(0, 3000, 100))
    assert rejected["_row"].to_list() == [3500, 6500]
    # rebuilt from fields, one of them parsed to a number (this used to raise TypeError)
    assert rejected["_line"].to_list() == [f"3500,{nbsp},n3500", "6500, ,n6500"]
    assert all(
        reasons == ["invalid_value: column 'amount' is not float64"]
        for reasons in rejected["_failed_checks"].to_list()
    )
