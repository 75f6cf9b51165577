"""Streaming speed: one Shipyard consumer vs. a bare Redis Streams consumer, same run.

Model: HistGradientBoosting (a tree model) on 8 numeric features, trained, bundled, registered
and promoted through Shipyard in a temporary workspace, scored on the ONNX fast path the server
uses (``shipyard.cli.stream.fast_predictor``). A stream of ``--events`` JSON events is written
once; each repetition reads all of it with a fresh consumer group, both sides in this process
on the same connection settings, interleaved (order swapped every other repetition):

- the floor: redis-py + hiredis, XREADGROUP COUNT 100 then XACK of those ids, no work
  (PERFORMANCE.md measured 218k msg/s this way);
- Shipyard: ``StreamConsumer`` with batch size 100: read, parse JSON, check each event against
  the model's input contract, predict the batch, build output and prediction-log rows, and the
  one atomic commit (dedup marker + output XADD + outbox XADD per event, XACK); then the outbox
  is drained into the Parquet prediction log, and that time is counted too.

Latency: a producer process writes events at a fixed ``--rate`` (10,000/s) for ``--seconds``
while one Shipyard consumer keeps up; p99 of event-to-prediction latency (broker receipt to
commit of the prediction) is reported.

Targets (issue 19): >= 100,000 events/s per consumer; per-event cost <= 2.5x the floor's;
p99 <= 50 ms at 10,000 events/s.
Run: ``.venv/bin/python benchmarks/streaming.py [--events 50000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis
from harness import Comparison, report
from serving import register_model

FEATURES = [f"f{i}" for i in range(8)]
REDIS_URL = "redis://127.0.0.1:6379/0"
EVENTS_PER_S_TARGET = 100_000
RATIO_TARGET = 2.5
P99_TARGET_MS = 50.0


def build_model(directory: Path) -> Any:
    """Train, register and promote the benchmark model; return a registry source for it."""
    from shipyard.registry.registry import ModelRegistry
    from shipyard.serve.server import RegistrySource
    from shipyard.track.workspace import Workspace

    register_model(directory, FEATURES, rows=4000, informative=5)
    return RegistrySource(ModelRegistry.for_workspace(Workspace.open(directory)))


def write_events(client: redis.Redis, stream: str, total: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(total, len(FEATURES))).tolist()
    for start in range(0, total, 1000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + 1000, total)):
            body = {"event_id": f"e{i}", **dict(zip(FEATURES, values[i], strict=True))}
            pipe.xadd(stream, {"data": orjson.dumps(body)})
        pipe.execute()


#: CPU seconds per event of the last measurement of each side: (this process, the Redis server).
CPU: dict[str, list[tuple[float, float]]] = {"floor": [], "shipyard": []}


def redis_cpu_s(client: redis.Redis) -> float:
    """The Redis server's CPU seconds so far (user + system; it serves only this benchmark)."""
    info: Any = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def floor_events_per_s(client: redis.Redis, stream: str, total: int) -> float:
    """Bare consumer: XREADGROUP COUNT 100, XACK the ids, nothing else."""
    group = f"floor-{uuid.uuid4().hex[:8]}"
    client.xgroup_create(stream, group, id="0")
    seen = 0
    cpu, server = time.process_time(), redis_cpu_s(client)
    started = time.perf_counter()
    while seen < total:
        reply: Any = client.xreadgroup(group, "c", {stream: ">"}, 100)
        if not reply:
            break
        ids = [entry_id for entry_id, _ in reply[0][1]]
        client.xack(stream, group, *ids)
        seen += len(ids)
    elapsed = time.perf_counter() - started
    CPU["floor"].append(
        ((time.process_time() - cpu) / total, (redis_cpu_s(client) - server) / total)
    )
    client.xgroup_destroy(stream, group)
    assert seen == total, f"floor read {seen} of {total}"
    return total / elapsed


def shipyard_consumer(source: Any, stream: str, prefix: str, *, block_ms: int = 1000) -> Any:
    from shipyard.cli.stream import fast_predictor
    from shipyard.stream.config import StreamConfig
    from shipyard.stream.consumer import StreamConsumer
    from shipyard.stream.redis_backend import RedisStreamBackend
    from shipyard.stream.scoring import ModelFollower

    config = StreamConfig(
        url=REDIS_URL,
        input=stream,
        group=f"{prefix}-group",
        model="m@production",
        output=f"{prefix}:out",
        dead_letters=f"{prefix}:dead",
        batch_size=100,
        block_ms=block_ms,
    )
    follower = ModelFollower(source, "m", "production", build_predictor=fast_predictor)
    # The follower loads the model (and verifies its ONNX export) here, outside any timing.
    return StreamConsumer(config, RedisStreamBackend(config), follower)


