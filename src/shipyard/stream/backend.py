"""The two seams of the streaming core: a broker (``StreamBackend``) and a durable ``Sink``.

A backend delivers entries of one input stream to one consumer of a group and takes back a
``Commit``: the outputs and dead letters of a batch, and the entries to acknowledge. It must
write each output and dead letter at most once per key (the event id, or the entry id of a
dead letter) and acknowledge only after they are written: that is what makes redelivery after
a crash harmless (at-least-once delivery, effects once). Redis Streams implements it today
(``redis_backend``); NATS JetStream will implement the same protocol.

A ``Sink`` is a durable place for rows that are written in named parts, where writing the same
part again replaces it (the prediction log; see ``log_outbox``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from shipyard.core.errors import Unavailable


class BrokerUnavailable(Unavailable):
    """The broker did not answer (connection refused, reset or timed out).

    Backends raise it from ``read`` and ``commit`` so the consumer can wait and retry: a
    commit repeated after a lost reply writes nothing twice, by the dedup contract.
    """

    code = "broker_unavailable"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One entry as the broker delivered it.

    Attributes:
        entry_id: The broker's id of the entry (what is acknowledged).
        payload: The event's raw bytes; None when the entry had no payload field.
        broker_ms: When the broker received the entry (epoch ms): latency is measured from it.
    """

    entry_id: str
    payload: bytes | None
    broker_ms: int


@dataclass(frozen=True, slots=True)
class Output:
    """A prediction to publish once per event id, with its compact prediction-log row."""

    event_id: str
    body: bytes
    log_row: bytes | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry that could not be scored: why, and what it was.

    ``late`` ones (behind the watermark; see ``stream.windows``) go to the late-events
    stream instead of the dead letters: they are not bad, only too late to count.
    """

    entry_id: str
    reason: str
    payload: bytes
    late: bool = False


@dataclass(slots=True)
class Commit:
    """What one batch did: outputs, dead letters, and every entry to acknowledge.

    ``log_header`` holds what the batch's prediction-log rows share (model, version, time...).
    """

    outputs: list[Output] = field(default_factory=list)
    log_header: bytes | None = None
    dead: list[DeadLetter] = field(default_factory=list)
    acks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GroupStats:
    """The broker's view of a consumer group."""

    length: int
    lag: int | None
    pending: int
    consumers: int
    dead_letters: int
    outputs: int
    late_events: int = 0


class StreamBackend(Protocol):
    """A broker seen by one consumer of one group."""

    def ensure_group(self) -> None:
        """Create the input stream's consumer group if it does not exist yet."""

    def read(self, count: int, block_ms: int) -> list[Delivery]:
        """Return up to ``count`` entries, waiting up to ``block_ms`` when there are none.

        This consumer's own unacknowledged entries come first, then entries abandoned by dead
        consumers, then new ones.
        """

    def commit(self, commit: Commit) -> int:
        """Write outputs and dead letters (once per key), then acknowledge.

        Returns:
            How many outputs were new (not seen before).
        """

    def commit_and_read(
        self, commit: Commit, count: int, block_ms: int
    ) -> tuple[int, list[Delivery]]:
        """``commit``, then ``read`` in the same round trip where the broker allows it.

        Returns:
            The number of new outputs, and the next entries (may be empty even when entries
            wait: the caller then calls ``read``).
        """

    def stats(self) -> GroupStats:
        """Lengths, lag and pending entries of the group."""

    def close(self) -> None:
        """Release the connection."""


class Sink(Protocol):
    """A durable store of rows written in named parts; rewriting a part replaces it."""

    def write_part(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` as the part ``name`` (whole or not at all)."""
