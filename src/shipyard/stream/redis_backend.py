"""Redis Streams as the broker: consumer groups, batched reads, one atomic commit per batch.

Reads are XREADGROUP with COUNT = the batch size (PERFORMANCE.md: batch reads and pipelined
acks are the whole difference, 218k msg/s against 4.3k one at a time). At start a consumer
first re-reads its own pending entries (id ``0``: a restarted consumer of the same name resumes
where it died); every ``claim_idle_ms / 2`` it takes over entries other consumers left pending
longer than ``claim_idle_ms`` (XAUTOCLAIM: a consumer that died for good).

A batch's effects and its acknowledgement are one Lua script, which Redis runs atomically:
for each output, mark the event id seen (``HSETNX`` in the current dedup bucket, after checking
the previous one) and only if it was not seen before XADD to the output stream; the
prediction-log rows of the new ones go to the outbox as one entry (newline-separated JSON,
one XADD per batch, not per event); the same for dead letters,
keyed by entry id; then XACK. A crash before the script leaves the entries pending, to be
delivered again; a crash after it leaves nothing to redo. A redelivered or replayed event whose
id was seen writes nothing a second time. Marker keys are not declared in KEYS, so the
backend needs a single Redis (not Cluster).
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import InvalidArgument, Unavailable
from shipyard.stream.backend import BrokerUnavailable, Commit, Delivery, GroupStats

if TYPE_CHECKING:
    from collections.abc import Iterator

    import redis

    from shipyard.stream.backend import Sink
    from shipyard.stream.config import StreamConfig
    from shipyard.stream.log_outbox import OutboxDrain

PAYLOAD_FIELD = b"data"
_ACK_CHUNK = 1000  # Lua's unpack() has a stack limit; acknowledge in chunks

# ARGV: group, ttl ms, marker prefix, log rows?, then newline-joined event ids, output bodies,
# log rows and entry ids to acknowledge (four arguments however large the batch: packing one
# argument per event cost more than the script), then the dead letters, three arguments each.
_COMMIT = """
local function split(s)
  local out, start = {}, 1
  if s == '' then return out end
  while true do
    local stop = string.find(s, '\\n', start, true)
    if not stop then out[#out + 1] = string.sub(s, start); return out end
    out[#out + 1] = string.sub(s, start, stop - 1)
    start = stop + 1
  end
end
local group, ttl, seen, log_rows = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1'
local ids, bodies, acks = split(ARGV[5]), split(ARGV[6]), split(ARGV[8])
-- Markers live in one hash per ttl-long bucket of Redis's own clock (one clock for every
-- consumer); an id is new if it is in neither this bucket nor the previous one, so it is
-- remembered between ttl and 2 * ttl. HSETNX costs a fifth of a SET with its own expiry.
local bucket = math.floor(tonumber(redis.call('TIME')[1]) / ttl)
local current, previous = seen .. bucket, seen .. (bucket - 1)
local function first_time(field)
  return redis.call('HEXISTS', previous, field) == 0
    and redis.call('HSETNX', current, field, '1') == 1
end
local fresh, kept = 0, {}
for k = 1, #ids do
  if first_time(ids[k]) then
    redis.call('XADD', KEYS[1], '*', 'event_id', ids[k], 'prediction', bodies[k])
    fresh = fresh + 1
    kept[fresh] = k
  end
end
-- The batch's log header and rows go to the outbox whole (never split here: copying them twice
-- cost half the script); 'keep' names the rows of new ids (1-based), '*' when all were new.
if log_rows and fresh > 0 then
  local keep = fresh == #ids and '*' or table.concat(kept, ',')
  redis.call('XADD', KEYS[3], '*', 'rows', ARGV[7], 'keep', keep)
end
-- Dead letters, and late events (entry 'late:<id>') to their own stream, once per entry.
for i = 9, #ARGV, 3 do
  local entry, reason, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local target, marker = KEYS[2], 'dead:'
  if string.sub(entry, 1, 5) == 'late:' then
    target, marker, entry = KEYS[5], 'late:', string.sub(entry, 6)
  end
  if first_time(marker .. entry) then
    redis.call('XADD', target, '*', 'entry_id', entry, 'reason', reason, 'payload', payload)
  end
