"""Serving meters: a real server on 127.0.0.1 counts CPU and predictions per version.

The server runs in this process (uvicorn on a thread, port 0) with real trained bundles, the load
comes from the project's load generator, and the counters are read from ``GET /metrics`` as an
operator's scraper would.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import orjson
import pytest

from shipyard.core.errors import InvalidArgument
from shipyard.cost.attribution import cost_per_thousand_predictions
from shipyard.cost.catalog import ActiveInstance, load_catalog
from shipyard.cost.meters import difference, parse_serving_meters
from shipyard.serve.app import create_app
from shipyard.serve.loadtest import run_load
from shipyard.serve.runtime import Runtime
from shipyard.serve.traffic import DeploySpec
from tests.servers import running
from tests.unit.serve.conftest import MemorySource, make_bundle
from tests.unit.serve.tokens import ServerTokens

if TYPE_CHECKING:
    from collections.abc import Iterator

    from shipyard.registry.bundle import Bundle

ROWS = [{"tenure": float(t), "charges": 50.0 + t, "plan": "basic"} for t in range(1, 9)]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return make_bundle(tmp_path_factory.mktemp("bundle"))


def _source(bundle: Bundle) -> MemorySource:
    source = MemorySource()
    source.bundles[("churn", 3)] = bundle
    source.aliases[("churn", "production")] = 3
    return source


BEARER: dict[str, str] = {}  # an admin token of the test server, set by _serve


def _serve(bundle: Bundle, *, metering: bool = True) -> Iterator[str]:
    spec = DeploySpec(models={"churn": {"model": "churn"}}, poll_interval_s=60)
    tokens = ServerTokens(Path(tempfile.mkdtemp(prefix="shipyard-auth-")))
    BEARER.update(tokens.headers())
    app = create_app(Runtime(spec, _source(bundle), metering=metering), auth=tokens.auth)
    with running(app, lifespan="on") as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def server(bundle: Bundle) -> Iterator[str]:
    yield from _serve(bundle)


def _meters(url: str) -> list:
    return parse_serving_meters(httpx.get(f"{url}/metrics", headers=BEARER).text)


def test_cost_per_thousand_predictions_from_a_load_test_matches_the_counters(server: str) -> None:
    before = _meters(server)
    report = run_load(
        f"{server}/models/churn/predict",
        body=orjson.dumps(ROWS),
        headers={"content-type": "application/json", **BEARER},
        concurrency=4,
        duration_s=0.8,
    )
    assert report.errors == 0
    [meter] = difference(_meters(server), before)
    assert (meter.model, meter.version, meter.variant) == ("churn", 3, "production")
    # The server counted every request the generator saw answered, and 8 predictions in each.
    assert meter.requests == report.ok > 10
    assert meter.predictions == len(ROWS) * report.ok
    assert meter.cpu_seconds > 0
    m5 = ActiveInstance(load_catalog().instance("m5.large"), "on_demand")
    per_thousand = cost_per_thousand_predictions(meter.cpu_seconds, meter.predictions, m5)
    assert per_thousand is not None
    by_hand = meter.cpu_seconds / meter.predictions * 1000 / 3600 * 0.096 / 2
    assert float(per_thousand) == pytest.approx(by_hand, rel=1e-12)
    # Model CPU per request cannot exceed the wall time the generator measured for it.
    assert meter.cpu_seconds / meter.requests <= report.latency_ms.max / 1000


def test_metering_off_counts_requests_but_no_cpu(bundle: Bundle) -> None:
    # Settings reach the runtime through the server (tests/unit/serve/test_metering_setting.py).
    for url in _serve(bundle, metering=False):
        for _ in range(3):
            answer = httpx.post(f"{url}/models/churn/predict", json=ROWS[:2], headers=BEARER)
            assert answer.status_code == 200
        [meter] = _meters(url)
    assert (meter.requests, meter.predictions, meter.cpu_seconds) == (3, 6, 0.0)


def test_parse_ignores_other_series_and_refuses_non_prometheus_text() -> None:
    text = (
        "# TYPE shipyard_version_cpu_seconds counter\n"
        'shipyard_version_cpu_seconds_total{model="m",version="2",variant="a"} 1.5\n'
        'shipyard_version_cpu_seconds_created{model="m",version="2",variant="a"} 1.7e9\n'
        "# TYPE shipyard_version_rows counter\n"
        'shipyard_version_rows_total{model="m",version="2",variant="a"} 300\n'
        "# TYPE other counter\n"
        'other_total{model="m",version="2",variant="a"} 9\n'
    )
    [meter] = parse_serving_meters(text)
    assert (meter.cpu_seconds, meter.predictions, meter.requests) == (1.5, 300, 0)
    with pytest.raises(InvalidArgument, match="Prometheus"):
        parse_serving_meters("{not: metrics}\n<html>")


def test_storage_usage_counts_each_blob_once_with_its_tier(tmp_path: Path) -> None:
    from shipyard.core.settings import load_settings
    from shipyard.cost.meters import storage_usage
    from shipyard.store.cost_models import BlobTierRow
    from shipyard.track.workspace import Workspace

    with Workspace(load_settings(project_dir=tmp_path)) as ws:
        with ws.start_run(name="a") as run:
            run.log_artifact(b"x" * 1000, name="big.bin")
            run.log_artifact(b"x" * 1000, name="same-content.bin")
            run.log_artifact(b"y" * 10, name="small.bin")
        usage = storage_usage(ws.store)
        assert sorted(b.size_bytes for b in usage) == [10, 1000]
        assert {b.tier for b in usage} == {"hot"}
        big = next(b for b in usage if b.size_bytes == 1000)
        with ws.store.engine.begin() as c:
            row = {"digest": big.digest, "tier": "archive", "changed_ms": 0}
            c.execute(BlobTierRow.__table__.insert().values(**row))
        tiers = {b.size_bytes: b.tier for b in storage_usage(ws.store)}
    assert tiers == {1000: "archive", 10: "hot"}


def test_cost_report_reads_a_servers_counters_with_the_cli_token(
    bundle: Bundle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``cost report --server`` sends ``$SHIPYARD_TOKEN``; without it, it says what to set."""
    from shipyard.core.error_status import status_of
    from shipyard.core.errors import PermissionDenied
    from shipyard.security.accounts import Accounts
    from shipyard.security.audit_chain import security_store
    from shipyard.security.identities import local_identity
    from shipyard.serve.auth import ServerAuth
    from shipyard.track.workspace import Workspace
    from tests.unit.cli.running import cli

    with Workspace.open(tmp_path) as workspace:  # the server and the CLI share one workspace
        accounts = Accounts(security_store(workspace.settings, workspace.store))
        me = local_identity("project")
        accounts.ensure_user(me, "ops")
        accounts.grant(me, "ops", "viewer", "project")
        token = accounts.create_token(me, "ops").text
        spec = DeploySpec(models={"churn": {"model": "churn"}}, poll_interval_s=60)
        auth = ServerAuth(accounts, project="project")
        app = create_app(Runtime(spec, _source(bundle)), auth=auth)
        with running(app, lifespan="on") as port:
            url = f"http://127.0.0.1:{port}"
            run_load(
                f"{url}/models/churn/predict",
                body=orjson.dumps(ROWS),
                headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
                concurrency=2,
                duration_s=0.3,
            )
            monkeypatch.setenv("COLUMNS", "200")
            monkeypatch.delenv("SHIPYARD_TOKEN", raising=False)
            code, _, err = cli(capsys, "-C", str(tmp_path), "cost", "report", "--server", url)
            assert code == status_of(PermissionDenied).exit
            assert "needs a token: set $SHIPYARD_TOKEN" in err

            monkeypatch.setenv("SHIPYARD_TOKEN", token)
            code, out, err = cli(
                capsys, "-C", str(tmp_path), "cost", "report", "--server", url, "--json"
            )
    assert code == 0, err
    serving = orjson.loads(out)["serving"]
    assert [(s["model"], s["version"]) for s in serving] == [("churn", 3)]
    assert serving[0]["predictions"] > 0
