"""Window features in the stream against real Redis: the same values as over a dataset,
state that survives redelivery, late events set aside, and a model scored on them."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl
import pytest

from shipyard.data.features import FeaturesSpec, add_features, window_defs
from shipyard.monitor.logfiles import read_prediction_log
from shipyard.registry.registry import ModelRegistry
from shipyard.serve.server import RegistrySource
from shipyard.stream.consumer import StreamConsumer
from shipyard.stream.dead_letters import list_dead_letters
from shipyard.stream.log_outbox import OutboxDrain, PredictionLogSink
from shipyard.stream.redis_backend import RedisStreamBackend
from shipyard.stream.scoring import ModelFollower
from shipyard.stream.windows import Lateness, StreamWindows
from shipyard.track.workspace import Workspace

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.stream.config import StreamConfig

FEATURES = {
    "n_10s": {"agg": "count", "tumbling": "10s"},
    "sum_1m": {"agg": "sum", "column": "amount", "tumbling": "1m"},
    "mean_30s": {"agg": "mean", "column": "amount", "hopping": "30s", "every": "10s"},
    "min_1m": {"agg": "min", "column": "amount", "tumbling": "1m"},
    "max_visit": {"agg": "max", "column": "amount", "session": "4s"},
    "last_shop": {"agg": "last", "column": "shop", "hopping": "1m", "every": "20s"},
    "shops": {"agg": "distinct", "column": "shop", "session": "6s", "max_session": "2m"},
}


def _defs(**only: dict[str, Any]) -> FeaturesSpec:
    chosen = only or FEATURES
    return FeaturesSpec.model_validate(
        {name: {"window": {"key": "acct", "time": "ts", **a}} for name, a in chosen.items()}
    )


def _events(n: int, seed: int) -> list[dict[str, Any]]:
    """Events of 5 keys over ~3 minutes, a quarter of them up to 8 s out of order."""
    rng = random.Random(seed)
    events, t = [], 1_700_000_000_000
    for i in range(n):
        t += rng.randint(0, 900)
        late_by = rng.randint(0, 8_000) if rng.random() < 0.25 else 0
        amount = None if rng.random() < 0.1 else round(rng.uniform(1, 100), 2)
        events.append(
            {
                "event_id": f"e{i}",
                "acct": rng.choice("abcde"),
                "ts": t - late_by,
                "amount": amount,
                "shop": rng.choice(["s1", "s2", "s3", "s4"]),
            }
        )
    return events


def _windows(client: Any, config: StreamConfig, spec: FeaturesSpec, **lateness: int) -> Any:
    return StreamWindows(
        window_defs(spec),
        client,
        prefix=f"{config.input}:win",
        lateness=Lateness(**{"allowed_lateness_ms": 600_000, **lateness}),
        state_ttl_s=3600,
    )


def _through_stream(
    client: Any, config: StreamConfig, spec: FeaturesSpec, events: list[dict[str, Any]], seed: int
) -> list[dict[str, Any]]:
    """Feed ``events`` as stream entries in random-sized batches; return the features."""
    windows = _windows(client, config, spec)
    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(config.input, {"data": orjson.dumps(event)})
    entry_ids = [e.decode() for e in pipe.execute()]
    rng, out, i = random.Random(seed), [], 0
    while i < len(events):
        size = rng.randint(1, 40)
        batch = [dict(e) for e in events[i : i + size]]
        ids = [e["event_id"] for e in batch]
        result = windows.apply(ids, batch, entry_ids[i : i + size])
        assert not result.late
        windows.persist(result)
        if rng.random() < 0.3:  # delivered again (a consumer killed before its ack)
            again = windows.apply(ids, [dict(e) for e in batch], entry_ids[i : i + size])
            assert again.features == result.features
            windows.persist(again)
        out += result.features
        i += size
    return out


def test_stream_features_equal_the_dataset_features_for_the_same_events(
    redis_client: Any, stream_config: StreamConfig
) -> None:
    events = _events(600, seed=1)
    spec = _defs()
    frame = add_features(pl.DataFrame(events).lazy(), spec).collect()
    streamed = _through_stream(redis_client, stream_config, spec, events, seed=2)
    for name in FEATURES:
        want = frame[name].to_list()
        got = [features[name] for features in streamed]
        assert got == pytest.approx(want, nan_ok=True), name
    assert any(v > 0 for v in frame["n_10s"].to_list())  # the windows were not all empty


def test_a_second_consumer_carries_on_from_the_same_state(
    redis_client: Any, stream_config: StreamConfig
) -> None:
    spec = _defs(total={"agg": "sum", "column": "amount", "tumbling": "1h"})
    first = _windows(redis_client, stream_config, spec)
    second = _windows(redis_client, stream_config, spec)  # another process, same Redis
    event = {"event_id": "a", "acct": "k", "ts": 1_000, "amount": 2.5}
    first.persist(first.apply(["a"], [event], ["5-0"]))
    later = {"event_id": "b", "acct": "k", "ts": 2_000, "amount": 1.0}
    assert second.apply(["b"], [later], ["6-0"]).features == [{"total": 2.5}]


def test_late_events_are_set_aside_counted_and_never_folded_in(
    redis_client: Any, stream_config: StreamConfig
) -> None:
    spec = _defs(total={"agg": "sum", "column": "amount", "tumbling": "1h"})
    windows = _windows(
        redis_client, stream_config, spec, watermark_delay_ms=1_000, allowed_lateness_ms=2_000
    )
    batch = [
        {"event_id": "a", "acct": "k", "ts": 10_000, "amount": 1.0},
        {"event_id": "b", "acct": "k", "ts": 7_000, "amount": 2.0},  # 3 s behind: allowed
        {"event_id": "c", "acct": "k", "ts": 6_999, "amount": 4.0},  # 3.001 s behind: late
        {"event_id": "d", "acct": "k", "ts": 11_000, "amount": 8.0},
    ]
    result = windows.apply([e["event_id"] for e in batch], batch, ["1-0", "2-0", "3-0", "4-0"])
    assert list(result.late) == [2]
    assert "3001 ms behind" in result.late[2]
    assert [f["total"] for f in result.features] == [0.0, 0.0, 3.0]  # c is not in d's window
    windows.persist(result)
    # The watermark is shared through Redis: a fresh consumer sees c as late too.
    again = _windows(
        redis_client, stream_config, spec, watermark_delay_ms=1_000, allowed_lateness_ms=2_000
    )
    assert list(again.apply(["c"], [batch[2]], ["5-0"]).late) == [0]


def test_the_consumer_scores_with_window_features_and_sends_late_events_aside(
    redis_client: Any, stream_config: StreamConfig, churn_project: Path
) -> None:
    # The churn model reads `charges`; here it is a window feature: the sum of the account's
    # earlier amounts in the minute. Events carry amount, not charges.
    spec = _defs(charges={"agg": "sum", "column": "amount", "tumbling": "1m"})
    windows = _windows(redis_client, stream_config, spec, allowed_lateness_ms=5_000)
    events = [
        {"event_id": f"e{i}", "acct": "ab"[i % 2], "ts": 1_000 * i, "amount": float(i)}
        for i in range(40)
    ]
    events.append({"event_id": "old", "acct": "a", "ts": 0, "amount": 99.0})  # late
    events.append({"event_id": "bad", "acct": "a", "ts": 50_000, "amount": "lots"})
    pipe = redis_client.pipeline(transaction=False)
    for e in events:
        pipe.xadd(stream_config.input, {"data": orjson.dumps({**e, "tenure": 5.0, "plan": "pro"})})
    pipe.execute()
    registry = ModelRegistry.for_workspace(Workspace.open(churn_project))
    follower = ModelFollower(RegistrySource(registry), "churn", "production")
    backend = RedisStreamBackend(stream_config)
    consumer = StreamConsumer(stream_config, backend, follower, windows=windows)
    stats = consumer.run(max_events=1_000)
    assert (stats.outputs, stats.late, stats.dead_letters) == (40, 1, 1)
    late = redis_client.xrange(stream_config.late_stream)
    assert [orjson.loads(f[b"payload"])["event_id"] for _, f in late] == ["old"]
    dead = list_dead_letters(redis_client, stream_config, limit=10)
    assert [d.reason for d in dead] == ["amount: must be a number or null (charges is a sum)"]
    logs = churn_project / "logs"
    OutboxDrain(redis_client, stream_config.output, PredictionLogSink(logs)).drain_all()
    logged = read_prediction_log(logs).collect().sort("request_id")
    want = add_features(pl.DataFrame(events[:40]).lazy(), spec).collect()
    expected = dict(zip(want["event_id"], want["charges"], strict=True))
    assert len(logged) == 40
    for request_id, inputs in zip(logged["request_id"], logged["inputs_json"], strict=True):
        assert orjson.loads(inputs)["charges"] == [pytest.approx(expected[request_id])]
