"""Which broker a ``stream:`` section names, by its URL's scheme: Redis or NATS JetStream."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from shipyard.stream.backend import StreamBackend

if TYPE_CHECKING:
    from shipyard.stream.backend import GroupStats, Sink
    from shipyard.stream.config import StreamConfig


class LogDrain(Protocol):
    """Moves prediction-log rows from the broker into the log, each exactly once."""

    def drain(self) -> int:
        """Move the next part; return how many rows it held."""

    def drain_all(self) -> int:
        """Move everything there is."""


class Broker(StreamBackend, Protocol):
    """A ``StreamBackend`` that also drains its log rows and records status samples."""

    consumer: str
    config: StreamConfig

    def log_drain(self, sink: Sink, *, lease_ms: int = 10_000) -> LogDrain:
        """The drain of this output's log rows."""

    def publish_sample(self, *, events: int, interval_s: float, latencies_ms: list[float]) -> None:
        """Record one interval for ``stream status``."""

    def stats(self) -> GroupStats:
        """Lengths, lag and pending entries of the group."""


def open_broker(config: StreamConfig, *, consumer: str | None = None, log_rows: bool = True) -> Any:
    """Connect to the broker of ``config.url`` as ``consumer``."""
    if config.url.startswith("nats://"):
        from shipyard.stream.nats_backend import NatsStreamBackend

        return NatsStreamBackend(config, consumer=consumer, log_rows=log_rows)
    from shipyard.stream.redis_backend import RedisStreamBackend

    return RedisStreamBackend(config, consumer=consumer, log_rows=log_rows)
