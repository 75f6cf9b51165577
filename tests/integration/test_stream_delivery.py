"""At-least-once delivery with effects once, against real Redis and real consumer processes.

RELIABILITY.md invariant 5: every event id ends in exactly one of processed / dead-letter, and
none is processed twice. Consumers are separate processes (forked from a forkserver that has
imported Shipyard once, so a restart costs milliseconds, not an interpreter start); the test
SIGKILLs them at random moments while events flow, restarts them, and then checks that every
input event has exactly one output entry and exactly one prediction-log row.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest

from shipyard.monitor.logfiles import read_prediction_log
from shipyard.stream.redis_backend import RedisStreamBackend, outbox_key
from tests.integration.stream_worker import consume
from tests.redis_streams import churn_project, event, redis_client, stream_config

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext
    from pathlib import Path

    from shipyard.stream.config import StreamConfig

__all__ = ["churn_project", "redis_client", "stream_config"]  # fixtures used by name

_DEADLINE_S = 180  # three times what a slow machine needs for the largest case


@pytest.fixture(scope="module")
def forkserver() -> ForkServerContext:
    """A forkserver that has imported the consumer's modules once."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        [
            "tests.integration.stream_worker",
            "shipyard.stream.runner",
            "shipyard.registry.registry",
            "shipyard.serve.server",
            "shipyard.track.workspace",
            # What loading a bundle imports: a restart should cost milliseconds.
            "sqlite3",
            "skops.io",
            "sklearn.compose",
            "sklearn.linear_model",
            "sklearn.pipeline",
            "sklearn.preprocessing",
        ]
    )
    return context


def _produce(client: Any, config: StreamConfig, total: int) -> threading.Thread:
    def run() -> None:
        for start in range(0, total, 500):
            pipe = client.pipeline(transaction=False)
            for i in range(start, min(start + 500, total)):
                pipe.xadd(config.input, {"data": orjson.dumps(event(i))})
            pipe.execute()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _start(
    context: ForkServerContext, project: Path, config: StreamConfig, name: str
) -> multiprocessing.process.BaseProcess:
    process = context.Process(
        target=consume, args=(str(project), config.model_dump_json(), name, str(project))
    )
    process.start()
    return process


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + _DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _settled(client: Any, config: StreamConfig, total: int) -> bool:
    group = RedisStreamBackend(config, client=client).stats()
    return (
        group.length == total
        and group.lag == 0
        and group.pending == 0
        and client.xlen(outbox_key(config.output)) == 0
    )


def _stop(process: multiprocessing.process.BaseProcess, project: Path) -> None:
    _wait(  # the consumer has installed its SIGTERM handler and loaded the model
        lambda: any(project.glob(f"stats-*-{process.pid}.json.ready")), "consumer ready"
    )
    process.terminate()  # SIGTERM: drain and exit 0
    process.join(_DEADLINE_S)
    assert process.exitcode == 0


def _check_exactly_once(client: Any, config: StreamConfig, project: Path, total: int) -> None:
    ids = [f[b"event_id"].decode() for _, f in client.xrange(config.output)]
    assert len(ids) == total, f"{len(ids) - len(set(ids))} doubled, {total - len(set(ids))} lost"
    assert set(ids) == {str(i) for i in range(total)}
    rows = read_prediction_log(project / "predictions").select("request_id").collect()
    logged = rows["request_id"].to_list()
    assert len(logged) == total, f"{len(logged)} prediction-log rows for {total} events"
    assert set(logged) == set(ids)
    assert client.xlen(config.dead_letters) == 0


