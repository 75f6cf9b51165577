"""The NATS JetStream backend against a real nats-server: the Redis backend's contract."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from shipyard.monitor.logfiles import read_prediction_log
from shipyard.registry.registry import ModelRegistry
from shipyard.serve.server import RegistrySource
from shipyard.stream.brokers import open_broker
from shipyard.stream.consumer import StreamConsumer
from shipyard.stream.log_outbox import PredictionLogSink
from shipyard.stream.nats_backend import NatsStreamBackend
from shipyard.stream.scoring import ModelFollower
from shipyard.track.workspace import Workspace
from tests.nats_streams import nats_config, nats_probe
from tests.redis_streams import event

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.stream.config import StreamConfig
    from tests.nats_streams import NatsProbe

__all__ = ["nats_config", "nats_probe"]  # fixtures used by name


def _consumer(config: StreamConfig, project: Path, name: str = "c1") -> StreamConsumer:
    registry = ModelRegistry.for_workspace(Workspace.open(project))
    follower = ModelFollower(RegistrySource(registry), "churn", "production")
    return StreamConsumer(config, open_broker(config, consumer=name), follower)


def test_a_nats_url_opens_the_jetstream_backend(nats_config: StreamConfig) -> None:
    broker = open_broker(nats_config)
    try:
        assert isinstance(broker, NatsStreamBackend)
    finally:
        broker.close()


def test_events_are_scored_once_and_bad_ones_dead_lettered(
    nats_config: StreamConfig, nats_probe: NatsProbe, churn_project: Path, tmp_path: Path
) -> None:
    good = [orjson.dumps(event(i)) for i in range(120)]
    bad = [b"garbage", b"[1, 2]", orjson.dumps(event("w1", tenure="three"))]
    nats_probe.publish(good[:60] + bad + good[60:])
    consumer = _consumer(nats_config, churn_project)
    stats = consumer.run(max_events=10_000)
    assert (stats.events, stats.outputs, stats.dead_letters) == (123, 120, 3)
    assert sorted(nats_probe.output_ids()) == sorted(str(i) for i in range(120))
    reasons = [letter["reason"] for letter in nats_probe.dead_letters()]
    assert [r.split(":")[0] for r in reasons] == [
        "not JSON",
        "not a JSON object but list",
        "contract",
    ]
    assert nats_probe.settled(123)
    # The same events again (a producer retrying): no second output.
    nats_probe.publish(good[:10])
    assert consumer.run(max_events=10_000).duplicates == 10
    assert len(nats_probe.output_ids()) == 120
    # The log rows travel with the outputs and are drained once each.
    drain = consumer.backend.log_drain(PredictionLogSink(tmp_path / "log"))  # type: ignore[attr-defined]
    assert drain.drain_all() == 120
    assert drain.drain_all() == 0
    logged = read_prediction_log(tmp_path / "log").collect()
    assert sorted(logged["request_id"].to_list()) == sorted(str(i) for i in range(120))
    consumer.backend.close()


def test_entries_of_a_consumer_that_died_are_redelivered_to_another(
    nats_config: StreamConfig, nats_probe: NatsProbe, churn_project: Path
) -> None:
    nats_probe.publish([orjson.dumps(event(i)) for i in range(30)])
    dead = open_broker(nats_config, consumer="dies")
    dead.ensure_group()
    taken = dead.read(30, 2_000)
    assert len(taken) == 30
    dead.close()  # never acknowledged: JetStream redelivers after the ack wait
    survivor = _consumer(nats_config, churn_project, "survivor")
    seen: list[Any] = []
    survivor.run(max_events=30, on_batch=lambda c: seen.append(c.stats.outputs))
    while survivor.stats.outputs < 30:  # the ack wait passes while it polls
        survivor.run(max_events=30 - survivor.stats.outputs)
    assert sorted(nats_probe.output_ids()) == sorted(str(i) for i in range(30))
    assert nats_probe.settled(30)
    survivor.backend.close()