def shipyard_events_per_s(source: Any, client: redis.Redis, stream: str, total: int) -> float:
    """Consume, check, predict, commit, ack; then drain the outbox to the prediction log."""
    from shipyard.stream.log_outbox import OutboxDrain, PredictionLogSink

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    consumer = shipyard_consumer(source, stream, prefix)
    with tempfile.TemporaryDirectory() as log_dir:
        drain = OutboxDrain(client, consumer.config.output, PredictionLogSink(Path(log_dir)))
        cpu, server = time.process_time(), redis_cpu_s(client)
        started = time.perf_counter()
        stats = consumer.run(max_events=total)
        drain.drain_all()
        elapsed = time.perf_counter() - started
        CPU["shipyard"].append(
            ((time.process_time() - cpu) / total, (redis_cpu_s(client) - server) / total)
        )
    assert stats.outputs == total, stats
    assert stats.dead_letters == 0, stats
    _cleanup(client, prefix, stream)
    return total / elapsed


def _cleanup(client: redis.Redis, prefix: str, stream: str) -> None:
    client.xgroup_destroy(stream, f"{prefix}-group")
    keys = list(client.scan_iter(match=f"{prefix}:*", count=10_000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])


PRODUCER = textwrap.dedent(
    """
    import sys, time, orjson, redis
    stream, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    client, features = redis.Redis.from_url(sys.argv[4]), orjson.loads(sys.argv[5])
    tick, per_tick = 0.01, max(1, int(rate * 0.01))
    started, sent, n = time.perf_counter(), 0, int(rate * seconds)
    while sent < n:
        due = started + (sent // per_tick) * tick
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        pipe = client.pipeline(transaction=False)
        for i in range(sent, min(sent + per_tick, n)):
            body = {"event_id": f"l{i}", **features}
            pipe.xadd(stream, {"data": orjson.dumps(body)})
        pipe.execute()
        sent += per_tick
    print(sent)
    """
)


def latency_at_rate(source: Any, client: redis.Redis, rate: int, seconds: float) -> list[float]:
    """p50/p99 of event-to-prediction latency while a producer writes ``rate`` events/s."""
    prefix = f"lat-{uuid.uuid4().hex[:8]}"
    stream = f"{prefix}:in"
    consumer = shipyard_consumer(source, stream, prefix, block_ms=5)
    consumer.backend.ensure_group()
    total = int(rate * seconds)
    features = orjson.dumps({f: 0.1 * (i + 1) for i, f in enumerate(FEATURES)}).decode()
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, stream, str(rate), str(seconds), REDIS_URL, features]
    )
    latencies: list[float] = []
    deadline = time.monotonic() + seconds * 5 + 30
    while consumer.stats.events < total and time.monotonic() < deadline:
        deliveries = consumer.backend.read(100, 5)
        if deliveries:
            consumer.process(deliveries)
    producer.wait(timeout=60)
    latencies = consumer.stats.take_latencies()
    _cleanup(client, prefix, stream)
    client.delete(stream)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    with tempfile.TemporaryDirectory() as folder:
        source = build_model(Path(folder))
        stream = f"bench-{uuid.uuid4().hex[:8]}:in"
        write_events(client, stream, args.events)
        try:
            cost = Comparison("streaming_cost_per_event", RATIO_TARGET, unit="s/event")
            rates: list[float] = []
            for i in range(max(args.repeat, 3)):
                sides = [
                    lambda: floor_events_per_s(client, stream, args.events),
                    lambda: shipyard_events_per_s(source, client, stream, args.events),
                ]
                if i % 2:
                    ours, floor = sides[1](), sides[0]()
                else:
                    floor, ours = sides[0](), sides[1]()
                cost.add(1 / floor, 1 / ours)
                print(f"  repetition {i + 1}: floor {floor:,.0f}/s, shipyard {ours:,.0f}/s")
                rates.append(ours)
            latencies = latency_at_rate(source, client, args.rate, args.seconds)
        finally:
            client.delete(stream)
    p50, p99 = (float(v) for v in np.percentile(latencies, [50, 99]))
    report(f"Streaming, {args.events} events per repetition, one consumer", [cost])
    median_rate = statistics.median(rates)
    print(
        f"  shipyard events/s: median {median_rate:,.0f} (min {min(rates):,.0f}, "
        f"max {max(rates):,.0f}); floor median {1 / statistics.median(cost.floor):,.0f}"
    )
    print(
        f"  event-to-prediction latency at {args.rate:,} events/s for {args.seconds:g} s "
        f"({len(latencies)} events): p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
    for side, samples in CPU.items():
        mine = statistics.median(s[0] for s in samples) * 1e6
        server = statistics.median(s[1] for s in samples) * 1e6
        print(
            f"  {side} CPU per event (median): this process {mine:.1f} us, Redis {server:.1f} us "
            "(CPU time: what the wall-clock ratio becomes on a machine that is not shared)"
        )
    ok_rate = median_rate >= EVENTS_PER_S_TARGET
    ok_p99 = p99 <= P99_TARGET_MS
    print(
        f"RESULT streaming_events_per_s ratio={median_rate / EVENTS_PER_S_TARGET:.3f} "
        f"target=1 {'ok' if ok_rate else 'MISS'}"
    )
    print(
        f"RESULT streaming_p99_latency ratio={p99 / P99_TARGET_MS:.3f} target=1 "
        f"{'ok' if ok_p99 else 'MISS'}"
    )


if __name__ == "__main__":
    main()
