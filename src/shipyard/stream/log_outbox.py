"""From the outbox stream to the prediction log, each row exactly once.

The consumer's commit puts the prediction-log rows of a batch's new event ids on the outbox
stream (one entry per batch, newline-separated JSON, with the positions of the rows to keep) in
the same atomic step as the outputs (``redis_backend``), so the rows are as durable as the
outputs the moment the input is acknowledged. A drain then moves rows to the prediction log
(``monitor.logfiles``: the same hourly Parquet partitions the server writes, so monitoring
reads streamed traffic unchanged) without ever writing a row twice, across crashes:

1. Take the drain lease (``SET NX PX``; one drainer per output stream at a time).
2. If a plan is recorded (a drainer died mid-way), redo it; else record the plan: the first
   and last outbox ids of the next part.
3. Write the part under a name made of those ids (``part-stream-<first>-<last>.parquet``);
   writing the same plan again replaces the same file with the same rows.
4. In one MULTI: delete the rows from the outbox and the plan.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl

from shipyard.monitor.logfiles import PARTITION_FORMAT, SCHEMA, replace_part_atomic
from shipyard.stream.redis_backend import outbox_key

if TYPE_CHECKING:
    from pathlib import Path

    import redis

    from shipyard.stream.backend import Sink

log = logging.getLogger("shipyard.stream")


class PredictionLogSink:
    """The prediction log folder as a ``Sink``: one Parquet file per part and hour."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write_part(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` into their hourly partitions as ``part-stream-<name>.parquet``."""
        import datetime as dt

        by_hour: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            moment = dt.datetime.fromtimestamp(row["ts_ms"] / 1000, tz=dt.UTC)
            by_hour[moment.strftime(PARTITION_FORMAT)].append(row)
        for folder, part in by_hour.items():
            frame = pl.DataFrame(part, schema=SCHEMA)
            target = self.root / folder
            target.mkdir(parents=True, exist_ok=True)
            replace_part_atomic(target / f"part-stream-{name}.parquet", frame)


class OutboxDrain:
    """Moves rows of one output stream's outbox into a ``Sink``, exactly once."""

    def __init__(
        self, client: redis.Redis, output: str, sink: Sink, *, lease_ms: int = 10_000
    ) -> None:
        self.client = client
        self.outbox = outbox_key(output)
        self.plan_key = f"{self.outbox}:plan"
        self.lease_key = f"{self.outbox}:lease"
        self.sink = sink
        self.lease_ms = lease_ms
        self.written = 0

    def drain(self, max_entries: int = 100) -> int:
        """Move up to ``max_entries`` outbox entries; return how many rows they held.

        0 when another drainer holds the lease or there is nothing to move.
        """
        token = uuid.uuid4().hex
        if not self.client.set(self.lease_key, token, nx=True, px=self.lease_ms):
            return 0
        try:
            return self._drain_once(max_entries)
        finally:
            # Release only our own lease (it may have expired and been taken meanwhile).
            self.client.eval(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end",
                1,
                self.lease_key,
                token,
            )

    def drain_all(self) -> int:
        """Drain until the outbox is empty (shutdown, tests)."""
        total = 0
        while True:
            moved = self.drain()
            total += moved
            if moved == 0 and self.client.xlen(self.outbox) == 0:
                return total
            if moved == 0 and self.client.exists(self.lease_key):
                return total  # another drainer is at work and will finish

    def _drain_once(self, max_entries: int) -> int:
        plan: Any = self.client.get(self.plan_key)
        entries: Any
        if plan is not None:
            first, _, last = plan.decode().partition(" ")
            entries = self.client.xrange(self.outbox, first, last)
        else:
            entries = self.client.xrange(self.outbox, "-", "+", count=max_entries)
            if not entries:
                return 0
            first, last = _text(entries[0][0]), _text(entries[-1][0])
            self.client.set(self.plan_key, f"{first} {last}")
        rows: list[dict[str, Any]] = []
        if entries:
            rows = [row for _, fields in entries for row in log_rows(fields)]
            self.sink.write_part(f"{first}-{last}", rows)
        pipe = self.client.pipeline(transaction=True)
        if entries:
            pipe.xdel(self.outbox, *[entry_id for entry_id, _ in entries])
        pipe.delete(self.plan_key)
        pipe.execute()
        self.written += len(rows)
        return len(rows)


def log_rows(fields: dict[bytes, bytes]) -> list[dict[str, Any]]:
    """The prediction-log rows of one outbox entry, for the ids that were new.

    The entry holds a header line (what the batch's rows share) and one compact line per event,
    ``[event id, feature values, label, class probabilities]``; ``keep`` lists the 1-based
    positions of new ids, or ``*`` for all.
    """
    header, *lines = fields[b"rows"].split(b"\n")
    keep = fields.get(b"keep", b"*")
    if keep != b"*":
        lines = [lines[int(k) - 1] for k in keep.split(b",")]
    shared = orjson.loads(header)
    return [log_row(shared, line) for line in lines]


def log_row(shared: dict[str, Any], line: bytes) -> dict[str, Any]:
    """One prediction-log row from a batch's shared header and an event's compact line."""
    event_id, values, label, proba = orjson.loads(line)
    names = shared["features"]
    return {
        "request_id": event_id,
        "model": shared["model"],
        "version": shared["version"],
        "variant": shared["variant"],
        "ts_ms": shared["ts_ms"],
        "latency_ms": shared["latency_ms"],
        # The same shapes the server logs: columns of one row, and the full answer.
        "inputs_json": orjson.dumps(
            {name: [value] for name, value in zip(names, values, strict=True)}
        ).decode(),
        "outputs_json": orjson.dumps(
            {"predictions": [label], "probabilities": None if proba is None else [proba]}
        ).decode(),
        "prediction": str(label),
        "probability": None if proba is None else proba[-1],
        "status": 200,
        "anomaly_score": None,
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
