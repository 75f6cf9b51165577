"""Window features in the stream: the engine of ``data.windows`` over state kept in Redis.

Per batch: read the state of the buckets the batch's events need (one pipelined round trip),
run the engine event by event in arrival order (so an event sees the earlier ones of its own
batch too), and, before the batch is committed, write each scored event into its buckets.
State is a Redis hash per (key field, bucket width, key, bucket start), event id -> event, so
writing an event again (a batch redelivered after a crash) changes nothing; each hash expires
``state_ttl_s`` after its last write.

**Lateness.** The watermark is the largest event time seen on the input (kept in Redis, so
every consumer of the group shares it) minus ``watermark_delay_ms``. An event more than
``allowed_lateness_ms`` behind the watermark is late: it is not folded into any window, not
scored, and goes to the late-events stream with its payload, counted. Everything else is
folded in, out-of-order events included, exactly as over a dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from shipyard.data.windows import StoredEvent, WindowBook, compute, key_text

if TYPE_CHECKING:
    import redis

    from shipyard.data.windows import Order, WindowDef

_NUMERIC = ("sum", "mean")


@dataclass(frozen=True)
class Lateness:
    """The watermark's delay behind the largest event time, and how far behind it may be."""

    watermark_delay_ms: int = 0
    allowed_lateness_ms: int = 60_000

    @property
    def slack_ms(self) -> int:
        """How far behind the largest event time seen an event may be and still count."""
        return self.watermark_delay_ms + self.allowed_lateness_ms


@dataclass
class WindowedBatch:
    """The engine's answer for one batch: features per kept event, the late ones, the state."""

    features: list[dict[str, Any]] = field(default_factory=list)
    late: dict[int, str] = field(default_factory=dict)  # position in the batch -> reason
    writes: list[tuple[str, str, bytes]] = field(default_factory=list)  # key, event id, value
    max_time: int | None = None


def entry_order(entry_id: str) -> Order:
    """A Redis stream id ``<ms>-<seq>`` as a sortable tuple: the broker's arrival order."""
    ms, _, seq = entry_id.partition("-")
    return (int(ms), int(seq or 0))


class StreamWindows:
    """Computes the window features a model needs, for one input stream."""

    def __init__(
        self,
        defs: list[WindowDef],
        client: redis.Redis,
        *,
        prefix: str,
        lateness: Lateness,
        state_ttl_s: int,
    ) -> None:
        """Keep state under ``prefix`` with the given lateness rule and expiry."""
        self.defs = defs
        self.client = client
        self.prefix = prefix
        self.lateness = lateness
        self.state_ttl_s = state_ttl_s
        self.names = frozenset(d.name for d in defs)
        self._narrowed: dict[frozenset[str], StreamWindows | None] = {}
        self._times = sorted({d.time for d in defs})
        self._required = sorted({d.key for d in defs} | set(self._times))

    def needed_by(self, names: list[str]) -> StreamWindows | None:
        """These windows narrowed to the features a model reads (None: it reads none).

        The stream follows an alias, and the next version may read other features: the
        consumer asks per batch, and the answer is cached per set of names.
        """
        wanted = frozenset(names) & self.names
        if wanted not in self._narrowed:
            defs = [d for d in self.defs if d.name in wanted]
            self._narrowed[wanted] = (
                StreamWindows(
                    defs,
                    self.client,
                    prefix=self.prefix,
                    lateness=self.lateness,
                    state_ttl_s=self.state_ttl_s,
                )
                if defs
                else None
            )
        return self._narrowed[wanted]

    def problem(self, event: dict[str, Any]) -> str | None:
        """Why ``event`` cannot be windowed (a dead letter), or None."""
        for name in self._required:
            value = event.get(name)
            if value is None:
                return f"missing field: {name} (window features need it)"
            if name in self._times and not _number(value):
                return f"{name}: event time must be epoch milliseconds as a number"
        for d in self.defs:
            if d.agg in _NUMERIC and d.column is not None:
                value = event.get(d.column)
                if value is not None and not _number(value):
                    return f"{d.column}: must be a number or null ({d.name} is a {d.agg})"
        return None

    def state_key(self, key_field: str, width: int, key: str, start: int) -> str:
        """The Redis hash holding one bucket's events."""
        return f"{self.prefix}:{key_field}:{width}:{key}:{start}"

    def watermark_key(self) -> str:
        """The sorted set whose one member's score is the largest event time seen."""
        return f"{self.prefix}:max-event-time"

    def apply(
        self, event_ids: list[str], events: list[dict[str, Any]], entry_ids: list[str]
    ) -> WindowedBatch:
        """Features for every event not late, in order, and the writes that store them."""
        out = WindowedBatch()
        seen = self._max_time()
        slack = self.lateness.slack_ms
        kept: list[int] = []
        for i, event in enumerate(events):
            t = _time(event, self._times[0])
            if seen is not None and t < seen - slack:
                out.late[i] = (
                    f"late: event time {t} is {seen - t} ms behind the latest event time "
                    f"{seen}; allowed: {slack} ms (watermark delay + allowed lateness)"
                )
                continue
            seen = t if seen is None else max(seen, t)
            kept.append(i)
        out.max_time = seen
        book = self._load([events[i] for i in kept])
        for i in kept:
            order = entry_order(entry_ids[i])
            out.features.append(compute(self.defs, book, event_ids[i], events[i], order))
            for slot, item in book.add(self.defs, event_ids[i], events[i], order):
                key = self.state_key(*slot)
                out.writes.append((key, event_ids[i], _encode(item)))
        return out

    def persist(self, batch: WindowedBatch) -> None:
        """Store the batch's events and the watermark (idempotent: safe to repeat)."""
        if not batch.writes and batch.max_time is None:
            return
        pipe = self.client.pipeline(transaction=False)
        touched: set[str] = set()
        for key, event_id, value in batch.writes:
            pipe.hset(key, event_id, value)
            touched.add(key)
        for key in touched:
            pipe.expire(key, self.state_ttl_s)
        if batch.max_time is not None:
            pipe.zadd(self.watermark_key(), {"max": batch.max_time}, gt=True)
        pipe.execute()

    def _max_time(self) -> int | None:
        score = self.client.zscore(self.watermark_key(), "max")
        return None if score is None else int(score)

    def _load(self, events: list[dict[str, Any]]) -> WindowBook:
        """Read every bucket the events' windows reach, in one round trip."""
        slots: set[tuple[str, int, str, int]] = set()
        for event in events:
            for d in self.defs:
                t = _time(event, d.time)
                key = key_text(event[d.key])
                width = d.window.bucket_ms
                slots.update((d.key, width, key, start) for start in d.window.buckets(t))
        ordered = sorted(slots)
        book = WindowBook()
        if not ordered:
            return book
        pipe = self.client.pipeline(transaction=False)
        for slot in ordered:
            pipe.hgetall(self.state_key(*slot))
        for slot, stored in zip(ordered, pipe.execute(), strict=True):
            bucket = book.bucket(*slot)
            for event_id, value in stored.items():
                ident = event_id.decode() if isinstance(event_id, bytes) else str(event_id)
                bucket[ident] = _decode(value)
        return book


def _encode(item: StoredEvent) -> bytes:
    return orjson.dumps([item.t, list(item.order), item.values])


def _decode(raw: bytes) -> StoredEvent:
    t, order, values = orjson.loads(raw)
    return StoredEvent(int(t), tuple(order), values)


def _number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _time(event: dict[str, Any], name: str) -> int:
    return int(event[name])
