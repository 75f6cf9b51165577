"""The load generator against real HTTP servers on 127.0.0.1: counts, errors, rate, latency.

The generator's report is checked against what the server itself counted. Most tests run the
generator in this process (the server's threads share the GIL with it, which only slows
things); one runs it in a spawned process, as benchmarks do.
"""

from __future__ import annotations

import socket

import pytest

from shipyard.core.errors import InvalidArgument
from shipyard.serve.load_report import render_histogram
from shipyard.serve.loadtest import run_load, run_load_in_subprocess
from tests.unit.serve.http_target import http_target, numbered_body


def _assert_consistent(report) -> None:
    lat = report.latency_ms
    assert lat.min <= lat.p50 <= lat.p95 <= lat.p99 <= lat.max
    assert lat.min <= lat.mean <= lat.max
    assert sum(report.histogram.counts) == report.ok
    assert report.ok + report.errors == report.requests
    assert report.throughput_rps == pytest.approx(report.requests / report.duration_s)


def test_closed_loop_counts_match_the_server() -> None:
    with http_target() as target:
        report = run_load(target.url, body=b"{}", concurrency=4, duration_s=1.0)
    assert report.requests == target.requests > 20
    assert report.ok == report.requests
    assert report.errors == 0
    assert report.errors_by_kind == {}
    assert report.status_counts == {"200": report.requests}
    assert report.duration_s >= 1.0  # the window is measured whole (no upper bound: busy CI)
    assert report.config["mode"] == "concurrency"
    assert report.config["concurrency"] == 4
    assert report.config["body_bytes"] == 2
    _assert_consistent(report)


def test_server_errors_are_counted_by_status() -> None:
    with http_target(fail_every=3) as target:
        report = run_load(target.url, body=b"{}", concurrency=2, duration_s=0.8)
    assert target.failures >= 5
    assert report.errors == target.failures
    assert report.errors_by_kind == {"status 500": target.failures}
    assert report.status_counts == {
        "200": target.requests - target.failures,
        "500": target.failures,
    }
    assert report.error_rate == pytest.approx(target.failures / target.requests)
    _assert_consistent(report)


@pytest.mark.parametrize("arrival", ["uniform", "poisson"])
def test_rate_mode_sends_about_rate_times_duration(arrival: str) -> None:
    with http_target() as target:
        report = run_load(
            target.url, body=b"{}", rate_per_s=80, duration_s=1.25, arrival=arrival, seed=7
        )
    assert report.requests == target.requests
    # The seeded schedule holds 100 +- 20 % sends; each was sent or, on a starved machine,
    # counted as missed -- never silently dropped.
    assert 80 <= report.requests + report.missed_sends <= 120
    assert report.config["mode"] == "rate"
    assert report.config["arrival"] == arrival
    _assert_consistent(report)


def test_percentiles_are_plausible_against_a_known_service_time() -> None:
    with http_target(sleep_s=0.03) as target:
        report = run_load(target.url, concurrency=2, duration_s=1.0, method="GET")
    lat = report.latency_ms
    assert lat.min >= 30.0  # nothing answers faster than the server sleeps
    # closed loop: throughput ~ concurrency / latency
    assert report.throughput_rps == pytest.approx(2 / (lat.mean / 1000), rel=0.25)
    assert target.bodies[0] == b""
    _assert_consistent(report)
    assert render_histogram(report.histogram).count("\n") >= 0


def test_warm_up_requests_are_sent_but_not_measured() -> None:
    with http_target() as target:
        report = run_load(target.url, body=b"{}", concurrency=1, duration_s=0.5, warmup_s=0.5)
    assert report.requests > 0
    assert target.requests > report.requests * 1.4  # about half the traffic was warm-up


def test_timeouts_and_refused_connections_are_errors_by_exception_type() -> None:
    with http_target(sleep_s=0.4) as target:
        report = run_load(target.url, concurrency=2, duration_s=0.3, timeout_s=0.1)
    assert report.requests >= 2
    assert report.errors_by_kind == {"ReadTimeout": report.requests}
    assert report.ok == 0
    assert report.latency_ms.p50 is None
    assert render_histogram(report.histogram) == "(no successful responses)"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        refused = run_load(f"http://127.0.0.1:{port}/", concurrency=1, duration_s=0.2)
    assert set(refused.errors_by_kind) == {"ConnectError"}
    assert refused.errors == refused.requests > 0


def test_an_open_loop_that_falls_behind_counts_missed_sends() -> None:
    with http_target(sleep_s=0.25) as target:
        report = run_load(
            target.url, rate_per_s=100, duration_s=1.0, max_in_flight=2, arrival="uniform"
        )
    assert report.missed_sends > 50  # two slots of 250 ms cannot carry 100/s
    assert report.requests == target.requests
    assert report.requests + report.missed_sends == pytest.approx(100, abs=5)


def test_body_function_and_headers_reach_the_server() -> None:
    with http_target() as target:
        run_load(
            target.url,
            body=numbered_body,
            headers={"content-type": "application/json", "x-trace": "t1"},
            concurrency=1,
            duration_s=0.3,
        )
    assert target.bodies[:3] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    assert target.headers[0]["x-trace"] == "t1"
    assert target.headers[0]["connection"] == "keep-alive"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"concurrency": 2, "rate_per_s": 5.0}, "exactly one"),
        ({"concurrency": 0}, "concurrency"),
        ({"rate_per_s": -1.0}, "rate"),
        ({"concurrency": 1, "duration_s": 0}, "duration"),
        ({"concurrency": 1, "arrival": "bursty"}, "arrival"),
    ],
)
def test_bad_configurations_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        run_load("http://127.0.0.1:9/", **kwargs)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "not a url"])
def test_only_http_urls_are_loaded(url: str) -> None:
    with pytest.raises(InvalidArgument, match="http"):
        run_load(url, concurrency=1, duration_s=0.1)


@pytest.mark.slow
def test_the_generator_runs_in_a_separate_process_with_the_same_report() -> None:
    with http_target() as target:
        report = run_load_in_subprocess(
            target.url, body=numbered_body, rate_per_s=50, duration_s=1.0, arrival="uniform"
        )
        with pytest.raises(InvalidArgument, match="exactly one"):  # raised in the child
            run_load_in_subprocess(target.url, duration_s=0.1)
    assert report.requests == target.requests
    assert 40 <= report.requests + report.missed_sends <= 60
    assert sorted(target.bodies)[:2] == [b'{"n": 0}', b'{"n": 10}']
    _assert_consistent(report)
