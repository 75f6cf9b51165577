"""What ``shipyard stream status`` shows: throughput, lag, pending, dead letters, latency.

Each consumer publishes one sample a second to a capped stream ``<input>:<group>:stats``
(events handled in the interval and a sample of event-to-prediction latencies, from the broker's
receipt of the event to the commit of its prediction). The status reads the samples of the last
``window_s`` seconds from every consumer, and the broker's own numbers (lag, pending).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import redis

    from shipyard.stream.backend import GroupStats
    from shipyard.stream.config import StreamConfig

SAMPLES_KEPT = 3600  # one an hour per consumer at one a second; MAXLEN ~ keeps it cheap
LATENCIES_PER_SAMPLE = 1000


def stats_key(config: StreamConfig) -> str:
    """The capped stream of per-second samples of one group."""
    return f"{config.input}:{config.group}:stats"


def publish_sample(
    client: redis.Redis,
    config: StreamConfig,
    consumer: str,
    *,
    events: int,
    interval_s: float,
    latencies_ms: list[float],
) -> None:
    """Record one interval's events and (a sample of) its latencies."""
    if len(latencies_ms) > LATENCIES_PER_SAMPLE:
        latencies_ms = random.sample(latencies_ms, LATENCIES_PER_SAMPLE)
    client.xadd(
        stats_key(config),
        {
            "consumer": consumer,
            "events": events,
            "interval_s": f"{interval_s:.3f}",
            "latencies": np.asarray(latencies_ms, dtype=np.float32).tobytes(),
        },
        maxlen=SAMPLES_KEPT,
        approximate=True,
    )


@dataclass(frozen=True)
class StreamStatus:
    """One look at a stream group: broker numbers and the consumers' recent samples."""

    input: str
    group: str
    length: int
    lag: int | None
    pending: int
    consumers: int
    outputs: int
    dead_letters: int
    late_events: int
    events_per_s: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    window_s: float


def read_status(
    client: redis.Redis | None, config: StreamConfig, group: GroupStats, *, window_s: float = 10.0
) -> StreamStatus:
    """Combine the broker's numbers with the samples of the last ``window_s`` seconds."""
    since_ms = int((time.time() - window_s) * 1000)
    samples: Any = [] if client is None else client.xrange(stats_key(config), f"{since_ms}-0", "+")
    events = sum(int(fields[b"events"]) for _, fields in samples)
    latencies = [np.frombuffer(fields[b"latencies"], dtype=np.float32) for _, fields in samples]
    joined = np.concatenate(latencies) if latencies else np.empty(0, dtype=np.float32)
    p50 = p99 = None
    if joined.size:
        p50, p99 = (float(v) for v in np.percentile(joined, [50, 99]))
    return StreamStatus(
        input=config.input,
        group=config.group,
        length=group.length,
        lag=group.lag,
        pending=group.pending,
        consumers=group.consumers,
        outputs=group.outputs,
        dead_letters=group.dead_letters,
        late_events=group.late_events,
        events_per_s=events / window_s,
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        window_s=window_s,
    )
