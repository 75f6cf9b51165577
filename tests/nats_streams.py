"""Real NATS JetStream for the stream tests (skipped with the reason when absent, failed in CI).

``nats_config`` is a ``stream:`` section on fresh, uniquely named subjects; ``NatsProbe`` is the
test's own connection: it publishes events and reads back outputs, dead letters and counts.
Everything a test made (streams, the drain's cursor) is deleted after it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from shipyard.stream.config import StreamConfig
from shipyard.stream.nats_backend import JetStreamLogDrain, NatsStreamBackend, stream_name
from tests.conftest import _unavailable

NATS_URL = os.environ.get("SHIPYARD_TEST_NATS_URL", "nats://127.0.0.1:4222")


class NatsProbe:
    """The test's side of the broker."""

    def __init__(self, config: StreamConfig) -> None:
        self.config = config
        self.backend = NatsStreamBackend(config, consumer="probe")
        self.backend.ensure_group()

    def publish(self, payloads: list[bytes]) -> None:
        """Publish events to the input subject (confirmed by JetStream)."""
        import asyncio

        js = self.backend.js

        async def send() -> None:
            for start in range(0, len(payloads), 500):
                chunk = payloads[start : start + 500]
                await asyncio.gather(*(js.publish(self.config.input, p) for p in chunk))

        self.backend.run(send())

    def messages(self, subject: str) -> list[Any]:
        """Every message stored for ``subject``, in order."""
        import nats.js.errors

        js = self.backend.js

        async def read() -> list[Any]:
            info = await js.stream_info(stream_name(subject))
            out: list[Any] = []
            if not info.state.messages:
                return out
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    out.append(await js.get_msg(stream_name(subject), seq))
            return out

        return list(self.backend.run(read()))

    def output_ids(self) -> list[str]:
        return [m.headers["Shipyard-Event-Id"] for m in self.messages(self.config.output)]

    def dead_letters(self) -> list[dict[str, Any]]:
        return [orjson.loads(m.data) for m in self.messages(self.config.dead_letters)]

    def settled(self, total: int) -> bool:
        """Every input event handled and acknowledged."""
        group = self.backend.stats()
        return group.length == total and group.lag == 0 and group.pending == 0

    def cleanup(self) -> None:
        js = self.backend.js

        async def drop() -> None:
            for subject in (self.config.input, self.config.output, self.config.dead_letters):
                with contextlib.suppress(Exception):
                    await js.delete_stream(stream_name(subject))
            with contextlib.suppress(Exception):
                kv = await js.key_value(JetStreamLogDrain.BUCKET)
                await kv.purge(stream_name(self.config.output))

        with contextlib.suppress(Exception):
            self.backend.run(drop())
        self.backend.close()


@pytest.fixture
def nats_config() -> StreamConfig:
    """A stream section on fresh NATS subjects (its streams deleted after the test)."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    config = StreamConfig(
        url=NATS_URL,
        input=f"{prefix}.events",
        group="scorers",
        consumer="c1",
        model="churn@production",
        output=f"{prefix}.predictions",
        dead_letters=f"{prefix}.dead",
        batch_size=50,
        block_ms=100,
        claim_idle_ms=1_000,
        poll_interval_s=0.2,
    )
    try:
        NatsStreamBackend(config).close()
    except Exception as e:
        _unavailable(f"NATS JetStream not reachable at {NATS_URL}: {type(e).__name__}: {e}")
    return config


@pytest.fixture
def nats_probe(nats_config: StreamConfig) -> Iterator[NatsProbe]:
    """The test's connection to the same subjects."""
    probe = NatsProbe(nats_config)
    yield probe
    probe.cleanup()
