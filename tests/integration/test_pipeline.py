"""A real project with three sources — CSV, PostgreSQL, an HTTP API — run end to end."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import polars as pl
import pytest
import sqlalchemy as sa

from shipyard.core.errors import SchemaDrift
from shipyard.data.datasets import list_datasets, read_dataset
from shipyard.pipeline.project import load_project
from shipyard.pipeline.runner import run_pipeline
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CSV_HEADER = "OrderID,cust,amount_cents,date,updated\n"
CSV_ROWS = [
    "1,ana,1250,05/01/2024 10:00,2024-01-05T10:00:00\n",
    "2,bob,990,06/01/2024 11:30,2024-01-06T11:30:00\n",
    "3,cy,500\n",  # too few fields → malformed
    "4,dan,-300,08/01/2024 12:00,2024-01-08T12:00:00\n",  # negative amount → quarantine
    "5,eve,700,09/01/2024 08:15,2024-01-09T08:15:00,extra\n",  # too many fields → malformed
]
API_RECORDS = [
    {
        "id": 100 + i,
        "customer": f"api-{i}",
        "total": 10.0 + i,
        "ts": f"2024-01-1{i}T09:00:00",
        "updated": f"2024-01-1{i}T09:00:00",
    }
    for i in range(5)
]


class _Api(BaseHTTPRequestHandler):
    records: list[dict] = API_RECORDS

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        page, size = int(query.get("page", ["1"])[0]), int(query.get("size", ["2"])[0])
        chunk = self.records[(page - 1) * size : page * size]
        body = json.dumps({"data": chunk}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/orders"
    server.shutdown()
    server.server_close()


@pytest.fixture
def shop_db(pg_url: str) -> str:
    engine = sa.create_engine(pg_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "CREATE TABLE store_orders (order_no bigint, client text, euros double precision, "
                "sold_at timestamp, updated_at timestamp)"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO store_orders VALUES "
                "(200, 'fay', 20.5, '2024-01-03 15:00', '2024-01-03 15:00'),"
                "(201, 'gus', 31.0, '2024-01-04 16:00', '2024-01-04 16:00')"
            )
        )
    engine.dispose()
    return pg_url


def write_project(root: Path, api: str, db: str, *, csv_rename: str = "OrderID") -> None:
    (root / "data").mkdir(exist_ok=True)
    project = f"""
name: shop
sources:
  web:
    uri: data/orders.csv
    watermark: updated
    harmonize:
      rename: {{{csv_rename}: order_id, cust: customer, amount_cents: amount, date: ordered_at}}
      cast:
        order_id: int64
        amount: float64
        ordered_at: {{type: datetime, format: "%d/%m/%Y %H:%M"}}
      units: {{amount: {{multiply: 0.01}}}}
      defaults: {{channel: web}}
      drop: [updated]
  store:
    uri: {db}
    table: store_orders
    watermark: updated_at
    harmonize:
      rename: {{order_no: order_id, client: customer, euros: amount, sold_at: ordered_at}}
      defaults: {{channel: store}}
      drop: [updated_at]
  app:
    uri: {api}
    watermark: updated
    http:
      records: data
      pagination: {{type: page, page_param: page, size_param: size, size: 2}}
      allow_private_network: true
    harmonize:
      rename: {{id: order_id, total: amount, ts: ordered_at}}
      cast: {{order_id: int64, amount: float64, ordered_at: datetime}}
      defaults: {{channel: app}}
      drop: [updated]
combine:
  union: [web, store, app]
contract:
  policy: quarantine
  columns:
    order_id: {{type: int64, nullable: false, unique: true}}
    customer: {{type: string, nullable: false}}
    amount: {{type: float64, min: 0}}
    ordered_at: {{type: datetime, nullable: false}}
    channel: {{type: string, allowed: [web, store, app]}}
steps:
  - features:
      order_month: {{date_part: {{column: ordered_at, part: month}}}}
