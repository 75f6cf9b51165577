"""Load reports: statistics against NumPy directly, histogram bins, storage as a tracked run."""

from __future__ import annotations

import bisect
import json
import math

import numpy as np
import pytest

from shipyard.serve.load_report import (
    LoadReport,
    log_histogram,
    public_url,
    render_histogram,
    save_load_report,
    summarize,
)
from shipyard.store.entities import RunStatus

CONFIG = {
    "url": "http://127.0.0.1:8000/models/m/predict",
    "method": "POST",
    "mode": "concurrency",
    "concurrency": 4,
    "rate_per_s": None,
    "duration_s": 2.0,
    "header_names": ["content-type"],
}


def _report(seed: int = 0) -> tuple[LoadReport, np.ndarray]:
    rng = np.random.default_rng(seed)
    latencies = rng.lognormal(mean=2.5, sigma=0.6, size=500)
    kinds = [None] * 480 + ["status 500"] * 15 + ["ReadTimeout"] * 5
    statuses = [200] * 480 + [500] * 15 + [None] * 5
    report = summarize(
        latencies_ms=latencies.tolist(),
        statuses=statuses,
        error_kinds=kinds,
        missed_sends=0,
        late_sends=0,
        duration_s=2.0,
        config=CONFIG,
    )
    return report, latencies[:480]


def test_summary_matches_numpy_on_the_successful_responses() -> None:
    report, good = _report()
    assert report.requests == 500
    assert report.ok == 480
    assert report.errors == 20
    assert report.errors_by_kind == {"ReadTimeout": 5, "status 500": 15}
    assert report.status_counts == {"200": 480, "500": 15}
    assert report.throughput_rps == 250.0
    assert report.error_rate == pytest.approx(0.04)
    lat = report.latency_ms
    assert [lat.p50, lat.p95, lat.p99] == pytest.approx(np.percentile(good, [50, 95, 99]).tolist())
    assert lat.max == good.max()
    assert lat.min == good.min()
    assert lat.mean == pytest.approx(good.mean())


def test_histogram_bins_are_log_spaced_on_decades_and_count_every_sample() -> None:
    report, good = _report()
    edges = report.histogram.edges_ms
    assert math.log10(edges[0]).is_integer()
    assert math.log10(edges[-1]).is_integer()
    ratios = np.diff(np.log10(edges))
    assert ratios == pytest.approx(np.full(len(ratios), 0.2))  # five bins per decade
    expected = [0] * (len(edges) - 1)
    for value in good:
        expected[bisect.bisect_right(edges, value) - 1] += 1
    assert report.histogram.counts == expected
    assert sum(expected) == 480


def test_histogram_of_identical_samples_and_of_none() -> None:
    one = log_histogram(np.array([5.0, 5.0, 5.0]))
    assert one.edges_ms[0] == 1.0
    assert one.edges_ms[-1] == pytest.approx(10.0)
    assert sum(one.counts) == 3
    assert log_histogram(np.array([])).counts == []


def test_text_histogram_trims_empty_ends_and_scales_bars() -> None:
    report, _ = _report()
    text = render_histogram(report.histogram, width=20)
    lines = text.splitlines()
    counts = report.histogram.counts
    first = next(i for i, c in enumerate(counts) if c)
    last = max(i for i, c in enumerate(counts) if c)
    assert len(lines) == last - first + 1
    peak_line = lines[counts.index(max(counts)) - first]
    assert peak_line.count("█") == 20
    assert peak_line.endswith(f" {max(counts)}")


def test_report_round_trips_through_json() -> None:
    report, _ = _report()
    data = json.loads(json.dumps(report.to_dict()))
    assert data["error_rate"] == pytest.approx(0.04)
    assert LoadReport.from_dict(data) == report


def test_an_empty_report_has_no_latencies_and_no_metrics_for_them() -> None:
    report = summarize(
        latencies_ms=[],
        statuses=[],
        error_kinds=[],
        missed_sends=3,
        late_sends=0,
        duration_s=1.0,
        config=CONFIG,
    )
    assert report.requests == 0
    assert report.latency_ms.p99 is None
    assert not any(k.startswith("latency") for k in report.metrics())
    assert report.metrics()["missed_sends"] == 3.0


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:secret@host:8000/p?token=abc", "http://host:8000/p?…"),
        ("https://host/models/m/predict", "https://host/models/m/predict"),
        ("http://[::1]:9000/x", "http://[::1]:9000/x"),
    ],
)
def test_public_urls_hold_no_credentials(url: str, shown: str) -> None:
    assert public_url(url) == shown


def test_a_saved_report_is_a_run_with_params_metrics_and_the_json(workspace) -> None:
    report, _ = _report()
    run_id = save_load_report(workspace, report, target="http://ops:pw@host:8000/p")
    run = workspace.get_run(run_id)
    assert run.experiment == "loadtests"
    assert run.status is RunStatus.FINISHED
    assert run.tags["target"] == "http://host:8000/p"
    assert "pw" not in json.dumps(run.params) + json.dumps(run.tags)
    assert run.params["mode"] == "concurrency"
    assert run.params["concurrency"] == "4"
    assert "rate_per_s" not in run.params  # None values are not params
    assert run.metrics["throughput_rps"] == 250.0
    assert run.metrics["latency_p99_ms"] == pytest.approx(report.latency_ms.p99)
    assert run.metrics["errors"] == 20.0
    stored = json.loads(workspace.read_artifact(run_id, "report.json"))
    assert LoadReport.from_dict(stored) == report
    found = workspace.search_runs("metrics.throughput_rps > 100", experiments=["loadtests"])
    assert [r.run_id for r in found] == [run_id]
