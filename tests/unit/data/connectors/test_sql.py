"""SQL connector on SQLite and PostgreSQL: tables, queries, watermarks, injection, failures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa

from shipyard.core.errors import InvalidArgument, InvalidData, SourceUnavailable
from shipyard.data.connectors import sql as sql_module
from shipyard.data.connectors.base import SourceSpec, max_watermark, open_connector

INJECTION = 'x"; DROP TABLE orders; --'


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with an ``orders`` table of 5 rows, on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.db'}"
    else:
        url = str(request.getfixturevalue("pg_url"))
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    orders = sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("amount", sa.Numeric(10, 2)),
        sa.Column("updated_at", sa.DateTime),
        sa.Column("note", sa.String(50)),
        sa.Column("paid", sa.Boolean),
    )
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(orders.insert(), [row(i) for i in (5, 1, 3, 2, 4)])
    engine.dispose()
    return url


def row(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "amount": f"{i}.50",
        "updated_at": dt.datetime(2024, 1, i),
        "note": None if i == 2 else f"n{i}:x",
        "paid": i % 2 == 0,
    }


def scan(url: str, since: object | None = None, **fields: Any) -> pl.DataFrame:
    spec = SourceSpec(name="orders", uri=url, **fields)
    with open_connector(spec, base_dir=Path("/")) as connector:
        frame = connector.scan(since).collect()
        assert connector.rejected().is_empty()
        return frame


def count(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = int(conn.execute(sa.text("SELECT count(*) FROM orders")).scalar_one())
    engine.dispose()
    return n


def test_table_is_read_with_its_types_in_key_order(db_url: str) -> None:
    frame = scan(db_url, table="orders")
    assert frame.schema == pl.Schema(
        {
            "id": pl.Int64,
            "amount": pl.Decimal(10, 2),
            "updated_at": pl.Datetime("us"),
            "note": pl.String,
            "paid": pl.Boolean,
            "_source": pl.String,
            "_row": pl.Int64,
        }
    )
    assert frame["id"].to_list() == [1, 2, 3, 4, 5]
    assert frame["_row"].to_list() == [0, 1, 2, 3, 4]
    assert frame["note"].to_list() == ["n1:x", None, "n3:x", "n4:x", "n5:x"]


def test_incremental_by_watermark(db_url: str) -> None:
    first = scan(db_url, table="orders", watermark="updated_at")
    mark = max_watermark(first.lazy(), "updated_at")
    assert mark == dt.datetime(2024, 1, 5)
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO orders (id, updated_at) VALUES (6, :t)"),
            {"t": dt.datetime(2024, 1, 6)},
        )
    engine.dispose()
    new = scan(db_url, since=mark, table="orders", watermark="updated_at")
    assert new["id"].to_list() == [6]
    query = scan(
        db_url,
        since=3,
        query="SELECT id, note FROM orders WHERE note IS NOT NULL OR id > 5;",
        watermark="id",
    )
    assert sorted(query["id"].to_list()) == [4, 5, 6]


def test_query_types_are_inferred_and_colons_are_text(db_url: str) -> None:
    frame = scan(db_url, query="SELECT id, note, '12:30' AS at_time, NULL AS empty_col FROM orders")
    assert frame.schema["id"] == pl.Int64
    assert frame.schema["empty_col"] == pl.String
    assert set(frame["at_time"].to_list()) == {"12:30"}


def test_chunks_are_concatenated(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql_module, "CHUNK_ROWS", 2)
    assert scan(db_url, table="orders")["_row"].to_list() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("name", [INJECTION, "orders; DROP TABLE orders", "a.b.c", "or ders", ""])
def test_injection_shaped_table_names_are_refused(db_url: str, name: str) -> None:
    with pytest.raises((InvalidArgument, ValueError)):
        scan(db_url, table=name)
    assert count(db_url) == 5


def test_injection_shaped_watermark_is_refused(db_url: str) -> None:
    with pytest.raises(InvalidArgument, match="plain identifier"):
        scan(db_url, since=1, table="orders", watermark=INJECTION)
    assert count(db_url) == 5


def test_missing_table_and_column(db_url: str) -> None:
    with pytest.raises(InvalidData, match="table 'nope' not found"):
        scan(db_url, table="nope")
    with pytest.raises(InvalidData, match="watermark column 'nope'"):
        scan(db_url, since=1, table="orders", watermark="nope")


def test_a_query_cannot_write(db_url: str) -> None:
    with pytest.raises((InvalidData, SourceUnavailable)):
        scan(db_url, query="DELETE FROM orders RETURNING id")
    assert count(db_url) == 5


def test_bad_query_is_invalid_data(db_url: str) -> None:
    with pytest.raises(InvalidData, match="orders"):
        scan(db_url, query="SELEC nonsense")


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="no database file"):
        scan(f"sqlite:///{tmp_path / 'none.db'}", table="orders")
    assert not (tmp_path / "none.db").exists()


def test_relative_sqlite_path_resolves_against_base_dir(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'rel.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (a INTEGER)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    engine.dispose()
    spec = SourceSpec(name="t", uri="sqlite:///rel.db", table="t")
    with open_connector(spec, base_dir=tmp_path) as connector:
        assert connector.scan().collect()["a"].to_list() == [1]


@pytest.mark.postgres
def test_unreachable_server_is_unavailable_without_password(pg_url: str) -> None:
    url = (
        sa.engine.make_url(pg_url)
        .set(port=1, password="s3cret-pw")
        .render_as_string(hide_password=False)
    )
    with pytest.raises(SourceUnavailable) as info:
        scan(url, table="orders")
    assert "s3cret-pw" not in str(info.value)
    assert "127.0.0.1" in str(info.value) or "localhost" in str(info.value)


@pytest.mark.postgres
def test_wrong_password_message_is_scrubbed(pg_url: str) -> None:
    url = sa.engine.make_url(pg_url).set(database="no_such_db_x", password="s3cret-pw")
    with pytest.raises(SourceUnavailable) as info:
        scan(url.render_as_string(hide_password=False), table="orders")
    assert "s3cret-pw" not in str(info.value)


@pytest.mark.postgres
def test_postgres_types_and_no_session_left_in_transaction(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE ev (id serial primary key, at timestamptz, doc jsonb, u uuid, "
                "n numeric)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO ev (at, doc, u, n) VALUES "
                "('2024-01-01T00:00:00Z', '{\"a\": 1}', gen_random_uuid(), 1.5)"
            )
        )
    frame = scan(pg_url, table="ev")
    assert frame.schema["at"] == pl.Datetime("us", "UTC")
    assert frame["doc"].to_list() == ['{"a":1}']
    assert len(frame["u"][0]) == 36
    assert frame["n"].to_list() == [1.5]
    with engine.connect() as conn:
        idle = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'idle in transaction'"
            )
        ).scalar_one()
    engine.dispose()
    assert idle == 0


def test_bad_url_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        open_connector(
            SourceSpec(name="x", uri="nosuchdialect://h/db", format="sql", table="t"),
            base_dir=Path("/"),
        ).scan()


def test_watermark_of_the_wrong_type(db_url: str) -> None:
    with pytest.raises(InvalidData, match="orders"):
        scan(db_url, since=object(), table="orders", watermark="updated_at")
