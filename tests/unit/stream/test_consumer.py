"""The consume loop against real Redis and a real registry: outputs once, bad events aside."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from shipyard.monitor.logfiles import read_prediction_log
from shipyard.registry.registry import ModelRegistry
from shipyard.serve.server import RegistrySource
from shipyard.stream.consumer import StreamConsumer
from shipyard.stream.dead_letters import list_dead_letters, replay
from shipyard.stream.log_outbox import OutboxDrain, PredictionLogSink, log_rows
from shipyard.stream.redis_backend import RedisStreamBackend
from shipyard.stream.runner import StreamRunner
from shipyard.stream.scoring import ModelFollower
from shipyard.stream.status import read_status
from shipyard.track.workspace import Workspace
from tests.identities import OPERATOR
from tests.redis_streams import event
from tests.unit.registry.trained import cached_bundle_file

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.stream.config import StreamConfig

#: RELIABILITY.md's stream and HTTP-body bad inputs, as events, with the reason expected.
BAD_EVENTS: list[tuple[bytes | None, str]] = [
    (b"garbage", "not JSON"),
    (b"", "not JSON"),
    (b"\xff\xfe\x00bad utf-8", "not JSON"),
    (b'{"event_id": 1, "tenure": NaN, "charges": 1.0, "plan": "basic"}', "not JSON"),
    (b"[" * 10_000 + b"]" * 10_000, "not JSON"),
    (b"[1, 2, 3]", "not a JSON object"),
    (b'"a string"', "not a JSON object"),
    (orjson.dumps({"tenure": 1.0, "charges": 1.0, "plan": "basic"}), "event_id: required"),
    (orjson.dumps(event(True)), "event_id: required"),
    (orjson.dumps(event("x" * 201)), "event_id: required"),
    (orjson.dumps(event("a\nb")), "event_id: required"),
    (orjson.dumps({"event_id": "m1", "tenure": 1.0, "plan": "basic"}), "missing field: charges"),
    (orjson.dumps(event("w1", tenure="three")), "contract: tenure"),
    (orjson.dumps(event("w2", charges=[1.0] * 1_000)), "contract: charges"),
    (orjson.dumps(event("w3", plan=None)), "contract: plan"),
    (orjson.dumps(event("big", note="x" * 70_000)), "over the limit"),
    (None, "no 'data' field"),
]


def _add(client: Any, config: StreamConfig, payloads: list[bytes | None]) -> None:
    pipe = client.pipeline(transaction=False)
    for payload in payloads:
        pipe.xadd(config.input, {"data": payload} if payload is not None else {"other": b"1"})
    pipe.execute()


def _consumer(config: StreamConfig, project: Path, name: str = "c1") -> StreamConsumer:
    registry = ModelRegistry.for_workspace(Workspace.open(project))
    follower = ModelFollower(RegistrySource(registry), "churn", "production")
    return StreamConsumer(config, RedisStreamBackend(config, consumer=name), follower)


def _outputs(client: Any, config: StreamConfig) -> list[str]:
    return [f[b"event_id"].decode() for _, f in client.xrange(config.output)]


def test_bad_events_go_to_dead_letters_with_reason_and_the_rest_are_scored(
    redis_client: Any, stream_config: StreamConfig, churn_project: Path
) -> None:
    good = [orjson.dumps(event(i)) for i in range(20)]
    _add(redis_client, stream_config, [p for p, _ in BAD_EVENTS] + good)
    stats = _consumer(stream_config, churn_project).run(max_events=10_000)
    assert stats.events == len(BAD_EVENTS) + 20
    assert sorted(_outputs(redis_client, stream_config)) == sorted(str(i) for i in range(20))
    dead = list_dead_letters(redis_client, stream_config, limit=1000)
    assert len(dead) == len(BAD_EVENTS)
    for letter, (payload, reason) in zip(dead, BAD_EVENTS, strict=True):
        assert reason in letter.reason
        if payload is not None and payload.isascii():
            assert letter.payload == payload.decode()
    group = RedisStreamBackend(stream_config).stats()
    assert group.pending == 0  # every bad event was acknowledged too
    assert group.lag == 0


def test_a_replayed_event_produces_no_second_output(
    redis_client: Any, stream_config: StreamConfig, churn_project: Path
) -> None:
    _add(redis_client, stream_config, [orjson.dumps(event(i)) for i in range(5)])
    consumer = _consumer(stream_config, churn_project)
    consumer.run(max_events=5)
    _add(redis_client, stream_config, [orjson.dumps(event(i)) for i in range(5)])  # again
    stats = consumer.run(max_events=10)
    assert stats.outputs == 5
    assert stats.duplicates == 5
    assert sorted(_outputs(redis_client, stream_config)) == ["0", "1", "2", "3", "4"]


def test_replaying_a_dead_letter_resubmits_its_payload(
    redis_client: Any, stream_config: StreamConfig, churn_project: Path
) -> None:
    _add(redis_client, stream_config, [b"garbage", orjson.dumps(event("late", tenure="x"))])
    consumer = _consumer(stream_config, churn_project)
    consumer.run(max_events=2)
    first, second = list_dead_letters(redis_client, stream_config)
    new_ids = replay(redis_client, stream_config, [first.id])
    assert len(new_ids) == 1
    consumer.run(max_events=3)
    letters = list_dead_letters(redis_client, stream_config)
    assert [d.entry_id for d in letters] == [first.entry_id, second.entry_id, new_ids[0]]


def test_entries_of_a_dead_consumer_are_claimed_and_scored_once(
    redis_client: Any, stream_config: StreamConfig, churn_project: Path
) -> None:
    _add(redis_client, stream_config, [orjson.dumps(event(i)) for i in range(30)])
    dead = RedisStreamBackend(stream_config, consumer="dies")
    dead.ensure_group()
    taken = dead.read(10, 100)  # read, never committed: it "died"
    assert len(taken) == 10
    survivor = _consumer(stream_config, churn_project, name="lives")
    survivor.run(max_events=20)  # the 20 it could read at once
    assert RedisStreamBackend(stream_config).stats().pending == 10
    threading.Event().wait(stream_config.claim_idle_ms / 1000 + 0.2)  # the entries go idle
    survivor.backend._next_claim = 0.0  # claim now instead of within claim_idle_ms / 2
    survivor.run(max_events=30)
    assert sorted(_outputs(redis_client, stream_config), key=int) == [str(i) for i in range(30)]
    assert RedisStreamBackend(stream_config).stats().pending == 0


def test_an_alias_move_is_picked_up_without_restart(
    redis_client: Any, stream_config: StreamConfig, churn_project: Path
) -> None:
    workspace = Workspace.open(churn_project)
    registry = ModelRegistry.for_workspace(workspace)
    follower = ModelFollower(RegistrySource(registry), "churn", "production", poll_interval_s=0.05)
    consumer = StreamConsumer(stream_config, RedisStreamBackend(stream_config), follower)
    _add(redis_client, stream_config, [orjson.dumps(event("a"))])
    consumer.run(max_events=1)
    registry.register(
        "churn", cached_bundle_file(workspace, churn_project, name="m2"), actor=OPERATOR
    )
    registry.promote("churn", 2, force=True, reason="test", actor=OPERATOR)
    follower.start()
    try:
        for _ in range(600):
            if follower.current.version == 2:
                break
            threading.Event().wait(0.05)
    finally:
        follower.stop()
    _add(redis_client, stream_config, [orjson.dumps(event("b"))])
    consumer.run(max_events=2)
    versions = [
        orjson.loads(f[b"prediction"])["version"]
        for _, f in redis_client.xrange(stream_config.output)
    ]
    assert versions == [1, 2]


def test_prediction_log_rows_are_written_once_even_when_a_drain_is_redone(
    redis_client: Any, stream_config: StreamConfig, churn_project: Path, tmp_path: Path
) -> None:
    _add(redis_client, stream_config, [orjson.dumps(event(i)) for i in range(30)])
    # Batches mixing new and already-scored ids: only the new ones' rows are kept.
    _add(redis_client, stream_config, [orjson.dumps(event(i)) for i in [*range(20, 40), 5]])
    _consumer(stream_config, churn_project).run(max_events=51)
    root = tmp_path / "log"
    drain = OutboxDrain(redis_client, stream_config.output, PredictionLogSink(root))
    # A drainer that died after writing its part: the plan is still recorded, rows still there.
    first = redis_client.xrange(f"{stream_config.output}:log-outbox", "-", "+", count=1)[0][0]
    last = redis_client.xrevrange(f"{stream_config.output}:log-outbox", "+", "-", count=1)[0][0]
    redis_client.set(f"{stream_config.output}:log-outbox:plan", f"{first.decode()} {last.decode()}")
    entries = redis_client.xrange(f"{stream_config.output}:log-outbox")
    rows = [row for _, fields in entries for row in log_rows(fields)]
    PredictionLogSink(root).write_part(f"{first.decode()}-{last.decode()}", rows)
    assert drain.drain_all() == 40
    rows = read_prediction_log(root).collect()
    assert rows.height == 40
    assert sorted(rows["request_id"].to_list(), key=int) == [str(i) for i in range(40)]
    assert set(rows["variant"]) == {"production"}
    first = rows.filter(rows["request_id"] == "3").row(0, named=True)
    assert orjson.loads(first["inputs_json"]) == {
        name: [value] for name, value in event(3).items() if name != "event_id"
    }  # the server's shape: one row's columns
    answer = orjson.loads(first["outputs_json"])
    assert first["prediction"] == str(answer["predictions"][0])
    assert first["probability"] == answer["probabilities"][0][-1]


def test_the_runner_drains_on_stop_and_status_reports(
    redis_client: Any, stream_config: StreamConfig, churn_project: Path, tmp_path: Path
) -> None:
    _add(redis_client, stream_config, [orjson.dumps(event(i)) for i in range(100)])
    _add(redis_client, stream_config, [b"garbage"])
    registry = ModelRegistry.for_workspace(Workspace.open(churn_project))
    follower = ModelFollower(RegistrySource(registry), "churn", "production")
    backend = RedisStreamBackend(stream_config)
    runner = StreamRunner(backend, follower, log_root=tmp_path / "log")

    def stop_when_done(consumer: StreamConsumer) -> None:
        if consumer.stats.events >= 101:
            runner.stop()

    runner.consumer.run = _with_hook(runner.consumer.run, stop_when_done)  # type: ignore[method-assign]
    runner.run()
    assert read_prediction_log(tmp_path / "log").collect().height == 100
    status = read_status(redis_client, stream_config, backend.stats(), window_s=60)
    assert (status.outputs, status.dead_letters, status.pending, status.lag) == (100, 1, 0, 0)
    assert status.events_per_s == pytest.approx(101 / 60)
    assert status.latency_p99_ms is not None
    assert status.latency_p50_ms is not None
    assert status.latency_p50_ms <= status.latency_p99_ms


def _with_hook(run: Any, hook: Any) -> Any:
    def wrapped(**kwargs: Any) -> Any:
        inner = kwargs.pop("on_batch", None)

        def both(consumer: StreamConsumer) -> None:
            if inner is not None:
                inner(consumer)
            hook(consumer)

        return run(on_batch=both, **kwargs)

    return wrapped


def test_a_redis_outage_pauses_the_consumer_and_nothing_is_lost_or_doubled(
    redis_client: Any,
    stream_config: StreamConfig,
    churn_project: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.proxy import TcpProxy

    where = redis_client.connection_pool.connection_kwargs
    proxy = TcpProxy(where["host"], where["port"])
    try:
        config = stream_config.model_copy(update={"url": f"redis://127.0.0.1:{proxy.port}/0"})
        _add(redis_client, config, [orjson.dumps(event(i)) for i in range(200)])
        consumer = _consumer(config, churn_project)
        cut_once: list[bool] = []

        def cut_then_restore(consumer: StreamConsumer) -> None:
            if not cut_once:  # after the first batch: the connection drops mid-stream
                cut_once.append(True)
                proxy.cut()
                threading.Timer(0.5, proxy.restore).start()
            if consumer.stats.events >= 200:
                consumer.stop()

        with caplog.at_level("WARNING", logger="shipyard.stream"):
            consumer.run(on_batch=cut_then_restore)
    finally:
        proxy.close()
    assert any("did not answer" in r.getMessage() for r in caplog.records)
    assert sorted(_outputs(redis_client, stream_config), key=int) == [str(i) for i in range(200)]
    assert RedisStreamBackend(stream_config).stats().pending == 0
