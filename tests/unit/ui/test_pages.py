"""The UI's pages read what the CLI reads: runs, a run, comparisons, models, datasets."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html import unescape

import pytest
from starlette.testclient import TestClient

from tests.unit.ui.env import Env

ClientFor = Callable[[str], TestClient]


def _run_names(html: str) -> list[str]:
    return re.findall(r'class="run-link" href="/runs/[0-9a-f]+">(?:└ )?([^<]+)</a>', html)


def test_runs_list_filters_with_the_cli_language(client_for: ClientFor) -> None:
    client = client_for("viewer")
    page = client.get(
        "/runs/table", params={"filter": "params.model = 'lgbm' and metrics.auc > 0.72"}
    )
    assert page.status_code == 200
    assert _run_names(page.text) == ["train-1"]
    assert "1 run<" in page.text


def test_runs_list_sorts_and_pages(client_for: ClientFor) -> None:
    client = client_for("viewer")
    by_auc = client.get(
        "/runs/table", params={"order": "metrics.auc desc", "filter": "experiment = 'churn'"}
    )
    assert _run_names(by_auc.text)[:4] == ["train-3", "train-2", "train-1", "train-0"]
    assert 'class="sorted-desc"' not in by_auc.text or "metrics.auc" in by_auc.text
    first = client.get("/runs/table", params={"size": 25, "page": 1, "order": "name asc"})
    total = int(re.search(r'id="run-count">(\d+) runs', first.text).group(1))  # type: ignore[union-attr]
    assert total == 7  # 4 trains, their trial, xss, long
    assert "page 1 of 1" in first.text
    names = _run_names(first.text)
    assert names == sorted(names)


def test_paging_neither_repeats_nor_skips(client_for: ClientFor) -> None:
    client = client_for("viewer")
    seen: list[str] = []
    for page in (1, 2, 3, 4):
        html = client.get("/runs/table", params={"size": 25, "page": page}).text
        seen += re.findall(r'name="run" value="([0-9a-f]+)"', html)
    assert len(seen) == len(set(seen)) == 7


def test_columns_can_be_chosen(client_for: ClientFor) -> None:
    html = (
        client_for("viewer")
        .get("/runs/table", params=[("col", "name"), ("col", "params.lr"), ("col", "metrics.auc")])
        .text
    )
    headers = re.findall(r"<th[^>]*>\s*(?:<a[^>]*>)?([^<]+)", html)
    assert [h.strip() for h in headers if h.strip()] == ["name", "params.lr", "metrics.auc"]
    assert ">0.05<" in html
    kept = (
        client_for("viewer")
        .get("/runs/table", params=[("col", "name"), ("col", "metrics.<b>nope")])
        .text
    )
    assert "metrics.&lt;b&gt;nope" in kept  # a chosen column stays, even with no values here
    assert "<b>nope" not in kept


def test_run_page_shows_everything_a_run_has(client_for: ClientFor, env: Env) -> None:
    html = client_for("viewer").get(f"/runs/{env.runs['train-0']}").text
    assert 'id="run-name">train-0<' in html
    assert "<td>model</td><td>lgbm</td>" in html
    assert "<td>team</td><td>growth</td>" in html
    assert f'data-src="/runs/{env.runs["train-0"]}/metric?key=loss"' in html
    assert 'img class="preview"' in html
    assert "plots/roc.png" in html
    assert '<iframe class="preview" sandbox' in html
    assert "<td>3</td><td>4</td>" in html  # the CSV preview
    assert "trial-0" in html  # child runs
    assert "peak memory" in html
    assert "cost" in html


def test_metric_json_is_downsampled_to_min_max_buckets(client_for: ClientFor, env: Env) -> None:
    client = client_for("viewer")
    doc = client.get(f"/runs/{env.long_run}/metric", params={"key": "loss", "buckets": 100}).json()
    assert doc["total"] == 5000
    assert doc["exact"] is False
    assert len(doc["steps"]) == 100
    assert doc["steps"][0] == 0
    assert max(doc["high"]) == 96 / 97  # spikes survive: the max of every bucket is kept
    assert min(doc["low"]) == 0.0
    exact = client.get(f"/runs/{env.runs['train-0']}/metric", params={"key": "loss"}).json()
    assert exact["exact"] is True
    assert exact["steps"] == list(range(50))
    assert client.get("/runs/ffffffffff/metric", params={"key": "loss"}).status_code == 404


def test_compare_three_runs(client_for: ClientFor, env: Env) -> None:
    client = client_for("viewer")
    ids = [env.runs[f"train-{i}"] for i in range(3)]
    html = client.get("/compare", params=[("run", i) for i in ids]).text
    assert "Compare 3 runs" in html
    assert '<tr class="differs"><td>params.model</td>' in html
    assert '<td class="num best">0.8</td>' in html  # the best auc, in bold
    assert 'data-kind="compare"' in html
    parallel = re.search(r'data-kind="parallel" [^>]*data-series="([^"]+)"', html)
    assert parallel is not None
    axes = json.loads(unescape(parallel.group(1)))["axes"]
    assert axes == ["params.lr", "metrics.auc", "metrics.loss"]  # model is not a number
    doc = client.get("/compare/metric", params=[("key", "loss"), *(("run", i) for i in ids)]).json()
    assert [s["name"] for s in doc["series"]] == ["train-0", "train-1", "train-2"]
    assert client.get("/compare", params={"run": ids[0]}).status_code == 400
    many = [("run", env.runs["train-0"])] * 21
    assert client.get("/compare", params=many).status_code == 400


def test_models_pages(client_for: ClientFor) -> None:
    client = client_for("viewer")
    assert "production → v1" in client.get("/models").text
    html = client.get("/models/churn").text
    assert 'id="model-name">churn<' in html
    assert "forced" in html or "force" in html  # the alias history names the forced move
    interval = re.search(r'id="test-metrics".*?</table>', html, re.S)
    assert interval is not None
    assert "\u2013" in interval.group(0)  # value with its bootstrap interval
    compared = client.get("/models/churn/compare", params=[("v", "1"), ("v", "2")])
    assert compared.status_code == 200
    assert "same-rows score" in compared.text
    card = client.get("/models/churn/2/card")
    assert card.status_code == 200
    assert card.headers["content-security-policy"].startswith("sandbox;")
    assert client.get("/models/nope").status_code == 404


def test_datasets_pages(client_for: ClientFor) -> None:
    viewer, scientist = client_for("viewer"), client_for("data-scientist")
    listing = scientist.get("/datasets").text
    found = re.search(r'href="/datasets/([0-9a-f]{64})">[^<]*</a></td><td>churn.test<', listing)
    assert found is not None
    dataset_id = found.group(1)
    html = scientist.get(f"/datasets/{dataset_id}").text
    assert 'id="schema"' in html
    assert 'id="lineage"' in html
    assert 'id="sample"' in html
    assert 'id="profile"' in html
    assert "churn v" in html  # the model versions downstream of the test split
    hidden = viewer.get(f"/datasets/{dataset_id}").text
    assert 'id="sample"' not in hidden
    assert "need data.read" in hidden
    assert viewer.get("/datasets/" + "0" * 64).status_code == 404


def test_experiments_and_the_reviews_list(client_for: ClientFor) -> None:
    client = client_for("viewer")
    assert "churn" in client.get("/experiments").text
    assert 'id="reviews"' in client.get("/reviews").text


def test_quarantine_counts_reasons_and_masks_personal_data(client_for: ClientFor, env: Env) -> None:
    for role in ("data-scientist", "admin"):  # raw PII is masked for every role in the UI
        html = client_for(role).get(f"/datasets/{env.quarantine}").text
        reasons = re.search(r'id="reasons".*?</table>', html, re.S)
        assert reasons is not None
        assert '<td>age_range</td><td class="num">2</td>' in reasons.group(0)
        assert '<td>age_type</td><td class="num">1</td>' in reasons.group(0)
        assert "masked (personal data): email" in html
        assert "@example.com" not in html  # neither in the rows nor in the profile
    assert "personal data" in html


def test_monitoring_page(client_for: ClientFor) -> None:
    html = client_for("viewer").get("/monitoring", params={"model": "churn"}).text
    assert html.count('data-kind="series"') == 2  # one drift chart per feature
    assert "tenure · psi (2 breached)" in html
    assert "tenure-drift" in html
    assert "retrain" in html


def test_cost_page(client_for: ClientFor) -> None:
    html = client_for("viewer").get("/cost").text
    assert 'id="cost-experiments"' in html
    assert "churn:1" in html  # by model version
    assert "<td>training</td>" in html  # the budget of shipyard.yaml


def test_shipyard_ui_refuses_half_a_tls_pair(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.unit.cli.running import cli

    code, out, err = cli(capsys, "ui", "--tls-cert", "cert.pem")
    assert code == 2
    assert "--tls-key" in out + err
