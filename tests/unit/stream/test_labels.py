"""Labels on their own stream, joined to streamed predictions by event id (real Redis)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from shipyard.monitor.feedback import FeedbackStore, join_labels
from shipyard.monitor.logfiles import read_prediction_log
from shipyard.registry.registry import ModelRegistry
from shipyard.serve.server import RegistrySource
from shipyard.stream.consumer import StreamConsumer
from shipyard.stream.dead_letters import list_dead_letters
from shipyard.stream.labels import LabelsConsumer
from shipyard.stream.log_outbox import OutboxDrain, PredictionLogSink
from shipyard.stream.redis_backend import RedisStreamBackend
from shipyard.stream.scoring import ModelFollower
from shipyard.track.workspace import Workspace
from tests.redis_streams import event

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.stream.config import StreamConfig


def test_streamed_labels_join_streamed_predictions_by_event_id(
    redis_client: Any, stream_config: StreamConfig, churn_project: Path, tmp_path: Path
) -> None:
    config = stream_config.model_copy(update={"labels": f"{stream_config.input}:labels"})
    for i in range(50):
        redis_client.xadd(config.input, {"data": orjson.dumps(event(i))})
    registry = ModelRegistry.for_workspace(Workspace.open(churn_project))
    follower = ModelFollower(RegistrySource(registry), "churn", "production")
    StreamConsumer(config, RedisStreamBackend(config), follower).run(max_events=1_000)
    logs = tmp_path / "predictions"
    OutboxDrain(redis_client, config.output, PredictionLogSink(logs)).drain_all()

    labels = [{"event_id": i, "label": i // 2 % 2} for i in range(0, 50, 2)]  # every other
    bad = [b"not json", orjson.dumps({"event_id": 3}), orjson.dumps({"label": 1})]
    assert config.labels is not None
    for payload in [orjson.dumps(label) for label in labels] + bad:
        redis_client.xadd(config.labels, {"data": payload})
    # A consumer that died after reading, before storing: its entries stay pending...
    redis_client.xgroup_create(config.labels, f"{config.group}:labels", id="0", mkstream=True)
    redis_client.xreadgroup(f"{config.group}:labels", "l1", {config.labels: ">"}, 100)
    store = FeedbackStore.beside(logs)
    # ...and the restarted one (same name) reads them again first.
    consumer = LabelsConsumer(redis_client, config, store, consumer="l1")
    consumer.ensure_group()
    while consumer.poll(block_ms=50):
        pass
    assert (consumer.stored, consumer.refused) == (25, 3)
    stored = store.labels("churn")
    assert sorted(stored["request_id"].to_list()) == sorted(str(i) for i in range(0, 50, 2))
    joined = join_labels(read_prediction_log(logs), stored)
    assert joined.height == 25
    assert set(joined["label"].to_list()) == {"0", "1"}
    reasons = sorted(d.reason for d in list_dead_letters(redis_client, config, limit=10))
    assert len(reasons) == 3
    assert all(r.startswith("label: ") for r in reasons)
    assert any("missing label" in r for r in reasons)
    assert redis_client.xpending(config.labels, f"{config.group}:labels")["pending"] == 0