def _kills_while_flowing(
    context: ForkServerContext,
    client: Any,
    config: StreamConfig,
    project: Path,
    *,
    total: int,
    kills: int,
) -> None:
    rng = random.Random(19)
    producer = _produce(client, config, total)
    for k in range(kills):
        # Names repeat (a restarted consumer re-reads its own pending entries) and change (a
        # new one claims the dead one's entries once they are idle).
        process = _start(context, project, config, f"c{k % 3}")
        target = min(total, client.xlen(config.output) + rng.randint(1, 2 * total // kills))
        _wait(
            lambda t=target, p=process: client.xlen(config.output) >= t or not p.is_alive(),
            "work",
        )
        time.sleep(rng.random() * 0.05)  # land anywhere in the read/score/commit/drain cycle
        assert process.pid is not None
        process.kill()  # SIGKILL: no drain, no ack of the batch in hand
        process.join(_DEADLINE_S)
    producer.join(_DEADLINE_S)
    final = _start(context, project, config, "final")
    _wait(lambda: _settled(client, config, total), "every event settled")
    _stop(final, project)
    _check_exactly_once(client, config, project, total)


def test_sigkilled_consumers_lose_and_double_nothing(
    forkserver: ForkServerContext,
    redis_client: Any,
    stream_config: StreamConfig,
    churn_project: Path,
) -> None:
    _kills_while_flowing(
        forkserver, redis_client, stream_config, churn_project, total=5_000, kills=5
    )


@pytest.mark.slow
@pytest.mark.timeout(_DEADLINE_S * 2)
def test_twenty_sigkills_over_a_hundred_thousand_events(
    forkserver: ForkServerContext,
    redis_client: Any,
    stream_config: StreamConfig,
    churn_project: Path,
) -> None:
    config = stream_config.model_copy(update={"batch_size": 200})
    _kills_while_flowing(forkserver, redis_client, config, churn_project, total=100_000, kills=20)


def test_three_consumers_share_a_group_and_score_each_event_once(
    forkserver: ForkServerContext,
    redis_client: Any,
    stream_config: StreamConfig,
    churn_project: Path,
) -> None:
    total = 6_000
    # Nobody dies here, so nothing should be claimed: a claim idle time far above what a slow
    # batch on a busy machine takes keeps the count of duplicates an honest zero.
    stream_config = stream_config.model_copy(update={"claim_idle_ms": 120_000})
    consumers = [_start(forkserver, churn_project, stream_config, f"c{i}") for i in range(3)]
    _produce(redis_client, stream_config, total).join(_DEADLINE_S)
    _wait(lambda: _settled(redis_client, stream_config, total), "every event settled")
    for process in consumers:
        _stop(process, churn_project)
    stats = [json.loads(p.read_text()) for p in churn_project.glob("stats-c*.json")]
    assert len(stats) == 3
    assert sum(s["outputs"] for s in stats) == total
    assert sum(s["duplicates"] for s in stats) == 0  # no event went to two consumers
    assert all(s["events"] > 0 for s in stats)  # the group shared the work
    _check_exactly_once(redis_client, stream_config, churn_project, total)


@pytest.mark.slow
def test_the_cli_consumer_drains_on_sigterm_and_exits_0(
    redis_client: Any, stream_config: StreamConfig, churn_project: Path
) -> None:
    (churn_project / "shipyard.yaml").write_text(
        json.dumps({"stream": stream_config.model_dump(mode="json")})  # JSON is YAML
    )
    for i in range(300):
        redis_client.xadd(stream_config.input, {"data": orjson.dumps(event(i))})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shipyard.cli.main",
            "-C",
            str(churn_project),
            "stream",
            "run",
            "--native",
            "--log-dir",
            str(churn_project / "predictions"),
            "--metrics-port",
            str(port),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait(lambda: _settled(redis_client, stream_config, 300), "every event settled")
        _wait(lambda: "predictions_total" in _scrape(port), "the counters in /metrics")
        metrics = _scrape(port)
        assert _metric(metrics, "shipyard_stream_predictions_total") == 300
        assert _metric(metrics, "shipyard_stream_events_total") == 300
        assert _metric(metrics, "shipyard_stream_lag") == 0
        assert _metric(metrics, "shipyard_stream_dead_letters_total") == 0
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=_DEADLINE_S)
    assert process.returncode == 0, stderr
    assert "300 events, 300 predictions" in stderr
    _check_exactly_once(redis_client, stream_config, churn_project, 300)


def _scrape(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    except httpx.HTTPError:
        return ""  # not listening yet


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")


BURST_MEMORY_BOUND_MB = 64  # docs/streaming.md states it: the batch in hand, not the backlog


@pytest.mark.slow
def test_a_ten_times_burst_is_caught_up_with_flat_memory(
    forkserver: ForkServerContext,
    redis_client: Any,
    stream_config: StreamConfig,
    churn_project: Path,
) -> None:
    import psutil

    steady, burst = 2_000, 20_000
    process = _start(forkserver, churn_project, stream_config, "c0")
    _produce(redis_client, stream_config, steady).join(_DEADLINE_S)
    _wait(lambda: _settled(redis_client, stream_config, steady), "the steady traffic settled")
    assert process.pid is not None
    watched = psutil.Process(process.pid)
    before = watched.memory_info().rss
    peak, most_lag = before, 0
    pipe = redis_client.pipeline(transaction=False)
    for i in range(steady, steady + burst):  # ten times the steady volume, all at once
        pipe.xadd(stream_config.input, {"data": orjson.dumps(event(i))})
    pipe.execute()
    backend = RedisStreamBackend(stream_config, client=redis_client)
    deadline = time.monotonic() + _DEADLINE_S
    while not _settled(redis_client, stream_config, steady + burst):
        assert time.monotonic() < deadline, "the burst was not caught up"
        peak = max(peak, watched.memory_info().rss)
        most_lag = max(most_lag, backend.stats().lag or 0)
        time.sleep(0.02)
    grown_mb = (peak - before) / 2**20
    print(f"burst: RSS {before / 2**20:.0f} MB -> peak {peak / 2**20:.0f} MB, lag up to {most_lag}")
    assert most_lag > 0  # it did lag behind the burst (else the test measured nothing)
    assert grown_mb < BURST_MEMORY_BOUND_MB, f"RSS grew {grown_mb:.0f} MB during the burst"
    _stop(process, churn_project)
    _check_exactly_once(redis_client, stream_config, churn_project, steady + burst)
