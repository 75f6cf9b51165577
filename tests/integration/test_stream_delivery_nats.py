"""The SIGKILL test of ``test_stream_delivery`` on NATS JetStream (fewer events).

Consumer processes are killed at random points while events flow; after a final consumer
settles the stream, every event has exactly one output and one prediction-log row.
"""

from __future__ import annotations

import random
import threading
import time
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from shipyard.monitor.logfiles import read_prediction_log
from tests.integration.test_stream_delivery import _start, _stop, _wait, forkserver
from tests.nats_streams import nats_config, nats_probe
from tests.redis_streams import churn_project, event

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext
    from pathlib import Path

    from shipyard.stream.config import StreamConfig
    from tests.nats_streams import NatsProbe

__all__ = ["churn_project", "forkserver", "nats_config", "nats_probe"]  # fixtures by name

pytestmark = pytest.mark.slow


def _produce(probe: NatsProbe, total: int) -> threading.Thread:
    def run() -> None:
        for start in range(0, total, 250):
            probe.publish([orjson.dumps(event(i)) for i in range(start, min(start + 250, total))])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(400)
def test_sigkilled_nats_consumers_lose_and_double_nothing(
    forkserver: ForkServerContext,
    nats_config: StreamConfig,
    nats_probe: NatsProbe,
    churn_project: Path,
) -> None:
    total, kills = 3_000, 8
    rng = random.Random(20)
    producer = _produce(nats_probe, total)
    outputs: Any = lambda: nats_probe.backend.stats().outputs  # noqa: E731
    for k in range(kills):
        process = _start(forkserver, churn_project, nats_config, f"c{k % 3}")
        target = min(total, outputs() + rng.randint(1, 2 * total // kills))
        _wait(lambda t=target, p=process: outputs() >= t or not p.is_alive(), "work")
        time.sleep(rng.random() * 0.05)  # land anywhere in the read/score/commit/drain cycle
        process.kill()
        process.join(60)
    producer.join(120)
    final = _start(forkserver, churn_project, nats_config, "final")
    _wait(lambda: nats_probe.settled(total) and outputs() == total, "every event settled")
    _stop(final, churn_project)  # SIGTERM: drains the log and exits 0
    ids = nats_probe.output_ids()
    assert len(ids) == total, f"{len(ids) - len(set(ids))} doubled, {total - len(set(ids))} lost"
    assert set(ids) == {str(i) for i in range(total)}
    logged = read_prediction_log(churn_project / "predictions").collect()["request_id"].to_list()
    assert len(logged) == total, f"{len(logged)} prediction-log rows for {total} events"
    assert set(logged) == set(ids)
    assert nats_probe.dead_letters() == []


def test_three_nats_consumers_share_a_group_and_score_each_event_once(
    forkserver: ForkServerContext,
    nats_config: StreamConfig,
    nats_probe: NatsProbe,
    churn_project: Path,
) -> None:
    import json

    total = 3_000
    config = nats_config.model_copy(update={"claim_idle_ms": 120_000})  # nobody dies here
    consumers = [_start(forkserver, churn_project, config, f"c{i}") for i in range(3)]
    _produce(nats_probe, total).join(120)
    _wait(lambda: nats_probe.settled(total), "every event settled")
    for process in consumers:
        _stop(process, churn_project)
    stats = [json.loads(p.read_text()) for p in churn_project.glob("stats-c*.json")]
    assert len(stats) == 3
    assert sum(s["outputs"] for s in stats) == total
    assert sum(s["duplicates"] for s in stats) == 0  # no event went to two consumers
    assert all(s["events"] > 0 for s in stats)  # JetStream shared the work
    assert sorted(nats_probe.output_ids()) == sorted(str(i) for i in range(total))