"""
    (root / "shipyard.yaml").write_text(project)


@pytest.fixture
def project_root(tmp_path: Path, api: str, shop_db: str) -> Path:
    write_project(tmp_path, api, shop_db)
    (tmp_path / "data" / "orders.csv").write_text(CSV_HEADER + "".join(CSV_ROWS))
    return tmp_path


def run(root: Path):
    with Workspace.open(root) as workspace:
        return run_pipeline(workspace, load_project(root), actor=OPERATOR)


def test_three_sources_harmonized_validated_and_accounted(project_root: Path) -> None:
    report = run(project_root)
    assert report.conserved
    stages = {s.name: s for s in report.stages}
    assert stages["ingest:web"].rows_in == 5
    assert stages["ingest:web"].rows_quarantined == 2  # the two malformed lines
    assert stages["ingest:store"].rows_out == 2
    assert stages["ingest:app"].rows_out == 5
    validate = stages["validate"]
    assert validate.rows_in == 3 + 2 + 5
    assert validate.rows_quarantined == 1  # the negative amount
    assert validate.rows_out == 9
    with Workspace.open(project_root) as workspace:
        final = read_dataset(workspace, report.final_dataset).collect()
        assert final.height == 9
        assert final.schema["ordered_at"] == pl.Datetime("us")
        assert set(final["channel"]) == {"web", "store", "app"}
        web_first = final.filter(pl.col("order_id") == 1).row(0, named=True)
        assert web_first["amount"] == pytest.approx(12.50)
        assert web_first["order_month"] == 1
        quarantine = {v.name: v for v in list_datasets(workspace, kind="quarantine")}
        rejected = read_dataset(workspace, quarantine["shop.rejected"]).collect()
        assert rejected.height == 2
        reasons = [r for rs in rejected["_failed_checks"].to_list() for r in rs]
        assert all("malformed" in r for r in reasons)
        bad = read_dataset(workspace, quarantine["shop.quarantine"]).collect()
        assert bad["_failed_checks"].to_list() == [["amount.min"]]


def test_rerun_reuses_every_version_and_incremental_reads_only_new_rows(
    project_root: Path, shop_db: str
) -> None:
    first = run(project_root)
    again = run(project_root)
    assert again.executed == ["ingest:web", "ingest:store", "ingest:app"]  # reads, nothing new
    assert all(s.rows_in == 0 for s in again.stages if s.name.startswith("ingest"))
    assert again.final_dataset == first.final_dataset

    with (project_root / "data" / "orders.csv").open("a") as f:
        f.write("6,hal,1500,10/01/2024 10:00,2024-01-10T10:00:00\n")
    engine = sa.create_engine(shop_db)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO store_orders VALUES "
                "(202, 'ivy', 5.0, '2024-01-12 10:00', '2024-01-12 10:00')"
            )
        )
    engine.dispose()
    third = run(project_root)
    ingest = {s.name: s.rows_out for s in third.stages if s.name.startswith("ingest")}
    assert ingest == {"ingest:web": 1, "ingest:store": 1, "ingest:app": 0}
    with Workspace.open(project_root) as workspace:
        final = read_dataset(workspace, third.final_dataset).collect()
    assert final.height == 11
    assert final["order_id"].n_unique() == 11


def test_a_renamed_source_column_fails_with_the_fix(
    project_root: Path, api: str, shop_db: str
) -> None:
    run(project_root)
    csv = project_root / "data" / "orders.csv"
    csv.write_text(csv.read_text().replace("OrderID", "order_ref", 1))
    with pytest.raises(Exception, match=r"web.*OrderID") as caught:
        run(project_root)
    message = str(caught.value)
    assert "order_ref" in message
    assert "rename" in message
    assert isinstance(caught.value, SchemaDrift | ValueError)


def cli(*args: str, capsys: pytest.CaptureFixture[str]) -> str:
    from shipyard.cli.main import run as shipyard

    with pytest.raises(SystemExit) as exited:
        shipyard(list(args))
    out, err = capsys.readouterr()
    assert exited.value.code == 0, err
    return out


def test_cli_runs_the_pipeline_and_shows_datasets(
    project_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    root = str(project_root)
    out = cli("-C", root, "run", capsys=capsys)
    assert "rows conserved" in out
    assert "validate" in out
    listing = cli("-C", root, "data", "list", capsys=capsys)
    assert "shop.validated" in listing
    assert "shop.0.features" in listing
    with Workspace.open(project_root) as workspace:
        final = next(v for v in list_datasets(workspace) if v.name == "shop.0.features")
    shown = cli("-C", root, "data", "show", final.dataset_id[:12], capsys=capsys)
    assert "order_month" in shown
    profile = cli("-C", root, "data", "profile", final.dataset_id[:12], capsys=capsys)
    assert "amount" in profile
    quarantined = cli("-C", root, "data", "quarantine", capsys=capsys)
    assert "malformed" in quarantined or "amount.min" in quarantined
    events_file = project_root / "lineage.json"
    tree = cli(
        "-C",
        root,
        "lineage",
        final.dataset_id[:12],
        "--openlineage",
        str(events_file),
        capsys=capsys,
    )
    assert "shop.validated" in tree
    events = json.loads(events_file.read_text())
    assert all(e["eventType"] == "COMPLETE" for e in events)
    assert any(o["name"].endswith("features") for e in events for o in e["outputs"])
