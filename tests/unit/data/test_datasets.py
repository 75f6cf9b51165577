"""Dataset versions: write → read, content ids, bookkeeping columns, cache keys, diff."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from shipyard.core.clock import ManualClock
from shipyard.core.errors import InvalidArgument, NotFound
from shipyard.core.settings import load_settings
from shipyard.data.contract import Contract
from shipyard.data.datasets import (
    WRITE_OPTIONS,
    dataset_id_for,
    dataset_profile,
    diff,
    find_cached,
    get_dataset,
    list_datasets,
    public_columns,
    read_dataset,
    store_dataset_file,
    write_dataset,
)
from shipyard.data.profile import SAMPLE_ROWS
from shipyard.data.validate import Output, validate_to_parquet
from shipyard.track.workspace import Workspace


def open_workspace(tmp_path: Path, artifact_root: str | None = None) -> Workspace:
    settings = load_settings(
        project_dir=tmp_path,
        store_url=f"sqlite:///{tmp_path / 'store.db'}",
        artifact_root=artifact_root or str(tmp_path / "artifacts"),
    )
    return Workspace(settings, clock=ManualClock())


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = open_workspace(tmp_path)
    yield workspace
    workspace.close()


def orders(n: int = 100, offset: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "order_id": list(range(offset, offset + n)),
            "amount": [float(i % 17) * 1.5 if i % 10 else None for i in range(n)],
            "status": ["new", "paid", "shipped", "paid"] * (n // 4),
            "_source": ["orders"] * n,
            "_row": list(range(n)),
        }
    )


def test_write_then_read_roundtrip(ws: Workspace) -> None:
    frame = orders()
    version = write_dataset(ws, frame, name="orders.clean")
    back = read_dataset(ws, version.dataset_id).collect()
    assert_frame_equal(back, frame.drop("_source", "_row"))
    assert version.row_count == 100
    assert version.schema == [
        {"name": "order_id", "type": "int64"},
        {"name": "amount", "type": "float64"},
        {"name": "status", "type": "string"},
    ]
    assert version.size_bytes == ws.blobs.size(version.digest)
    assert version.dataset_id == dataset_id_for("orders.clean", "data", version.digest)
    assert get_dataset(ws, version.dataset_id[:8]) == version
    assert read_dataset(ws, version).collect().height == 100
    profile = dataset_profile(version)
    assert profile.row_count == 100
    assert profile.column("amount").nulls == 10


def test_the_blob_is_zstd_parquet_with_statistics(ws: Workspace) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    version = write_dataset(ws, orders(), name="orders.clean")
    with ws.blobs.open(version.digest) as stream:
        meta = pq.ParquetFile(stream).metadata
        column = meta.row_group(0).column(0)
        assert column.compression == "ZSTD"
        assert column.is_stats_set
    assert WRITE_OPTIONS["compression"] == "zstd"


def test_same_data_twice_is_one_version_and_one_blob(ws: Workspace) -> None:
    frame = orders(1000)
    first = write_dataset(ws, frame, name="orders.clean")
    ws.clock.advance(ms=5_000)  # type: ignore[attr-defined]
    # Lazy, chunked differently: the same rows still make the same bytes.
    chunks = pl.concat([frame.slice(i, 77) for i in range(0, 1000, 77)], rechunk=False)
    second = write_dataset(ws, chunks.lazy(), name="orders.clean")
    assert second == first
    assert list(ws.blobs.iter_digests()) == [first.digest]
    assert len(list_datasets(ws, "orders.clean")) == 1


def test_same_data_under_another_name_is_another_version_sharing_the_blob(
    ws: Workspace,
) -> None:
    a = write_dataset(ws, orders(), name="orders.clean")
    b = write_dataset(ws, orders(), name="orders.copy")
    assert a.dataset_id != b.dataset_id
    assert a.digest == b.digest
    assert len(list(ws.blobs.iter_digests())) == 1


def test_different_data_is_a_new_version(ws: Workspace) -> None:
    a = write_dataset(ws, orders(), name="orders.clean")
    ws.clock.advance(ms=1)  # type: ignore[attr-defined]
    b = write_dataset(ws, orders(offset=1), name="orders.clean")
    assert a.dataset_id != b.dataset_id
    assert [v.dataset_id for v in list_datasets(ws, "orders.clean")] == [
        b.dataset_id,
        a.dataset_id,
    ]


def test_bookkeeping_columns_are_kept_for_quarantine(ws: Workspace) -> None:
    bad = orders(8).with_columns(_failed_checks=pl.lit(["amount_min"], dtype=pl.List(pl.String)))
    version = write_dataset(ws, bad, name="orders.quarantine", kind="quarantine")
    back = read_dataset(ws, version.dataset_id).collect()
    assert back.columns == ["order_id", "amount", "status", "_source", "_row", "_failed_checks"]
    assert back["_failed_checks"].to_list() == [["amount_min"]] * 8
    assert version.kind == "quarantine"


def test_parents_lineage_and_cache_keys(ws: Workspace) -> None:
    with ws.start_run("ingest") as run:
        raw = write_dataset(ws, orders(), name="orders.raw", run_id=run.run_id)
        clean = write_dataset(
            ws,
            orders().filter(pl.col("amount").is_not_null()),
            name="orders.clean",
            parents=[raw],
            cache_key="k" * 64,
            run_id=run.run_id,
            lineage={"step": "clean", "params": {"impute": "median"}},
        )
    assert clean.parent_ids == (raw.dataset_id,)
    assert clean.lineage == {"step": "clean", "params": {"impute": "median"}}
    assert clean.run_id == run.run_id
    assert find_cached(ws, "k" * 64) == clean
    assert find_cached(ws, "k" * 64, kind="quarantine") is None
    assert find_cached(ws, "other") is None


def test_bad_arguments_are_refused(ws: Workspace) -> None:
    with pytest.raises(InvalidArgument, match="dataset name"):
        write_dataset(ws, orders(), name="../etc")
    with pytest.raises(InvalidArgument, match="kind"):
        write_dataset(ws, orders(), name="orders", kind="model")
    with pytest.raises(InvalidArgument, match="Polars frame"):
        write_dataset(ws, {"a": [1]}, name="orders")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="lineage"):
        write_dataset(ws, orders(), name="orders", lineage={"x": float("nan")})
    with pytest.raises(NotFound, match="parent"):
        write_dataset(ws, orders(), name="orders", parents=["a" * 64])
    with pytest.raises(NotFound):
        read_dataset(ws, "abcdef")


def test_empty_frame(ws: Workspace) -> None:
    version = write_dataset(ws, orders().clear(), name="orders.clean")
    assert version.row_count == 0
    assert read_dataset(ws, version.dataset_id).collect().height == 0
    assert dataset_profile(version).column("amount").mean is None


def test_read_from_a_non_local_blob_store(tmp_path: Path) -> None:
    workspace = open_workspace(tmp_path, artifact_root=f"memory://ds-{uuid.uuid4().hex}")
    try:
        version = write_dataset(workspace, orders(), name="orders.clean")
        back = read_dataset(workspace, version.dataset_id).collect()
        assert_frame_equal(back, orders().drop("_source", "_row"))
    finally:
        workspace.close()


def test_diff(ws: Workspace) -> None:
    a = write_dataset(ws, orders(), name="orders.clean")
    changed = (
        orders(120)
        .with_columns(pl.col("amount").fill_null(0.0) + 10, pl.col("order_id").cast(pl.Int32))
        .drop("status")
        .with_columns(channel=pl.lit("web"))
    )
    b = write_dataset(ws, changed, name="orders.clean")
    d = diff(ws, a.dataset_id, b.dataset_id[:10])
    assert d.a == a
    assert d.b == b
    assert d.row_delta == 20
    assert not d.same_content
    assert d.schema_changed
    assert d.added == ("channel",)
    assert d.removed == ("status",)
    assert d.type_changes == {"order_id": ("int64", "int32")}
    amount = d.column("amount")
    assert amount.null_rate_a == pytest.approx(0.1)
    assert amount.null_rate_b == 0.0
    assert amount.null_rate_delta == pytest.approx(-0.1)
    expected_a = orders()["amount"].mean()
    expected_b = changed["amount"].mean()
    assert amount.mean_delta == pytest.approx(expected_b - expected_a)
    assert d.column("order_id").distinct_delta == 20
    assert d.column("order_id").mean_delta is not None
    with pytest.raises(KeyError):
        d.column("status")

    same = diff(ws, a, a)
    assert same.same_content
    assert not same.schema_changed
    assert all(c.null_rate_delta == 0 for c in same.columns)


def test_a_file_written_with_the_pinned_options_is_the_same_version(
    ws: Workspace, tmp_path: Path
) -> None:
    """The validate stage writes its outputs itself: stored as written, same id as written here."""
    frame = orders(1000)
    path = tmp_path / "written.parquet"
    validated = validate_to_parquet(
        frame.lazy(),
        Contract(),
        path,
        tmp_path / "quarantined.parquet",
        output=Output(lambda lf: lf.select(public_columns(lf)), WRITE_OPTIONS),
    )
    assert validated.rows_accepted == 1000
    stored = store_dataset_file(ws, path, name="orders.clean")
    written = write_dataset(ws, frame, name="orders.clean")
    assert written == stored
    assert stored.row_count == 1000


def test_a_large_version_is_profiled_on_a_sample(ws: Workspace) -> None:
    rows = SAMPLE_ROWS * 2
    version = write_dataset(ws, pl.DataFrame({"i": range(rows)}), name="big")
    profile = dataset_profile(version)
    assert version.row_count == rows
    assert profile.row_count == rows
    assert profile.sample_rows == SAMPLE_ROWS
    assert profile.column("i").count == SAMPLE_ROWS