end
for start = 1, #acks, ACK_CHUNK do
  redis.call('XACK', KEYS[4], group, unpack(acks, start, math.min(start + ACK_CHUNK - 1, #acks)))
end
redis.call('EXPIRE', current, 2 * ttl)
return fresh
""".replace("ACK_CHUNK", str(_ACK_CHUNK))


def connect(url: str) -> redis.Redis:
    """A client for ``url`` (hiredis parses replies when installed), checked with a PING.

    Raises:
        InvalidArgument: redis-py is not installed.
        Unavailable: The server does not answer.
    """
    try:
        import redis
    except ImportError as e:
        raise InvalidArgument("streaming needs redis-py: pip install 'shipyard[stream]'") from e
    client = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as e:
        raise Unavailable(f"Redis at {url} does not answer ({e}); is it running?") from e
    return client


def seen_prefix(output: str) -> str:
    """The prefix of the hashes (one per dedup bucket) of event ids published to ``output``."""
    return f"{output}:seen:"


def outbox_key(output: str) -> str:
    """The stream holding prediction-log rows not yet written to the log (``log_outbox``)."""
    return f"{output}:log-outbox"


def entry_ms(entry_id: str) -> int:
    """The time part of a Redis stream id (``<ms>-<seq>``)."""
    return int(entry_id.partition("-")[0])


class RedisStreamBackend:
    """One consumer of one group on one Redis input stream."""

    def __init__(
        self,
        config: StreamConfig,
        *,
        consumer: str | None = None,
        client: redis.Redis | None = None,
        log_rows: bool = True,
    ) -> None:
        """Connect (or use ``client``) as ``consumer`` (default: the config's name).

        Args:
            config: The stream section.
            consumer: This consumer's name in the group.
            client: An existing client (tests, the benchmark).
            log_rows: Also queue prediction-log rows in the outbox.
        """
        self.config = config
        self.consumer = consumer or config.consumer
        self.client = client if client is not None else connect(config.url)
        self.log_rows = log_rows
        self._commit = self.client.register_script(_COMMIT)
        self._keys = [
            config.output,
            config.dead_letters,
            outbox_key(config.output),
            config.input,
            config.late_stream,
        ]
        self._own_pending = True  # re-read our own unacknowledged entries first
        self._next_claim = 0.0

    def ensure_group(self) -> None:
        """Create the group at the start of the stream (MKSTREAM) unless it exists."""
        import redis

        try:
            self.client.xgroup_create(self.config.input, self.config.group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def read(self, count: int, block_ms: int) -> list[Delivery]:
        """Own pending entries, then abandoned ones, then new ones (blocking up to ``block_ms``).

        Raises:
            BrokerUnavailable: Redis did not answer.
        """
        with _translated(self.config.url):
            return self._read(count, block_ms)

    def _read(self, count: int, block_ms: int) -> list[Delivery]:
        cfg = self.config
        if self._own_pending:
            entries = self._read_group("0", count, None)
            if entries:
                return entries
            self._own_pending = False
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + cfg.claim_idle_ms / 2000
            claimed = self._claim(count)
            if claimed:
                return claimed
        return self._read_group(">", count, block_ms)

    def _read_group(self, start: str, count: int, block_ms: int | None) -> list[Delivery]:
        reply: Any = self.client.xreadgroup(
            self.config.group, self.consumer, {self.config.input: start}, count, block_ms
        )
        return _deliveries(reply)

    def _claim(self, count: int) -> list[Delivery]:
        cfg = self.config
        reply: Any = self.client.xautoclaim(
            cfg.input, cfg.group, self.consumer, cfg.claim_idle_ms, "0-0", count
        )
        entries = reply[1]
        return [_delivery(entry_id, fields) for entry_id, fields in entries if fields is not None]

    def commit(self, commit: Commit) -> int:
        """Publish outputs and dead letters once per key, then acknowledge, atomically.

        Raises:
            BrokerUnavailable: Redis did not answer (the commit may or may not have run; a
                retry is safe).
        """
        with _translated(self.config.url):
            return int(self._commit_batch(commit))

    def commit_and_read(
        self, commit: Commit, count: int, block_ms: int
    ) -> tuple[int, list[Delivery]]:
        """Commit and XREADGROUP new entries in one pipeline: one round trip per batch.

        Redis runs the two in order, so the batch is acknowledged before the next is read.
        While the consumer still re-reads its own pending entries, or a claim is due, it only
        commits (the next ``read`` does those).

        Raises:
            BrokerUnavailable: Redis did not answer (a retry of the commit is safe).
        """
        if self._own_pending or time.monotonic() >= self._next_claim:
            return self.commit(commit), []
        cfg = self.config
        with _translated(cfg.url):
            pipe = self.client.pipeline(transaction=False)
            self._commit_batch(commit, client=pipe)
            pipe.xreadgroup(cfg.group, self.consumer, {cfg.input: ">"}, count, block_ms)
            fresh, reply = pipe.execute()
        return int(fresh), _deliveries(reply)

    def _commit_batch(self, commit: Commit, client: Any = None) -> Any:
        cfg = self.config
        outputs = commit.outputs
        args: list[Any] = [
            cfg.group,
            cfg.dedup_ttl_s,
            seen_prefix(cfg.output),
            "1" if self.log_rows else "0",
            "\n".join(out.event_id for out in outputs),
            b"\n".join(out.body for out in outputs),
            b"\n".join([commit.log_header or b"{}", *(out.log_row or b"" for out in outputs)])
            if self.log_rows
            else b"",
            "\n".join(commit.acks),
        ]
        for dead in commit.dead:
            entry = f"late:{dead.entry_id}" if dead.late else dead.entry_id
            args += (entry, dead.reason, dead.payload)
        if client is not None:  # queued in a pipeline; the reply comes with its execute()
            return self._commit(keys=self._keys, args=args, client=client)
        return int(self._commit(keys=self._keys, args=args))

    def stats(self) -> GroupStats:
        """XINFO GROUPS (lag, pending, consumers) and the lengths of the three streams."""
        cfg = self.config
        pipe = self.client.pipeline(transaction=False)
        pipe.xlen(cfg.input)
        pipe.xinfo_groups(cfg.input)
        pipe.xlen(cfg.dead_letters)
        pipe.xlen(cfg.output)
        pipe.xlen(cfg.late_stream)
        length, groups, dead, outputs, late = pipe.execute(raise_on_error=False)
        if isinstance(groups, Exception):  # no such key: the stream was never written
            groups = []
        mine = next((g for g in groups if _text(g.get("name")) == cfg.group), None)
        if mine is None:
            return GroupStats(length, None, 0, 0, dead, outputs, late)
        lag = mine.get("lag")
        return GroupStats(
            length=length,
            lag=None if lag is None else int(lag),
            pending=int(mine.get("pending", 0)),
            consumers=int(mine.get("consumers", 0)),
            dead_letters=dead,
            outputs=outputs,
            late_events=late,
        )

    def log_drain(self, sink: Sink, *, lease_ms: int = 10_000) -> OutboxDrain:
        """The drain that moves this output's outbox into ``sink`` (``log_outbox``)."""
        from shipyard.stream.log_outbox import OutboxDrain

        return OutboxDrain(self.client, self.config.output, sink, lease_ms=lease_ms)

    def publish_sample(self, *, events: int, interval_s: float, latencies_ms: list[float]) -> None:
        """Record one interval of this consumer for ``stream status``."""
        from shipyard.stream.status import publish_sample

        publish_sample(
            self.client,
            self.config,
            self.consumer,
            events=events,
            interval_s=interval_s,
            latencies_ms=latencies_ms,
        )

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()


@contextlib.contextmanager
def _translated(url: str) -> Iterator[None]:
    """Connection failures become ``BrokerUnavailable`` (chained); other errors pass."""
    import redis

    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as e:
        raise BrokerUnavailable(f"Redis at {url} did not answer: {e}") from e


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _deliveries(reply: Any) -> list[Delivery]:
    if not reply:
        return []
    _, entries = reply[0]
    return [_delivery(entry_id, fields) for entry_id, fields in entries]


def _delivery(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Delivery:
    ident = _text(entry_id)
    return Delivery(ident, fields.get(PAYLOAD_FIELD), entry_ms(ident))
