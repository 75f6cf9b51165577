"""Reading the dead-letter stream, and sending chosen dead letters back to the input.

A replay XADDs the original payload to the input stream as a new entry: if it was bad it comes
back as a new dead letter (with its new entry id); if its event id was already scored, the dedup
marker keeps it from producing a second output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import NotFound
from shipyard.stream.redis_backend import PAYLOAD_FIELD, entry_ms

if TYPE_CHECKING:
    import redis

    from shipyard.stream.config import StreamConfig


@dataclass(frozen=True)
class DeadLetterEntry:
    """One dead letter: its id in the dead-letter stream, the input entry, why, and what.

    ``payload`` is for reading (invalid UTF-8 shown as U+FFFD); a replay sends the original
    bytes.
    """

    id: str
    entry_id: str
    ts_ms: int
    reason: str
    payload: str


def list_dead_letters(
    client: redis.Redis, config: StreamConfig, *, limit: int = 100
) -> list[DeadLetterEntry]:
    """The latest ``limit`` dead letters, oldest first."""
    entries: Any = client.xrevrange(config.dead_letters, "+", "-", count=limit)
    return [_entry(entry_id, fields) for entry_id, fields in reversed(entries)]


def replay(client: redis.Redis, config: StreamConfig, ids: list[str]) -> list[str]:
    """XADD the payload of each dead letter in ``ids`` to the input; return the new entry ids.

    Raises:
        NotFound: An id is not in the dead-letter stream (nothing is replayed then).
    """
    found = []
    for ident in ids:
        entries: Any = client.xrange(config.dead_letters, ident, ident)
        if not entries:
            raise NotFound(
                f"no dead letter {ident!r} in {config.dead_letters}; "
                "`shipyard stream dead-letters` lists them"
            )
        found.append(entries[0][1].get(b"payload", b""))
    pipe = client.pipeline(transaction=True)
    for payload in found:
        pipe.xadd(config.input, {PAYLOAD_FIELD: payload})
    return [_text(new) for new in pipe.execute()]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetterEntry:
    ident = _text(entry_id)
    return DeadLetterEntry(
        id=ident,
        entry_id=fields.get(b"entry_id", b"").decode(),
        ts_ms=entry_ms(ident),
        reason=fields.get(b"reason", b"").decode("utf-8", "replace"),
        payload=fields.get(b"payload", b"").decode("utf-8", "replace"),
    )
